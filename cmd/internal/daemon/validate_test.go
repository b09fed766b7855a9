package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestCheckNetworkName(t *testing.T) {
	for name, ok := range map[string]bool{
		"lan": true, "a": true, "web-1.prod_2": true, "0x": true,
		"": false, "-a": false, ".a": false, "a b": false, "a/b": false, "ä": false, strings.Repeat("a", 65): false,
	} {
		if err := checkNetworkName(name); (err == nil) != ok {
			t.Errorf("checkNetworkName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

func TestParseAgeing(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"", 0, false}, {"never", -1, false}, {"5m", 5 * time.Minute, false}, {"300s", 300 * time.Second, false},
		{"0s", 0, true}, {"-1s", 0, true}, {"soon", 0, true},
	} {
		got, err := parseAgeing(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("parseAgeing(%q) = %v, %v; want %v, err=%v", tc.in, got, err, tc.want, tc.err)
		}
	}
	if diff := cmp.Diff([]string{"never", "300s", "1m0s"}, []string{formatAgeing(-1), formatAgeing(0), formatAgeing(time.Minute)}); diff != "" {
		t.Errorf("formatAgeing (-want +got):\n%s", diff)
	}
}

func TestDerivedNames(t *testing.T) {
	h := hostLinkName("lan", "web")
	if len(h) > 15 || !strings.HasPrefix(h, "sye") || h != hostLinkName("lan", "web") || h == hostLinkName("lan", "db") || h == hostLinkName("lan2", "web") {
		t.Errorf("hostLinkName = %q: want stable, distinct, <= 15 bytes", h)
	}
	m := derivedMAC("a", "b")
	if m[0]&1 != 0 || m[0]&2 == 0 || m.String() != derivedMAC("a", "b").String() || m.String() == derivedMAC("a", "c").String() {
		t.Errorf("derivedMAC = %s: want stable, distinct, unicast, locally administered", m)
	}
}

func TestParseMAC(t *testing.T) {
	for in, ok := range map[string]bool{
		"02:00:00:00:00:01": true, "02-00-00-00-00-01": true,
		"zz": false, "01:00:5e:00:00:01": false, "00:00:00:00:00:00": false, "02:00:00:00:00:00:00:01": false,
	} {
		if _, err := parseMAC(in); (err == nil) != ok {
			t.Errorf("parseMAC(%q) = %v, want ok=%v", in, err, ok)
		}
	}
}

func TestDecodeState(t *testing.T) {
	for _, tc := range []struct{ data, err string }{
		{``, "empty file"},
		{`{"version":1,"networks":{}} x`, "data after"},
		{`{"version":2,"networks":{}}`, "version 2"},
		{`{"version":1,"networks":{"a":null}}`, "null entry"},
		{`{"version":1,"networks":{"a":{"name":"b"}}}`, "recorded under name"},
		{`{"version":1,"networks":{"-a":{"name":"-a"}}}`, "invalid network name"},
		{`{"version":1,"networks":{"a":{"name":"a","endpoints":{"x":{"netns":"x","kind":"veth","ifname":"eth0"}}}}}`, "incomplete record"},
		{`{"version":1,"networks":{},"extra":1}`, "unknown field"},
		{`{"version":1,"networks":{"a":{"name":"a","endpoints":{"":{"netns":"","kind":"tap","ifname":"eth0"}}}}}`, "namespace name is empty"},
		{`{"version":1,"networks":{"a":{"name":"a","endpoints":{"..":{"netns":"..","kind":"tap","ifname":"eth0"}}}}}`, `invalid namespace name ".."`},
		{`{"version":1,"networks":{"a":{"name":"a","endpoints":{"n":{"netns":"n","kind":"tap","ifname":"e/0"}}}}}`, `invalid interface name "e/0"`},
		{`{"version":1,"networks":{"a":{"name":"a","endpoints":{"n":{"netns":"n","kind":"veth","ifname":"eth0","host_link":"0123456789abcdefg"}}}}}`, "host link: interface name"},
		{`{"version":1,"networks":{"a":{"name":"a","endpoints":{"n":{"netns":"n","kind":"tap","ifname":"eth0","host_link":"h"}}}}}`, "has no host link"},
		{`{"version":1,"networks":{"a":{"name":"a","attachments":{"":{"iface":""}}}}}`, "interface name is empty"},
		{`{"version":1,"networks":{"a":{"name":"a","attachments":{"lo":{"iface":"lo"}}}}}`, "loopback"},
		{`{"version":1,"networks":{"a":{"name":"a","attachments":{"x":{"iface":"x","netns":"a\u0001"}}}}}`, "invalid namespace name"},
	} {
		_, err := decodeState([]byte(tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("decodeState(%q) = %v, want an error containing %q", tc.data, err, tc.err)
		}
	}
	s, err := decodeState([]byte(`{"version":1,"networks":{"a":{"name":"a","driver":"bridge","ipam":"none","mtu":1500,"ageing_ns":0,"gateway_flags":{"hairpin":false,"isolated":false,"flood":true,"mcast_flood":true,"bcast_flood":true},"created":"2026-01-01T00:00:00Z"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if n := s.Networks["a"]; n == nil || n.Endpoints == nil || n.Attachments == nil {
		t.Errorf("decoded network %+v: maps not made", n)
	}
	b, err := s.encode()
	if err != nil {
		t.Fatal(err)
	}
	s2, err := decodeState(b)
	if err != nil {
		t.Fatalf("re-decoding the encoded state: %v", err)
	}
	if diff := cmp.Diff(s, s2); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}
