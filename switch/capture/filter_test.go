package capture

import (
	"errors"
	"strings"
	"testing"

	"github.com/switchyard-net/switchyard/switch/frame"
)

// frames for the filter table, by name.
func filterFrames(tb testing.TB) map[string][]byte {
	return map[string][]byte{
		"tcp4":  build(tb, pkt{vlan: -1, src: "198.18.70.2", dst: "198.18.71.9", proto: "tcp", sp: 40000, dp: 80}),
		"udp4":  build(tb, pkt{vlan: -1, src: "198.18.70.3", dst: "198.18.70.2", proto: "udp", sp: 5353, dp: 53}),
		"icmp4": build(tb, pkt{vlan: -1, src: "198.18.70.2", dst: "198.18.70.1", proto: "icmp"}),
		"arp":   build(tb, pkt{vlan: -1, src: "198.18.70.2", dst: "198.18.70.1", proto: "arp"}),
		"tcp6":  build(tb, pkt{vlan: -1, src: "2001:db8::2", dst: "2001:db8::9", proto: "tcp", sp: 1234, dp: 443}),
		"icmp6": build(tb, pkt{vlan: -1, src: "2001:db8::2", dst: "2001:db8::1", proto: "icmp6"}),
		"vudp":  build(tb, pkt{vlan: 10, src: "198.18.72.5", dst: "198.18.72.6", proto: "udp", sp: 1000, dp: 2000}),
		"short": {1, 2, 3},
	}
}

func TestFilterMatch(t *testing.T) {
	frames := filterFrames(t)
	all := "arp icmp4 icmp6 short tcp4 tcp6 udp4 vudp"
	for _, tc := range []struct {
		expr string
		want string // names of the matching frames, sorted
	}{
		{"", all},
		{"tcp", "tcp4 tcp6"},
		{"udp", "udp4 vudp"},
		{"icmp", "icmp4"},
		{"icmp6", "icmp6"},
		{"arp", "arp"},
		{"ip", "icmp4 tcp4 udp4 vudp"},
		{"ip6", "icmp6 tcp6"},
		{"host 198.18.70.2", "arp icmp4 tcp4 udp4"},
		{"src host 198.18.70.2", "arp icmp4 tcp4"},
		{"dst host 198.18.70.2", "udp4"},
		{"src 198.18.70.3", "udp4"},
		{"dst 2001:db8::1", "icmp6"},
		{"host 2001:db8::9", "tcp6"},
		{"net 198.18.70.0/24", "arp icmp4 tcp4 udp4"},
		{"dst net 198.18.71.0/24", "tcp4"},
		{"net 2001:db8::/32", "icmp6 tcp6"},
		{"net 198.18.72.5", "vudp"},
		{"port 80", "tcp4"},
		{"port 53", "udp4"},
		{"src port 5353", "udp4"},
		{"dst port 5353", ""},
		{"tcp port 53", ""},
		{"udp port 53", "udp4"},
		{"tcp dst port 443", "tcp6"},
		{"portrange 1-1000", "tcp4 tcp6 udp4 vudp"},
		{"portrange 1000-1", "tcp4 tcp6 udp4 vudp"},
		{"src portrange 1000-2000", "tcp6 vudp"},
		{"udp dst portrange 2000-2000", "vudp"},
		{"ether host 02:00:00:00:00:0a", "arp icmp4 icmp6 tcp4 tcp6 udp4 vudp"},
		{"ether src host 02:00:00:00:00:0b", ""},
		{"ether dst host 02-00-00-00-00-0B", "arp icmp4 icmp6 tcp4 tcp6 udp4 vudp"},
		{"vlan", "vudp"},
		{"vlan 10", "vudp"},
		{"vlan 11", ""},
		{"vlan and udp port 2000", "vudp"},
		{"not vlan", "arp icmp4 icmp6 short tcp4 tcp6 udp4"},
		{"tcp or udp", "tcp4 tcp6 udp4 vudp"},
		{"tcp || arp", "arp tcp4 tcp6"},
		{"ip and not tcp", "icmp4 udp4 vudp"},
		{"! ip && ! ip6", "arp short"},
		{"host 198.18.70.2 and (port 80 or icmp)", "icmp4 tcp4"},
		{"host 198.18.70.2 and port 80 or icmp", "icmp4 tcp4"},
		{"icmp or tcp and port 443", "icmp4 tcp6"},
		{"not (tcp or udp)", "arp icmp4 icmp6 short"},
		{"not not tcp", "tcp4 tcp6"},
		{"((tcp))", "tcp4 tcp6"},
		{"TCP AND PORT 80", "tcp4"},
		{"tcp&&port 80", "tcp4"},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			f, err := Compile(tc.expr)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			var got []string
			for _, name := range strings.Fields(all) {
				var p frame.Parsed
				p.Decode(frames[name])
				if f.Match(&p) {
					got = append(got, name)
				}
			}
			if g := strings.Join(got, " "); g != tc.want {
				t.Errorf("Compile(%q) matches [%s], want [%s]", tc.expr, g, tc.want)
			}
			if f.String() != tc.expr {
				t.Errorf("String() = %q", f.String())
			}
		})
	}
}

