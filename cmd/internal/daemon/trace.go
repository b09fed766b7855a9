package daemon

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/switchyard-net/switchyard/cmd/internal/api"
	"github.com/switchyard-net/switchyard/ipam"
	"github.com/switchyard-net/switchyard/switch/bridge"
	"github.com/switchyard-net/switchyard/switch/frame"
)

// Trace runs a synthetic frame through a network's decision path without
// sending it: how the sender would address it, what the parser sees, what
// the bridge would learn and where it would send it.
func (d *Daemon) Trace(name string, req api.TraceRequest) (api.Trace, error) {
	if err := d.lockOpen(); err != nil {
		return api.Trace{}, err
	}
	defer d.mu.Unlock()
	n, rn, err := d.netLocked(name)
	if err != nil {
		return api.Trace{}, err
	}
	return traceOn(n, rn, req)
}

// frameSpec is a parsed TraceRequest.Spec.
type frameSpec struct {
	proto    string // tcp, udp, icmp, arp
	src, dst netip.Addr
	sport    uint16
	dport    uint16
	flags    []string // tcp
	ttl      uint8    // default defaultTTL
}

// defaultTTL is a traced frame's TTL (hop limit).
const defaultTTL = 64

const specHelp = "want `tcp SRC:PORT > DST:PORT [syn|ack|fin|rst|psh]...`, `udp SRC:PORT > DST:PORT`, `icmp SRC > DST` or `arp who-has DST [tell SRC]`"

func parseSpec(s string) (*frameSpec, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return nil, invalid("empty frame spec; %s", specHelp)
	}
	sp := &frameSpec{proto: strings.ToLower(f[0])}
	switch sp.proto {
	case "arp":
		if len(f) < 3 || strings.ToLower(f[1]) != "who-has" || (len(f) != 3 && (len(f) != 5 || strings.ToLower(f[3]) != "tell")) {
			return nil, invalid("frame spec %q: %s", s, specHelp)
		}
		a, err := netip.ParseAddr(f[2])
		if err != nil || !a.Is4() {
			return nil, invalid("frame spec %q: %q is not an IPv4 address", s, f[2])
		}
		sp.dst = a
		if len(f) == 5 {
			if sp.src, err = netip.ParseAddr(f[4]); err != nil || !sp.src.Is4() {
				return nil, invalid("frame spec %q: %q is not an IPv4 address", s, f[4])
			}
		}
		return sp, nil
	case "tcp", "udp", "icmp":
	default:
		return nil, invalid("frame spec %q: unknown protocol %q; %s", s, f[0], specHelp)
	}
	if len(f) < 4 || f[2] != ">" {
		return nil, invalid("frame spec %q: %s", s, specHelp)
	}
	if sp.proto == "icmp" {
		if len(f) != 4 {
			return nil, invalid("frame spec %q: %s", s, specHelp)
		}
		var err error
		if sp.src, err = netip.ParseAddr(f[1]); err != nil {
			return nil, invalid("frame spec %q: %q is not an IP address", s, f[1])
		}
		if sp.dst, err = netip.ParseAddr(f[3]); err != nil {
			return nil, invalid("frame spec %q: %q is not an IP address", s, f[3])
		}
	} else {
		src, err := netip.ParseAddrPort(f[1])
		if err != nil {
			return nil, invalid("frame spec %q: %q is not ADDR:PORT", s, f[1])
		}
		dst, err := netip.ParseAddrPort(f[3])
		if err != nil {
			return nil, invalid("frame spec %q: %q is not ADDR:PORT", s, f[3])
		}
		sp.src, sp.sport, sp.dst, sp.dport = src.Addr(), src.Port(), dst.Addr(), dst.Port()
		for _, fl := range f[4:] {
			fl = strings.ToLower(fl)
			if sp.proto != "tcp" || !slices.Contains([]string{"syn", "ack", "fin", "rst", "psh"}, fl) {
				return nil, invalid("frame spec %q: unexpected %q; %s", s, fl, specHelp)
			}
			sp.flags = append(sp.flags, fl)
		}
		if sp.proto == "tcp" && len(sp.flags) == 0 {
			sp.flags = []string{"syn"}
		}
	}
	sp.src, sp.dst = sp.src.Unmap(), sp.dst.Unmap()
	if sp.src.Is4() != sp.dst.Is4() {
		return nil, invalid("frame spec %q: source and destination are of different IP versions", s)
	}
	return sp, nil
}

// sender is the port a trace starts from.
type sender struct {
	mac   net.HardwareAddr
	addrs []netip.Prefix
}

