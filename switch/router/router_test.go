package router

import (
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/switchyard-net/switchyard/switch/frame"
	"github.com/switchyard-net/switchyard/switch/port"
)

var (
	gwMAC   = frame.MAC{0x02, 0x42, 0xc6, 0x12, 0, 1}
	hostMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	gw4     = netip.MustParseAddr("198.18.0.1")
	host4   = netip.MustParseAddr("198.18.0.10")
	gw6     = netip.MustParseAddr("fd00:198:18::1")
	host6   = netip.MustParseAddr("fd00:198:18::10")
)

func newGW() *Port {
	return New(&Config{MAC: gwMAC, Addrs: []netip.Prefix{netip.PrefixFrom(gw4, 24), netip.PrefixFrom(gw6, 64)}})
}

func build(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// exchange writes one frame to the gateway and returns its replies.
func exchange(t *testing.T, p *Port, f []byte) []gopacket.Packet {
	t.Helper()
	if n, err := p.Write([]port.Frame{{Data: f}}); n != 1 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	var out []gopacket.Packet
	for _, r := range p.q.Drain() {
		out = append(out, gopacket.NewPacket(r, layers.LayerTypeEthernet, gopacket.Default))
	}
	return out
}

func arpReq(t *testing.T, target netip.Addr) []byte {
	return build(t,
		&layers.Ethernet{SrcMAC: hostMAC, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: hostMAC, SourceProtAddress: host4.AsSlice(),
			DstHwAddress: make([]byte, 6), DstProtAddress: target.AsSlice()})
}

func TestARP(t *testing.T) {
	p := newGW()
	got := exchange(t, p, arpReq(t, gw4))
	if len(got) != 1 {
		t.Fatalf("%d replies, want 1", len(got))
	}
	eth := got[0].Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	arp, _ := got[0].Layer(layers.LayerTypeARP).(*layers.ARP)
	if arp == nil {
		t.Fatalf("reply is not ARP: %v", got[0])
	}
	if eth.DstMAC.String() != hostMAC.String() || eth.SrcMAC.String() != gwMAC.String() {
		t.Errorf("reply Ethernet %s -> %s", eth.SrcMAC, eth.DstMAC)
	}
	if arp.Operation != layers.ARPReply || net.IP(arp.SourceProtAddress).String() != gw4.String() ||
		net.HardwareAddr(arp.SourceHwAddress).String() != gwMAC.String() ||
		net.IP(arp.DstProtAddress).String() != host4.String() || net.HardwareAddr(arp.DstHwAddress).String() != hostMAC.String() {
		t.Errorf("ARP reply = %+v", arp)
	}
	if len(exchange(t, p, arpReq(t, netip.MustParseAddr("198.18.0.99")))) != 0 {
		t.Error("answered ARP for an address that is not ours")
	}
	if c := p.Counters(); c.ARPReplies != 1 || c.NotForUs != 1 {
		t.Errorf("counters = %+v", c)
	}
}

func TestPing4(t *testing.T) {
	p := newGW()
	req := build(t,
		&layers.Ethernet{SrcMAC: hostMAC, DstMAC: net.HardwareAddr(gwMAC[:]), EthernetType: layers.EthernetTypeIPv4},
		&layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolICMPv4, SrcIP: host4.AsSlice(), DstIP: gw4.AsSlice()},
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 7, Seq: 3},
		gopacket.Payload("switchyard echo payload"))
	got := exchange(t, p, req)
	if len(got) != 1 {
		t.Fatalf("%d replies, want 1", len(got))
	}
	ip := got[0].Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	icmp := got[0].Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if ip.SrcIP.String() != gw4.String() || ip.DstIP.String() != host4.String() {
		t.Errorf("reply %s -> %s", ip.SrcIP, ip.DstIP)
	}
	if icmp.TypeCode.Type() != layers.ICMPv4TypeEchoReply || icmp.Id != 7 || icmp.Seq != 3 || string(icmp.Payload) != "switchyard echo payload" {
		t.Errorf("ICMP reply = %v id %d seq %d payload %q", icmp.TypeCode, icmp.Id, icmp.Seq, icmp.Payload)
	}
	raw := got[0].Data()
	if !frame.IPv4(raw[14:]).VerifyChecksum() || !frame.ICMPv4(raw[34:14+ip.Length]).Verify() {
		t.Error("reply checksums do not verify")
	}
}

