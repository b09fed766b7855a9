package frame

import (
	"net"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// TestDecodeCaptures decodes every captured frame and compares it field by
// field with gopacket's decoding of the same bytes.
func TestDecodeCaptures(t *testing.T) {
	frames := captures(t)
	seen := map[string]int{}
	for _, f := range frames {
		var p Parsed
		p.Decode(f.data)
		want, clean := fromGopacket(f.data)
		if !clean {
			t.Errorf("%s: gopacket could not decode a captured frame", f.name)
			continue
		}
		if p.Reason != OK {
			t.Errorf("%s: Reason = %v, want ok", f.name, p.Reason)
		}
		if diff := cmp.Diff(want, p, addrCmp); diff != "" {
			t.Errorf("%s: Decode (-gopacket +ours):\n%s", f.name, diff)
		}
		// Tally what the captures cover, so that a capture that lost its
		// traffic fails here rather than passing vacuously.
		switch {
		case p.EtherType == EtherTypeARP:
			seen["arp"]++
		case p.Frag == FirstFragment:
			seen["first-fragment-v"+itoa(int(p.IPVersion))]++
		case p.Frag == LaterFragment:
			seen["later-fragment-v"+itoa(int(p.IPVersion))]++
		case p.Proto == ProtoTCP:
			seen["tcp-v"+itoa(int(p.IPVersion))]++
		case p.Proto == ProtoUDP:
			seen["udp-v"+itoa(int(p.IPVersion))]++
		case p.ICMPEchoID != 0:
			seen["echo-v"+itoa(int(p.IPVersion))]++
		}
		if p.IPVersion == 4 && IPv4(f.data[p.L3Off:]).HeaderLen() > IPv4MinLen {
			seen["ipv4-options"]++
		}
		if p.IPVersion == 6 && IPv6(f.data[p.L3Off:]).NextHeader() == ProtoHopByHop {
			seen["ipv6-hop-by-hop"]++
		}
	}
	for _, k := range []string{"arp", "first-fragment-v4", "later-fragment-v4", "first-fragment-v6",
		"later-fragment-v6", "tcp-v4", "tcp-v6", "udp-v4", "udp-v6", "echo-v4", "echo-v6",
		"ipv4-options", "ipv6-hop-by-hop"} {
		if seen[k] == 0 {
			t.Errorf("captures hold no %s frame", k)
		}
	}
	t.Logf("%d frames: %v", len(frames), seen)
}

// TestChecksumsCaptures verifies every checksum in the captures (they were
// taken with TX checksum offload off, so they are all complete).
func TestChecksumsCaptures(t *testing.T) {
	n := 0
	for _, f := range captures(t) {
		var p Parsed
		p.Decode(f.data)
		if p.IPVersion == 4 && !IPv4(f.data[p.L3Off:]).VerifyChecksum() {
			t.Errorf("%s: IPv4 header checksum does not verify", f.name)
		}
		if p.Frag != NotFragment || !p.IsIP() {
			continue
		}
		l4 := f.data[p.L4Off:p.L3End]
		var ok bool
		switch p.Proto {
		case ProtoTCP:
			ok = TCP(l4).Verify(p.SrcIP, p.DstIP)
		case ProtoUDP:
			ok = UDP(l4).Verify(p.SrcIP, p.DstIP)
		case ProtoICMPv4:
			ok = ICMPv4(l4).Verify()
		case ProtoICMPv6:
			ok = ICMPv6(l4).Verify(p.SrcIP, p.DstIP)
		default:
			continue
		}
		n++
		if !ok {
			t.Errorf("%s: %d checksum does not verify", f.name, p.Proto)
		}
	}
	if n < 50 {
		t.Errorf("verified only %d transport checksums", n)
	}
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xa}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xb}
	ip4A = net.IP{198, 18, 0, 1}
	ip4B = net.IP{198, 18, 0, 2}
	ip6A = net.ParseIP("fd00:198:18::1")
	ip6B = net.ParseIP("fd00:198:18::2")
)

