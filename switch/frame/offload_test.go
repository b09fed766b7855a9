package frame

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// partial turns a frame with a complete TCP/UDP checksum into what a
// NEEDS_CSUM sender hands over: the pseudo-header sum in the field.
func partial(b []byte, p *Parsed) VNetHdr {
	off := 16
	if p.Proto == ProtoUDP {
		off = 6
	}
	seed := PseudoHeaderSum(p.Proto, p.SrcIP, p.DstIP, p.L3End-p.L4Off)
	binary.BigEndian.PutUint16(b[p.L4Off+off:], seed)
	return VNetHdr{Flags: VNetNeedsCsum, CsumStart: uint16(p.L4Off), CsumOffset: uint16(off)}
}

func TestFinishChecksumCaptures(t *testing.T) {
	n := 0
	for _, f := range captures(t) {
		var p Parsed
		p.Decode(f.data)
		if p.Frag != NotFragment || (p.Proto != ProtoTCP && p.Proto != ProtoUDP) {
			continue
		}
		b := append([]byte{}, f.data...)
		h := partial(b, &p)
		if !FinishChecksum(b, &h) {
			t.Fatalf("%s: FinishChecksum false", f.name)
		}
		if h.Flags&VNetNeedsCsum != 0 {
			t.Errorf("%s: NEEDS_CSUM not cleared", f.name)
		}
		if !bytes.Equal(b, f.data) {
			t.Errorf("%s: finished frame differs from the captured one", f.name)
		}
		l4 := b[p.L4Off:p.L3End]
		var want uint16
		if p.Proto == ProtoTCP {
			want = gpTCPChecksum(t, l4, p.SrcIP, p.DstIP)
		} else {
			want = gpUDPChecksum(t, l4, p.SrcIP, p.DstIP)
		}
		if got := binary.BigEndian.Uint16(b[int(h.CsumStart)+int(h.CsumOffset):]); got != want {
			t.Errorf("%s: checksum %#x, gopacket %#x", f.name, got, want)
		}
		n++
	}
	if n < 20 {
		t.Errorf("only %d frames finished", n)
	}
}

func TestFinishChecksumEdges(t *testing.T) {
	ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: ip4A, DstIP: ip4B}
	udp := &layers.UDP{SrcPort: 1000, DstPort: 2000}
	udp.SetNetworkLayerForChecksum(ip4)
	// 14+20+8+1 = 43 bytes: gopacket pads it to 60 as a driver would.
	b := serialize(t, &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeIPv4}, ip4, udp, gopacket.Payload("z"))
	for i := 43; i < len(b); i++ {
		b[i] = 0xa5 // padding that must not be summed
	}
	want := append([]byte{}, b...)
	var p Parsed
	p.Decode(b)
	h := partial(b, &p)
	if !FinishChecksum(b, &h) || !bytes.Equal(b, want) {
		t.Errorf("padded frame: got % x, want % x", b, want)
	}

	// No flag: nothing to do.
	h = VNetHdr{CsumStart: 9999}
	if !FinishChecksum(b, &h) || !bytes.Equal(b, want) {
		t.Error("frame without NEEDS_CSUM changed")
	}
	// Offsets outside the frame: false, nothing changed.
	for _, h := range []VNetHdr{
		{Flags: VNetNeedsCsum, CsumStart: 40, CsumOffset: 2},
		{Flags: VNetNeedsCsum, CsumStart: 60, CsumOffset: 0},
		{Flags: VNetNeedsCsum, CsumStart: 0xffff, CsumOffset: 0xffff},
	} {
		if FinishChecksum(b, &h) || h.Flags != VNetNeedsCsum || !bytes.Equal(b, want) {
			t.Errorf("%+v: accepted or changed the frame", h)
		}
	}
}

type gsoCase struct {
	name    string
	frame   []byte
	hdr     VNetHdr
	payload []byte
}

