package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var (
	ap = netip.MustParseAddr
	pp = netip.MustParsePrefix
)

// addrCmp lets cmp compare netip values (unexported fields) by value.
var addrCmp = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmpopts.EquateEmpty(),
}

func openTemp(t testing.TB) (*IPAM, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state", "ipam.json")
	m, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return m, path
}

func mustAdd(t testing.TB, m *IPAM, name string, cfg Config) Config {
	t.Helper()
	eff, err := m.AddNetwork(name, cfg)
	if err != nil {
		t.Fatalf("AddNetwork(%q): %v", name, err)
	}
	return eff
}

func mustAlloc(t testing.TB, m *IPAM, network, owner string, want ...netip.Addr) []netip.Addr {
	t.Helper()
	got, err := m.Allocate(network, owner, want)
	if err != nil {
		t.Fatalf("Allocate(%q, %q, %v): %v", network, owner, want, err)
	}
	return got
}

// snapshot is everything a caller can observe of an IPAM.
type snapshot struct {
	Names    []string
	Configs  map[string]Config
	Leases   map[string][]Lease
	Owners   map[string][]string
	FileData string
}

func snap(t testing.TB, m *IPAM) snapshot {
	t.Helper()
	s := snapshot{Names: m.Networks(), Configs: map[string]Config{}, Leases: map[string][]Lease{}, Owners: map[string][]string{}}
	for _, n := range s.Names {
		cfg, leases, err := m.Network(n)
		if err != nil {
			t.Fatalf("Network(%q): %v", n, err)
		}
		s.Configs[n], s.Leases[n], s.Owners[n] = cfg, leases, m.Owners(n)
	}
	b, err := os.ReadFile(m.Path())
	if err != nil {
		t.Fatal(err)
	}
	s.FileData = string(b)
	return s
}

