package macvlan

import (
	"slices"
	"testing"

	"github.com/switchyard-net/switchyard/switch/frame"
)

func TestMcFilter(t *testing.T) {
	g1 := frame.MAC{0x01, 0x00, 0x5e, 0x01, 0x02, 0x03}
	g2 := frame.MAC{0x33, 0x33, 0xff, 0x00, 0x00, 0x11}
	other := frame.MAC{0x01, 0x00, 0x5e, 0x01, 0x02, 0x04}
	for _, tc := range []struct {
		name string
		f    *mcFilter
		pass []frame.MAC
		stop []frame.MAC
	}{
		{"unknown list", nil, []frame.MAC{g1, g2, other, bcast}, nil},
		{"allmulti", newMcFilter(true, nil), []frame.MAC{g1, other, bcast}, nil},
		{"empty list", newMcFilter(false, nil), []frame.MAC{bcast}, []frame.MAC{g1, g2, other}},
		{"two groups", newMcFilter(false, []frame.MAC{g2, g1, g1, mac(5)}), []frame.MAC{g1, g2, bcast}, []frame.MAC{other, mac(5)}},
	} {
		for _, m := range tc.pass {
			if !tc.f.has(m) {
				t.Errorf("%s: %s does not pass", tc.name, m)
			}
		}
		for _, m := range tc.stop {
			if tc.f.has(m) {
				t.Errorf("%s: %s passes", tc.name, m)
			}
		}
	}
	if f := newMcFilter(false, []frame.MAC{g2, g1, g1, mac(5)}); !slices.Equal(f.macs, []frame.MAC{g1, g2}) {
		t.Errorf("groups %v, want %v (sorted, no duplicates, no unicast)", f.macs, []frame.MAC{g1, g2})
	}
	// Exact, unlike the kernel's hash: of every group in 01:00:5e:xx:yy:00
	// only the listed ones pass, although many share their map bits.
	var list []frame.MAC
	for i := range 40 {
		list = append(list, frame.MAC{0x01, 0x00, 0x5e, byte(i), byte(i * 7), 0})
	}
	f := newMcFilter(false, list)
	for a := range 256 {
		for b := range 256 {
			m := frame.MAC{0x01, 0x00, 0x5e, byte(a), byte(b), 0}
			if want := slices.Contains(list, m); f.has(m) != want {
				t.Fatalf("%s: has = %v, want %v", m, !want, want)
			}
		}
	}
}

// TestLinkDown: a child that is down gets nothing, counted; its MAC is
// not found (a bridge sibling's unicast goes to the wire, as in the
// kernel); up again, it gets everything again.
func TestLinkDown(t *testing.T) {
	a, b := mac(0xa), mac(0xb)
	r := newRig(t)
	r.add("a", a, Bridge)
	r.add("b", b, Bridge)
	if err := r.sw.SetChildUp("b", false); err != nil {
		t.Fatal(err)
	}
	if pi, _ := r.sw.Child("b"); !pi.Down {
		t.Error("Child(b).Down = false after SetChildUp(false)")
	}
	steps := []struct {
		from  string
		frame []byte
		want  string
	}{
		{"wire", eth(b, extMAC, '1'), ""},           // unicast for it: dropped
		{"wire", eth(bcast, extMAC, '2'), "a:2"},    // flood: skips it
		{"a", eth(b, a, '3'), "wire:3"},             // sibling's unicast: not found, so the wire
		{"a", eth(bcast, a, '4'), "wire:4"},         // sibling's flood: skips it
		{"wire", eth(mcast, extMAC, '5'), "a:5"},    //
		{"b", eth(extMAC, b, '6'), "wire:6"},        // sent before it went down: forwarded
		{"wire", eth(bcast, b, '7'), "a:7"},         // its source is not found either: from outside
		{"wire", eth(a, extMAC, '8'), "a:8"},        // the others as before
		{"a", eth(mac(0x99), a, '9'), "wire:9"},     //
		{"wire", eth(mac(0x99), extMAC, 'x'), ""},   // not a child at all: not_child, not child_down
		{"a", eth(bcast, a, 'y'), "wire:y"},         //
		{"wire", eth(mcast, mac(0x99), 'z'), "a:z"}, //
	}
	for i, s := range steps {
		r.send(s.from, s.frame)
		if got := r.got(); got != s.want {
			t.Errorf("step %d (down): got %q, want %q", i, got, s.want)
		}
	}
	pi, _ := r.sw.Child("b")
	if got := pi.Counters.Dropped(DropChildDown); got != 7 {
		t.Errorf("b's child_down drops = %d, want 7 (%v)", got, pi.Counters.Drops)
	}
	if got := r.sw.Parent().Counters.Dropped(DropNotChild); got != 1 {
		t.Errorf("parent's not_child drops = %d, want 1", got)
	}
	if err := r.sw.SetChildUp("b", true); err != nil {
		t.Fatal(err)
	}
	for i, s := range []struct {
		from  string
		frame []byte
		want  string
	}{
		{"wire", eth(b, extMAC, '1'), "b:1"},
		{"wire", eth(bcast, extMAC, '2'), "a:2 b:2"},
		{"a", eth(b, a, '3'), "b:3"},
		{"a", eth(bcast, a, '4'), "b:4 wire:4"},
	} {
		r.send(s.from, s.frame)
		if got := r.got(); got != s.want {
			t.Errorf("step %d (up again): got %q, want %q", i, got, s.want)
		}
	}
	if err := r.sw.SetChildUp("nosuch", false); err == nil {
		t.Error("SetChildUp of a missing child succeeded")
	}
}