func gsoCases(t testing.TB) []gsoCase {
	r := rand.New(rand.NewPCG(5, 6))
	payload := make([]byte, 10000)
	for i := range payload {
		payload[i] = byte(r.Uint32())
	}
	eth4 := &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeIPv4}
	eth6 := &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeIPv6}
	ip4 := func(p layers.IPProtocol) *layers.IPv4 {
		return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Id: 0xfffe, Flags: layers.IPv4DontFragment, Protocol: p, SrcIP: ip4A, DstIP: ip4B}
	}
	ip6 := func(p layers.IPProtocol) *layers.IPv6 {
		return &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: p, SrcIP: ip6A, DstIP: ip6B}
	}
	tcp := func(nl gopacket.NetworkLayer) *layers.TCP {
		t := &layers.TCP{SrcPort: 40000, DstPort: 8080, Seq: 0xffffff00, Ack: 77, ACK: true, PSH: true, FIN: true, CWR: true, ECE: true,
			Window: 500, Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: make([]byte, 8)},
				{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop}}}
		t.SetNetworkLayerForChecksum(nl)
		return t
	}
	udp := func(nl gopacket.NetworkLayer) *layers.UDP {
		u := &layers.UDP{SrcPort: 4433, DstPort: 4434}
		u.SetNetworkLayerForChecksum(nl)
		return u
	}
	var cs []gsoCase
	{
		n := ip4(layers.IPProtocolTCP)
		cs = append(cs, gsoCase{"tcpv4", serialize(t, eth4, n, tcp(n), gopacket.Payload(payload)),
			VNetHdr{GSOType: GSOTCPv4 | GSOECN, GSOSize: 1448}, payload})
	}
	{
		n := ip6(layers.IPProtocolTCP)
		cs = append(cs, gsoCase{"tcpv6", serialize(t, eth6, n, tcp(n), gopacket.Payload(payload[:9999])),
			VNetHdr{GSOType: GSOTCPv6, GSOSize: 1428}, payload[:9999]})
	}
	{
		n := ip4(layers.IPProtocolUDP)
		cs = append(cs, gsoCase{"udpv4", serialize(t, eth4, n, udp(n), gopacket.Payload(payload[:4000])),
			VNetHdr{GSOType: GSOUDPL4, GSOSize: 1000}, payload[:4000]})
	}
	{
		n := ip6(layers.IPProtocolUDP)
		cs = append(cs, gsoCase{"udpv6", serialize(t, eth6, n, udp(n), gopacket.Payload(payload[:3001])),
			VNetHdr{GSOType: GSOUDPL4, GSOSize: 1000}, payload[:3001]})
	}
	{
		n := ip4(layers.IPProtocolTCP)
		cs = append(cs, gsoCase{"tcpv4 one segment", serialize(t, eth4, n, tcp(n), gopacket.Payload(payload[:100])),
			VNetHdr{GSOType: GSOTCPv4, GSOSize: 1448}, payload[:100]})
	}
	// A real captured TCP/IPv6 data segment, its payload grown into a
	// super-frame.
	for _, f := range captures(t) {
		var p Parsed
		p.Decode(f.data)
		if p.Proto == ProtoTCP && p.IPVersion == 6 && p.L3End-p.PayloadOff == 1428 {
			b := append(append([]byte{}, f.data[:p.PayloadOff]...), payload[:5000]...)
			binary.BigEndian.PutUint16(b[p.L3Off+4:], uint16(len(b)-p.L3Off-IPv6Len))
			cs = append(cs, gsoCase{"captured tcpv6", b, VNetHdr{GSOType: GSOTCPv6, GSOSize: 1428}, payload[:5000]})
			break
		}
	}
	return cs
}