// badSetup builds the state every bad-input case starts from.
func badSetup(t *testing.T) *IPAM {
	m, _ := openTemp(t)
	mustAdd(t, m, "a", Config{
		Subnets: []SubnetConfig{{Subnet: pp("198.18.0.0/24"), IPRange: pp("198.18.0.128/25")}},
		Aux:     map[string]netip.Addr{"host1": ap("198.18.0.10")},
	})
	mustAdd(t, m, "dual", Config{Subnets: []SubnetConfig{
		{Subnet: pp("198.18.1.0/24")},
		{Subnet: pp("fd00:198:18:1::/127")}, // gateway ::0, one address left
	}})
	mustAdd(t, m, "tiny", Config{Subnets: []SubnetConfig{{Subnet: pp("198.18.2.0/30")}}})
	mustAlloc(t, m, "a", "c1")    // 198.18.0.128
	mustAlloc(t, m, "dual", "d1") // 198.18.1.2, fd00:198:18:1::1
	mustAlloc(t, m, "tiny", "t1") // 198.18.2.2
	mustAlloc(t, m, "a", "c2")    // 198.18.0.129
	if err := m.Release("a", "c2"); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestBadInput(t *testing.T) {
	sub := func(s ...string) []SubnetConfig {
		var out []SubnetConfig
		for _, x := range s {
			out = append(out, SubnetConfig{Subnet: pp(x)})
		}
		return out
	}
	tests := []struct {
		name    string
		call    func(m *IPAM) error
		wantErr error
		wantMsg string
	}{
		{"overlapping subnet", func(m *IPAM) error {
			_, err := m.AddNetwork("b", Config{Subnets: sub("198.18.0.0/16")})
			return err
		}, ErrOverlap, `ipam: subnet 198.18.0.0/16 overlaps network "a" (198.18.0.0/24)`},
		{"overlapping subnet inside", func(m *IPAM) error {
			_, err := m.AddNetwork("b", Config{Subnets: sub("fd00:198:19::/64", "198.18.1.128/25")})
			return err
		}, ErrOverlap, `ipam: subnet 198.18.1.128/25 overlaps network "dual" (198.18.1.0/24)`},
		{"overlapping IPv6", func(m *IPAM) error {
			_, err := m.AddNetwork("b", Config{Subnets: sub("fd00:198:18::/48")})
			return err
		}, ErrOverlap, `ipam: subnet fd00:198:18::/48 overlaps network "dual" (fd00:198:18:1::/127)`},
		{"gateway outside subnet", func(m *IPAM) error {
			_, err := m.AddNetwork("b", Config{Subnets: []SubnetConfig{{Subnet: pp("198.18.9.0/24"), Gateway: ap("198.18.10.1")}}})
			return err
		}, ErrOutsideSubnet, `ipam: gateway 198.18.10.1 is outside subnet 198.18.9.0/24`},
		{"gateway of other family", func(m *IPAM) error {
			_, err := m.AddNetwork("b", Config{Subnets: []SubnetConfig{{Subnet: pp("198.18.9.0/24"), Gateway: ap("fd00::1")}}})
			return err
		}, ErrOutsideSubnet, `ipam: gateway fd00::1 is outside subnet 198.18.9.0/24`},
		{"gateway is network address", func(m *IPAM) error {
			_, err := m.AddNetwork("b", Config{Subnets: []SubnetConfig{{Subnet: pp("198.18.9.0/24"), Gateway: ap("198.18.9.0")}}})
			return err
		}, ErrInvalid, `ipam: gateway 198.18.9.0 is the network address of 198.18.9.0/24`},
		{"gateway is broadcast address", func(m *IPAM) error {
			_, err := m.AddNetwork("b", Config{Subnets: []SubnetConfig{{Subnet: pp("198.18.9.0/24"), Gateway: ap("198.18.9.255")}}})
			return err
		}, ErrInvalid, `ipam: gateway 198.18.9.255 is the broadcast address of 198.18.9.0/24`},
		{"gateway with no_gateway", func(m *IPAM) error {
			_, err := m.AddNetwork("b", Config{NoGateway: true, Subnets: []SubnetConfig{{Subnet: pp("198.18.9.0/24"), Gateway: ap("198.18.9.1")}}})
			return err
		}, ErrInvalid, `ipam: gateway 198.18.9.1 given with no_gateway set`},
		{"ip-range not inside subnet", func(m *IPAM) error {
			_, err := m.AddNetwork("b", Config{Subnets: []SubnetConfig{{Subnet: pp("198.18.9.0/24"), IPRange: pp("198.18.10.0/25")}}})
			return err
		}, ErrRangeNotInSubnet, `ipam: ip-range 198.18.10.0/25 is not inside subnet 198.18.9.0/24`},
		{"ip-range larger than subnet", func(m *IPAM) error {
			_, err := m.AddNetwork("b", Config{Subnets: []SubnetConfig{{Subnet: pp("198.18.9.0/24"), IPRange: pp("198.18.8.0/23")}}})
			return err
		}, ErrRangeNotInSubnet, `ipam: ip-range 198.18.8.0/23 is not inside subnet 198.18.9.0/24`},
		{"ip-range of other family", func(m *IPAM) error {
			_, err := m.AddNetwork("b", Config{Subnets: []SubnetConfig{{Subnet: pp("198.18.9.0/24"), IPRange: pp("fd00::/120")}}})
			return err
		}, ErrRangeNotInSubnet, `ipam: ip-range fd00::/120 is not inside subnet 198.18.9.0/24`},
		{"ip-range only the broadcast address", func(m *IPAM) error {
			_, err := m.AddNetwork("b", Config{Subnets: []SubnetConfig{{Subnet: pp("198.18.9.0/24"), IPRange: pp("198.18.9.255/32")}}})
			return err
		}, ErrInvalid, `ipam: ip-range 198.18.9.255/32 holds only the broadcast address of 198.18.9.0/24`},
		{"ip-range with host bits", func(m *IPAM) error {
			_, err := m.AddNetwork("b", Config{Subnets: []SubnetConfig{{Subnet: pp("198.18.9.0/24"), IPRange: pp("198.18.9.7/28")}}})
			return err
		}, ErrInvalid, `ipam: ip-range 198.18.9.7/28 has host bits set (did you mean 198.18.9.0/28?)`},
		{"subnet with host bits", func(m *IPAM) error {
			_, err := m.AddNetwork("b", Config{Subnets: sub("198.18.9.5/24")})
			return err
		}, ErrInvalid, `ipam: subnet 198.18.9.5/24 has host bits set (did you mean 198.18.9.0/24?)`},
		{"two IPv4 subnets", func(m *IPAM) error {
			_, err := m.AddNetwork("b", Config{Subnets: sub("198.18.9.0/24", "198.18.10.0/24")})
			return err
		}, ErrInvalid, `ipam: two IPv4 subnets given (198.18.9.0/24, 198.18.10.0/24); at most one per family`},
		{"three subnets", func(m *IPAM) error {
			_, err := m.AddNetwork("b", Config{Subnets: sub("198.18.9.0/24", "fd00::/64", "198.18.10.0/24")})
			return err
		}, ErrInvalid, `ipam: 3 subnets given; at most one IPv4 and one IPv6`},
		{"missing subnet", func(m *IPAM) error {
			_, err := m.AddNetwork("b", Config{Subnets: []SubnetConfig{{Gateway: ap("198.18.9.1")}}})
			return err
		}, ErrInvalid, `ipam: subnet missing or invalid`},
		{"IPv4-mapped subnet", func(m *IPAM) error {
			_, err := m.AddNetwork("b", Config{Subnets: sub("::ffff:198.18.9.0/120")})
			return err
		}, ErrInvalid, `ipam: subnet ::ffff:198.18.9.0/120 is IPv4-mapped IPv6; give it as IPv4`},
		{"aux collides with explicit gateway", func(m *IPAM) error {
			_, err := m.AddNetwork("b", Config{
				Subnets: []SubnetConfig{{Subnet: pp("198.18.9.0/24"), Gateway: ap("198.18.9.254")}},
				Aux:     map[string]netip.Addr{"router": ap("198.18.9.254")},
			})
			return err
		}, ErrAuxCollision, `ipam: aux address router=198.18.9.254 collides with the gateway of 198.18.9.0/24`},
		{"aux collides with default gateway", func(m *IPAM) error {
			_, err := m.AddNetwork("b", Config{Subnets: sub("198.18.9.0/24"), Aux: map[string]netip.Addr{"r": ap("198.18.9.1")}})
			return err
		}, ErrAuxCollision, `ipam: aux address r=198.18.9.1 collides with the gateway of 198.18.9.0/24`},
		{"aux collides with aux", func(m *IPAM) error {
			_, err := m.AddNetwork("b", Config{Subnets: sub("198.18.9.0/24"), Aux: map[string]netip.Addr{"x": ap("198.18.9.7"), "y": ap("198.18.9.7")}})
			return err
		}, ErrAuxCollision, `ipam: aux addresses x and y are both 198.18.9.7`},
		{"aux outside subnets", func(m *IPAM) error {
			_, err := m.AddNetwork("b", Config{Subnets: sub("198.18.9.0/24", "fd00:9::/64"), Aux: map[string]netip.Addr{"x": ap("198.18.10.7")}})
			return err
		}, ErrOutsideSubnet, `ipam: aux address x=198.18.10.7 is outside the network's subnets (198.18.9.0/24, fd00:9::/64)`},
		{"aux is broadcast", func(m *IPAM) error {
			_, err := m.AddNetwork("b", Config{Subnets: sub("198.18.9.0/24"), Aux: map[string]netip.Addr{"x": ap("198.18.9.255")}})
			return err
		}, ErrInvalid, `ipam: aux address x=198.18.9.255 is the broadcast address of 198.18.9.0/24`},
		{"aux without subnet", func(m *IPAM) error {
			_, err := m.AddNetwork("b", Config{Aux: map[string]netip.Addr{"x": ap("172.17.0.7")}})
			return err
		}, ErrInvalid, `ipam: aux addresses need an explicit subnet`},
		{"aux with empty name", func(m *IPAM) error {
			_, err := m.AddNetwork("b", Config{Subnets: sub("198.18.9.0/24"), Aux: map[string]netip.Addr{"": ap("198.18.9.7")}})
			return err
		}, ErrInvalid, `ipam: aux address name is empty`},
		{"duplicate network", func(m *IPAM) error {
			_, err := m.AddNetwork("a", Config{Subnets: sub("198.18.9.0/24")})
			return err
		}, ErrDuplicateNetwork, `ipam: network "a" already exists`},
		{"empty network name", func(m *IPAM) error {
			_, err := m.AddNetwork("", Config{Subnets: sub("198.18.9.0/24")})
			return err
		}, ErrInvalid, `ipam: network name is empty`},
		{"network name with newline", func(m *IPAM) error {
			_, err := m.AddNetwork("x\ny", Config{Subnets: sub("198.18.9.0/24")})
			return err
		}, ErrInvalid, `ipam: network name "x\ny" has control characters`},
		{"ip outside subnet", func(m *IPAM) error {
			_, err := m.Allocate("a", "c9", []netip.Addr{ap("198.19.0.5")})
			return err
		}, ErrOutsideSubnet, `ipam: requested address 198.19.0.5 is outside the subnets of network "a" (198.18.0.0/24)`},
		{"ip of a family the network lacks", func(m *IPAM) error {
			_, err := m.Allocate("a", "c9", []netip.Addr{ap("fd00::5")})
			return err
		}, ErrOutsideSubnet, `ipam: requested address fd00::5 is outside the subnets of network "a" (198.18.0.0/24)`},
		{"ip taken", func(m *IPAM) error {
			_, err := m.Allocate("a", "c9", []netip.Addr{ap("198.18.0.128")})
			return err
		}, ErrTaken, `ipam: requested address 198.18.0.128 in network "a" is already allocated to "c1"`},
		{"ip is the gateway", func(m *IPAM) error {
			_, err := m.Allocate("a", "c9", []netip.Addr{ap("198.18.0.1")})
			return err
		}, ErrTaken, `ipam: requested address 198.18.0.1 in network "a" is the gateway`},
		{"ip is an aux address", func(m *IPAM) error {
			_, err := m.Allocate("a", "c9", []netip.Addr{ap("198.18.0.10")})
			return err
		}, ErrTaken, `ipam: requested address 198.18.0.10 in network "a" is reserved as aux address "host1"`},
		{"ip is the network address", func(m *IPAM) error {
			_, err := m.Allocate("a", "c9", []netip.Addr{ap("198.18.0.0")})
			return err
		}, ErrInvalid, `ipam: requested address 198.18.0.0 is the network address of 198.18.0.0/24`},
		{"ip is the broadcast address", func(m *IPAM) error {
			_, err := m.Allocate("a", "c9", []netip.Addr{ap("198.18.0.255")})
			return err
		}, ErrInvalid, `ipam: requested address 198.18.0.255 is the broadcast address of 198.18.0.0/24`},
		{"two ips in one subnet", func(m *IPAM) error {
			_, err := m.Allocate("a", "c9", []netip.Addr{ap("198.18.0.20"), ap("198.18.0.21")})
			return err
		}, ErrInvalid, `ipam: requested addresses 198.18.0.20 and 198.18.0.21 are both in subnet 198.18.0.0/24; one per subnet`},
		{"ip with zone", func(m *IPAM) error {
			_, err := m.Allocate("dual", "c9", []netip.Addr{ap("fd00:198:18:1::1%eth0")})
			return err
		}, ErrInvalid, `ipam: requested address fd00:198:18:1::1%eth0 has a zone; give it without %eth0`},
		{"ip IPv4-mapped", func(m *IPAM) error {
			_, err := m.Allocate("a", "c9", []netip.Addr{ap("::ffff:198.18.0.20")})
			return err
		}, ErrInvalid, `ipam: requested address ::ffff:198.18.0.20 is IPv4-mapped IPv6; give it as 198.18.0.20`},
		{"ip zero", func(m *IPAM) error {
			_, err := m.Allocate("a", "c9", []netip.Addr{{}})
			return err
		}, ErrInvalid, `ipam: requested address missing or invalid`},
		{"pool exhausted", func(m *IPAM) error {
			_, err := m.Allocate("tiny", "t2", nil)
			return err
		}, ErrExhausted, `ipam: no free address left in subnet 198.18.2.0/30 of network "tiny"`},
		{"one family exhausted allocates nothing", func(m *IPAM) error {
			_, err := m.Allocate("dual", "d2", nil)
			return err
		}, ErrExhausted, `ipam: no free address left in subnet fd00:198:18:1::/127 of network "dual"`},
		{"requested ip fine but other family exhausted", func(m *IPAM) error {
			_, err := m.Allocate("dual", "d2", []netip.Addr{ap("198.18.1.77")})
			return err
		}, ErrExhausted, `ipam: no free address left in subnet fd00:198:18:1::/127 of network "dual"`},
		{"owner already has addresses", func(m *IPAM) error {
			_, err := m.Allocate("dual", "d1", nil)
			return err
		}, ErrDuplicateOwner, `ipam: owner "d1" already has 198.18.1.2, fd00:198:18:1::1 in network "dual"; release it first`},
		{"empty owner", func(m *IPAM) error {
			_, err := m.Allocate("a", "", nil)
			return err
		}, ErrInvalid, `ipam: owner is empty`},
		{"allocate in unknown network", func(m *IPAM) error {
			_, err := m.Allocate("nope", "c9", nil)
			return err
		}, ErrUnknownNetwork, `ipam: no network "nope"`},
		{"release in unknown network", func(m *IPAM) error {
			return m.Release("nope", "c1")
		}, ErrUnknownNetwork, `ipam: no network "nope"`},
		{"release addr in unknown network", func(m *IPAM) error {
			return m.ReleaseAddr("nope", ap("198.18.0.128"))
		}, ErrUnknownNetwork, `ipam: no network "nope"`},
		{"remove unknown network", func(m *IPAM) error {
			return m.RemoveNetwork("nope")
		}, ErrUnknownNetwork, `ipam: no network "nope"`},
		{"inspect unknown network", func(m *IPAM) error {
			_, _, err := m.Network("nope")
			return err
		}, ErrUnknownNetwork, `ipam: no network "nope"`},
		{"release owner without addresses", func(m *IPAM) error {
			return m.Release("a", "c2")
		}, ErrNotAllocated, `ipam: owner "c2" has no address in network "a"`},
		{"release free address", func(m *IPAM) error {
			return m.ReleaseAddr("a", ap("198.18.0.129"))
		}, ErrNotAllocated, `ipam: address 198.18.0.129 is not allocated in network "a"`},
		{"release the gateway", func(m *IPAM) error {
			return m.ReleaseAddr("a", ap("198.18.0.1"))
		}, ErrNotAllocated, `ipam: address 198.18.0.1 in network "a" is the gateway, not a lease`},
		{"release address outside subnets", func(m *IPAM) error {
			return m.ReleaseAddr("a", ap("198.18.1.2"))
		}, ErrOutsideSubnet, `ipam: address 198.18.1.2 is outside the subnets of network "a" (198.18.0.0/24)`},
		{"remove network in use", func(m *IPAM) error {
			return m.RemoveNetwork("a")
		}, ErrInUse, `ipam: network "a" still has addresses of 1 owner(s) ("c1"); release them first`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := badSetup(t)
			before := snap(t, m)
			err := tt.call(m)
			if err == nil {
				t.Fatalf("no error, want %v", tt.wantErr)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("error %q does not wrap %q", err, tt.wantErr)
			}
			if got := err.Error(); got != tt.wantMsg {
				t.Errorf("error message:\n got %s\nwant %s", got, tt.wantMsg)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Errorf("error is not one line: %q", err)
			}
			if diff := cmp.Diff(before, snap(t, m), addrCmp); diff != "" {
				t.Errorf("state changed by a failed call (-before +after):\n%s", diff)
			}
			// The file left behind loads to the same state.
			m2, err := Open(m.Path())
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			if diff := cmp.Diff(before, snap(t, m2), addrCmp); diff != "" {
				t.Errorf("reloaded state differs (-before +after):\n%s", diff)
			}
		})
	}
}

