package router

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/switchyard-net/switchyard/nat"
	"github.com/switchyard-net/switchyard/switch/frame"
	"github.com/switchyard-net/switchyard/switch/port"
)

// recorder is a Mirror (and a bridge.Mirror) that keeps one line per
// call: "kind port in|out mark src>dst".
type recorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *recorder) add(kind, port string, out bool, mark string, d []byte) {
	var p frame.Parsed
	p.Decode(d)
	dir := "in"
	if out {
		dir = "out"
	}
	what := "arp"
	if p.IsIP() {
		what = fmt.Sprintf("%s:%d>%s:%d", p.SrcIP, p.SrcPort, p.DstIP, p.DstPort)
	}
	r.mu.Lock()
	r.lines = append(r.lines, strings.Join([]string{kind, port, dir, mark, what}, " "))
	r.mu.Unlock()
}

func (r *recorder) Inbound(port string, d []byte, _ frame.VNetHdr) {
	r.add("seen", port, false, "-", d)
}
func (r *recorder) Outbound(port string, d []byte, _ frame.VNetHdr) {
	r.add("seen", port, true, "-", d)
}
func (r *recorder) Dropped(port string, out bool, reason string, d []byte) {
	r.add("drop", port, out, strings.ReplaceAll(reason, " ", ""), d)
}
func (r *recorder) Note(port string, out bool, note string, d []byte, _ frame.VNetHdr) {
	r.add("note", port, out, note, d)
}

