package bridge

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/switchyard-net/switchyard/switch/frame"
	"github.com/switchyard-net/switchyard/switch/port"
	"github.com/switchyard-net/switchyard/switch/port/porttest"
)

// TestOffloadFallback floods one TCP GSO super-frame with a partial
// checksum to a port that takes offloads (it gets the frame as it is) and
// to one that does not (it gets finished segments that verify).
func TestOffloadFallback(t *testing.T) {
	// HdrLen as the kernel fills it: the headers, or the whole linear
	// part of the skb (payload included), which must not confuse the
	// segment count.
	for _, hdrLen := range []int{54, 4054} {
		t.Run(fmt.Sprintf("HdrLen=%d", hdrLen), func(t *testing.T) { testOffloadFallback(t, uint16(hdrLen)) })
	}
}

func testOffloadFallback(t *testing.T, hdrLen uint16) {
	checkGoroutines(t)
	br := New(&Config{SweepInterval: -1})
	defer br.Close()
	big := &porttest.Config{SlotSize: 70000, Offloads: true}
	inBr, inHost := porttest.Pipe("in", "h-in", big)
	offBr, offHost := porttest.Pipe("off", "h-off", big)
	plainBr, plainHost := porttest.Pipe("plain", "h-plain", &porttest.Config{SlotSize: 2048, Slots: 64})
	for name, p := range map[string]port.Port{"in": inBr, "off": offBr, "plain": plainBr} {
		if err := br.AddPort(name, p, DefaultFlags()); err != nil {
			t.Fatal(err)
		}
	}

	src, dst := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
	ip := &layers.IPv4{Version: 4, TTL: 64, Id: 100, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolTCP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 5201, Seq: 1000, Ack: 1, ACK: true, PSH: true, Window: 512}
	tcp.SetNetworkLayerForChecksum(ip)
	payload := make([]byte, 4000)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4},
		ip, tcp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	super := buf.Bytes()
	// Turn it into what a local sender hands over: pseudo-header seed only.
	seed := frame.PseudoHeaderSum(frame.ProtoTCP, src, dst, len(super)-34)
	binary.BigEndian.PutUint16(super[34+16:], seed)
	vnet := frame.VNetHdr{Flags: frame.VNetNeedsCsum, GSOType: frame.GSOTCPv4, HdrLen: hdrLen, GSOSize: 1448, CsumStart: 34, CsumOffset: 16}

	if n, _ := inHost.Write([]port.Frame{{Data: super, VNet: vnet}}); n != 1 {
		t.Fatal("could not inject the super-frame")
	}
	waitFor(t, func() bool { pi, _ := br.Port("in"); return pi.Counters.RxFrames == 1 })

	whole := offHost.Drain()
	if len(whole) != 1 || len(whole[0]) != len(super) {
		t.Fatalf("offload port got %d frames, want the super-frame whole", len(whole))
	}
	segs := plainHost.Drain()
	if len(segs) != 3 {
		t.Fatalf("plain port got %d frames, want 3 segments (4000 bytes at 1448)", len(segs))
	}
	var got []byte
	for i, s := range segs {
		p := gopacket.NewPacket(s, layers.LayerTypeEthernet, gopacket.Default)
		sip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		stcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if !frame.IPv4(s[14:]).VerifyChecksum() || !frame.TCP(s[34:14+sip.Length]).Verify(src, dst) {
			t.Errorf("segment %d: checksums do not verify", i)
		}
		if want := uint32(1000 + 1448*i); stcp.Seq != want {
			t.Errorf("segment %d: seq %d, want %d", i, stcp.Seq, want)
		}
		got = append(got, stcp.Payload...)
	}
	if string(got) != string(payload) {
		t.Error("segments do not carry the payload in order")
	}
	if d := br.Ports(); d[1].Counters.Dropped(DropOffload) != 0 {
		t.Errorf("offload drops: %v", d[1].Counters.Drops)
	}
}