func TestBadSetupLeases(t *testing.T) {
	m := badSetup(t)
	want := map[string][]Lease{
		"a":    {{ap("198.18.0.128"), "c1"}},
		"dual": {{ap("198.18.1.2"), "d1"}, {ap("fd00:198:18:1::1"), "d1"}},
		"tiny": {{ap("198.18.2.2"), "t1"}},
	}
	if diff := cmp.Diff(want, snap(t, m).Leases, addrCmp); diff != "" {
		t.Errorf("leases (-want +got):\n%s", diff)
	}
}

func TestDefaultPools(t *testing.T) {
	pools := DefaultPools()
	var want []netip.Prefix
	for _, s := range []string{"172.17.0.0/16", "172.18.0.0/16", "172.19.0.0/16"} {
		want = append(want, pp(s))
	}
	for _, big := range []string{"172.20.0.0/14", "172.24.0.0/14", "172.28.0.0/14"} {
		b := pp(big)
		for a := b.Addr(); b.Contains(a); a = lastAddr(netip.PrefixFrom(a, 16)).Next() {
			want = append(want, netip.PrefixFrom(a, 16))
		}
	}
	c := pp("192.168.0.0/16")
	for a := c.Addr(); c.Contains(a); a = lastAddr(netip.PrefixFrom(a, 20)).Next() {
		want = append(want, netip.PrefixFrom(a, 20))
	}
	if diff := cmp.Diff(want, pools, addrCmp); diff != "" {
		t.Fatalf("DefaultPools (-want +got):\n%s", diff)
	}
	if len(pools) != 31 {
		t.Fatalf("%d pools, want 31", len(pools))
	}

	m, _ := openTemp(t)
	// An explicit network inside 172.18.0.0/16 makes the default skip it.
	mustAdd(t, m, "explicit", Config{Subnets: []SubnetConfig{{Subnet: pp("172.18.5.0/24")}}})
	var got []netip.Prefix
	for i := 0; i < 30; i++ {
		eff := mustAdd(t, m, fmt.Sprintf("n%02d", i), Config{})
		if len(eff.Subnets) != 1 {
			t.Fatalf("default network has %d subnets", len(eff.Subnets))
		}
		sc := eff.Subnets[0]
		if sc.Gateway != sc.Subnet.Addr().Next() || sc.IPRange.IsValid() {
			t.Errorf("default subnet config %+v: want gateway first host, no range", sc)
		}
		got = append(got, sc.Subnet)
	}
	wantPicked := append([]netip.Prefix{want[0]}, want[2:]...)
	if diff := cmp.Diff(wantPicked, got, addrCmp); diff != "" {
		t.Errorf("picked pools (-want +got):\n%s", diff)
	}
	before := snap(t, m)
	_, err := m.AddNetwork("full", Config{})
	if !errors.Is(err, ErrExhausted) {
		t.Fatalf("all pools used: err %v, want ErrExhausted", err)
	}
	t.Log(err)
	if diff := cmp.Diff(before, snap(t, m), addrCmp); diff != "" {
		t.Errorf("state changed (-before +after):\n%s", diff)
	}
	// Removing one frees it for the next default network, NoGateway honoured.
	if err := m.RemoveNetwork("n05"); err != nil {
		t.Fatal(err)
	}
	eff := mustAdd(t, m, "again", Config{NoGateway: true})
	if diff := cmp.Diff(Config{NoGateway: true, Subnets: []SubnetConfig{{Subnet: got[5]}}}, eff, addrCmp); diff != "" {
		t.Errorf("re-picked (-want +got):\n%s", diff)
	}
}