// TestDecodeVLAN builds 802.1Q and QinQ frames with gopacket (the capture
// kernel has no VLAN support) and compares.
func TestDecodeVLAN(t *testing.T) {
	tcp := func() *layers.TCP {
		return &layers.TCP{SrcPort: 1234, DstPort: 80, Seq: 7, SYN: true, Window: 1000}
	}
	ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 9, Protocol: layers.IPProtocolTCP, SrcIP: ip4A, DstIP: ip4B}
	ip6 := &layers.IPv6{Version: 6, HopLimit: 3, NextHeader: layers.IPProtocolUDP, SrcIP: ip6A, DstIP: ip6B}
	udp := &layers.UDP{SrcPort: 1111, DstPort: 2222}
	cases := []struct {
		name string
		ls   []gopacket.SerializableLayer
		tags uint8
		vlan uint16
	}{
		{"one tag ipv4 tcp", []gopacket.SerializableLayer{
			&layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeDot1Q},
			&layers.Dot1Q{VLANIdentifier: 100, Priority: 5, Type: layers.EthernetTypeIPv4},
			ip4, tcp(), gopacket.Payload("hello"),
		}, 1, 100},
		{"qinq ipv6 udp", []gopacket.SerializableLayer{
			&layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeQinQ},
			&layers.Dot1Q{VLANIdentifier: 4000, Type: layers.EthernetTypeDot1Q},
			&layers.Dot1Q{VLANIdentifier: 7, Type: layers.EthernetTypeIPv6},
			ip6, udp, gopacket.Payload("x"),
		}, 2, 4000},
		{"one tag arp", []gopacket.SerializableLayer{
			&layers.Ethernet{SrcMAC: macA, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeDot1Q},
			&layers.Dot1Q{VLANIdentifier: 1, Type: layers.EthernetTypeARP},
			&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6,
				ProtAddressSize: 4, Operation: 1, SourceHwAddress: macA, SourceProtAddress: ip4A,
				DstHwAddress: make([]byte, 6), DstProtAddress: ip4B},
		}, 1, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.ls[len(c.ls)-2] == udp {
				udp.SetNetworkLayerForChecksum(ip6)
			}
			if tc, ok := c.ls[len(c.ls)-2].(*layers.TCP); ok {
				tc.SetNetworkLayerForChecksum(ip4)
			}
			b := serialize(t, c.ls...)
			var p Parsed
			p.Decode(b)
			want, clean := fromGopacket(b)
			if !clean {
				t.Fatal("gopacket failed to decode")
			}
			if p.Reason != OK || p.VLANTags != c.tags || p.VLAN != c.vlan || !p.HasVLAN() {
				t.Errorf("Reason %v tags %d vlan %d, want ok %d %d", p.Reason, p.VLANTags, p.VLAN, c.tags, c.vlan)
			}
			if diff := cmp.Diff(want, p, addrCmp); diff != "" {
				t.Errorf("(-gopacket +ours):\n%s", diff)
			}
		})
	}
}

