package router

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/switchyard-net/switchyard/nat"
	"github.com/switchyard-net/switchyard/switch/bridge"
	"github.com/switchyard-net/switchyard/switch/frame"
	"github.com/switchyard-net/switchyard/switch/port"
	"github.com/switchyard-net/switchyard/switch/port/porttest"
)

// A whole gateway in memory: a bridge with two endpoints (h2, h3), the
// gateway port with a NAT, and its uplink to an "outside" segment the test
// plays: an upstream router (upMAC, 198.19.0.1) and hosts beyond it.
var (
	h2MAC   = net.HardwareAddr{2, 0, 0, 0, 0, 2}
	h3MAC   = net.HardwareAddr{2, 0, 0, 0, 0, 3}
	upMAC   = net.HardwareAddr{2, 0, 0, 0, 0, 0xfe}
	extMAC  = frame.MAC{2, 0x42, 0, 0, 0, 0xee}
	h2      = netip.MustParseAddr("198.18.0.2")
	h3      = netip.MustParseAddr("198.18.0.3")
	ext     = netip.MustParseAddr("198.19.0.2")
	ext2    = netip.MustParseAddr("198.19.0.3")
	upGW    = netip.MustParseAddr("198.19.0.1")
	farAway = netip.MustParseAddr("198.19.200.9")
	onLink  = netip.MustParseAddr("198.19.0.77")
)

type engine struct {
	t        *testing.T
	gw       *Port
	br       *bridge.Bridge
	nat      *nat.NAT
	h2, h3   *porttest.Port // the endpoints' own ends
	outside  *porttest.Port // the uplink segment's end
	received map[*porttest.Port][]gopacket.Packet
}