func TestSetAvoid(t *testing.T) {
	m, _ := openTemp(t)
	m.SetAvoid([]netip.Prefix{pp("172.17.0.1/32"), pp("172.16.0.0/14")})
	eff := mustAdd(t, m, "x", Config{})
	if eff.Subnets[0].Subnet != pp("172.20.0.0/16") {
		t.Errorf("picked %s, want 172.20.0.0/16", eff.Subnets[0].Subnet)
	}
	// Explicit subnets are not restricted by it.
	mustAdd(t, m, "y", Config{Subnets: []SubnetConfig{{Subnet: pp("172.17.0.0/16")}}})
}

func TestAllocateRoundRobin(t *testing.T) {
	m, _ := openTemp(t)
	eff := mustAdd(t, m, "n", Config{Subnets: []SubnetConfig{{Subnet: pp("198.18.0.0/29")}}})
	if g := eff.Subnets[0].Gateway; g != ap("198.18.0.1") {
		t.Fatalf("default gateway %s", g)
	}
	var seq []string
	alloc := func(owner string, want ...netip.Addr) {
		seq = append(seq, owner+"="+mustAlloc(t, m, "n", owner, want...)[0].String())
	}
	release := func(owner string) {
		if err := m.Release("n", owner); err != nil {
			t.Fatal(err)
		}
	}
	alloc("a")                   // .2
	alloc("b")                   // .3
	release("a")                 // .2 free, cursor stays at .3
	alloc("c")                   // .4
	alloc("d", ap("198.18.0.6")) // requested, cursor stays at .4
	alloc("e")                   // .5
	alloc("f")                   // .6 taken, .7 broadcast: wraps to .2
	release("b")
	alloc("g") // after .2: .3
	_, err := m.Allocate("n", "h", nil)
	if !errors.Is(err, ErrExhausted) {
		t.Fatalf("full subnet: %v", err)
	}
	want := []string{"a=198.18.0.2", "b=198.18.0.3", "c=198.18.0.4", "d=198.18.0.6", "e=198.18.0.5", "f=198.18.0.2", "g=198.18.0.3"}
	if diff := cmp.Diff(want, seq); diff != "" {
		t.Errorf("allocation order (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"c", "d", "e", "f", "g"}, m.Owners("n")); diff != "" {
		t.Errorf("owners (-want +got):\n%s", diff)
	}
	if err := m.ReleaseAddr("n", ap("198.18.0.5")); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"c", "d", "f", "g"}, m.Owners("n")); diff != "" {
		t.Errorf("owners after ReleaseAddr (-want +got):\n%s", diff)
	}
	// The cursor survives a restart: the next address is the same as without one.
	m2, err := Open(m.Path())
	if err != nil {
		t.Fatal(err)
	}
	if got := mustAlloc(t, m2, "n", "i"); got[0] != ap("198.18.0.5") {
		t.Errorf("after reopen got %s, want 198.18.0.5", got[0])
	}
}