func (n *netRecord) senderOf(port string) (sender, bool) {
	if ep, ok := n.Endpoints[port]; ok {
		m, _ := net.ParseMAC(ep.MAC)
		return sender{mac: m, addrs: ep.Addrs}, true
	}
	if at, ok := n.Attachments[port]; ok {
		s, _ := linkMAC(at.Netns, at.Iface)
		m, _ := net.ParseMAC(s)
		return sender{mac: m}, true
	}
	if port == api.GatewayPort && n.hasGateway() {
		m, _ := net.ParseMAC(n.GatewayMAC)
		s := sender{mac: m}
		for _, sc := range n.Subnets {
			if sc.Gateway.IsValid() {
				s.addrs = append(s.addrs, netip.PrefixFrom(sc.Gateway, sc.Subnet.Bits()))
			}
		}
		return s, true
	}
	return sender{}, false
}

// traceOn is Trace on a network's record and running part.
func traceOn(n *netRecord, rn *runNet, req api.TraceRequest) (api.Trace, error) {
	if req.From == "" {
		return api.Trace{}, invalid("trace needs the sending endpoint (--from NETNS)")
	}
	sp, err := parseSpec(req.Spec)
	if err != nil {
		return api.Trace{}, err
	}
	snd, ok := n.senderOf(req.From)
	fromUplink := false
	if !ok && (req.From == uplinkPortName || req.From == "uplink") && n.Uplink != nil {
		// A host on the uplink's segment: any MAC, sending to ours there.
		snd, ok, fromUplink = sender{mac: net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}}, true, true
	}
	if !ok {
		return api.Trace{}, api.Errorf(api.CodeNotFound, "network %q has no endpoint or port %q", n.Name, req.From)
	}
	if snd.mac == nil {
		return api.Trace{}, api.Errorf(api.CodeInternal, "port %q: its MAC address is unknown", req.From)
	}
	t := api.Trace{Network: n.Name, From: req.From}
	step := func(s, format string, args ...any) {
		t.Steps = append(t.Steps, api.TraceStep{Step: s, Detail: fmt.Sprintf(format, args...)})
	}
	step("frame", "%s from %s (%s)", req.Spec, req.From, snd.mac)
	if sp.proto == "arp" && !sp.src.IsValid() {
		for _, a := range snd.addrs {
			if a.Addr().Is4() {
				sp.src = a.Addr()
			}
		}
		if !sp.src.IsValid() {
			return api.Trace{}, invalid("%s has no IPv4 address to send ARP from; give `tell SRC`", req.From)
		}
	}
	if !fromUplink && !slices.ContainsFunc(snd.addrs, func(p netip.Prefix) bool { return p.Addr() == sp.src }) {
		var own []string
		for _, a := range snd.addrs {
			own = append(own, a.Addr().String())
		}
		step("source", "%s is not an address of %s (%s): the switch does not check, the frame goes on", sp.src, req.From,
			strings.Join(append(own, "none")[:max(len(own), 1)], ", "))
	}

	// How the sender addresses the frame.
	dstMAC := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	toGateway := false
	switch {
	case fromUplink && sp.proto == "arp":
	case fromUplink:
		dstMAC, _ = net.ParseMAC(n.Uplink.MAC)
		step("resolve", "%s is reached on the uplink %s at the gateway's MAC there, %s", sp.dst, n.Uplink.Iface, dstMAC)
	case sp.proto != "arp":
		var onLink *ipamSubnet
		for i := range n.Subnets {
			if n.Subnets[i].Subnet.Contains(sp.dst) {
				onLink = &n.Subnets[i]
			}
		}
		switch {
		case sp.dst.IsMulticast():
			dstMAC = multicastMAC(sp.dst)
			step("resolve", "%s is multicast: %s", sp.dst, dstMAC)
		case onLink != nil && onLink.Gateway == sp.dst:
			dstMAC, _ = net.ParseMAC(n.GatewayMAC)
			toGateway = true
			step("resolve", "%s is the gateway of %s: %s", sp.dst, onLink.Subnet, dstMAC)
		case onLink != nil:
			var owner *epRecord
			for _, ep := range n.Endpoints {
				if slices.ContainsFunc(ep.Addrs, func(p netip.Prefix) bool { return p.Addr() == sp.dst }) {
					owner = ep
				}
			}
			if owner == nil {
				step("resolve", "%s is on-link (%s) but no endpoint has it: the sender's neighbour request goes unanswered; traced instead", sp.dst, onLink.Subnet)
				if !sp.dst.Is4() {
					dstMAC = multicastMAC(solicitedNode(sp.dst))
				}
				sp = &frameSpec{proto: "arp", src: sp.src, dst: sp.dst}
				if !sp.dst.Is4() {
					sp.proto = "ndp"
				}
				break
			}
			dstMAC, _ = net.ParseMAC(owner.MAC)
			step("resolve", "%s is on-link (%s): endpoint %s, %s", sp.dst, onLink.Subnet, owner.Netns, dstMAC)
		case n.hasGateway():
			gw := ""
			for _, sc := range n.Subnets {
				if sc.Gateway.IsValid() && sc.Gateway.Is4() == sp.dst.Is4() {
					gw = sc.Gateway.String()
				}
			}
			dstMAC, _ = net.ParseMAC(n.GatewayMAC)
			toGateway = true
			step("resolve", "%s is off-link: next hop the gateway %s, %s", sp.dst, gw, dstMAC)
		default:
			step("resolve", "%s is off-link and network %s has no gateway: the sender has no route", sp.dst, n.Name)
			t.Verdict, t.Drop = "dropped", "no_route"
			step("verdict", "dropped at the sender: no route to %s", sp.dst)
			return t, nil
		}
	}

	data, err := buildFrame(sp, snd.mac, dstMAC)
	if err != nil {
		return api.Trace{}, api.Errorf(api.CodeInternal, "building the frame: %v", err)
	}
	var p frame.Parsed
	p.Decode(data)
	step("parse", "%s", describeParsed(&p, len(data)))

	br, ok := rn.br.(*bridge.Bridge)
	if !ok {
		return api.Trace{}, api.Errorf(api.CodeNotSupported, "trace works on bridge networks; %q is a macvlan network", n.Name)
	}
	if fromUplink {
		gatewayTrace(&t, step, n, rn, br, sp, data, true)
		return t, nil
	}
	dec, err := bridgeTrace(br, req.From, data, step)
	if err != nil {
		return api.Trace{}, api.Errorf(api.CodeNotFound, "network %q has no running port %q", n.Name, req.From)
	}
	if toGateway && dec.Drop == "" && slices.Contains(dec.Out, api.GatewayPort) && rn.gw != nil && rn.gw.Uplink() != nil {
		step("output", "port %s", strings.Join(dec.Out, ", "))
		gatewayTrace(&t, step, n, rn, br, sp, data, false)
		return t, nil
	}
	bridgeVerdict(&t, step, dec, func() {
		if toGateway && slices.Contains(dec.Out, api.GatewayPort) {
			t.Verdict = "to gateway"
			step("output", "port %s", strings.Join(dec.Out, ", "))
			step("gateway", "%s", gatewayNote(n, sp))
			step("verdict", "to gateway")
		}
	})
	return t, nil
}

