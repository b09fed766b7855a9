package bench

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/switchyard-net/switchyard/nat"
	"github.com/switchyard-net/switchyard/switch/frame"
)

// The NAT pair's addressing. The inside (the servers, B and the other
// endpoints after A) keeps the L2 topology's 198.18.0.0/24 with the
// gateway at .1; the outside segment between A and S is 198.18.86.0/24:
// S's external addresses from .1 (one per inside endpoint, so that the
// generator can spread its frames over several), A at .200.
var (
	natInside   = netip.MustParsePrefix("198.18.0.0/24")
	natGateway  = netip.MustParsePrefix("198.18.0.1/24")
	natOutside  = netip.MustParsePrefix("198.18.86.0/24")
	natClient   = netip.MustParsePrefix("198.18.86.200/24")
	natUplinkIf = "up0" // S's end of the veth to A
)

// natExtAddr is S's external address for inside endpoint i (1-based).
func natExtAddr(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 86, byte(i)}), natOutside.Bits())
}

// connPoolSize is the number of addresses in each conn test pool.
const connPoolSize = 64

// Source pools of the conn tests: /32 addresses added to the client's
// interface, one per connection in turn. connPool is A's, outside the
// NAT (on the L2 topology, in its subnet); connPoolInside is B's.
var (
	connPoolNAT    = netip.MustParsePrefix("198.18.86.64/26")
	connPoolL2     = netip.MustParsePrefix("198.18.0.64/26")
	connPoolInside = netip.MustParsePrefix("198.18.0.128/26")
)

// natRule is one published port range: TCP or UDP to Ext on ports
// Port..End goes to Ctr on CtrPort..CtrPort+(End-Port), the source kept.
type natRule struct {
	Proto     uint8 // frame.ProtoTCP or frame.ProtoUDP
	Ext       netip.Addr
	Port, End uint16
	Ctr       netip.Addr
	CtrPort   uint16
}

// publishedPorts are the ports the tests use, published on the NAT pair
// the same on both sides, as a container's ports would be: TCP for
// iperf3 and the built-in sender (one range) and the conn test's HTTP
// server, UDP for the path check's echo, the generator's discard port
// and the request/response test.
var publishedPorts = []struct {
	proto     uint8
	port, end uint16
}{
	{frame.ProtoTCP, iperfPort, tcpPort},
	{frame.ProtoTCP, httpPort, httpPort},
	{frame.ProtoUDP, echoPort, echoPort},
	{frame.ProtoUDP, genDst, genDst},
	{frame.ProtoUDP, rrPort, rrPort},
}

// natRules publishes publishedPorts of each inside endpoint, ctrs[i]
// reached at natExtAddr(i+1).
func natRules(ctrs []netip.Addr) []natRule {
	var out []natRule
	for i, c := range ctrs {
		for _, p := range publishedPorts {
			out = append(out, natRule{Proto: p.proto, Ext: natExtAddr(i + 1).Addr(), Port: p.port, End: p.end,
				Ctr: c, CtrPort: p.port})
		}
	}
	return out
}

func protoString(p uint8) string {
	if p == frame.ProtoUDP {
		return "udp"
	}
	return "tcp"
}

// String is the rule as the nat worker's -publish takes it:
// EXTIP:PORT[-END]=CTRIP:PORT/PROTO.
func (r natRule) String() string {
	ports := strconv.Itoa(int(r.Port))
	if r.End != r.Port {
		ports += "-" + strconv.Itoa(int(r.End))
	}
	return fmt.Sprintf("%s:%s=%s:%d/%s", r.Ext, ports, r.Ctr, r.CtrPort, protoString(r.Proto))
}

// parseNATRule parses natRule.String's form.
func parseNATRule(s string) (natRule, error) {
	var r natRule
	bad := func(why string) (natRule, error) {
		return natRule{}, fmt.Errorf("publish %q: %s (want EXTIP:PORT[-END]=CTRIP:PORT/tcp|udp)", s, why)
	}
	rest, proto, ok := strings.Cut(s, "/")
	if !ok {
		return bad("no protocol")
	}
	switch proto {
	case "tcp":
		r.Proto = frame.ProtoTCP
	case "udp":
		r.Proto = frame.ProtoUDP
	default:
		return bad("protocol " + strconv.Quote(proto))
	}
	ext, ctr, ok := strings.Cut(rest, "=")
	if !ok {
		return bad("no '='")
	}
	ea, eports, ok := strings.Cut(ext, ":")
	if !ok {
		return bad("no external port")
	}
	var err error
	if r.Ext, err = netip.ParseAddr(ea); err != nil || !r.Ext.Is4() {
		return bad("external address " + strconv.Quote(ea) + " is not IPv4")
	}
	lo, hi, isRange := strings.Cut(eports, "-")
	if r.Port, err = parsePort(lo); err != nil {
		return bad(err.Error())
	}
	r.End = r.Port
	if isRange {
		if r.End, err = parsePort(hi); err != nil {
			return bad(err.Error())
		}
		if r.End < r.Port {
			return bad("range runs backwards")
		}
	}
	ca, cport, ok := strings.Cut(ctr, ":")
	if !ok {
		return bad("no inside port")
	}
	if r.Ctr, err = netip.ParseAddr(ca); err != nil || !r.Ctr.Is4() {
		return bad("inside address " + strconv.Quote(ca) + " is not IPv4")
	}
	if r.CtrPort, err = parsePort(cport); err != nil {
		return bad(err.Error())
	}
	if int(r.CtrPort)+int(r.End-r.Port) > 65535 {
		return bad("inside range runs past 65535")
	}
	return r, nil
}

func parsePort(s string) (uint16, error) {
	v, err := strconv.ParseUint(s, 10, 16)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("%q is not a port (1-65535)", s)
	}
	return uint16(v), nil
}

// mapping is the rule as switchyard's NAT takes it.
func (r natRule) mapping() nat.Mapping {
	return nat.Mapping{Proto: r.Proto, ExtIP: r.Ext, ExtPort: r.Port, ExtEnd: r.End, CtrIP: r.Ctr, CtrPort: r.CtrPort,
		Owner: "bench"}
}

// nftScript is the nat-kernel peer's ruleset, Docker-style: a DNAT rule
// per published range in prerouting, and masquerade for the inside
// leaving by the uplink. No filter chain: the forward hook passes all,
// as switchyard's gateway does without an allow-list.
func nftScript(rules []natRule, inside netip.Prefix, uplink string) (string, error) {
	var b strings.Builder
	b.WriteString("table ip sybench {\n")
	b.WriteString("\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n")
	for _, r := range rules {
		ports := strconv.Itoa(int(r.Port))
		if r.End != r.Port {
			ports += "-" + strconv.Itoa(int(r.End))
		}
		to := r.Ctr.String()
		switch {
		case r.CtrPort == r.Port:
			// The port stays: a range maps one to one.
		case r.End == r.Port:
			to += ":" + strconv.Itoa(int(r.CtrPort))
		default:
			// nft's "dnat to ADDR:LO-HI" picks a port from the range
			// instead of keeping the offset.
			return "", fmt.Errorf("nft: published range %s moves its ports; only single ports may", r)
		}
		fmt.Fprintf(&b, "\t\tip daddr %s %s dport %s dnat ip to %s\n", r.Ext, protoString(r.Proto), ports, to)
	}
	b.WriteString("\t}\n")
	b.WriteString("\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n")
	fmt.Fprintf(&b, "\t\tip saddr %s oifname %q masquerade\n", inside.Masked(), uplink)
	b.WriteString("\t}\n}\n")
	return b.String(), nil
}
