package netns

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNormalize(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	base := Endpoint{Netns: "ns1", HostName: "vh1", MAC: mac}
	with := func(f func(*Endpoint)) Endpoint {
		ep := base
		f(&ep)
		return ep
	}
	tests := []struct {
		name    string
		in      Endpoint
		want    Endpoint
		wantErr string
	}{
		{
			name: "defaults",
			in:   base,
			want: with(func(ep *Endpoint) { ep.IfName = "eth0"; ep.MTU = 1500 }),
		},
		{
			name: "kept",
			in: with(func(ep *Endpoint) {
				ep.IfName, ep.MTU, ep.HostNetns = "net0", 9000, "host1"
				ep.Addrs = []netip.Prefix{netip.MustParsePrefix("198.18.0.2/24"), netip.MustParsePrefix("fd00:198:18::2/64")}
				ep.Gateways = []netip.Addr{netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("fd00:198:18::1")}
			}),
			want: with(func(ep *Endpoint) {
				ep.IfName, ep.MTU, ep.HostNetns = "net0", 9000, "host1"
				ep.Addrs = []netip.Prefix{netip.MustParsePrefix("198.18.0.2/24"), netip.MustParsePrefix("fd00:198:18::2/64")}
				ep.Gateways = []netip.Addr{netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("fd00:198:18::1")}
			}),
		},
		{name: "no netns", in: with(func(ep *Endpoint) { ep.Netns = "" }), wantErr: "no namespace"},
		{name: "bad netns", in: with(func(ep *Endpoint) { ep.Netns = "a/b" }), wantErr: "invalid namespace name"},
		{name: "bad host netns", in: with(func(ep *Endpoint) { ep.HostNetns = ".." }), wantErr: "host namespace"},
		{name: "no host name", in: with(func(ep *Endpoint) { ep.HostName = "" }), wantErr: "no host-side link name"},
		{name: "long host name", in: with(func(ep *Endpoint) { ep.HostName = "abcdefghijklmnop" }), wantErr: "longer than 15"},
		{name: "bad ifname", in: with(func(ep *Endpoint) { ep.IfName = "eth 0" }), wantErr: "invalid interface name"},
		{name: "mtu", in: with(func(ep *Endpoint) { ep.MTU = 67 }), wantErr: "MTU 67"},
		{name: "short mac", in: with(func(ep *Endpoint) { ep.MAC = mac[:5] }), wantErr: "6-byte"},
		{name: "multicast mac", in: with(func(ep *Endpoint) { ep.MAC = net.HardwareAddr{1, 0, 0x5e, 0, 0, 1} }), wantErr: "multicast"},
		{name: "zero mac", in: with(func(ep *Endpoint) { ep.MAC = make(net.HardwareAddr, 6) }), wantErr: "not usable"},
		{name: "invalid prefix", in: with(func(ep *Endpoint) { ep.Addrs = []netip.Prefix{{}} }), wantErr: "invalid address prefix"},
		{name: "mapped prefix", in: with(func(ep *Endpoint) {
			ep.Addrs = []netip.Prefix{netip.MustParsePrefix("::ffff:198.18.0.2/120")}
		}), wantErr: "IPv4-mapped"},
		{name: "two v4 gateways", in: with(func(ep *Endpoint) {
			ep.Gateways = []netip.Addr{netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.254")}
		}), wantErr: "one gateway per address family"},
		{name: "unspecified gateway", in: with(func(ep *Endpoint) {
			ep.Gateways = []netip.Addr{netip.IPv4Unspecified()}
		}), wantErr: "not a unicast"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.normalize()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("normalize() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("normalize() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
				cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("normalize() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNormalizeRandomMAC(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 16; i++ {
		ep, err := Endpoint{Netns: "ns1", HostName: "vh1"}.normalize()
		if err != nil {
			t.Fatal(err)
		}
		if len(ep.MAC) != 6 || ep.MAC[0]&1 != 0 || ep.MAC[0]&2 == 0 {
			t.Fatalf("random MAC %s is not a locally administered unicast address", ep.MAC)
		}
		seen[ep.MAC.String()] = true
	}
	if len(seen) < 15 {
		t.Errorf("16 random MACs gave only %d distinct values", len(seen))
	}
}

func TestCheckName(t *testing.T) {
	for _, n := range []string{"", ".", "..", "a/b", "a\x00b", strings.Repeat("x", 256)} {
		if checkName(n) == nil {
			t.Errorf("checkName(%q) = nil, want an error", n)
		}
	}
	for _, n := range []string{"a", "sy-1.x", strings.Repeat("x", 255)} {
		if err := checkName(n); err != nil {
			t.Errorf("checkName(%q) = %v", n, err)
		}
	}
}