func TestIPRangeAndAux(t *testing.T) {
	m, _ := openTemp(t)
	mustAdd(t, m, "n", Config{
		Subnets: []SubnetConfig{{Subnet: pp("198.18.0.0/24"), IPRange: pp("198.18.0.16/30"), Gateway: ap("198.18.0.254")}},
		Aux:     map[string]netip.Addr{"inrange": ap("198.18.0.17"), "outside": ap("198.18.0.100")},
	})
	var got []netip.Addr
	for i := 0; i < 3; i++ {
		got = append(got, mustAlloc(t, m, "n", fmt.Sprint("o", i))...)
	}
	if diff := cmp.Diff([]netip.Addr{ap("198.18.0.16"), ap("198.18.0.18"), ap("198.18.0.19")}, got, addrCmp); diff != "" {
		t.Errorf("range allocations (-want +got):\n%s", diff)
	}
	if _, err := m.Allocate("n", "o9", nil); !errors.Is(err, ErrExhausted) {
		t.Errorf("range full: %v", err)
	} else if want := `ipam: no free address left in ip-range 198.18.0.16/30 of subnet 198.18.0.0/24 of network "n"`; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	// A requested address outside the range but inside the subnet is given.
	if got := mustAlloc(t, m, "n", "static", ap("198.18.0.200")); got[0] != ap("198.18.0.200") {
		t.Errorf("static got %v", got)
	}
	cfg, leases, err := m.Network("n")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Aux["outside"] != ap("198.18.0.100") || cfg.Subnets[0].Gateway != ap("198.18.0.254") {
		t.Errorf("config %+v", cfg)
	}
	if len(leases) != 4 || leases[3] != (Lease{ap("198.18.0.200"), "static"}) {
		t.Errorf("leases %v", leases)
	}
	// The returned config is a copy.
	cfg.Aux["outside"] = ap("198.18.0.1")
	if cfg2, _, _ := m.Network("n"); cfg2.Aux["outside"] != ap("198.18.0.100") {
		t.Error("Network returned a shared Aux map")
	}
}

func TestSmallSubnets(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // addresses handed out until exhausted, one per subnet joined by ","
		gw   []string
	}{
		{"v4 /30", Config{Subnets: []SubnetConfig{{Subnet: pp("198.18.0.0/30")}}}, []string{"198.18.0.2"}, []string{"198.18.0.1"}},
		{"v4 /31 uses both", Config{Subnets: []SubnetConfig{{Subnet: pp("198.18.0.0/31")}}}, []string{"198.18.0.1"}, []string{"198.18.0.0"}},
		{"v4 /31 no gateway", Config{NoGateway: true, Subnets: []SubnetConfig{{Subnet: pp("198.18.0.0/31")}}}, []string{"198.18.0.0", "198.18.0.1"}, []string{""}},
		{"v4 /32 no gateway", Config{NoGateway: true, Subnets: []SubnetConfig{{Subnet: pp("198.18.0.9/32")}}}, []string{"198.18.0.9"}, []string{""}},
		{"v4 /32 gateway takes it", Config{Subnets: []SubnetConfig{{Subnet: pp("198.18.0.9/32")}}}, nil, []string{"198.18.0.9"}},
		{"v6 /126 skips anycast", Config{Subnets: []SubnetConfig{{Subnet: pp("fd00::/126")}}}, []string{"fd00::2", "fd00::3"}, []string{"fd00::1"}},
		{"v6 /126 no gateway", Config{NoGateway: true, Subnets: []SubnetConfig{{Subnet: pp("fd00::/126")}}}, []string{"fd00::1", "fd00::2", "fd00::3"}, []string{""}},
		{"v6 /127 uses both", Config{NoGateway: true, Subnets: []SubnetConfig{{Subnet: pp("fd00::/127")}}}, []string{"fd00::", "fd00::1"}, []string{""}},
		{"v6 /128", Config{NoGateway: true, Subnets: []SubnetConfig{{Subnet: pp("fd00::7/128")}}}, []string{"fd00::7"}, []string{""}},
		{"top of v4 space", Config{Subnets: []SubnetConfig{{Subnet: pp("255.255.255.248/29")}}},
			[]string{"255.255.255.250", "255.255.255.251", "255.255.255.252", "255.255.255.253", "255.255.255.254"}, []string{"255.255.255.249"}},
		{"top of v6 space", Config{Subnets: []SubnetConfig{{Subnet: pp("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffc/126")}}},
			[]string{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"}, []string{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffd"}},
		{"dual stack", Config{Subnets: []SubnetConfig{{Subnet: pp("198.18.0.0/30")}, {Subnet: pp("fd00::/120"), IPRange: pp("fd00::10/127")}}},
			[]string{"198.18.0.2,fd00::10"}, []string{"198.18.0.1", "fd00::1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := openTemp(t)
			eff := mustAdd(t, m, "n", tt.cfg)
			var gw []string
			for _, sc := range eff.Subnets {
				gw = append(gw, strings.TrimPrefix(sc.Gateway.String(), "invalid IP"))
			}
			if diff := cmp.Diff(tt.gw, gw); diff != "" {
				t.Errorf("gateways (-want +got):\n%s", diff)
			}
			var got []string
			for i := 0; ; i++ {
				as, err := m.Allocate("n", fmt.Sprint("o", i), nil)
				if errors.Is(err, ErrExhausted) {
					break
				}
				if err != nil || i > 10 {
					t.Fatalf("Allocate: %v (after %v)", err, got)
				}
				got = append(got, strings.ReplaceAll(addrList(as), ", ", ","))
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("allocations (-want +got):\n%s", diff)
			}
		})
	}
}

