package router

import (
	"fmt"
	"net/netip"

	"github.com/switchyard-net/switchyard/nat"
	"github.com/switchyard-net/switchyard/switch/frame"
)

// Explanation is what the gateway would do with a frame, found without
// doing it: no flow opened, no ARP request sent, no counter moved.
type Explanation struct {
	Steps []Step
	// Verdict is one of "answered" (the gateway replies itself), "routed"
	// (out of the uplink), "to endpoint" (through the bridge, from the
	// uplink or hairpinned), "held" (waiting for the next hop's MAC),
	// "ignored" (not for the gateway) or "dropped".
	Verdict string
	Drop    string // the reason, when dropped
	// NAT is the NAT's explanation, when the NAT was asked.
	NAT *nat.Explanation
	// To and ToMAC are where a "to endpoint" frame goes: the endpoint's
	// address and MAC. Out is the port the frame leaves the gateway by.
	To    netip.Addr
	ToMAC frame.MAC
	Out   string
}

// Step is one line of an Explanation.
type Step struct{ Step, Detail string }

func (x *Explanation) step(s, format string, args ...any) {
	x.Steps = append(x.Steps, Step{s, fmt.Sprintf(format, args...)})
}

func (x *Explanation) drop(reason, format string, args ...any) Explanation {
	x.Verdict, x.Drop = "dropped", reason
	x.step("verdict", "dropped (%s): "+format, append([]any{reason}, args...)...)
	return *x
}

// held is the verdict for a packet that waits for its next hop's MAC.
func (x *Explanation) held(format string, args ...any) Explanation {
	x.Verdict = "held"
	x.step("route", format+fmt.Sprintf("; the gateway asks with ARP and holds the packet until the answer (at most %d per address, %d s)", pendingPerHop, pendingTimeout), args...)
	return *x
}

// Explain says what the gateway would do with the frame d: fromUplink,
// as if read from the uplink; otherwise as if the bridge handed it to the
// gateway's port.
func (p *Port) Explain(d []byte, fromUplink bool) Explanation {
	var x Explanation
	var pr frame.Parsed
	pr.Decode(d)
	if pr.Reason != frame.OK {
		return x.drop(dropMalformed, "%s", pr.Reason)
	}
	if fromUplink {
		return p.explainInbound(&x, &pr)
	}
	if pr.IPVersion != 4 || pr.DstMAC != p.mac {
		x.Verdict = "answered"
		x.step("gateway", "not IPv4 to the gateway's MAC: the gateway answers ARP, neighbour discovery and ping for its addresses, and routes nothing else")
		return x
	}
	ours := has(p.v4, pr.DstIP) || (p.up != nil && has(p.up.addrs, pr.DstIP))
	echo := pr.Proto == frame.ProtoICMPv4 && pr.ICMPType == frame.ICMPv4EchoRequest
	if p.up == nil {
		if echo && has(p.v4, pr.DstIP) {
			x.Verdict = "answered"
			x.step("gateway", "an echo request for the gateway's address %s: answered", pr.DstIP)
			return x
		}
		return x.drop(dropUnroutable, "the network has no uplink: the gateway routes nothing")
	}
	if !ours && pr.TTL <= 1 {
		return x.drop(dropTTL, "TTL %d runs out at the gateway, which answers with ICMP time exceeded", pr.TTL)
	}
	nx := p.nat.Explain(nat.Inside, &pr)
	x.NAT = &nx
	switch nx.Verdict.Kind() {
	case nat.Pass:
		if echo && ours {
			x.Verdict = "answered"
			x.step("gateway", "an echo request for the gateway's own address %s: answered", pr.DstIP)
			return x
		}
		if ours {
			return x.drop(dropUnroutable, "to the gateway's own address %s, with nothing published on %s", pr.DstIP, portDesc(&pr))
		}
		return x.drop(dropUnroutable, "%s", orText(nx.Note, "not translated"))
	case nat.Drop:
		x.step("nat", "%s", describeNAT(&nx, &pr))
		return x.drop(natDropName(nx.Verdict.Reason()), "%s", orText(nx.Note, "by the NAT"))
	}
	x.step("nat", "%s", describeNAT(&nx, &pr))
	dst := nx.Dst.Addr()
	now := p.now.Load()
	if inPrefixes(p.inside, dst) {
		mac, ok, _ := p.inNeigh.lookup(dst, now)
		if !ok {
			return x.held("hairpin to %s, whose MAC the gateway does not know yet", dst)
		}
		x.Verdict, x.To, x.ToMAC, x.Out = "to endpoint", dst, mac, p.name
		x.step("route", "hairpin: back to the endpoint %s (%s) through the bridge, TTL %d", dst, mac, ttlAfter(pr.TTL))
		return x
	}
	u := p.up
	hop := dst
	if !inPrefixes(u.onlink, dst) {
		if !u.gw.IsValid() {
			return x.drop(dropNoRoute, "%s is off the uplink's subnets and the uplink has no gateway", dst)
		}
		hop = u.gw
	}
	mac, ok, stale := u.neigh.lookup(hop, now)
	if !ok {
		return x.held("next hop %s on %s: its MAC is not known yet", hop, u.name)
	}
	x.Verdict, x.Out = "routed", u.port
	via := "on-link"
	if hop != dst {
		via = "via " + hop.String()
	}
	st := ""
	if stale {
		st = " (stale: re-asked with ARP, used meanwhile)"
	}
	x.step("route", "out of the uplink %s to %s %s, next hop MAC %s%s, TTL %d", u.name, dst, via, mac, st, ttlAfter(pr.TTL))
	return x
}