func TestFilterErrors(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want string // the whole one-line error
	}{
		{"tcp prt 80", `filter "tcp prt 80": want and, or or the end at column 5 ("prt")`},
		{"hots 1.2.3.4", `filter "hots 1.2.3.4": unknown primitive at column 1 ("hots")`},
		{"host", `filter "host": want a value after "host" at the end`},
		{"host 1.2.3", `filter "host 1.2.3": not an IP address at column 6 ("1.2.3")`},
		{"port 70000", `filter "port 70000": not a port number (0-65535) at column 6 ("70000")`},
		{"portrange 5", `filter "portrange 5": not a port range (want N-M) at column 11 ("5")`},
		{"net 10.0.0.0/33", `filter "net 10.0.0.0/33": not a network (want ADDR/BITS) at column 5 ("10.0.0.0/33")`},
		{"(tcp", `filter "(tcp": unclosed parenthesis at column 1 ("(")`},
		{"tcp)", `filter "tcp)": unbalanced parenthesis at column 4 (")")`},
		{"tcp and", `filter "tcp and": want a primitive (host, net, port, tcp, ...) at the end`},
		{"and tcp", `filter "and tcp": unknown primitive at column 1 ("and")`},
		{"ether host zz:00:00:00:00:00", `filter "ether host zz:00:00:00:00:00": not a MAC address at column 12 ("zz:00:00:00:00:00")`},
		{"ether 1.2.3.4", `filter "ether 1.2.3.4": want host after "ether" at column 7 ("1.2.3.4")`},
		{"vlan 5000", `filter "vlan 5000": VLAN ID must be 0-4095 at column 6 ("5000")`},
		{"198.18.0.1", `filter "198.18.0.1": an address needs a qualifier (host, src or dst) at column 1 ("198.18.0.1")`},
		{"tcp host 1.2.3.4", `filter "tcp host 1.2.3.4": want and, or or the end at column 5 ("host")`},
		{"src", `filter "src": want host, net, port or portrange at the end`},
		{"src tcp", `filter "src tcp": want host, net, port or portrange at column 5 ("tcp")`},
		{"host port", `filter "host port": want a value after "host" at column 6 ("port")`},
		{"tcp & udp", `filter "tcp & udp": want and, or or the end at column 5 ("&")`},
	} {
		f, err := Compile(tc.expr)
		if err == nil {
			t.Errorf("Compile(%q) = %v, want an error", tc.expr, f)
			continue
		}
		var fe *FilterError
		if !errors.As(err, &fe) {
			t.Errorf("Compile(%q): %T, want *FilterError", tc.expr, err)
		}
		if err.Error() != tc.want {
			t.Errorf("Compile(%q):\n got %s\nwant %s", tc.expr, err, tc.want)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("Compile(%q): error spans lines", tc.expr)
		}
	}
}

func TestFilterMatchAllocs(t *testing.T) {
	f, err := Compile("host 198.18.70.2 and (tcp dst portrange 1-1024 or icmp) or ether host 02:00:00:00:00:0a and not vlan 3")
	if err != nil {
		t.Fatal(err)
	}
	data := filterFrames(t)["tcp4"]
	var p frame.Parsed
	n := testing.AllocsPerRun(1000, func() {
		p.Decode(data)
		if !f.Match(&p) {
			t.Fatal("no match")
		}
	})
	if n != 0 {
		t.Errorf("Decode+Match: %v allocs per run, want 0", n)
	}
}

func FuzzFilter(f *testing.F) {
	for _, s := range []string{"tcp port 80", "host 198.18.0.1 and not (udp or arp)", "ether src host 02:00:00:00:00:01",
		"vlan 10 && net 10.0.0.0/8", "src portrange 1-100 || icmp6", "((", "dst", "! ! ! ip"} {
		f.Add(s, build(f, pkt{vlan: -1, src: "198.18.0.1", dst: "198.18.0.2", proto: "tcp", sp: 1, dp: 80}))
	}
	f.Add("udp", build(f, pkt{vlan: 7, src: "2001:db8::1", dst: "2001:db8::2", proto: "udp", sp: 9, dp: 9}))
	f.Fuzz(func(t *testing.T, expr string, data []byte) {
		flt, err := Compile(expr)
		if err != nil {
			var fe *FilterError
			if !errors.As(err, &fe) || strings.Contains(err.Error(), "\n") && !strings.Contains(expr, "\n") {
				t.Fatalf("Compile(%q): %v", expr, err)
			}
			if fe.Column < 0 || fe.Column > len(expr) {
				t.Fatalf("Compile(%q): column %d outside the expression", expr, fe.Column)
			}
			return
		}
		var p frame.Parsed
		p.Decode(data)
		m := flt.Match(&p)
		// not EXPR must be the opposite; it compiles whenever EXPR does.
		if strings.TrimSpace(expr) == "" {
			return
		}
		neg, err := Compile("not (" + expr + ")")
		if err != nil {
			t.Fatalf("Compile(not (%q)): %v", expr, err)
		}
		if neg.Match(&p) == m {
			t.Fatalf("%q and its negation agree (%v) on %x", expr, m, data)
		}
	})
}