// TestDecodeIPv6Ext walks extension header chains gopacket builds (hop-by-
// hop, destination options) and ones built by hand (routing, AH).
func TestDecodeIPv6Ext(t *testing.T) {
	eth := []byte{2, 0, 0, 0, 0, 0xb, 2, 0, 0, 0, 0, 0xa, 0x86, 0xdd}
	udp := []byte{0x30, 0x39, 0x00, 0x35, 0, 12, 0, 0, 'a', 'b', 'c', 'd'}
	build := func(first uint8, ext ...[]byte) []byte {
		b := append([]byte{}, eth...)
		hdr := make([]byte, IPv6Len)
		hdr[0] = 0x60
		hdr[6], hdr[7] = first, 64
		copy(hdr[8:], ip6A.To16())
		copy(hdr[24:], ip6B.To16())
		n := len(udp)
		for _, e := range ext {
			n += len(e)
		}
		hdr[4], hdr[5] = byte(n>>8), byte(n)
		b = append(b, hdr...)
		for _, e := range ext {
			b = append(b, e...)
		}
		return append(b, udp...)
	}
	hbh := []byte{ProtoRouting, 0, 1, 4, 0, 0, 0, 0} // next: routing; PadN
	rt := make([]byte, 24)                           // type 0 routing, one address
	rt[0], rt[1] = ProtoAH, 2
	ah := make([]byte, 16) // AH with 4 bytes of ICV: len = 16/4-2 = 2
	ah[0], ah[1] = ProtoDstOpts, 2
	dst := []byte{ProtoUDP, 0, 1, 4, 0, 0, 0, 0}
	frag0 := []byte{ProtoUDP, 0, 0, 1, 0, 0, 0, 42}       // offset 0, M
	frag1 := []byte{ProtoUDP, 0, 0x05, 0xa8, 0, 0, 0, 42} // offset 1448
	cases := []struct {
		name   string
		b      []byte
		reason Reason
		l4     int
		frag   Frag
		proto  uint8
	}{
		{"hbh routing ah dstopts", build(ProtoHopByHop, hbh, rt, ah, dst), OK, 14 + 40 + 8 + 24 + 16 + 8, NotFragment, ProtoUDP},
		{"first fragment", build(ProtoFragment, frag0), OK, 14 + 48, FirstFragment, ProtoUDP},
		{"later fragment", build(ProtoFragment, frag1), OK, 14 + 48, LaterFragment, ProtoUDP},
		{"atomic fragment", build(ProtoFragment, []byte{ProtoUDP, 0, 0, 0, 0, 0, 0, 1}), OK, 14 + 48, NotFragment, ProtoUDP},
		{"ext beyond payload", build(ProtoHopByHop, []byte{ProtoUDP, 9, 0, 0, 0, 0, 0, 0}), ReasonIPv6Ext, 0, NotFragment, ProtoHopByHop},
		{"loop of dstopts", build(ProtoDstOpts, dst, dst, dst, dst, dst, dst, dst, dst, dst), ReasonIPv6Ext, 0, NotFragment, ProtoDstOpts},
		{"esp stops", build(ProtoESP), OK, 14 + 40, NotFragment, ProtoESP},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "loop of dstopts" {
				// Make each header point to another destination options header.
				for i := 0; i < 9; i++ {
					c.b[14+40+8*i] = ProtoDstOpts
				}
			}
			var p Parsed
			p.Decode(c.b)
			if p.Reason != c.reason || p.L4Off != c.l4 || p.Frag != c.frag || p.Proto != c.proto {
				t.Fatalf("Reason %v L4Off %d Frag %d Proto %d, want %v %d %d %d", p.Reason, p.L4Off, p.Frag, p.Proto, c.reason, c.l4, c.frag, c.proto)
			}
			if c.reason == OK && c.frag != LaterFragment && c.proto == ProtoUDP && (p.SrcPort != 12345 || p.DstPort != 53) {
				t.Errorf("ports %d>%d, want 12345>53", p.SrcPort, p.DstPort)
			}
			// gopacket does not decode AH in an IPv6 chain, nor the
			// payload of an atomic fragment (RFC 6946: a whole packet).
			if w, clean := fromGopacket(c.b); clean && c.reason == OK && c.name != "hbh routing ah dstopts" && c.name != "atomic fragment" {
				if diff := cmp.Diff(w, p, addrCmp); diff != "" {
					t.Errorf("(-gopacket +ours):\n%s", diff)
				}
			}
		})
	}
}

