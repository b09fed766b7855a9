package macvlan

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/switch/frame"
	"github.com/switchyard-net/switchyard/switch/port"
	"github.com/switchyard-net/switchyard/switch/port/porttest"
)

// TestOffloadFallback sends a TCP GSO super-frame with a partial checksum
// from a child that takes offloads to the wire, through a parent that takes
// none: the wire gets finished segments that verify.
func TestOffloadFallback(t *testing.T) {
	checkGoroutines(t)
	pp, wire := porttest.Pipe("parent", "wire", &porttest.Config{SlotSize: 2048})
	sw := New(pp, parentMAC, nil)
	defer sw.Close()
	cp, host := porttest.Pipe("c", "h", &porttest.Config{SlotSize: 70000, Offloads: true})
	if err := sw.AddChild("c", cp, ChildConfig{MAC: mac(1), Mode: VEPA}); err != nil {
		t.Fatal(err)
	}
	src, dst := netip.MustParseAddr("198.18.60.11"), netip.MustParseAddr("198.18.60.3")
	payload := 4000
	super := make([]byte, 14+20+20+payload)
	copy(super, eth(extMAC, mac(1), 0)[:12])
	binary.BigEndian.PutUint16(super[12:], frame.EtherTypeIPv4)
	ip := super[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, frame.ProtoTCP
	binary.BigEndian.PutUint16(ip[2:], uint16(len(super)-14))
	copy(ip[12:], src.AsSlice())
	copy(ip[16:], dst.AsSlice())
	frame.IPv4(ip).FillChecksum()
	tcp := super[34:54]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 5201)
	binary.BigEndian.PutUint32(tcp[4:], 1000)
	tcp[12], tcp[13] = 5<<4, frame.TCPAck
	for i := 54; i < len(super); i++ {
		super[i] = byte(i * 7)
	}
	binary.BigEndian.PutUint16(tcp[16:], frame.PseudoHeaderSum(frame.ProtoTCP, src, dst, len(super)-34))
	vnet := frame.VNetHdr{Flags: frame.VNetNeedsCsum, GSOType: frame.GSOTCPv4, HdrLen: 54, GSOSize: 1448, CsumStart: 34, CsumOffset: 16}
	if n, _ := host.Write([]port.Frame{{Data: super, VNet: vnet}}); n != 1 {
		t.Fatal("could not inject the super-frame")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if c, _ := sw.Child("c"); c.Counters.RxFrames == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the super-frame was not forwarded in 5 s")
		}
		time.Sleep(time.Millisecond)
	}
	segs := wire.Drain()
	if len(segs) != 3 {
		t.Fatalf("the wire got %d frames, want 3 segments (4000 bytes at 1448)", len(segs))
	}
	for i, s := range segs {
		l := int(frame.IPv4(s[14:]).TotalLen())
		if !frame.IPv4(s[14:]).VerifyChecksum() || !frame.TCP(s[34:14+l]).Verify(src, dst) {
			t.Errorf("segment %d: checksums do not verify", i)
		}
	}
	if d := sw.Parent().Counters.Drops; len(d) != 0 {
		t.Errorf("parent drops: %v", d)
	}
}
