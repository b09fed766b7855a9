package nat

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/switch/frame"
)

// TestExplainAgreesWithTranslate runs a sequence of packets: before each
// is translated, Explain must predict the verdict, the rule and the
// rewritten addresses, and change nothing.
func TestExplainAgreesWithTranslate(t *testing.T) {
	n := newTestNAT(t, nil)
	if err := n.AddMappings(
		Mapping{Proto: frame.ProtoTCP, ExtPort: 8000, ExtEnd: 8009, CtrIP: host2, CtrPort: 80, Owner: "a"},
		Mapping{Proto: frame.ProtoTCP, ExtIP: ext2, ExtPort: 9000, ExtEnd: 9000, CtrIP: host3, CtrPort: 90, Owner: "b",
			AllowFrom: []netip.Prefix{netip.MustParsePrefix("198.19.0.200/32")}},
	); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name       string
		side       Side
		p          pkt
		rule, note string
	}{
		{"masquerade opens", Inside, pkt{proto: frame.ProtoTCP, src: host2, dst: server, sport: 40000, dport: 80, flags: tcpSYN}, "masquerade", ""},
		{"its reply", Outside, pkt{proto: frame.ProtoTCP, src: server, dst: ext1, sport: 80, dport: 40000, flags: tcpSYN | tcpACK}, "flow", ""},
		{"same port from another host", Inside, pkt{proto: frame.ProtoTCP, src: host3, dst: server, sport: 40000, dport: 80, flags: tcpSYN}, "masquerade", "port 40000 is taken"},
		{"published", Outside, pkt{proto: frame.ProtoTCP, src: client, dst: ext1, sport: 33000, dport: 8005, flags: tcpSYN}, "published", ""},
		{"published, not a SYN", Outside, pkt{proto: frame.ProtoTCP, src: client, dst: ext1, sport: 33001, dport: 8005, flags: tcpACK}, "published", "no flow"},
		{"filtered", Outside, pkt{proto: frame.ProtoTCP, src: server, dst: ext2, sport: 1, dport: 9000, flags: tcpSYN}, "", "allow-list"},
		{"hairpin", Inside, pkt{proto: frame.ProtoTCP, src: host3, dst: ext1, sport: 5000, dport: 8001, flags: tcpSYN}, "hairpin", ""},
		{"denied", Inside, pkt{proto: frame.ProtoUDP, src: host2, dst: netip.MustParseAddr("198.18.2.9"), sport: 1, dport: 53}, "", "another network"},
		{"to the gateway", Inside, pkt{proto: frame.ProtoICMPv4, icmpType: frame.ICMPv4EchoRequest, src: host2, dst: gwIP, sport: 7}, "", ""},
		{"not ours", Outside, pkt{proto: frame.ProtoUDP, src: client, dst: server, sport: 1, dport: 53}, "", "not an external address"},
		{"ping out", Inside, pkt{proto: frame.ProtoICMPv4, icmpType: frame.ICMPv4EchoRequest, src: host2, dst: server, sport: 7}, "masquerade", ""},
	}
	for _, s := range steps {
		b := build(t, s.p)
		var pr frame.Parsed
		pr.Decode(b)
		stats, flows := n.Stats(), n.Flows(0)
		x := n.Explain(s.side, &pr)
		if !reflect.DeepEqual(stats, n.Stats()) || !reflect.DeepEqual(flows, n.Flows(0)) {
			t.Fatalf("%s: Explain changed the NAT", s.name)
		}
		v := n.Translate(s.side, b, &pr, nil)
		if x.Verdict != v {
			t.Errorf("%s: Explain says %v, Translate did %v", s.name, x.Verdict, v)
		}
		if x.Rule != s.rule {
			t.Errorf("%s: rule %q, want %q", s.name, x.Rule, s.rule)
		}
		if s.note != "" && !strings.Contains(x.Note, s.note) || s.note == "" && x.Note != "" {
			t.Errorf("%s: note %q, want %q", s.name, x.Note, s.note)
		}
		if v != Forward || s.note != "" {
			continue // a reallocated port is not predicted
		}
		gs, gd := netip.AddrPortFrom(pr.SrcIP, pr.SrcPort), netip.AddrPortFrom(pr.DstIP, pr.DstPort)
		if pr.Proto == frame.ProtoICMPv4 {
			gs, gd = netip.AddrPortFrom(pr.SrcIP, pr.ICMPEchoID), netip.AddrPortFrom(pr.DstIP, pr.ICMPEchoID)
		}
		if x.Src != gs || x.Dst != gd {
			t.Errorf("%s: Explain predicts %v > %v, Translate made %v > %v", s.name, x.Src, x.Dst, gs, gd)
		}
	}
}