func TestIPv6LargeSubnet(t *testing.T) {
	m, _ := openTemp(t)
	m.noSync = true // 3000 saves; durability is tested elsewhere
	mustAdd(t, m, "v6", Config{Subnets: []SubnetConfig{{Subnet: pp("fd00:198:18::/48")}, {Subnet: pp("198.18.0.0/20")}}})
	seen := map[netip.Addr]bool{}
	const n = 1000
	for i := 0; i < n; i++ {
		as := mustAlloc(t, m, "v6", fmt.Sprint("o", i))
		for _, a := range as {
			if seen[a] {
				t.Fatalf("%s handed out twice", a)
			}
			seen[a] = true
		}
		if i == 0 && as[0] != ap("fd00:198:18::2") {
			t.Errorf("first v6 address %s, want fd00:198:18::2 (::0 anycast, ::1 gateway)", as[0])
		}
	}
	// A requested address far away in the /48 is honoured, and next-free
	// allocation continues where it was.
	far := ap("fd00:198:18:ffff:ffff:ffff:ffff:ffff")
	if as := mustAlloc(t, m, "v6", "far", far); as[0] != far {
		t.Errorf("requested %s, got %s", far, as[0])
	}
	if as := mustAlloc(t, m, "v6", "next"); as[0] != ap(fmt.Sprintf("fd00:198:18::%x", n+2)) {
		t.Errorf("next after requested: %s", as[0])
	}
	if _, err := m.Allocate("v6", "dup", []netip.Addr{far}); !errors.Is(err, ErrTaken) {
		t.Errorf("far address again: %v", err)
	}
	// Release half and reload: the state round-trips.
	for i := 0; i < n; i += 2 {
		if err := m.Release("v6", fmt.Sprint("o", i)); err != nil {
			t.Fatal(err)
		}
	}
	before := snap(t, m)
	m2, err := Open(m.Path())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, snap(t, m2), addrCmp); diff != "" {
		t.Errorf("reloaded (-before +after):\n%s", diff)
	}
}

// TestIPv6RangeWrap: a small ip-range at the top of a large IPv6 subnet
// wraps round and finds the one address released in the middle.
func TestIPv6RangeWrap(t *testing.T) {
	m, _ := openTemp(t)
	m.noSync = true
	mustAdd(t, m, "v6", Config{Subnets: []SubnetConfig{{Subnet: pp("fd00::/48"), IPRange: pp("fd00:0:0:ffff:ffff:ffff:ffff:fff8/125")}}})
	for i := 0; i < 8; i++ {
		want := ap(fmt.Sprintf("fd00:0:0:ffff:ffff:ffff:ffff:fff%x", 8+i))
		if got := mustAlloc(t, m, "v6", fmt.Sprint("o", i))[0]; got != want {
			t.Fatalf("allocation %d: %s, want %s", i, got, want)
		}
	}
	if _, err := m.Allocate("v6", "more", nil); !errors.Is(err, ErrExhausted) {
		t.Fatalf("full range: %v", err)
	}
	if err := m.ReleaseAddr("v6", ap("fd00:0:0:ffff:ffff:ffff:ffff:fffb")); err != nil {
		t.Fatal(err)
	}
	if got := mustAlloc(t, m, "v6", "more")[0]; got != ap("fd00:0:0:ffff:ffff:ffff:ffff:fffb") {
		t.Errorf("after wrap: %s", got)
	}
}

func TestPersistFailureLeavesStateUnchanged(t *testing.T) {
	ops := []struct {
		name string
		call func(m *IPAM) error
	}{
		{"AddNetwork", func(m *IPAM) error { _, err := m.AddNetwork("new", Config{}); return err }},
		{"RemoveNetwork", func(m *IPAM) error { return m.RemoveNetwork("tiny2") }},
		{"Allocate", func(m *IPAM) error { _, err := m.Allocate("a", "c9", nil); return err }},
		{"Allocate requested", func(m *IPAM) error {
			_, err := m.Allocate("a", "c9", []netip.Addr{ap("198.18.0.9")})
			return err
		}},
		{"Release", func(m *IPAM) error { return m.Release("dual", "d1") }},
		{"ReleaseAddr", func(m *IPAM) error { return m.ReleaseAddr("dual", ap("fd00:198:18:1::1")) }},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			m := badSetup(t)
			mustAdd(t, m, "tiny2", Config{Subnets: []SubnetConfig{{Subnet: pp("198.18.3.0/30")}}})
			before := snap(t, m)
			boom := errors.New("disk on fire")
			m.hook = func(stage string) error {
				if stage == "write" {
					return boom
				}
				return nil
			}
			err := op.call(m)
			if !errors.Is(err, ErrPersist) || !errors.Is(err, boom) {
				t.Fatalf("err %v, want ErrPersist wrapping the cause", err)
			}
			if !strings.Contains(err.Error(), m.Path()) {
				t.Errorf("error %q does not name the file", err)
			}
			if diff := cmp.Diff(before, snap(t, m), addrCmp); diff != "" {
				t.Errorf("state changed (-before +after):\n%s", diff)
			}
			if ents, _ := os.ReadDir(filepath.Dir(m.Path())); len(ents) != 1 {
				t.Errorf("temporary file left: %v", ents)
			}
			// Once the disk recovers, the same call succeeds and is durable.
			m.hook = nil
			if err := op.call(m); err != nil {
				t.Fatalf("retry: %v", err)
			}
			after := snap(t, m)
			m2, err := Open(m.Path())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(after, snap(t, m2), addrCmp); diff != "" {
				t.Errorf("reloaded (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDirSyncFailureRefusesChanges(t *testing.T) {
	m := badSetup(t)
	m.hook = func(stage string) error {
		if stage == "dirsync" {
			return errors.New("EIO")
		}
		return nil
	}
	if _, err := m.Allocate("a", "c9", nil); !errors.Is(err, ErrPersist) {
		t.Fatalf("err %v, want ErrPersist", err)
	}
	m.hook = nil
	// The change is in the file (renamed), so memory keeps it too...
	if got := m.Owners("a"); !cmp.Equal(got, []string{"c1", "c9"}) {
		t.Errorf("owners %v", got)
	}
	// ...and every further change is refused until the state is reopened.
	err := m.Release("a", "c9")
	if !errors.Is(err, ErrPersist) || !strings.Contains(err.Error(), "reopen") {
		t.Errorf("change after failed dir sync: %v", err)
	}
	m2, err := Open(m.Path())
	if err != nil {
		t.Fatal(err)
	}
	if got := m2.Owners("a"); !cmp.Equal(got, []string{"c1", "c9"}) {
		t.Errorf("reopened owners %v", got)
	}
	if err := m2.Release("a", "c9"); err != nil {
		t.Errorf("after reopen: %v", err)
	}
}

func TestOpenCreatesAndCleansTemps(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "ipam.json")
	m, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("state file not created: %v", err)
	}
	if want := "{\n  \"version\": 1,\n  \"networks\": {}\n}\n"; string(b) != want {
		t.Errorf("empty state file %q, want %q", b, want)
	}
	mustAdd(t, m, "n", Config{})
	// A crash mid-save leaves a temporary file; Open removes it (and only it).
	for _, name := range []string{"ipam.json.tmp-123", "other.json.tmp-1", "keep"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"n"}, m2.Networks()); diff != "" {
		t.Errorf("networks (-want +got):\n%s", diff)
	}
	var names []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{"ipam.json", "keep", "other.json.tmp-1"}, names); diff != "" {
		t.Errorf("directory (-want +got):\n%s", diff)
	}
}