func newEngine(t *testing.T) *engine {
	t.Helper()
	n, err := nat.New(&nat.Config{
		Inside: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24")}, Gateway: gw4,
		External: []netip.Addr{ext, ext2}, Masquerade: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &porttest.Config{Offloads: true, SlotSize: 65600}
	up, outside := porttest.Pipe("uplink0", "outside", cfg)
	gw := New(&Config{MAC: gwMAC, Addrs: []netip.Prefix{netip.PrefixFrom(gw4, 24)}, NAT: n,
		Uplink: &UplinkConfig{Port: up, Name: "uplink0", PortName: "uplink", MAC: extMAC,
			Addrs:   []netip.Prefix{netip.PrefixFrom(ext, 24), netip.PrefixFrom(ext2, 24)},
			Gateway: upGW}})
	b := bridge.New(nil)
	e := &engine{t: t, gw: gw, br: b, nat: n, outside: outside, received: map[*porttest.Port][]gopacket.Packet{}}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.AddPort("gateway", gw, bridge.DefaultFlags()))
	must(b.AddStaticMAC("gateway", gwMAC))
	must(b.AddPort("uplink", gw.Uplink(), bridge.Flags{NoLearning: true, OwnMirror: true}))
	var p2, p3 *porttest.Port
	p2, e.h2 = porttest.Pipe("h2", "h2peer", cfg)
	p3, e.h3 = porttest.Pipe("h3", "h3peer", cfg)
	must(b.AddPort("h2", p2, bridge.DefaultFlags()))
	must(b.AddPort("h3", p3, bridge.DefaultFlags()))
	t.Cleanup(func() { b.Close() })
	return e
}

func (e *engine) send(from *porttest.Port, ls ...gopacket.SerializableLayer) {
	e.t.Helper()
	if n, err := from.Write([]port.Frame{{Data: build(e.t, ls...)}}); n != 1 {
		e.t.Fatalf("send failed: %v", err)
	}
}

// expect waits for a frame at p that match accepts, and returns it.
func (e *engine) expect(p *porttest.Port, what string, match func(gopacket.Packet) bool) gopacket.Packet {
	e.t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		for _, f := range p.Drain() {
			e.received[p] = append(e.received[p], gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default))
		}
		for i, pk := range e.received[p] {
			if match(pk) {
				e.received[p] = append(e.received[p][:i:i], e.received[p][i+1:]...)
				return pk
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no %s at %s; got %v (gateway %+v, nat %+v)", what, p.Name(), e.received[p], e.gw.Counters(), e.nat.Stats())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func eth(src, dst net.HardwareAddr) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4}
}

func ipv4(src, dst netip.Addr, proto layers.IPProtocol, ttl uint8) *layers.IPv4 {
	return &layers.IPv4{Version: 4, TTL: ttl, Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
}

func tcpSeg(ip *layers.IPv4, sport, dport uint16, syn, ack bool) *layers.TCP {
	t := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: syn, ACK: ack, Seq: 100, Ack: 7, Window: 1000}
	_ = t.SetNetworkLayerForChecksum(ip)
	return t
}

func udpDgram(ip *layers.IPv4, sport, dport uint16) *layers.UDP {
	u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	_ = u.SetNetworkLayerForChecksum(ip)
	return u
}

func ipOf(p gopacket.Packet) *layers.IPv4 {
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	return ip
}

func tcpOf(p gopacket.Packet) *layers.TCP {
	t, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	return t
}

// verified reports whether every checksum in p is right.
func verified(p gopacket.Packet) bool {
	d := p.Data()
	var pr frame.Parsed
	pr.Decode(d)
	if pr.Reason != frame.OK || !frame.IPv4(d[pr.L3Off:pr.L3End]).VerifyChecksum() {
		return false
	}
	l4 := d[pr.L4Off:pr.L3End]
	switch pr.Proto {
	case frame.ProtoTCP:
		return frame.TCP(l4).Verify(pr.SrcIP, pr.DstIP)
	case frame.ProtoUDP:
		return frame.UDP(l4).Verify(pr.SrcIP, pr.DstIP)
	case frame.ProtoICMPv4:
		return frame.ICMPv4(l4).Verify()
	}
	return true
}

// answerARP waits for the gateway's ARP request for who on the uplink and
// answers it as mac.
func (e *engine) answerARP(who netip.Addr, mac net.HardwareAddr) {
	e.t.Helper()
	e.expect(e.outside, "ARP request for "+who.String(), func(p gopacket.Packet) bool {
		a, ok := p.Layer(layers.LayerTypeARP).(*layers.ARP)
		return ok && a.Operation == layers.ARPRequest && net.IP(a.DstProtAddress).Equal(who.AsSlice()) &&
			net.IP(a.SourceProtAddress).Equal(ext.AsSlice())
	})
	e.send(e.outside, &layers.Ethernet{SrcMAC: mac, DstMAC: net.HardwareAddr(extMAC[:]), EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPReply, SourceHwAddress: mac, SourceProtAddress: who.AsSlice(),
			DstHwAddress: extMAC[:], DstProtAddress: ext.AsSlice()})
	deadline := time.Now().Add(2 * time.Second)
	for {
		if _, up := e.gw.Neighbours(); len(up) > 0 {
			for _, n := range up {
				if n.IP == who {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("ARP reply for %v not learned", who)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestEngineMasquerade(t *testing.T) {
	e := newEngine(t)
	syn := func() {
		ip := ipv4(h2, farAway, layers.IPProtocolTCP, 64)
		e.send(e.h2, eth(h2MAC, net.HardwareAddr(gwMAC[:])), ip, tcpSeg(ip, 40000, 80, true, false))
	}
	// The first SYN waits on ARP for the upstream router, held; the
	// reply sends it.
	syn()
	e.answerARP(upGW, upMAC)
	out := e.expect(e.outside, "held SYN", func(p gopacket.Packet) bool { return tcpOf(p) != nil })
	if ip, tcp := ipOf(out), tcpOf(out); !ip.SrcIP.Equal(ext.AsSlice()) || tcp.SrcPort != 40000 || ip.TTL != 63 ||
		out.LinkLayer().(*layers.Ethernet).DstMAC.String() != upMAC.String() || !verified(out) {
		t.Fatalf("held SYN: %v", out)
	}
	syn()
	out = e.expect(e.outside, "masqueraded SYN", func(p gopacket.Packet) bool { return tcpOf(p) != nil })
	ip, tcp := ipOf(out), tcpOf(out)
	le := out.LinkLayer().(*layers.Ethernet)
	if !ip.SrcIP.Equal(ext.AsSlice()) || !ip.DstIP.Equal(farAway.AsSlice()) || tcp.SrcPort != 40000 || ip.TTL != 63 ||
		le.DstMAC.String() != upMAC.String() || le.SrcMAC.String() != net.HardwareAddr(extMAC[:]).String() || !verified(out) {
		t.Fatalf("masqueraded SYN: %v", out)
	}
	// The reply reaches h2 from the gateway's MAC.
	rip := ipv4(farAway, ext, layers.IPProtocolTCP, 50)
	e.send(e.outside, eth(upMAC, net.HardwareAddr(extMAC[:])), rip, tcpSeg(rip, 80, 40000, true, true))
	in := e.expect(e.h2, "SYN-ACK", func(p gopacket.Packet) bool { return tcpOf(p) != nil })
	ip, tcp = ipOf(in), tcpOf(in)
	le = in.LinkLayer().(*layers.Ethernet)
	if !ip.SrcIP.Equal(farAway.AsSlice()) || !ip.DstIP.Equal(h2.AsSlice()) || tcp.DstPort != 40000 || ip.TTL != 49 ||
		le.SrcMAC.String() != net.HardwareAddr(gwMAC[:]).String() || le.DstMAC.String() != h2MAC.String() || !verified(in) {
		t.Fatalf("SYN-ACK at h2: %v", in)
	}
	if c := e.gw.Counters(); c.RoutedOut != 2 || c.RoutedIn != 1 || c.NeighQueued != 1 || c.NeighMiss != 0 {
		t.Errorf("counters %+v", c)
	}
	// TTL 1 from inside: time exceeded from the gateway, quoting it.
	tip := ipv4(h2, farAway, layers.IPProtocolUDP, 1)
	e.send(e.h2, eth(h2MAC, net.HardwareAddr(gwMAC[:])), tip, udpDgram(tip, 1, 2))
	te := e.expect(e.h2, "time exceeded", func(p gopacket.Packet) bool {
		ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		return ok && ic.TypeCode.Type() == layers.ICMPv4TypeTimeExceeded
	})
	if !ipOf(te).SrcIP.Equal(gw4.AsSlice()) || !verified(te) {
		t.Fatalf("time exceeded: %v", te)
	}
}

func TestEnginePublished(t *testing.T) {
	e := newEngine(t)
	if err := e.nat.AddMappings(nat.Mapping{Proto: frame.ProtoTCP, ExtIP: ext, ExtPort: 8080, ExtEnd: 8081, CtrIP: h3, CtrPort: 80}); err != nil {
		t.Fatal(err)
	}
	e.gw.SetNeighbour(h3, frame.MAC(h3MAC), true)
	// From an on-link client: reaches h3 with the client's address.
	ip := ipv4(onLink, ext, layers.IPProtocolTCP, 64)
	clientMAC := net.HardwareAddr{2, 0, 0, 0, 0, 0x77}
	e.send(e.outside, eth(clientMAC, net.HardwareAddr(extMAC[:])), ip, tcpSeg(ip, 5555, 8081, true, false))
	in := e.expect(e.h3, "published SYN", func(p gopacket.Packet) bool { return tcpOf(p) != nil })
	if !ipOf(in).SrcIP.Equal(onLink.AsSlice()) || !ipOf(in).DstIP.Equal(h3.AsSlice()) || tcpOf(in).DstPort != 81 || !verified(in) {
		t.Fatalf("published SYN at h3: %v", in)
	}
	// h3 answers; the client is on-link, learned from its packet.
	rip := ipv4(h3, onLink, layers.IPProtocolTCP, 64)
	e.send(e.h3, eth(h3MAC, net.HardwareAddr(gwMAC[:])), rip, tcpSeg(rip, 81, 5555, true, true))
	out := e.expect(e.outside, "SYN-ACK", func(p gopacket.Packet) bool { return tcpOf(p) != nil })
	if !ipOf(out).SrcIP.Equal(ext.AsSlice()) || tcpOf(out).SrcPort != 8081 || out.LinkLayer().(*layers.Ethernet).DstMAC.String() != clientMAC.String() || !verified(out) {
		t.Fatalf("SYN-ACK out: %v", out)
	}
	// The same port on the other external address is not published:
	// a reset comes back; UDP gets port unreachable; a ping, a reply.
	ip2 := ipv4(onLink, ext2, layers.IPProtocolTCP, 64)
	e.send(e.outside, eth(clientMAC, net.HardwareAddr(extMAC[:])), ip2, tcpSeg(ip2, 5556, 8080, true, false))
	rst := e.expect(e.outside, "reset", func(p gopacket.Packet) bool { t := tcpOf(p); return t != nil && t.RST })
	if !ipOf(rst).SrcIP.Equal(ext2.AsSlice()) || tcpOf(rst).Ack != 101 || !verified(rst) {
		t.Fatalf("reset: %v", rst)
	}
	uip := ipv4(onLink, ext, layers.IPProtocolUDP, 64)
	e.send(e.outside, eth(clientMAC, net.HardwareAddr(extMAC[:])), uip, udpDgram(uip, 1, 9))
	e.expect(e.outside, "port unreachable", func(p gopacket.Packet) bool {
		ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		return ok && ic.TypeCode == layers.CreateICMPv4TypeCode(3, 3) && verified(p)
	})
	pip := ipv4(onLink, ext2, layers.IPProtocolICMPv4, 64)
	e.send(e.outside, eth(clientMAC, net.HardwareAddr(extMAC[:])), pip,
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 3, Seq: 1})
	e.expect(e.outside, "echo reply", func(p gopacket.Packet) bool {
		ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		return ok && ic.TypeCode.Type() == layers.ICMPv4TypeEchoReply && ipOf(p).SrcIP.Equal(ext2.AsSlice()) && verified(p)
	})

	// Hairpin: h2 reaches h3's published port through the external address.
	hip := ipv4(h2, ext, layers.IPProtocolTCP, 64)
	e.send(e.h2, eth(h2MAC, net.HardwareAddr(gwMAC[:])), hip, tcpSeg(hip, 41000, 8080, true, false))
	hp := e.expect(e.h3, "hairpinned SYN", func(p gopacket.Packet) bool { return tcpOf(p) != nil && tcpOf(p).SrcPort != 5555 })
	if !ipOf(hp).SrcIP.Equal(gw4.AsSlice()) || !ipOf(hp).DstIP.Equal(h3.AsSlice()) || tcpOf(hp).DstPort != 80 || !verified(hp) {
		t.Fatalf("hairpinned SYN at h3: %v", hp)
	}
	hrip := ipv4(h3, gw4, layers.IPProtocolTCP, 64)
	e.send(e.h3, eth(h3MAC, net.HardwareAddr(gwMAC[:])), hrip, tcpSeg(hrip, 80, uint16(tcpOf(hp).SrcPort), true, true))
	// (h2 saw the first published SYN too: flooded, h3's MAC unknown then.)
	back := e.expect(e.h2, "hairpinned SYN-ACK", func(p gopacket.Packet) bool { return tcpOf(p) != nil && tcpOf(p).DstPort == 41000 })
	if !ipOf(back).SrcIP.Equal(ext.AsSlice()) || tcpOf(back).SrcPort != 8080 || tcpOf(back).DstPort != 41000 || !verified(back) {
		t.Fatalf("hairpinned SYN-ACK at h2: %v", back)
	}
	if c := e.gw.Counters(); c.Hairpinned != 2 || c.Resets != 2 {
		t.Errorf("counters %+v", c)
	}
}

// TestEngineBatches sends 40 flows' SYNs from h2 in one write, with a
// ping to the gateway and a TTL-expired datagram among them, then the 40
// SYN-ACKs from outside in one write: every flow is masqueraded and
// answered through the batched NAT path, and the others handled as alone.
func TestEngineBatches(t *testing.T) {
	e := newEngine(t)
	ip := ipv4(h2, farAway, layers.IPProtocolTCP, 64)
	e.send(e.h2, eth(h2MAC, net.HardwareAddr(gwMAC[:])), ip, tcpSeg(ip, 40999, 80, true, false))
	e.answerARP(upGW, upMAC)
	e.expect(e.outside, "held SYN", func(p gopacket.Packet) bool { return tcpOf(p) != nil })

	const flows = 40
	var out []port.Frame
	for i := range flows {
		ip := ipv4(h2, farAway, layers.IPProtocolTCP, 64)
		out = append(out, port.Frame{Data: build(t, eth(h2MAC, net.HardwareAddr(gwMAC[:])), ip, tcpSeg(ip, uint16(41000+i), 80, true, false))})
		switch i {
		case 3:
			pip := ipv4(h2, gw4, layers.IPProtocolICMPv4, 64)
			out = append(out, port.Frame{Data: build(t, eth(h2MAC, net.HardwareAddr(gwMAC[:])), pip,
				&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 9, Seq: 1})})
		case 20:
			tip := ipv4(h2, farAway, layers.IPProtocolUDP, 1)
			out = append(out, port.Frame{Data: build(t, eth(h2MAC, net.HardwareAddr(gwMAC[:])), tip, udpDgram(tip, 1, 2))})
		}
	}
	if n, err := e.h2.Write(out); n != len(out) {
		t.Fatalf("wrote %d of %d: %v", n, len(out), err)
	}
	for i := range flows {
		sport := layers.TCPPort(41000 + i)
		p := e.expect(e.outside, fmt.Sprintf("SYN %d", i), func(p gopacket.Packet) bool { return tcpOf(p) != nil && tcpOf(p).SrcPort == sport })
		if ip := ipOf(p); !ip.SrcIP.Equal(ext.AsSlice()) || !ip.DstIP.Equal(farAway.AsSlice()) || ip.TTL != 63 || !verified(p) {
			t.Fatalf("SYN %d: %v", i, p)
		}
	}
	e.expect(e.h2, "echo reply", func(p gopacket.Packet) bool {
		ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		return ok && ic.TypeCode.Type() == layers.ICMPv4TypeEchoReply
	})
	e.expect(e.h2, "time exceeded", func(p gopacket.Packet) bool {
		ic, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		return ok && ic.TypeCode.Type() == layers.ICMPv4TypeTimeExceeded
	})

	var in []port.Frame
	for i := range flows {
		rip := ipv4(farAway, ext, layers.IPProtocolTCP, 50)
		in = append(in, port.Frame{Data: build(t, eth(upMAC, net.HardwareAddr(extMAC[:])), rip, tcpSeg(rip, 80, uint16(41000+i), true, true))})
	}
	if n, err := e.outside.Write(in); n != len(in) {
		t.Fatalf("wrote %d of %d: %v", n, len(in), err)
	}
	for i := range flows {
		dport := layers.TCPPort(41000 + i)
		p := e.expect(e.h2, fmt.Sprintf("SYN-ACK %d", i), func(p gopacket.Packet) bool { return tcpOf(p) != nil && tcpOf(p).DstPort == dport })
		if ip := ipOf(p); !ip.SrcIP.Equal(farAway.AsSlice()) || !ip.DstIP.Equal(h2.AsSlice()) || ip.TTL != 49 || !verified(p) {
			t.Fatalf("SYN-ACK %d: %v", i, p)
		}
	}
	if c := e.gw.Counters(); c.RoutedOut != flows+1 || c.RoutedIn != flows || c.TTLExceeded != 1 || c.EchoReplies != 1 || c.NATDropped != 0 {
		t.Errorf("counters %+v", c)
	}
	if s := e.nat.Stats(); s.Flows != flows+1 {
		t.Errorf("nat %+v", s)
	}
}
