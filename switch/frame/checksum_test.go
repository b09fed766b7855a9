package frame

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// refSum is RFC 1071 done the obvious way, one big-endian word at a time.
func refSum(b []byte, initial uint16) uint16 {
	s := uint32(initial)
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

func TestSum(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 2000)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	ff := make([]byte, 200)
	for i := range ff {
		ff[i] = 0xff
	}
	for n := 0; n <= 300; n++ {
		for _, init := range []uint16{0, 1, 0xfffe, 0xffff, 0x1234} {
			for _, b := range [][]byte{buf[:n], buf[7 : 7+n], ff[:min(n, len(ff))]} {
				if got, want := Sum(b, init), refSum(b, init); got != want {
					t.Fatalf("Sum(len %d, %#x) = %#x, want %#x", len(b), init, got, want)
				}
			}
		}
	}
	if got, want := Sum(buf, 0), refSum(buf, 0); got != want {
		t.Fatalf("Sum(2000) = %#x, want %#x", got, want)
	}
}

// TestPseudoHeaderSum checks the pseudo-header against gopacket's TCP
// checksum for both families.
func TestPseudoHeaderSum(t *testing.T) {
	for _, pair := range [][2][]byte{{ip4A, ip4B}, {ip6A, ip6B}} {
		var nl gopacket.NetworkLayer
		if len(pair[0]) == 4 {
			nl = &layers.IPv4{Version: 4, IHL: 5, Protocol: layers.IPProtocolTCP, SrcIP: pair[0], DstIP: pair[1]}
		} else {
			nl = &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolTCP, SrcIP: pair[0], DstIP: pair[1]}
		}
		tcp := &layers.TCP{SrcPort: 9, DstPort: 10, Seq: 0xdeadbeef, ACK: true, Window: 512}
		if err := tcp.SetNetworkLayerForChecksum(nl); err != nil {
			t.Fatal(err)
		}
		seg := serialize(t, tcp, gopacket.Payload("odd length payload!"))
		src, dst := addrOf(pair[0]), addrOf(pair[1])
		want := gpTCPChecksum(t, seg, src, dst)
		if got := TCP(seg).Checksum(); got != want {
			t.Fatalf("serialized checksum %#x, ComputeChecksum %#x", got, want)
		}
		if !TCP(seg).Verify(src, dst) {
			t.Errorf("%v: Verify false on gopacket's segment", src)
		}
		TCP(seg).FillChecksum(src, dst)
		if got := TCP(seg).Checksum(); got != want {
			t.Errorf("%v: FillChecksum = %#x, gopacket %#x", src, got, want)
		}
	}
}

// TestIncremental rewrites fields with the incremental setters and checks
// the result against a full recompute, over random headers.
func TestIncremental(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	randAddr := func(v6 bool) netip.Addr {
		var b [16]byte
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if v6 {
			return netip.AddrFrom16(b)
		}
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	for i := range 2000 {
		v6 := i%2 == 1
		src, dst := randAddr(v6), randAddr(v6)
		seg := make([]byte, 20+r.IntN(40))
		for j := range seg {
			seg[j] = byte(r.Uint32())
		}
		seg[12] = 5 << 4
		tcp := TCP(seg)
		tcp.FillChecksum(src, dst)
		nsrc, ndst := randAddr(v6), randAddr(v6)
		tcp.SetSrcPort(uint16(r.Uint32()))
		tcp.SetDstPort(uint16(r.Uint32()))
		tcp.UpdateAddr(src, nsrc)
		tcp.UpdateAddr(dst, ndst)
		if !tcp.Verify(nsrc, ndst) {
			t.Fatalf("TCP incremental update does not verify (v6 %v)", v6)
		}

		u := UDP(append([]byte{}, seg...))
		binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
		u.FillChecksum(src, dst)
		u.SetSrcPort(uint16(r.Uint32()))
		u.SetDstPort(uint16(r.Uint32()))
		u.UpdateAddr(src, nsrc)
		u.UpdateAddr(dst, ndst)
		if !u.Verify(nsrc, ndst) || u.Checksum() == 0 {
			t.Fatalf("UDP incremental update does not verify or is 0")
		}

		if !v6 {
			ip := IPv4(append([]byte{0x45}, seg[1:20]...))
			binary.BigEndian.PutUint16(ip[2:], 20)
			ip.FillChecksum()
			ip.SetSrc(nsrc)
			ip.SetDst(ndst)
			ip.SetTTL(uint8(r.Uint32()))
			ip.DecTTL()
			ip.SetID(uint16(r.Uint32()))
			ip.SetTotalLen(uint16(r.Uint32()))
			if !ip.VerifyChecksum() || ip.Src() != nsrc || ip.Dst() != ndst {
				t.Fatalf("IPv4 incremental update does not verify")
			}
		} else {
			m := ICMPv6(append([]byte{}, seg...))
			m.FillChecksum(src, dst)
			m.SetEchoID(uint16(r.Uint32()))
			m.UpdateAddr(src, nsrc)
			if !m.Verify(nsrc, dst) {
				t.Fatalf("ICMPv6 incremental update does not verify")
			}
		}
		m4 := ICMPv4(append([]byte{}, seg...))
		m4.FillChecksum()
		m4.SetEchoID(uint16(r.Uint32()))
		if !m4.Verify() {
			t.Fatalf("ICMPv4 incremental update does not verify")
		}
	}
	// Update16 on a no-op change keeps the checksum.
	if got := Update16(0x1234, 7, 7); got != 0x1234 {
		t.Errorf("no-op Update16 = %#x", got)
	}
}

func TestDecTTL(t *testing.T) {
	ip := IPv4(make([]byte, 20))
	ip[0] = 0x45
	ip[3] = 20
	ip[8] = 1
	ip.FillChecksum()
	if ip.DecTTL() != 0 || ip.DecTTL() != 0 || !ip.VerifyChecksum() {
		t.Error("DecTTL from 1 did not stop at 0 with a good checksum")
	}
}

// TestUDPZeroChecksum: an IPv4 datagram without checksum keeps none.
func TestUDPZeroChecksum(t *testing.T) {
	u := UDP([]byte{0, 1, 0, 2, 0, 9, 0, 0, 'x'})
	a, b := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.9")
	u.SetSrcPort(77)
	u.UpdateAddr(a, b)
	if u.Checksum() != 0 || !u.Verify(b, a) {
		t.Errorf("checksum %#x, want 0 kept", u.Checksum())
	}
}