// bridgeTrace runs data through the bridge's decision from port from and
// adds the learn, lookup and flood steps.
func bridgeTrace(br *bridge.Bridge, from string, data []byte, step func(s, format string, args ...any)) (bridge.Decision, error) {
	dec, err := br.Trace(from, data)
	if err != nil {
		return dec, err
	}
	switch dec.Learn {
	case "":
	case "off":
		step("learn", "port %s does not learn", from)
	case "move", "looped":
		step("learn", "source %s on %s: %s (known on %s)", dec.SrcMAC, from, dec.Learn, dec.MovedFrom)
	default:
		step("learn", "source %s on %s: %s", dec.SrcMAC, from, dec.Learn)
	}
	switch dec.Lookup {
	case "hit":
		step("lookup", "destination %s: MAC table hit, port %s", dec.DstMAC, dec.HitPort)
	case "miss":
		step("lookup", "destination %s: not in the MAC table", dec.DstMAC)
	case "":
	default:
		step("lookup", "destination %s: %s", dec.DstMAC, dec.Lookup)
	}
	if dec.Flood != "" {
		fs := dec.Flood + " to " + orNone(dec.Out)
		if len(dec.Skipped) > 0 {
			fs += "; skipped " + strings.Join(dec.Skipped, ", ")
		}
		step("flood", "%s", fs)
	}
	return dec, nil
}

// bridgeVerdict sets t's verdict from the bridge's decision; toGateway,
// when it sets a verdict, takes precedence over "forwarded".
func bridgeVerdict(t *api.Trace, step func(s, format string, args ...any), dec bridge.Decision, toGateway func()) {
	t.Out, t.Drop = dec.Out, dec.Drop
	switch {
	case dec.Drop != "":
		t.Verdict = "dropped"
		step("verdict", "dropped: %s", dec.Drop)
	case len(dec.Out) == 0:
		t.Verdict = "nowhere"
		step("verdict", "no other port to send to")
	default:
		if toGateway != nil {
			if toGateway(); t.Verdict != "" {
				return
			}
		}
		if dec.Flood != "" {
			t.Verdict = "flooded"
			step("output", "ports %s", strings.Join(dec.Out, ", "))
			step("verdict", "flooded")
			return
		}
		t.Verdict = "forwarded"
		step("output", "port %s", strings.Join(dec.Out, ", "))
		step("verdict", "forwarded")
	}
}