func TestPing6AndNDP(t *testing.T) {
	p := newGW()
	solicited := netip.MustParseAddr("ff02::1:ff00:1")
	ns := build(t,
		&layers.Ethernet{SrcMAC: hostMAC, DstMAC: net.HardwareAddr{0x33, 0x33, 0xff, 0, 0, 1}, EthernetType: layers.EthernetTypeIPv6},
		&layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6, SrcIP: host6.AsSlice(), DstIP: solicited.AsSlice()},
		icmp6(layers.ICMPv6TypeNeighborSolicitation, host6, solicited),
		&layers.ICMPv6NeighborSolicitation{TargetAddress: gw6.AsSlice(),
			Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: hostMAC}}})
	got := exchange(t, p, ns)
	if len(got) != 1 {
		t.Fatalf("%d replies to NS, want 1", len(got))
	}
	na, _ := got[0].Layer(layers.LayerTypeICMPv6NeighborAdvertisement).(*layers.ICMPv6NeighborAdvertisement)
	if na == nil {
		t.Fatalf("reply is not an NA: %v", got[0])
	}
	if na.TargetAddress.String() != gw6.String() || !na.Solicited() || len(na.Options) != 1 ||
		net.HardwareAddr(na.Options[0].Data).String() != gwMAC.String() {
		t.Errorf("NA = %+v", na)
	}
	raw := got[0].Data()
	if !frame.ICMPv6(raw[54:]).Verify(gw6, host6) {
		t.Error("NA checksum does not verify")
	}

	echo := build(t,
		&layers.Ethernet{SrcMAC: hostMAC, DstMAC: net.HardwareAddr(gwMAC[:]), EthernetType: layers.EthernetTypeIPv6},
		&layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolICMPv6, SrcIP: host6.AsSlice(), DstIP: gw6.AsSlice()},
		icmp6(layers.ICMPv6TypeEchoRequest, host6, gw6),
		&layers.ICMPv6Echo{Identifier: 9, SeqNumber: 1}, gopacket.Payload("v6 ping"))
	got = exchange(t, p, echo)
	if len(got) != 1 {
		t.Fatalf("%d replies to echo, want 1", len(got))
	}
	ic := got[0].Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
	if ic.TypeCode.Type() != layers.ICMPv6TypeEchoReply {
		t.Errorf("reply type %v", ic.TypeCode)
	}
	raw = got[0].Data()
	if !frame.ICMPv6(raw[54:]).Verify(gw6, host6) {
		t.Error("echo reply checksum does not verify")
	}
}

func icmp6(typ uint8, src, dst netip.Addr) *layers.ICMPv6 {
	ic := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(typ, 0)}
	ic.SetNetworkLayerForChecksum(&layers.IPv6{SrcIP: src.AsSlice(), DstIP: dst.AsSlice(), NextHeader: layers.IPProtocolICMPv6})
	return ic
}

func TestUnroutableAndGarbage(t *testing.T) {
	p := newGW()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: host4.AsSlice(), DstIP: net.IP{198, 19, 0, 1}}
	udp := &layers.UDP{SrcPort: 1, DstPort: 2}
	udp.SetNetworkLayerForChecksum(ip)
	other := build(t,
		&layers.Ethernet{SrcMAC: hostMAC, DstMAC: net.HardwareAddr(gwMAC[:]), EthernetType: layers.EthernetTypeIPv4},
		ip, udp, gopacket.Payload("x"))
	if len(exchange(t, p, other)) != 0 || len(exchange(t, p, []byte{1, 2, 3})) != 0 {
		t.Error("replied to an unroutable or garbage frame")
	}
	if c := p.Counters(); c.Unroutable != 1 || c.Malformed != 1 {
		t.Errorf("counters = %+v, want 1 unroutable, 1 malformed", c)
	}
}

func FuzzWrite(f *testing.F) {
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 8, 6})
	t := &testing.T{}
	f.Add(arpReq(t, gw4))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := newGW()
		if n, _ := p.Write([]port.Frame{{Data: b}}); n != 1 {
			t.Fatal("Write did not take the frame")
		}
		for _, r := range p.q.Drain() {
			var pr frame.Parsed
			pr.Decode(r)
			if pr.Reason != frame.OK || pr.SrcMAC != gwMAC {
				t.Fatalf("reply does not decode or is not from us: %v %x", pr.Reason, r)
			}
		}
	})
}

// TestWriteZeroAllocs: the gateway gets every flood, so taking a frame and
// queueing its reply must not allocate.
func TestWriteZeroAllocs(t *testing.T) {
	p := newGW()
	req := []port.Frame{{Data: arpReq(t, gw4)}}
	out := make([]port.Frame, 4)
	if a := testing.AllocsPerRun(200, func() { p.Write(req); p.q.Get(out) }); a != 0 {
		t.Errorf("Write+Get of an ARP request: %v allocs, want 0", a)
	}
}