func TestCorruptState(t *testing.T) {
	good := func(nets string) string { return `{"version":1,"networks":{` + nets + `}}` }
	netA := `"a":{"config":{"subnets":[{"subnet":"198.18.0.0/24","gateway":"198.18.0.1"}]},"leases":[{"addr":"198.18.0.5","owner":"x"}],"last":[""]}`
	tests := []struct {
		name, data, want string
	}{
		{"empty file", "", "empty file"},
		{"garbage", "hello", "invalid character 'h' looking for beginning of value"},
		{"truncated", `{"version":1,"networks":{"a":{"con`, "unexpected EOF"},
		{"trailing data", good("") + "{}", "data after the JSON document"},
		{"wrong version", `{"version":2,"networks":{}}`, "version 2, want 1"},
		{"no version", `{"networks":{}}`, "version 0, want 1"},
		{"unknown field", `{"version":1,"networks":{},"extra":1}`, `json: unknown field "extra"`},
		{"bad address", good(`"a":{"config":{"subnets":[{"subnet":"198.18.0.0/33"}]},"leases":[],"last":[""]}`), "netip.ParsePrefix"},
		{"null network", good(`"a":null`), `network "a": null entry`},
		{"no subnets", good(`"a":{"config":{"subnets":[]},"leases":[],"last":[]}`), `network "a": no subnets`},
		{"no gateway recorded", good(`"a":{"config":{"subnets":[{"subnet":"198.18.0.0/24"}]},"leases":[],"last":[""]}`),
			`network "a": subnet 198.18.0.0/24 has no gateway and no_gateway is not set`},
		{"invalid config", good(`"a":{"config":{"subnets":[{"subnet":"198.18.0.0/24","gateway":"198.18.1.1"}]},"leases":[],"last":[""]}`),
			`network "a": gateway 198.18.1.1 is outside subnet 198.18.0.0/24`},
		{"overlapping networks", good(netA + `,"b":{"config":{"subnets":[{"subnet":"198.18.0.0/16","gateway":"198.18.0.1"}]},"leases":[],"last":[""]}`),
			`network "b": subnet 198.18.0.0/16 overlaps network "a" (198.18.0.0/24)`},
		{"lease outside subnet", good(`"a":{"config":{"subnets":[{"subnet":"198.18.0.0/24","gateway":"198.18.0.1"}]},"leases":[{"addr":"198.18.1.5","owner":"x"}],"last":[""]}`),
			`network "a": lease 198.18.1.5 of "x" is outside the subnets (198.18.0.0/24)`},
		{"lease on gateway", good(`"a":{"config":{"subnets":[{"subnet":"198.18.0.0/24","gateway":"198.18.0.1"}]},"leases":[{"addr":"198.18.0.1","owner":"x"}],"last":[""]}`),
			`network "a": lease 198.18.0.1 of "x" is not allocatable (gateway)`},
		{"lease on broadcast", good(`"a":{"config":{"subnets":[{"subnet":"198.18.0.0/24","gateway":"198.18.0.1"}]},"leases":[{"addr":"198.18.0.255","owner":"x"}],"last":[""]}`),
			`network "a": lease 198.18.0.255 of "x" is not allocatable (broadcast address of 198.18.0.0/24)`},
		{"address leased twice", good(`"a":{"config":{"subnets":[{"subnet":"198.18.0.0/24","gateway":"198.18.0.1"}]},"leases":[{"addr":"198.18.0.5","owner":"x"},{"addr":"198.18.0.5","owner":"y"}],"last":[""]}`),
			`network "a": address 198.18.0.5 leased twice ("x" and "y")`},
		{"owner twice in subnet", good(`"a":{"config":{"subnets":[{"subnet":"198.18.0.0/24","gateway":"198.18.0.1"}]},"leases":[{"addr":"198.18.0.5","owner":"x"},{"addr":"198.18.0.6","owner":"x"}],"last":[""]}`),
			`network "a": owner "x" holds two addresses in 198.18.0.0/24 (198.18.0.5, 198.18.0.6)`},
		{"empty owner", good(`"a":{"config":{"subnets":[{"subnet":"198.18.0.0/24","gateway":"198.18.0.1"}]},"leases":[{"addr":"198.18.0.5","owner":""}],"last":[""]}`),
			`network "a": lease owner is empty`},
		{"cursor count", good(`"a":{"config":{"subnets":[{"subnet":"198.18.0.0/24","gateway":"198.18.0.1"}]},"leases":[],"last":[]}`),
			`network "a": 0 round-robin cursors for 1 subnets`},
		{"cursor outside range", good(`"a":{"config":{"subnets":[{"subnet":"198.18.0.0/24","gateway":"198.18.0.1","ip_range":"198.18.0.0/25"}]},"leases":[],"last":["198.18.0.200"]}`),
			`network "a": round-robin cursor 198.18.0.200 outside ip-range 198.18.0.0/25 of subnet 198.18.0.0/24`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ipam.json")
			if err := os.WriteFile(path, []byte(tt.data), 0o600); err != nil {
				t.Fatal(err)
			}
			m, err := Open(path)
			if err == nil {
				t.Fatalf("Open loaded a corrupt file: %v", m.Networks())
			}
			if !errors.Is(err, ErrCorruptState) {
				t.Errorf("error %q does not wrap ErrCorruptState", err)
			}
			msg := err.Error()
			prefix := "ipam: state file " + path + " is corrupt: "
			if !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, tt.want) || strings.ContainsAny(msg, "\n\r") {
				t.Errorf("error %q: want one line starting %q containing %q", msg, prefix, tt.want)
			}
			if b, _ := os.ReadFile(path); string(b) != tt.data {
				t.Errorf("corrupt file was changed to %q", b)
			}
		})
	}
	// The same file, valid, loads.
	path := filepath.Join(t.TempDir(), "ipam.json")
	if err := os.WriteFile(path, []byte(good(netA)), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := Open(path)
	if err != nil {
		t.Fatalf("valid file: %v", err)
	}
	if got := m.Owners("a"); !cmp.Equal(got, []string{"x"}) {
		t.Errorf("owners %v", got)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want error
	}{
		{"empty is fine (default pool)", Config{}, nil},
		{"dual stack", Config{Subnets: []SubnetConfig{{Subnet: pp("198.18.0.0/24")}, {Subnet: pp("fd00::/64")}}}, nil},
		{"gateway outside ip-range is fine", Config{Subnets: []SubnetConfig{{Subnet: pp("198.18.0.0/24"), IPRange: pp("198.18.0.128/25"), Gateway: ap("198.18.0.1")}}}, nil},
		{"aux outside ip-range is fine", Config{Subnets: []SubnetConfig{{Subnet: pp("198.18.0.0/24"), IPRange: pp("198.18.0.128/25")}}, Aux: map[string]netip.Addr{"x": ap("198.18.0.2")}}, nil},
		{"/31 gateway on first address", Config{Subnets: []SubnetConfig{{Subnet: pp("198.18.0.0/31"), Gateway: ap("198.18.0.0")}}}, nil},
		{"v6 gateway on anycast", Config{Subnets: []SubnetConfig{{Subnet: pp("fd00::/64"), Gateway: ap("fd00::")}}}, ErrInvalid},
		{"v6 all-ones is a host", Config{Subnets: []SubnetConfig{{Subnet: pp("fd00::/64"), Gateway: ap("fd00::ffff:ffff:ffff:ffff")}}}, nil},
		{"two v6", Config{Subnets: []SubnetConfig{{Subnet: pp("fd01::/64")}, {Subnet: pp("fd00::/64")}}}, ErrInvalid},
		{"aux in v6 subnet on gateway", Config{Subnets: []SubnetConfig{{Subnet: pp("198.18.0.0/24")}, {Subnet: pp("fd00::/64")}}, Aux: map[string]netip.Addr{"x": ap("fd00::1")}}, ErrAuxCollision},
		{"aux on would-be gateway with no_gateway", Config{NoGateway: true, Subnets: []SubnetConfig{{Subnet: pp("198.18.0.0/24")}}, Aux: map[string]netip.Addr{"x": ap("198.18.0.1")}}, nil},
		{"range not inside", Config{Subnets: []SubnetConfig{{Subnet: pp("198.18.0.0/24"), IPRange: pp("198.18.1.0/24")}}}, ErrRangeNotInSubnet},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Validate() = %v, want %v", err, tt.want)
			}
			// AddNetwork agrees with Validate.
			m, _ := openTemp(t)
			eff, aerr := m.AddNetwork("n", tt.cfg)
			if (aerr == nil) != (err == nil) || (err != nil && aerr.Error() != err.Error()) {
				t.Fatalf("AddNetwork error %v, Validate error %v", aerr, err)
			}
			if err == nil {
				if verr := eff.Validate(); verr != nil {
					t.Errorf("effective config does not validate: %v", verr)
				}
			}
		})
	}
}

