package bench

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard-net/switchyard/nat"
	"github.com/switchyard-net/switchyard/switch/frame"
)

func TestParseNATRule(t *testing.T) {
	ext, ctr := netip.MustParseAddr("198.18.86.1"), netip.MustParseAddr("198.18.0.2")
	good := []struct {
		in   string
		want natRule
	}{
		{"198.18.86.1:5201-5202=198.18.0.2:5201/tcp", natRule{Proto: frame.ProtoTCP, Ext: ext, Port: 5201, End: 5202, Ctr: ctr, CtrPort: 5201}},
		{"198.18.86.1:9=198.18.0.2:9/udp", natRule{Proto: frame.ProtoUDP, Ext: ext, Port: 9, End: 9, Ctr: ctr, CtrPort: 9}},
		{"198.18.86.1:80=198.18.0.2:8080/tcp", natRule{Proto: frame.ProtoTCP, Ext: ext, Port: 80, End: 80, Ctr: ctr, CtrPort: 8080}},
	}
	for _, tt := range good {
		got, err := parseNATRule(tt.in)
		if err != nil {
			t.Errorf("parseNATRule(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Errorf("parseNATRule(%q) (-want +got):\n%s", tt.in, diff)
		}
		if s := got.String(); s != tt.in {
			t.Errorf("String() = %q, want %q back", s, tt.in)
		}
	}
	bad := []struct{ in, why string }{
		{"", "no protocol"},
		{"198.18.86.1:9=198.18.0.2:9/sctp", "protocol"},
		{"198.18.86.1:9/udp", "no '='"},
		{"198.18.86.1=198.18.0.2:9/udp", "no external port"},
		{"::1:9=198.18.0.2:9/udp", "not IPv4"},
		{"198.18.86.1:0=198.18.0.2:9/udp", "not a port"},
		{"198.18.86.1:9-70000=198.18.0.2:9/udp", "not a port"},
		{"198.18.86.1:9-8=198.18.0.2:9/udp", "backwards"},
		{"198.18.86.1:9=198.18.0.2/udp", "no inside port"},
		{"198.18.86.1:9=host:9/udp", "inside address"},
		{"198.18.86.1:100-200=198.18.0.2:65500/tcp", "past 65535"},
	}
	for _, tt := range bad {
		if _, err := parseNATRule(tt.in); err == nil || !strings.Contains(err.Error(), tt.why) {
			t.Errorf("parseNATRule(%q) error = %v, want one saying %q", tt.in, err, tt.why)
		}
	}
}

// TestNATRulesBothSides checks that both NAT peers get the same published
// ports: every port a test uses, for every inside endpoint, on its own
// external address, and that switchyard's NAT takes them as mappings.
func TestNATRulesBothSides(t *testing.T) {
	ctrs := []netip.Addr{epAddr(1).Addr(), epAddr(2).Addr()}
	rules := natRules(ctrs)
	if len(rules) != len(ctrs)*len(publishedPorts) {
		t.Fatalf("%d rules for %d endpoints", len(rules), len(ctrs))
	}
	for _, want := range []struct {
		proto uint8
		port  uint16
	}{{frame.ProtoTCP, iperfPort}, {frame.ProtoTCP, tcpPort}, {frame.ProtoTCP, httpPort},
		{frame.ProtoUDP, echoPort}, {frame.ProtoUDP, genDst}, {frame.ProtoUDP, rrPort}} {
		for i, c := range ctrs {
			if !slices.ContainsFunc(rules, func(r natRule) bool {
				return r.Proto == want.proto && r.Ext == natExtAddr(i+1).Addr() && r.Ctr == c && r.Port <= want.port && want.port <= r.End
			}) {
				t.Errorf("no rule publishes %s port %d of %s on %s", protoString(want.proto), want.port, c, natExtAddr(i+1).Addr())
			}
		}
	}
	n, err := nat.New(&nat.Config{Inside: []netip.Prefix{natInside}, Gateway: natGateway.Addr(),
		External: []netip.Addr{natExtAddr(1).Addr(), natExtAddr(2).Addr()}, Masquerade: true})
	if err != nil {
		t.Fatal(err)
	}
	var ms []nat.Mapping
	for _, r := range rules {
		ms = append(ms, r.mapping())
	}
	if err := n.AddMappings(ms...); err != nil {
		t.Errorf("AddMappings: %v", err)
	}
	script, err := nftScript(rules, natInside, natUplinkIf)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"type nat hook prerouting priority dstnat;",
		"ip daddr 198.18.86.1 tcp dport 5201-5202 dnat ip to 198.18.0.2\n",
		"ip daddr 198.18.86.2 udp dport 9 dnat ip to 198.18.0.3\n",
		"type nat hook postrouting priority srcnat;",
		`ip saddr 198.18.0.0/24 oifname "up0" masquerade`,
	} {
		if !strings.Contains(script, want) {
			t.Errorf("nft script lacks %q:\n%s", want, script)
		}
	}
	if got := strings.Count(script, "dnat ip to"); got != len(rules) {
		t.Errorf("nft script has %d DNAT rules, want %d", got, len(rules))
	}
}