func TestSegment(t *testing.T) {
	out := make([][]byte, 16)
	for i := range out {
		out[i] = make([]byte, 0, 1600)
	}
	for _, c := range gsoCases(t) {
		t.Run(c.name, func(t *testing.T) {
			var sp Parsed
			sp.Decode(c.frame)
			if sp.Reason != OK {
				t.Fatalf("super-frame: %v", sp.Reason)
			}
			frameCopy := append([]byte{}, c.frame...)
			h := c.hdr
			n, err := Segment(c.frame, &h, out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(frameCopy, c.frame) {
				t.Error("Segment modified its input")
			}
			mss := int(c.hdr.GSOSize)
			if want := (len(c.payload) + mss - 1) / mss; n != want {
				t.Fatalf("n = %d, want %d", n, want)
			}
			var got []byte
			for i, s := range out[:n] {
				var p Parsed
				p.Decode(s)
				if p.Reason != OK || p.L3End != len(s) {
					t.Fatalf("segment %d: %v, L3End %d of %d", i, p.Reason, p.L3End, len(s))
				}
				if pl := len(s) - p.PayloadOff; pl > mss || (i < n-1 && pl != mss) {
					t.Errorf("segment %d: payload %d, mss %d", i, pl, mss)
				}
				got = append(got, s[p.PayloadOff:]...)
				// gopacket must decode the segment cleanly, and its checksums
				// must match the ones Segment wrote.
				if _, clean := fromGopacket(s); !clean {
					t.Errorf("segment %d: gopacket cannot decode it", i)
				}
				l4 := s[p.L4Off:]
				if p.IPVersion == 4 {
					ip := IPv4(s[p.L3Off:])
					if ip.Checksum() != gpIPv4Checksum(ip[:ip.HeaderLen()]) {
						t.Errorf("segment %d: IPv4 checksum %#x, gopacket %#x", i, ip.Checksum(), gpIPv4Checksum(ip[:ip.HeaderLen()]))
					}
					if want := IPv4(c.frame[sp.L3Off:]).ID() + uint16(i); ip.ID() != want {
						t.Errorf("segment %d: ID %d, want %d", i, ip.ID(), want)
					}
				}
				if p.Proto == ProtoTCP {
					tc := TCP(l4)
					if want := gpTCPChecksum(t, l4, p.SrcIP, p.DstIP); tc.Checksum() != want {
						t.Errorf("segment %d: TCP checksum %#x, gopacket %#x", i, tc.Checksum(), want)
					}
					if want := TCP(c.frame[sp.L4Off:]).Seq() + uint32(i*mss); tc.Seq() != want {
						t.Errorf("segment %d: seq %d, want %d", i, tc.Seq(), want)
					}
					f0 := sp.TCPFlags
					want := f0 &^ (TCPFin | TCPPsh | TCPCwr)
					if i == 0 {
						want |= f0 & TCPCwr
					}
					if i == n-1 {
						want |= f0 & (TCPFin | TCPPsh)
					}
					if tc.Flags() != want {
						t.Errorf("segment %d: flags %#x, want %#x", i, tc.Flags(), want)
					}
				} else {
					u := UDP(l4)
					if want := gpUDPChecksum(t, l4, p.SrcIP, p.DstIP); u.Checksum() != want {
						t.Errorf("segment %d: UDP checksum %#x, gopacket %#x", i, u.Checksum(), want)
					}
					if int(u.Len()) != len(l4) {
						t.Errorf("segment %d: UDP length %d, want %d", i, u.Len(), len(l4))
					}
				}
			}
			if !bytes.Equal(got, c.payload) {
				t.Errorf("segments carry %d payload bytes, not the super-frame's %d", len(got), len(c.payload))
			}
		})
	}
}

func TestSegmentErrors(t *testing.T) {
	cs := gsoCases(t)
	tcp4, udp4 := cs[0], cs[2]
	big := func(n, c int) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			out[i] = make([]byte, 0, c)
		}
		return out
	}
	cases := []struct {
		name  string
		frame []byte
		hdr   VNetHdr
		out   [][]byte
		want  error
	}{
		{"too few buffers", tcp4.frame, tcp4.hdr, big(6, 1600), ErrSegmentBuffers},
		{"buffers too small", tcp4.frame, tcp4.hdr, big(16, 1000), ErrSegmentBuffers},
		{"UFO", tcp4.frame, VNetHdr{GSOType: GSOUDP, GSOSize: 1000}, big(16, 1600), ErrSegmentType},
		{"no gso", tcp4.frame, VNetHdr{}, big(16, 1600), ErrSegmentType},
		{"gso size 0", tcp4.frame, VNetHdr{GSOType: GSOTCPv4}, big(16, 1600), ErrSegmentHeader},
		{"tcpv6 type on ipv4", tcp4.frame, VNetHdr{GSOType: GSOTCPv6, GSOSize: 1448}, big(16, 1600), ErrSegmentHeader},
		{"tcp type on udp", udp4.frame, VNetHdr{GSOType: GSOTCPv4, GSOSize: 1000}, big(16, 1600), ErrSegmentHeader},
		{"truncated", tcp4.frame[:40], tcp4.hdr, big(16, 1600), ErrSegmentHeader},
	}
	for _, c := range cases {
		h := c.hdr
		if _, err := Segment(c.frame, &h, c.out); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
}

// TestSeedRewrite checks the recipe in the package doc for NAT on a
// NEEDS_CSUM frame: update the seed for the address, leave it for the port,
// then finish; the result must verify against the new addresses.
func TestSeedRewrite(t *testing.T) {
	n := 0
	for _, f := range captures(t) {
		var p Parsed
		p.Decode(f.data)
		if p.IPVersion != 4 || p.Proto != ProtoTCP || p.Frag != NotFragment {
			continue
		}
		b := append([]byte{}, f.data...)
		h := partial(b, &p)
		ip, tc := IPv4(b[p.L3Off:]), TCP(b[p.L4Off:p.L3End])
		newSrc := netip.MustParseAddr("198.19.200.7")
		seed := tc.Checksum()
		seed = ^UpdateAddr(^seed, ip.Src(), newSrc)
		binary.BigEndian.PutUint16(tc[16:], seed)
		ip.SetSrc(newSrc)
		binary.BigEndian.PutUint16(tc[0:], 33333) // port: not in the seed
		if !FinishChecksum(b, &h) || !ip.VerifyChecksum() || !tc.Verify(newSrc, p.DstIP) {
			t.Fatalf("%s: rewritten partial frame does not verify", f.name)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no TCP/IPv4 frames")
	}
}