// gatewayTrace follows a frame through the gateway of a network with an
// uplink (from the bridge, or fromUplink): the NAT rule it meets, what it
// becomes, and where it goes; a frame the gateway hands back to the
// bridge (inbound, or a hairpin) goes on through the bridge's decision.
func gatewayTrace(t *api.Trace, step func(s, format string, args ...any), n *netRecord, rn *runNet, br *bridge.Bridge, sp *frameSpec, data []byte, fromUplink bool) {
	x := rn.gw.Explain(data, fromUplink)
	for _, s := range x.Steps {
		step(s.Step, "%s", s.Detail)
	}
	switch x.Verdict {
	case "dropped":
		t.Verdict, t.Drop = "dropped", x.Drop
		return
	case "routed":
		t.Verdict, t.Out = "routed", []string{x.Out}
		step("verdict", "routed out of the uplink %s", n.Uplink.Iface)
		return
	case "to endpoint":
	default:
		t.Verdict = x.Verdict
		step("verdict", "%s", x.Verdict)
		return
	}
	// The translated frame, as the gateway hands it to the bridge.
	tsp := *sp
	tsp.src, tsp.dst = x.NAT.Src.Addr(), x.NAT.Dst.Addr()
	tsp.sport, tsp.dport = x.NAT.Src.Port(), x.NAT.Dst.Port()
	tsp.ttl = defaultTTL - 1
	gwMAC, _ := net.ParseMAC(n.GatewayMAC)
	out, err := buildFrame(&tsp, gwMAC, net.HardwareAddr(x.ToMAC[:]))
	if err != nil {
		t.Verdict, t.Drop = "dropped", "internal"
		step("verdict", "building the translated frame: %v", err)
		return
	}
	var p frame.Parsed
	p.Decode(out)
	step("bridge", "the gateway hands the bridge, on port %s, %s", x.Out, describeParsed(&p, len(out)))
	dec, err := bridgeTrace(br, x.Out, out, step)
	if err != nil {
		t.Verdict, t.Drop = "dropped", "no-port"
		step("verdict", "port %s is not running", x.Out)
		return
	}
	bridgeVerdict(t, step, dec, nil)
}

type ipamSubnet = ipam.SubnetConfig

func orNone(s []string) string {
	if len(s) == 0 {
		return "no port"
	}
	return strings.Join(s, ", ")
}

// gatewayNote says what the gateway does with a frame addressed to it.
func gatewayNote(n *netRecord, sp *frameSpec) string {
	for _, sc := range n.Subnets {
		if sc.Gateway == sp.dst {
			if sp.proto == "icmp" {
				return fmt.Sprintf("the gateway answers the echo request for its address %s", sp.dst)
			}
			return fmt.Sprintf("addressed to the gateway %s itself, which answers only ARP, neighbour discovery and ping", sp.dst)
		}
	}
	return fmt.Sprintf("to be routed towards %s: network %s has no uplink, so the gateway drops it (no NAT rule applies)", sp.dst, n.Name)
}

func multicastMAC(a netip.Addr) net.HardwareAddr {
	b := a.AsSlice()
	if a.Is4() {
		return net.HardwareAddr{0x01, 0x00, 0x5e, b[1] & 0x7f, b[2], b[3]}
	}
	return net.HardwareAddr{0x33, 0x33, b[12], b[13], b[14], b[15]}
}

func solicitedNode(a netip.Addr) netip.Addr {
	b := a.As16()
	return netip.AddrFrom16([16]byte{0xff, 0x02, 11: 0x01, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]})
}