func TestNFTScriptPorts(t *testing.T) {
	ext, ctr := natExtAddr(1).Addr(), epAddr(1).Addr()
	s, err := nftScript([]natRule{{Proto: frame.ProtoTCP, Ext: ext, Port: 80, End: 80, Ctr: ctr, CtrPort: 8080}}, natInside, "up0")
	if err != nil || !strings.Contains(s, "tcp dport 80 dnat ip to 198.18.0.2:8080\n") {
		t.Errorf("a moved single port: %v\n%s", err, s)
	}
	_, err = nftScript([]natRule{{Proto: frame.ProtoTCP, Ext: ext, Port: 80, End: 81, Ctr: ctr, CtrPort: 8080}}, natInside, "up0")
	if err == nil {
		t.Error("a moved range: no error; nft would not keep the offset")
	}
}

func TestTestsFor(t *testing.T) {
	quick := resolved{quick: true, tests: AllTests}
	if got := quick.testsFor(PeerKernel); !slices.Equal(got, AllTests) {
		t.Errorf("quick, kernel: %v, want every test", got)
	}
	if got := quick.testsFor(PeerNATSwitchyard); !slices.Equal(got, quickNATTests) {
		t.Errorf("quick, nat-switchyard: %v, want %v", got, quickNATTests)
	}
	given := resolved{quick: true, testsGiven: true, tests: []string{TestPPS64}}
	if got := given.testsFor(PeerNATKernel); !slices.Equal(got, []string{TestPPS64}) {
		t.Errorf("quick with tests given, nat-kernel: %v, want the tests given", got)
	}
	full := resolved{tests: AllTests}
	if got := full.testsFor(PeerNATKernel); !slices.Equal(got, AllTests) {
		t.Errorf("full run, nat-kernel: %v, want every test", got)
	}
}

func TestPoolAddrs(t *testing.T) {
	for _, p := range []netip.Prefix{connPoolNAT, connPoolL2, connPoolInside} {
		as := poolAddrs(p, 1<<16)
		if len(as) != connPoolSize || as[0] != p.Addr() || !p.Contains(as[len(as)-1]) {
			t.Errorf("poolAddrs(%s): %d addresses from %v, want %d", p, len(as), as[0], connPoolSize)
		}
	}
	// The pools stay clear of every address the topologies use.
	used := []netip.Addr{natGateway.Addr(), natClient.Addr()}
	for i := range MaxEndpoints {
		used = append(used, epAddr(i).Addr(), natExtAddr(i+1).Addr())
	}
	for _, a := range used {
		for _, p := range []netip.Prefix{connPoolNAT, connPoolL2, connPoolInside} {
			if p.Contains(a) {
				t.Errorf("pool %s holds %s, which a topology uses", p, a)
			}
		}
	}
	if connPoolL2.Overlaps(connPoolInside) {
		t.Errorf("A's and B's pools overlap on the L2 topology")
	}
}

// TestNFTMissing: without nft the nat-kernel peer says what to install
// (Run then skips it with that note); switchyard's NAT needs nothing.
func TestNFTMissing(t *testing.T) {
	empty := t.TempDir()
	t.Setenv("PATH", empty)
	old := nftDirs
	nftDirs = []string{empty}
	t.Cleanup(func() { nftDirs = old })
	err := newPeer(PeerNATKernel).missing()
	if err == nil || !strings.Contains(err.Error(), "apt-get install nftables") {
		t.Errorf("nat-kernel missing() = %v, want a note to install nftables", err)
	}
	if err := newPeer(PeerNATSwitchyard).missing(); err != nil {
		t.Errorf("nat-switchyard missing() = %v", err)
	}
}