func TestLinkDownPassthru(t *testing.T) {
	r := newRig(t)
	r.add("p", parentMAC, Passthru)
	if err := r.sw.SetChildUp("p", false); err != nil {
		t.Fatal(err)
	}
	r.send("wire", eth(parentMAC, extMAC, '1'), eth(mac(0x77), extMAC, '2'), eth(bcast, extMAC, '3'))
	if got := r.got(); got != "" {
		t.Errorf("down passthru child: got %q, want nothing", got)
	}
	if pi, _ := r.sw.Child("p"); pi.Counters.Dropped(DropChildDown) != 3 {
		t.Errorf("child_down drops %v, want 3", pi.Counters.Drops)
	}
	if err := r.sw.SetChildUp("p", true); err != nil {
		t.Fatal(err)
	}
	r.send("wire", eth(mac(0x77), extMAC, '4'))
	if got := r.got(); got != "p:4" {
		t.Errorf("up again: got %q, want p:4", got)
	}
}

// TestMulticastFilter: multicast reaches a child only for a group on its
// list (or every group when it is allmulti), in every flood the kernel
// filters: from the wire, from a VEPA child hairpinned, from a bridge
// child locally; broadcast always; a private child's own frame comes back
// whatever its list.
func TestMulticastFilter(t *testing.T) {
	g1 := frame.MAC{0x01, 0x00, 0x5e, 0x01, 0x02, 0x03}
	g2 := frame.MAC{0x01, 0x00, 0x5e, 0x01, 0x02, 0x04}
	r := newRig(t)
	r.add("member", mac(1), VEPA)  // has g1
	r.add("none", mac(2), VEPA)    // an empty list
	r.add("all", mac(3), VEPA)     // allmulti
	r.add("unknown", mac(4), VEPA) // never told: takes everything
	r.add("br1", mac(5), Bridge)   // has g2
	r.add("br2", mac(6), Bridge)   // an empty list
	r.add("priv", mac(7), Private) // an empty list
	for name, set := range map[string]func() error{
		"member": func() error { return r.sw.SetChildMulticast("member", false, []frame.MAC{g1}) },
		"none":   func() error { return r.sw.SetChildMulticast("none", false, nil) },
		"all":    func() error { return r.sw.SetChildMulticast("all", true, nil) },
		"br1":    func() error { return r.sw.SetChildMulticast("br1", false, []frame.MAC{g2}) },
		"br2":    func() error { return r.sw.SetChildMulticast("br2", false, nil) },
		"priv":   func() error { return r.sw.SetChildMulticast("priv", false, nil) },
	} {
		if err := set(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for i, s := range []struct {
		from  string
		frame []byte
		want  string
	}{
		{"wire", eth(g1, extMAC, '1'), "all:1 member:1 unknown:1"},
		{"wire", eth(g2, extMAC, '2'), "all:2 br1:2 unknown:2"},
		{"wire", eth(bcast, extMAC, '3'), "all:3 br1:3 br2:3 member:3 none:3 priv:3 unknown:3"},
		{"wire", eth(g1, mac(2), '4'), "all:4 member:4 unknown:4"}, // hairpinned from VEPA "none": VEPA and bridge children but it
		{"br2", eth(g2, mac(6), '5'), "br1:5 wire:5"},              // bridge flood: br1 has g2
		{"br2", eth(g1, mac(6), '6'), "wire:6"},                    // br1 has not g1
		{"wire", eth(g1, mac(5), '7'), "all:7 member:7 unknown:7"}, // hairpinned from bridge br1: VEPA children
		{"wire", eth(g1, mac(7), '8'), "priv:8"},                   // private: back to itself, its list not asked
	} {
		r.send(s.from, s.frame)
		if got := r.got(); got != s.want {
			t.Errorf("step %d: got %q, want %q", i, got, s.want)
		}
	}
	drops := map[string]uint64{}
	for _, pi := range r.sw.Children() {
		drops[pi.Name] = pi.Counters.Dropped(DropMcastFilter)
	}
	want := map[string]uint64{"member": 1, "none": 3, "all": 0, "unknown": 0, "br1": 3, "br2": 3, "priv": 2}
	for n, w := range want {
		if drops[n] != w {
			t.Errorf("%s: mcast_filter drops %d, want %d", n, drops[n], w)
		}
	}
	pi, _ := r.sw.Child("member")
	if pi.Multicast == nil || pi.Multicast.All || !slices.Equal(pi.Multicast.Groups, []string{g1.String()}) {
		t.Errorf("Child(member).Multicast = %+v, want groups [%s]", pi.Multicast, g1)
	}
	if pi, _ := r.sw.Child("unknown"); pi.Multicast != nil {
		t.Errorf("Child(unknown).Multicast = %+v, want nil", pi.Multicast)
	}
}