// TestDecodeMalformed checks the drop reason of broken frames, made by
// cutting or corrupting a good one.
func TestDecodeMalformed(t *testing.T) {
	ip4 := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: ip4A, DstIP: ip4B}
	tcp := &layers.TCP{SrcPort: 1, DstPort: 2, ACK: true}
	tcp.SetNetworkLayerForChecksum(ip4)
	good := serialize(t, &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: layers.EthernetTypeIPv4}, ip4, tcp, gopacket.Payload("data"))
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte{}, good...)) }
	cases := []struct {
		name string
		b    []byte
		want Reason
	}{
		{"good", good, OK},
		{"empty", nil, ReasonShort},
		{"13 bytes", good[:13], ReasonShort},
		{"no ip header", good[:14], ReasonIPHeader},
		{"ip cut", good[:30], ReasonIPHeader},
		{"version 5", mod(func(b []byte) []byte { b[14] = 0x55; return b }), ReasonIPHeader},
		{"ihl 4", mod(func(b []byte) []byte { b[14] = 0x44; return b }), ReasonIPHeader},
		{"ihl 15", mod(func(b []byte) []byte { b[14] = 0x4f; return b[:14+50] }), ReasonIPHeader},
		{"total length beyond frame", mod(func(b []byte) []byte { b[16], b[17] = 0x10, 0; return b }), ReasonIPLength},
		{"total length below header", mod(func(b []byte) []byte { b[16], b[17] = 0, 19; return b }), ReasonIPLength},
		{"tcp cut", mod(func(b []byte) []byte { return b[:14+20+10] }), ReasonIPLength},
		{"tcp doff 4", mod(func(b []byte) []byte { b[14+20+12] = 0x40; return b }), ReasonL4Header},
		{"tcp doff 15", mod(func(b []byte) []byte { b[14+20+12] = 0xf0; return b }), ReasonL4Header},
		{"vlan cut", mod(func(b []byte) []byte { b[12], b[13] = 0x81, 0; return b[:16] }), ReasonVLAN},
		{"three tags", mod(func(b []byte) []byte {
			b[12], b[13], b[16], b[17], b[20], b[21] = 0x81, 0, 0x81, 0, 0x88, 0xa8
			return b
		}), ReasonVLAN},
		{"arp cut", mod(func(b []byte) []byte { b[12], b[13] = 0x08, 0x06; return b[:14+20] }), ReasonARP},
		{"unknown ethertype", mod(func(b []byte) []byte { b[12], b[13] = 0x88, 0xcc; return b }), OK},
	}
	for _, c := range cases {
		var p Parsed
		p.Decode(c.b)
		if p.Reason != c.want {
			t.Errorf("%s: Reason = %v, want %v", c.name, p.Reason, c.want)
		}
	}
	// Ethernet padding after the IP packet is not payload.
	padded := append(append([]byte{}, good...), make([]byte, 20)...)
	var p Parsed
	p.Decode(padded)
	if want := EthernetLen + 20 + 20 + 4; p.Reason != OK || p.L3End != want {
		t.Errorf("padded: Reason %v L3End %d, want ok %d", p.Reason, p.L3End, want)
	}
}

func TestMAC(t *testing.T) {
	m := MAC{0x02, 0xab, 0, 0x10, 0xff, 0x01}
	if got := m.String(); got != "02:ab:00:10:ff:01" || got != net.HardwareAddr(m[:]).String() {
		t.Errorf("String = %q", got)
	}
	if m.IsBroadcast() || m.IsMulticast() || m.IsZero() {
		t.Error("unicast classified wrong")
	}
	if !Broadcast.IsBroadcast() || !Broadcast.IsMulticast() || !(MAC{0x33, 0x33, 0, 0, 0, 1}).IsMulticast() || !(MAC{}).IsZero() {
		t.Error("group/zero classified wrong")
	}
	e := Ethernet(make([]byte, EthernetLen))
	e.SetDst(m)
	e.SetSrc(Broadcast)
	if e.Dst() != m || e.Src() != Broadcast {
		t.Error("Ethernet setters")
	}
	if Reason(200).String() != "unknown" || ReasonL4Header.String() != "bad-l4-header" {
		t.Error("Reason.String")
	}
}

func TestARPSetters(t *testing.T) {
	a := ARP(make([]byte, ARPLen))
	copy(a, []byte{0, 1, 8, 0, 6, 4})
	a.SetOp(ARPReply)
	s, d := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
	a.SetSender(MAC{1, 2, 3, 4, 5, 6}, s)
	a.SetTarget(Broadcast, d)
	if !a.IsValid() || a.Op() != ARPReply || a.SenderMAC() != (MAC{1, 2, 3, 4, 5, 6}) || a.SenderIP() != s ||
		a.TargetMAC() != Broadcast || a.TargetIP() != d {
		t.Errorf("ARP round trip failed: % x", []byte(a))
	}
}
