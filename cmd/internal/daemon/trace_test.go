package daemon

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard-net/switchyard/cmd/internal/api"
	"github.com/switchyard-net/switchyard/ipam"
	"github.com/switchyard-net/switchyard/nat"
	"github.com/switchyard-net/switchyard/switch/bridge"
	"github.com/switchyard-net/switchyard/switch/frame"
	"github.com/switchyard-net/switchyard/switch/port"
	"github.com/switchyard-net/switchyard/switch/port/porttest"
	"github.com/switchyard-net/switchyard/switch/router"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// traceNet is a network record with three endpoints and a gateway, and a
// bridge whose ports are in-memory: the decision path without namespaces.
func traceNet(t *testing.T) (*netRecord, *runNet, map[string]*porttest.Port) {
	t.Helper()
	return traceNetWith(t, nil)
}

// traceNetWith is traceNet with gw, when not nil, as the gateway port.
func traceNetWith(t *testing.T, gw *router.Port) (*netRecord, *runNet, map[string]*porttest.Port) {
	t.Helper()
	n := &netRecord{
		Name: "lan", Driver: api.DriverBridge, IPAM: api.IPAMDefault, MTU: 1500,
		GatewayMAC: "02:5f:00:00:00:01",
		Subnets: []ipam.SubnetConfig{{Subnet: netip.MustParsePrefix("198.18.70.0/24"), Gateway: netip.MustParseAddr("198.18.70.1")},
			{Subnet: netip.MustParsePrefix("fd00:70::/64"), Gateway: netip.MustParseAddr("fd00:70::1")}},
		Endpoints: map[string]*epRecord{
			"red":   {Netns: "red", Kind: api.KindVeth, MAC: "02:00:00:00:70:02", Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.70.2/24"), netip.MustParsePrefix("fd00:70::2/64")}},
			"blue":  {Netns: "blue", Kind: api.KindVeth, MAC: "02:00:00:00:70:03", Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.70.3/24")}},
			"green": {Netns: "green", Kind: api.KindTap, MAC: "02:00:00:00:70:04", Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.70.4/24")}},
		},
		Attachments: map[string]*attRecord{},
	}
	br := bridge.New(&bridge.Config{SweepInterval: -1})
	rn := &runNet{name: "lan", br: br}
	rn.gw = gw
	rn.mir = newMirror(br, func() *router.Port { return rn.gw })
	t.Cleanup(func() { rn.br.Close() })
	hosts := map[string]*porttest.Port{}
	for _, name := range []string{"gateway", "red", "blue", "green"} {
		bp, host := porttest.Pipe(name, "host-"+name, nil)
		if name == "gateway" && gw != nil {
			if err := rn.br.AddPort(name, gw, bridge.DefaultFlags()); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := rn.br.AddPort(name, bp, bridge.DefaultFlags()); err != nil {
			t.Fatal(err)
		}
		hosts[name] = host
	}
	if err := br.AddStaticMAC("gateway", [6]byte{0x02, 0x5f, 0, 0, 0, 1}); err != nil {
		t.Fatal(err)
	}
	// blue has spoken: its MAC is learned. red and green have not.
	hosts["blue"].Write([]port.Frame{{Data: append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0x70, 0x03, 0x88, 0xb5}, make([]byte, 46)...)}})
	for i := 0; i < 500; i++ {
		if pi, _ := rn.br.Port("blue"); pi.Counters.RxFrames == 1 {
			break
		}
		waitABit()
	}
	return n, rn, hosts
}

// TestTraceGolden runs frame specs through the decision path and compares
// the rendered steps with testdata/trace/*.golden (-update rewrites them).
func TestTraceGolden(t *testing.T) {
	n, rn, _ := traceNet(t)
	iso := bridge.Flags{Isolated: true, Flood: true, McastFlood: true, BcastFlood: true}
	rn.br.SetFlags("green", iso)
	rn.br.SetFlags("blue", iso)
	for _, tc := range []struct{ name, from, spec string }{
		{"tcp-off-link", "red", "tcp 198.18.70.2:40000 > 198.18.9.9:80"},
		{"tcp-to-learned", "red", "tcp 198.18.70.2:40000 > 198.18.70.3:22 syn ack"},
		{"udp-to-unlearned", "blue", "udp 198.18.70.3:5353 > 198.18.70.2:53"},
		{"icmp-gateway", "blue", "icmp 198.18.70.3 > 198.18.70.1"},
		{"icmp-nobody", "red", "icmp 198.18.70.2 > 198.18.70.200"},
		{"icmp6-nobody", "red", "icmp fd00:70::2 > fd00:70::99"},
		{"arp", "green", "arp who-has 198.18.70.1"},
		{"spoofed", "blue", "udp 10.9.9.9:1 > 198.18.70.2:2"},
		{"isolated", "green", "udp 198.18.70.4:1 > 198.18.70.3:2"},
		{"multicast", "red", "udp 198.18.70.2:5353 > 224.0.0.251:5353"},
	} {
		t.Run(tc.name, func(t *testing.T) { golden(t, n, rn, tc.name, tc.from, tc.spec) })
	}
	// Tracing forwarded nothing and learned nothing.
	for _, pi := range rn.br.Ports() {
		if pi.Counters.TxFrames != 0 && pi.Name != "red" && pi.Name != "gateway" && pi.Name != "green" {
			t.Errorf("port %s sent %d frames during the traces", pi.Name, pi.Counters.TxFrames)
		}
	}
	if len(rn.br.FDB()) != 2 {
		t.Errorf("the MAC table changed: %+v", rn.br.FDB())
	}
}

// golden traces spec from from and compares the rendered steps with
// testdata/trace/NAME.golden (-update rewrites it).
func golden(t *testing.T, n *netRecord, rn *runNet, name, from, spec string) {
	t.Helper()
	tr, err := traceOn(n, rn, api.TraceRequest{From: from, Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	got := tr.Text()
	path := filepath.Join("testdata", "trace", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("trace %s (-want +got):\n%s", spec, diff)
	}
}

// TestTraceNAT traces frames through a gateway with an uplink and a NAT:
// masquerade, published ports from the uplink, hairpin, and the NAT's
// drops, each step compared with a golden file; tracing changes nothing.
func TestTraceNAT(t *testing.T) {
	nt, err := nat.New(&nat.Config{
		Inside: []netip.Prefix{netip.MustParsePrefix("198.18.70.0/24")}, Gateway: netip.MustParseAddr("198.18.70.1"),
		External: []netip.Addr{netip.MustParseAddr("198.19.70.2")}, Masquerade: true,
		Deny: []netip.Prefix{netip.MustParsePrefix("198.18.99.0/24")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nt.AddMappings(
		nat.Mapping{Proto: frame.ProtoTCP, ExtPort: 8080, ExtEnd: 8080, CtrIP: netip.MustParseAddr("198.18.70.2"), CtrPort: 80, Owner: "red"},
		nat.Mapping{Proto: frame.ProtoTCP, ExtPort: 9000, ExtEnd: 9000, CtrIP: netip.MustParseAddr("198.18.70.3"), CtrPort: 22, Owner: "blue",
			AllowFrom: []netip.Prefix{netip.MustParsePrefix("198.19.70.60/32")}},
	); err != nil {
		t.Fatal(err)
	}
	upMAC := frame.MAC{0x02, 0x5f, 0, 0, 1, 1}
	up, outside := porttest.Pipe("eth9", "outside", nil)
	gw := router.New(&router.Config{Name: api.GatewayPort, MAC: frame.MAC{0x02, 0x5f, 0, 0, 0, 1},
		Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.70.1/24")}, NAT: nt,
		Uplink: &router.UplinkConfig{Port: up, Name: "eth9", PortName: uplinkPortName, MAC: upMAC,
			Addrs: []netip.Prefix{netip.MustParsePrefix("198.19.70.2/24")}, Gateway: netip.MustParseAddr("198.19.70.1")}})
	n, rn, _ := traceNetWith(t, gw)
	n.Uplink = &uplinkRecord{Iface: "eth9", Addrs: []netip.Prefix{netip.MustParsePrefix("198.19.70.2/24")},
		Gateway: netip.MustParseAddr("198.19.70.1"), MAC: upMAC.String()}
	rn.nat = nt
	if err := rn.br.AddPort(uplinkPortName, gw.Uplink(), bridge.Flags{NoLearning: true, OwnMirror: true}); err != nil {
		t.Fatal(err)
	}
	gw.SetNeighbour(netip.MustParseAddr("198.18.70.2"), frame.MAC{0x02, 0, 0, 0, 0x70, 0x02}, true)
	gw.SetNeighbour(netip.MustParseAddr("198.18.70.3"), frame.MAC{0x02, 0, 0, 0, 0x70, 0x03}, true)
	// The upstream router asks for the external address: the gateway
	// learns its MAC from the request.
	arp := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0x70, 0xfe, 0x08, 0x06,
		0, 1, 8, 0, 6, 4, 0, 1, 0x02, 0, 0, 0, 0x70, 0xfe, 198, 19, 70, 1, 0, 0, 0, 0, 0, 0, 198, 19, 70, 2}
	outside.Write([]port.Frame{{Data: append(arp, make([]byte, 18)...)}})
	for i := 0; ; i++ {
		if _, ups := gw.Neighbours(); len(ups) == 1 {
			break
		}
		if i == 500 {
			t.Fatal("the gateway did not learn the upstream router")
		}
		waitABit()
	}
	stats := nt.Stats()
	for _, tc := range []struct{ name, from, spec string }{
		{"nat-masquerade", "red", "tcp 198.18.70.2:40000 > 198.19.200.9:80"},
		{"nat-masquerade-not-syn", "red", "tcp 198.18.70.2:40000 > 198.19.200.9:80 ack"},
		{"nat-published", "uplink", "tcp 198.19.70.50:5555 > 198.19.70.2:8080"},
		{"nat-unpublished", "uplink", "udp 198.19.70.50:5555 > 198.19.70.2:9999"},
		{"nat-filtered", "uplink", "tcp 198.19.70.50:5555 > 198.19.70.2:9000"},
		{"nat-allowed", "uplink:", "tcp 198.19.70.60:5555 > 198.19.70.2:9000"},
		{"nat-hairpin", "blue", "tcp 198.18.70.3:41000 > 198.19.70.2:8080"},
		{"nat-denied", "red", "udp 198.18.70.2:1 > 198.18.99.5:53"},
		{"nat-ping-external", "uplink", "icmp 198.19.70.50 > 198.19.70.2"},
	} {
		t.Run(tc.name, func(t *testing.T) { golden(t, n, rn, tc.name, tc.from, tc.spec) })
	}
	if s := nt.Stats(); s.Flows != 0 || s.Created != stats.Created || len(s.Drops) != 0 {
		t.Errorf("tracing changed the NAT: %+v", s)
	}
}

func TestTraceBadInput(t *testing.T) {
	n, rn, _ := traceNet(t)
	for _, tc := range []struct{ from, spec, code, msg string }{
		{"nobody", "icmp 198.18.70.2 > 198.18.70.1", api.CodeNotFound, `network "lan" has no endpoint or port "nobody"`},
		{"", "icmp 198.18.70.2 > 198.18.70.1", api.CodeInvalidArgument, "needs the sending endpoint"},
		{"red", "", api.CodeInvalidArgument, "empty frame spec"},
		{"red", "sctp 1.2.3.4:1 > 1.2.3.5:2", api.CodeInvalidArgument, `unknown protocol "sctp"`},
		{"red", "tcp 198.18.70.2 > 198.18.70.3:80", api.CodeInvalidArgument, `"198.18.70.2" is not ADDR:PORT`},
		{"red", "tcp 198.18.70.2:1 198.18.70.3:80", api.CodeInvalidArgument, "want `tcp SRC:PORT"},
		{"red", "icmp 198.18.70.2 > fd00::1", api.CodeInvalidArgument, "different IP versions"},
		{"red", "udp 198.18.70.2:1 > 198.18.70.3:2 syn", api.CodeInvalidArgument, `unexpected "syn"`},
		{"red", "arp who-has nope", api.CodeInvalidArgument, `"nope" is not an IPv4 address`},
	} {
		_, err := traceOn(n, rn, api.TraceRequest{From: tc.from, Spec: tc.spec})
		if err == nil || api.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.msg) || strings.Contains(err.Error(), "\n") {
			t.Errorf("trace --from %q %q = %v (code %s), want %s containing %q", tc.from, tc.spec, err, api.CodeOf(err), tc.code, tc.msg)
		}
	}
}

func waitABit() { time.Sleep(2 * time.Millisecond) }