// buildFrame serialises the frame sp describes.
func buildFrame(sp *frameSpec, src, dst net.HardwareAddr) ([]byte, error) {
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: dst}
	ls := []gopacket.SerializableLayer{eth}
	var nl gopacket.NetworkLayer
	var ipproto layers.IPProtocol
	switch sp.proto {
	case "tcp":
		ipproto = layers.IPProtocolTCP
	case "udp":
		ipproto = layers.IPProtocolUDP
	case "icmp", "ndp":
		ipproto = layers.IPProtocolICMPv4
		if !sp.src.Is4() {
			ipproto = layers.IPProtocolICMPv6
		}
	}
	ttl := sp.ttl
	if ttl == 0 {
		ttl = defaultTTL
	}
	switch {
	case sp.proto == "arp":
		eth.EthernetType = layers.EthernetTypeARP
		ls = append(ls, &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPRequest,
			SourceHwAddress: src, SourceProtAddress: sp.src.AsSlice(), DstHwAddress: make([]byte, 6), DstProtAddress: sp.dst.AsSlice()})
	case sp.src.Is4():
		eth.EthernetType = layers.EthernetTypeIPv4
		ip := &layers.IPv4{Version: 4, TTL: ttl, Protocol: ipproto, SrcIP: sp.src.AsSlice(), DstIP: sp.dst.AsSlice(), Flags: layers.IPv4DontFragment}
		nl = ip
		ls = append(ls, ip)
	default:
		eth.EthernetType = layers.EthernetTypeIPv6
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: ipproto, SrcIP: sp.src.AsSlice(), DstIP: sp.dst.AsSlice()}
		if sp.proto == "ndp" {
			ip.HopLimit = 255
			ip.DstIP = solicitedNode(sp.dst).AsSlice()
		}
		nl = ip
		ls = append(ls, ip)
	}
	switch sp.proto {
	case "tcp":
		t := &layers.TCP{SrcPort: layers.TCPPort(sp.sport), DstPort: layers.TCPPort(sp.dport), Window: 64240, Seq: 1}
		for _, f := range sp.flags {
			switch f {
			case "syn":
				t.SYN = true
			case "ack":
				t.ACK, t.Ack = true, 1
			case "fin":
				t.FIN = true
			case "rst":
				t.RST = true
			case "psh":
				t.PSH = true
			}
		}
		_ = t.SetNetworkLayerForChecksum(nl)
		ls = append(ls, t)
	case "udp":
		u := &layers.UDP{SrcPort: layers.UDPPort(sp.sport), DstPort: layers.UDPPort(sp.dport)}
		_ = u.SetNetworkLayerForChecksum(nl)
		ls = append(ls, u, gopacket.Payload("switchyard trace"))
	case "icmp":
		if sp.src.Is4() {
			ls = append(ls, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 1, Seq: 1},
				gopacket.Payload("switchyard trace"))
		} else {
			i := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}
			_ = i.SetNetworkLayerForChecksum(nl)
			ls = append(ls, i, &layers.ICMPv6Echo{Identifier: 1, SeqNumber: 1}, gopacket.Payload("switchyard trace"))
		}
	case "ndp":
		i := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
		_ = i.SetNetworkLayerForChecksum(nl)
		ls = append(ls, i, &layers.ICMPv6NeighborSolicitation{TargetAddress: sp.dst.AsSlice(),
			Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: src}}})
	}
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...)
	return buf.Bytes(), err
}

// describeParsed is the parse step: what frame.Parsed made of the frame.
func describeParsed(p *frame.Parsed, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "ethernet %s > %s", p.SrcMAC, p.DstMAC)
	switch {
	case p.EtherType == frame.EtherTypeARP:
		fmt.Fprintf(&b, ", arp op %d %s (%s) asks for %s", p.ARPOp, p.SrcIP, p.ARPSenderMAC, p.DstIP)
	case p.IsIP():
		fmt.Fprintf(&b, ", ipv%d %s > %s ttl %d", p.IPVersion, p.SrcIP, p.DstIP, p.TTL)
		switch p.Proto {
		case frame.ProtoTCP:
			fmt.Fprintf(&b, ", tcp %d > %d flags %s", p.SrcPort, p.DstPort, tcpFlags(p.TCPFlags))
		case frame.ProtoUDP:
			fmt.Fprintf(&b, ", udp %d > %d", p.SrcPort, p.DstPort)
		case frame.ProtoICMPv4, frame.ProtoICMPv6:
			fmt.Fprintf(&b, ", icmp type %d code %d", p.ICMPType, p.ICMPCode)
			if p.ICMPEchoID != 0 {
				fmt.Fprintf(&b, " id %d seq %d", p.ICMPEchoID, p.ICMPEchoSeq)
			}
		}
	}
	fmt.Fprintf(&b, "; %d bytes, %s", n, p.Reason)
	return b.String()
}

func tcpFlags(f uint8) string {
	var s []byte
	for i, c := range "FSRPAUEC" {
		if f&(1<<i) != 0 {
			s = append(s, byte(c))
		}
	}
	if len(s) == 0 {
		return "none"
	}
	return "[" + string(s) + "]"
}