// explainInbound is Explain for a frame from the uplink.
func (p *Port) explainInbound(x *Explanation, pr *frame.Parsed) Explanation {
	u := p.up
	if u == nil {
		return x.drop(dropUnroutable, "the network has no uplink")
	}
	switch {
	case pr.DstMAC != u.mac && !pr.DstMAC.IsBroadcast():
		x.Verdict = "ignored"
		x.step("uplink", "for %s, not the gateway's uplink MAC %s: another host's frame on the segment", pr.DstMAC, u.mac)
		return *x
	case pr.EtherType == frame.EtherTypeARP:
		x.Verdict = "answered"
		if has(u.addrs, pr.DstIP) {
			x.step("uplink", "an ARP request for the external address %s: answered with %s", pr.DstIP, u.mac)
		} else {
			x.Verdict = "ignored"
			x.step("uplink", "an ARP request for %s, not an external address: not answered", pr.DstIP)
		}
		return *x
	case pr.IPVersion != 4 || pr.DstMAC != u.mac || !has(u.addrs, pr.DstIP):
		x.Verdict = "ignored"
		x.step("uplink", "not IPv4 to an external address (%s): ignored", joinAddrs(u.addrs))
		return *x
	}
	echo := pr.Proto == frame.ProtoICMPv4 && pr.ICMPType == frame.ICMPv4EchoRequest
	if pr.TTL <= 1 && !echo {
		return x.drop(dropTTL, "TTL %d runs out at the gateway, which answers with ICMP time exceeded", pr.TTL)
	}
	nx := p.nat.Explain(nat.Outside, pr)
	x.NAT = &nx
	switch nx.Verdict.Kind() {
	case nat.Pass:
		x.Verdict = "answered"
		switch {
		case echo:
			x.step("gateway", "an echo request for the external address %s: answered", pr.DstIP)
		case pr.Proto == frame.ProtoTCP || pr.Proto == frame.ProtoUDP:
			x.step("gateway", "nothing is published on %s %s; the gateway answers as a host with no listener would: %s", pr.DstIP, portDesc(pr), refusal(pr))
		default:
			x.Verdict = "dropped"
			x.Drop = dropUnroutable
			x.step("verdict", "dropped (%s): %s", dropUnroutable, orText(nx.Note, "not translated"))
		}
		return *x
	case nat.Drop:
		x.step("nat", "%s", describeNAT(&nx, pr))
		return x.drop(natDropName(nx.Verdict.Reason()), "%s", orText(nx.Note, "by the NAT"))
	}
	x.step("nat", "%s", describeNAT(&nx, pr))
	dst := nx.Dst.Addr()
	if !inPrefixes(p.inside, dst) {
		return x.drop(dropNoRoute, "%s is not on the network", dst)
	}
	mac, ok, _ := p.inNeigh.lookup(dst, p.now.Load())
	if !ok {
		return x.held("the endpoint %s's MAC is not known yet", dst)
	}
	x.Verdict, x.To, x.ToMAC, x.Out = "to endpoint", dst, mac, u.port
	x.step("route", "to the endpoint %s (%s) through the bridge, TTL %d", dst, mac, ttlAfter(pr.TTL))
	return *x
}

// describeNAT says which NAT rule a packet meets and what it becomes.
func describeNAT(x *nat.Explanation, pr *frame.Parsed) string {
	from := fmt.Sprintf("%s > %s", addrPort(pr.SrcIP, srcPort(pr)), addrPort(pr.DstIP, dstPort(pr)))
	var s string
	switch x.Rule {
	case "flow":
		s = fmt.Sprintf("existing %s flow, %s", x.Kind, x.State)
	case "masquerade":
		s = "new flow, masquerade"
	case "published":
		s = "new flow, published port " + x.Mapping.String()
		if x.Mapping.Owner != "" {
			s += " (" + x.Mapping.Owner + ")"
		}
	case "hairpin":
		s = "new flow, hairpin to the published port " + x.Mapping.String() + ", from the gateway's address"
	default:
		s = "no rule"
		if x.Mapping != nil {
			s = "published port " + x.Mapping.String()
		}
	}
	if x.Verdict.Kind() == nat.Forward {
		s += fmt.Sprintf(": %s becomes %s > %s", from, x.Src, x.Dst)
	} else {
		s += ": " + from
	}
	if x.Note != "" && x.Verdict.Kind() == nat.Forward {
		s += "; " + x.Note
	}
	return s
}

func srcPort(pr *frame.Parsed) uint16 {
	if pr.Proto == frame.ProtoICMPv4 {
		return pr.ICMPEchoID
	}
	return pr.SrcPort
}

func dstPort(pr *frame.Parsed) uint16 {
	if pr.Proto == frame.ProtoICMPv4 {
		return pr.ICMPEchoID
	}
	return pr.DstPort
}

func addrPort(a netip.Addr, port uint16) string { return netip.AddrPortFrom(a, port).String() }

func portDesc(pr *frame.Parsed) string {
	switch pr.Proto {
	case frame.ProtoTCP:
		return fmt.Sprintf("tcp port %d", pr.DstPort)
	case frame.ProtoUDP:
		return fmt.Sprintf("udp port %d", pr.DstPort)
	}
	return fmt.Sprintf("protocol %d", pr.Proto)
}

func refusal(pr *frame.Parsed) string {
	if pr.Proto == frame.ProtoTCP {
		return "a TCP reset"
	}
	return "ICMP port unreachable"
}

func ttlAfter(ttl uint8) uint8 {
	if ttl > 1 {
		return ttl - 1
	}
	return ttl
}

func orText(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

func joinAddrs(as []netip.Addr) string {
	s := ""
	for i, a := range as {
		if i > 0 {
			s += ", "
		}
		s += a.String()
	}
	return s
}