func TestConcurrent(t *testing.T) {
	m, _ := openTemp(t)
	m.noSync = true
	mustAdd(t, m, "n", Config{Subnets: []SubnetConfig{{Subnet: pp("198.18.0.0/24")}, {Subnet: pp("fd00::/120")}}})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				owner := fmt.Sprintf("g%d-%d", g, i)
				if _, err := m.Allocate("n", owner, nil); err != nil {
					errs <- err
					return
				}
				if i%2 == 0 {
					if err := m.Release("n", owner); err != nil {
						errs <- err
						return
					}
				}
				_ = m.Owners("n")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	_, leases, err := m.Network("n")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[netip.Addr]string{}
	perOwner := map[string]int{}
	for _, l := range leases {
		if o, ok := seen[l.Addr]; ok {
			t.Errorf("%s held by %s and %s", l.Addr, o, l.Owner)
		}
		seen[l.Addr] = l.Owner
		perOwner[l.Owner]++
	}
	if len(perOwner) != 8*20 {
		t.Errorf("%d owners hold addresses, want 160", len(perOwner))
	}
	for o, n := range perOwner {
		if n != 2 {
			t.Errorf("owner %s holds %d addresses, want 2", o, n)
		}
	}
}

// BenchmarkAllocateRelease measures a durable Allocate+Release pair (two
// fsynced saves) on a network already holding 100 leases.
func BenchmarkAllocateRelease(b *testing.B) {
	m, _ := openTemp(b)
	mustAdd(b, m, "n", Config{Subnets: []SubnetConfig{{Subnet: pp("198.18.0.0/16")}, {Subnet: pp("fd00::/64")}}})
	for i := 0; i < 100; i++ {
		mustAlloc(b, m, "n", fmt.Sprint("base", i))
	}
	b.ReportAllocs()
	for b.Loop() {
		mustAlloc(b, m, "n", "x")
		if err := m.Release("n", "x"); err != nil {
			b.Fatal(err)
		}
	}
}