// wait returns the lines once every one of want is among them.
func (r *recorder) wait(t *testing.T, want ...string) []string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		r.mu.Lock()
		got := slices.Clone(r.lines)
		r.mu.Unlock()
		missing := ""
		for _, w := range want {
			if !slices.Contains(got, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("mirror never saw %q; saw:\n%s", missing, strings.Join(got, "\n"))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestEngineMirror checks what a capture sees of routed traffic: the
// uplink's frames as on the wire, each translated packet before and after
// NAT, and drops with their reasons.
func TestEngineMirror(t *testing.T) {
	e := newEngine(t)
	rec := &recorder{}
	e.br.SetMirror(rec)
	e.gw.SetMirror(rec)
	if err := e.nat.AddMappings(nat.Mapping{Proto: frame.ProtoTCP, ExtIP: ext, ExtPort: 8080, ExtEnd: 8080, CtrIP: h3, CtrPort: 80}); err != nil {
		t.Fatal(err)
	}
	syn := func() {
		ip := ipv4(h2, farAway, layers.IPProtocolTCP, 64)
		e.send(e.h2, eth(h2MAC, net.HardwareAddr(gwMAC[:])), ip, tcpSeg(ip, 40000, 80, true, false))
	}
	syn()
	rec.wait(t, "seen h2 in - 198.18.0.2:40000>198.19.200.9:80",
		"seen uplink out - arp",
		"note uplink out post-nat 198.19.0.2:40000>198.19.200.9:80")
	e.answerARP(upGW, upMAC)
	// Held for the ARP reply, it leaves when the reply comes.
	rec.wait(t, "seen uplink out - 198.19.0.2:40000>198.19.200.9:80")
	e.expect(e.outside, "held SYN", func(p gopacket.Packet) bool { return tcpOf(p) != nil })
	syn()
	e.expect(e.outside, "masqueraded SYN", func(p gopacket.Packet) bool { return tcpOf(p) != nil })
	rip := ipv4(farAway, ext, layers.IPProtocolTCP, 50)
	e.send(e.outside, eth(upMAC, net.HardwareAddr(extMAC[:])), rip, tcpSeg(rip, 80, 40000, true, true))
	e.expect(e.h2, "SYN-ACK", func(p gopacket.Packet) bool { return tcpOf(p) != nil })
	// Not a SYN, to a published port with no flow: the NAT drops it.
	aip := ipv4(onLink, ext, layers.IPProtocolTCP, 64)
	e.send(e.outside, eth(upMAC, net.HardwareAddr(extMAC[:])), aip, tcpSeg(aip, 5555, 8080, false, true))
	got := rec.wait(t,
		"seen gateway out - 198.18.0.2:40000>198.19.200.9:80",
		"note uplink out pre-nat 198.18.0.2:40000>198.19.200.9:80",
		"note uplink out post-nat 198.19.0.2:40000>198.19.200.9:80",
		"seen uplink in - arp",
		"note uplink in pre-nat 198.19.200.9:80>198.19.0.2:40000",
		"note uplink in post-nat 198.19.200.9:80>198.18.0.2:40000",
		"seen h2 out - 198.19.200.9:80>198.18.0.2:40000",
		"drop uplink in nat:no-flow 198.19.0.77:5555>198.19.0.2:8080")
	// The bridge leaves the uplink's reads to the gateway: the translated
	// frame is shown once, marked.
	for _, l := range got {
		if strings.HasPrefix(l, "seen uplink in") && l != "seen uplink in - arp" {
			t.Errorf("the bridge showed an uplink read: %q", l)
		}
	}
	// The post-nat frame leaves on the wire with the uplink's MACs: its
	// pre-nat twin is the frame the bridge handed the gateway.
	post := -1 // the last one: the first waited on ARP
	for i, l := range got {
		if l == "note uplink out post-nat 198.19.0.2:40000>198.19.200.9:80" {
			post = i
		}
	}
	if post < 1 || got[post-1] != "note uplink out pre-nat 198.18.0.2:40000>198.19.200.9:80" {
		t.Errorf("post-nat at %d, not right after its pre-nat frame:\n%s", post, strings.Join(got, "\n"))
	}
	// Removed: nothing more is shown.
	e.gw.SetMirror(nil)
	e.br.SetMirror(nil)
	n := len(rec.wait(t))
	syn()
	e.expect(e.outside, "retransmitted SYN", func(p gopacket.Packet) bool { return tcpOf(p) != nil })
	if m := len(rec.wait(t)); m != n {
		t.Errorf("%d lines after the mirror was removed", m-n)
	}
}

// TestEngineExplain checks the gateway's dry run against what it does,
// and that explaining changes nothing.
func TestEngineExplain(t *testing.T) {
	e := newEngine(t)
	if err := e.nat.AddMappings(nat.Mapping{Proto: frame.ProtoTCP, ExtIP: ext, ExtPort: 8080, ExtEnd: 8080, CtrIP: h3, CtrPort: 80, Owner: "h3"}); err != nil {
		t.Fatal(err)
	}
	e.gw.SetNeighbour(h3, frame.MAC(h3MAC), true)
	clientMAC := net.HardwareAddr{2, 0, 0, 0, 0, 0x77}
	out := func(dst net.HardwareAddr, src, to string, sport, dport uint16, syn bool) []byte {
		ip := ipv4(mustAddr(src), mustAddr(to), layers.IPProtocolTCP, 64)
		return build(t, eth(h2MAC, dst), ip, tcpSeg(ip, sport, dport, syn, !syn))
	}
	in := func(to string, dport uint16, syn bool) []byte {
		ip := ipv4(onLink, mustAddr(to), layers.IPProtocolTCP, 64)
		return build(t, eth(clientMAC, net.HardwareAddr(extMAC[:])), ip, tcpSeg(ip, 5555, dport, syn, !syn))
	}
	gw := net.HardwareAddr(gwMAC[:])
	cases := []struct {
		name       string
		d          []byte
		fromUplink bool
		verdict    string
		drop       string
		rule       string
		detail     string // in some step
	}{
		{"masquerade, next hop unknown", out(gw, "198.18.0.2", "198.19.200.9", 40000, 80, true), false, "held", "", "masquerade", "198.19.0.2:40000 > 198.19.200.9:80"},
		{"not a SYN", out(gw, "198.18.0.2", "198.19.200.9", 40000, 80, false), false, "dropped", "nat: no-flow", "masquerade", "no flow"},
		{"published", in("198.19.0.2", 8080, true), true, "to endpoint", "", "published", "198.19.0.77:5555 > 198.18.0.3:80"},
		{"published on the other address", in("198.19.0.3", 8080, true), true, "answered", "", "", "a TCP reset"},
		{"published, not a SYN", in("198.19.0.2", 8080, false), true, "dropped", "nat: no-flow", "published", "no flow"},
		{"hairpin", out(gw, "198.18.0.2", "198.19.0.2", 41000, 8080, true), false, "to endpoint", "", "hairpin", "198.18.0.1:41000 > 198.18.0.3:80"},
		{"ttl", func() []byte {
			ip := ipv4(h2, farAway, layers.IPProtocolUDP, 1)
			return build(t, eth(h2MAC, gw), ip, udpDgram(ip, 1, 2))
		}(), false, "dropped", dropTTL, "", "time exceeded"},
	}
	stats, ctr := e.nat.Stats(), e.gw.Counters()
	for _, c := range cases {
		x := e.gw.Explain(c.d, c.fromUplink)
		var lines []string
		for _, s := range x.Steps {
			lines = append(lines, s.Step+": "+s.Detail)
		}
		all := strings.Join(lines, "\n")
		rule := ""
		if x.NAT != nil {
			rule = x.NAT.Rule
		}
		if x.Verdict != c.verdict || x.Drop != c.drop || rule != c.rule || !strings.Contains(all, c.detail) {
			t.Errorf("%s: verdict %q drop %q rule %q, want %q %q %q with %q in\n%s", c.name, x.Verdict, x.Drop, rule, c.verdict, c.drop, c.rule, c.detail, all)
		}
	}
	if s := e.nat.Stats(); s.Flows != stats.Flows || s.Created != stats.Created || fmt.Sprint(s.Drops) != fmt.Sprint(stats.Drops) {
		t.Errorf("Explain changed the NAT: %+v, was %+v", s, stats)
	}
	if c := e.gw.Counters(); c != ctr {
		t.Errorf("Explain changed the gateway's counters: %+v, was %+v", c, ctr)
	}
	// And the prediction holds: the published SYN reaches h3 as explained.
	if n, _ := e.outside.Write(framesOf(in("198.19.0.2", 8080, true))); n != 1 {
		t.Fatal("send failed")
	}
	got := e.expect(e.h3, "published SYN", func(p gopacket.Packet) bool { return tcpOf(p) != nil })
	if !ipOf(got).DstIP.Equal(h3.AsSlice()) || tcpOf(got).DstPort != 80 {
		t.Errorf("published SYN: %v", got)
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func framesOf(d []byte) []port.Frame { return []port.Frame{{Data: d}} }

// TestEngineHeldExpires checks that a packet held for a next hop that never
// answers is dropped after pendingTimeout, counted and shown with its reason.
func TestEngineHeldExpires(t *testing.T) {
	e := newEngine(t)
	rec := &recorder{}
	e.gw.SetMirror(rec)
	ip := ipv4(h2, farAway, layers.IPProtocolUDP, 64)
	e.send(e.h2, eth(h2MAC, net.HardwareAddr(gwMAC[:])), ip, udpDgram(ip, 1, 2))
	rec.wait(t, "note uplink out post-nat 198.19.0.2:1>198.19.200.9:2")
	e.gw.Tick(time.Now().Add(pendingTimeout * time.Second))
	rec.wait(t, "drop uplink out neigh-miss 198.19.0.2:1>198.19.200.9:2")
	if c := e.gw.Counters(); c.NeighQueued != 1 || c.NeighMiss != 1 || c.RoutedOut != 0 {
		t.Errorf("counters %+v", c)
	}
}
