package macvlan

import (
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/switch/frame"
	"github.com/switchyard-net/switchyard/switch/port"
	"github.com/switchyard-net/switchyard/switch/port/porttest"
)

func mac(b byte) frame.MAC { return frame.MAC{0x02, 0, 0, 0, 0, b} }

var (
	parentMAC = mac(0xf0)
	extMAC    = mac(0xe0) // a host out on the wire
	bcast     = frame.Broadcast
	mcast     = frame.MAC{0x01, 0x00, 0x5e, 0, 0, 1}
)

// eth builds a minimal frame: dst, src, an experimental EtherType, a tag
// byte identifying the frame, padding to 60 bytes.
func eth(dst, src frame.MAC, tag byte) []byte {
	f := make([]byte, 60)
	copy(f[0:6], dst[:])
	copy(f[6:12], src[:])
	f[12], f[13] = 0x88, 0xb5
	f[14] = tag
	return f
}

// rig is a switch with in-memory ports; hosts["wire"] is the far end of
// the parent, hosts[name] that of child name.
type rig struct {
	t     *testing.T
	sw    *Switch
	hosts map[string]*porttest.Port
	sent  map[string]uint64
}

func newRig(t *testing.T) *rig {
	t.Helper()
	checkGoroutines(t)
	pp, wire := porttest.Pipe("parent", "wire", nil)
	r := &rig{t: t, sw: New(pp, parentMAC, nil), hosts: map[string]*porttest.Port{"wire": wire}, sent: map[string]uint64{}}
	t.Cleanup(func() { r.sw.Close() })
	return r
}

func (r *rig) add(name string, m frame.MAC, mode Mode) {
	r.t.Helper()
	if err := r.addErr(name, ChildConfig{MAC: m, Mode: mode}); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) addErr(name string, cc ChildConfig) error {
	cp, host := porttest.Pipe(name, "host-"+name, nil)
	if err := r.sw.AddChild(name, cp, cc); err != nil {
		cp.Close()
		return err
	}
	r.hosts[name] = host
	return nil
}

func (r *rig) rx(name string) uint64 {
	if name == "wire" {
		return r.sw.Parent().Counters.RxFrames
	}
	pi, err := r.sw.Child(name)
	if err != nil {
		r.t.Fatal(err)
	}
	return pi.Counters.RxFrames
}

// send writes frames from the host behind name ("wire" for the parent's
// segment) and waits until the switch has forwarded them.
func (r *rig) send(name string, frames ...[]byte) {
	r.t.Helper()
	pf := make([]port.Frame, len(frames))
	for i, f := range frames {
		pf[i].Data = f
	}
	if n, err := r.hosts[name].Write(pf); n != len(frames) || err != nil {
		r.t.Fatalf("host %s write: %d, %v", name, n, err)
	}
	r.sent[name] += uint64(len(frames))
	deadline := time.Now().Add(5 * time.Second)
	for r.rx(name) < r.sent[name] {
		if time.Now().After(deadline) {
			r.t.Fatalf("port %s: switch forwarded %d of %d frames in 5 s", name, r.rx(name), r.sent[name])
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// got returns who received which tags since the last call, as
// "host:tags host:tags" sorted by host.
func (r *rig) got() string {
	var parts []string
	for name, h := range r.hosts {
		var tags []byte
		for _, f := range h.Drain() {
			tags = append(tags, f[14])
		}
		if len(tags) > 0 {
			parts = append(parts, name+":"+string(tags))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// checkGoroutines fails the test if goroutines started during it are still
// running after its cleanups.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
	})
}

// TestModes sends every kind of frame in every mode, two children a and b
// of that mode on one parent, and checks who receives it against the
// kernel's rules (macvlan_queue_xmit, macvlan_handle_frame,
// macvlan_multicast_rx).
func TestModes(t *testing.T) {
	a, b := mac(0xa), mac(0xb)
	type step struct {
		from  string
		frame []byte
		want  string
	}
	cases := []struct {
		mode  Mode
		steps []step
	}{
		{Bridge, []step{
			{"a", eth(b, a, '1'), "b:1"},                 // child to child: local, never the wire
			{"a", eth(bcast, a, '2'), "b:2 wire:2"},      // other bridge children and once to the wire
			{"a", eth(mcast, a, '3'), "b:3 wire:3"},      // multicast likewise
			{"a", eth(extMAC, a, '4'), "wire:4"},         // unknown unicast: the wire
			{"a", eth(parentMAC, a, '5'), "wire:5"},      // the parent's stack is not reached directly
			{"a", eth(a, a, '6'), "a:6"},                 // to itself: back through the parent
			{"wire", eth(a, extMAC, '7'), "a:7"},         // from outside by destination
			{"wire", eth(bcast, extMAC, '8'), "a:8 b:8"}, // outside broadcast: every child
			{"wire", eth(parentMAC, extMAC, '9'), ""},    // the parent's own: not ours
			{"wire", eth(bcast, a, 'h'), ""},             // hairpinned from a bridge child: only VEPA children
			{"wire", eth(b, a, 'u'), "b:u"},              // hairpinned unicast: by destination
		}},
		{VEPA, []step{
			{"a", eth(b, a, '1'), "wire:1"},              // everything to the wire
			{"a", eth(bcast, a, '2'), "wire:2"},          // broadcast too, siblings do not see it here
			{"wire", eth(b, a, '3'), "b:3"},              // hairpinned back: by destination
			{"wire", eth(bcast, a, '4'), "b:4"},          // hairpinned broadcast: everyone but the source
			{"wire", eth(bcast, extMAC, '5'), "a:5 b:5"}, // from outside: every child
			{"wire", eth(mcast, b, '6'), "a:6"},          // multicast: as broadcast
		}},
		{Private, []step{
			{"a", eth(b, a, '1'), "wire:1"},              // everything to the wire
			{"a", eth(bcast, a, '2'), "wire:2"},          //
			{"wire", eth(b, a, '3'), "b:3"},              // hairpinned unicast IS delivered (no source check)
			{"wire", eth(bcast, a, '4'), "a:4"},          // hairpinned broadcast: back to the source only
			{"wire", eth(mcast, b, '5'), "b:5"},          //
			{"wire", eth(bcast, extMAC, '6'), "a:6 b:6"}, // from outside: every child
		}},
	}
	for _, tc := range cases {
		t.Run(tc.mode.String(), func(t *testing.T) {
			r := newRig(t)
			r.add("a", a, tc.mode)
			r.add("b", b, tc.mode)
			for i, s := range tc.steps {
				r.send(s.from, s.frame)
				if got := r.got(); got != s.want {
					t.Errorf("step %d (%s sends %s to %s): got %q, want %q", i, s.from,
						frame.Ethernet(s.frame).Src(), frame.Ethernet(s.frame).Dst(), got, s.want)
				}
			}
		})
	}
}

// TestMixedModes puts children of different modes on one parent, as the
// kernel allows.
func TestMixedModes(t *testing.T) {
	br1, br2, vepa, priv := mac(1), mac(2), mac(3), mac(4)
	r := newRig(t)
	r.add("br1", br1, Bridge)
	r.add("br2", br2, Bridge)
	r.add("vepa", vepa, VEPA)
	r.add("priv", priv, Private)
	for i, s := range []struct {
		from  string
		frame []byte
		want  string
	}{
		{"br1", eth(br2, br1, '1'), "br2:1"},                           // bridge to bridge: local
		{"br1", eth(vepa, br1, '2'), "wire:2"},                         // bridge to VEPA: the wire
		{"br1", eth(bcast, br1, '3'), "br2:3 wire:3"},                  // bridge flood: bridge children and the wire
		{"wire", eth(bcast, br1, '4'), "vepa:4"},                       // back: VEPA children only
		{"wire", eth(bcast, vepa, '5'), "br1:5 br2:5"},                 // from a VEPA child: VEPA and bridge, not the source
		{"wire", eth(bcast, priv, '6'), "priv:6"},                      // from a private child: itself only
		{"wire", eth(bcast, extMAC, '7'), "br1:7 br2:7 priv:7 vepa:7"}, // from outside: all
		{"vepa", eth(br1, vepa, '8'), "wire:8"},                        // VEPA to bridge: the wire
	} {
		r.send(s.from, s.frame)
		if got := r.got(); got != s.want {
			t.Errorf("step %d: got %q, want %q", i, got, s.want)
		}
	}
}

func TestPassthru(t *testing.T) {
	r := newRig(t)
	r.add("p", parentMAC, Passthru) // the child takes the parent's MAC
	if err := r.addErr("q", ChildConfig{MAC: mac(9), Mode: Passthru}); !errors.Is(err, ErrPassthruBusy) {
		t.Errorf("second passthru child: %v, want ErrPassthruBusy", err)
	}
	if err := r.addErr("q", ChildConfig{MAC: mac(9), Mode: Bridge}); !errors.Is(err, ErrPassthruBusy) {
		t.Errorf("bridge child beside passthru: %v, want ErrPassthruBusy", err)
	}
	for i, s := range []struct {
		from  string
		frame []byte
		want  string
	}{
		{"wire", eth(parentMAC, extMAC, '1'), "p:1"}, // the child's (and parent's) MAC
		{"wire", eth(mac(0x77), extMAC, '2'), "p:2"}, // any unicast: the parent is promiscuous for it
		{"wire", eth(bcast, extMAC, '3'), "p:3"},     //
		{"wire", eth(bcast, parentMAC, '4'), "p:4"},  // its own, hairpinned: back to it
		{"p", eth(extMAC, parentMAC, '5'), "wire:5"}, //
		{"p", eth(bcast, parentMAC, '6'), "wire:6"},  //
	} {
		r.send(s.from, s.frame)
		if got := r.got(); got != s.want {
			t.Errorf("step %d: got %q, want %q", i, got, s.want)
		}
	}
	// With the passthru child gone, the parent takes other children again.
	if err := r.sw.RemoveChild("p"); err != nil {
		t.Fatal(err)
	}
	delete(r.hosts, "p")
	r.add("b", mac(0xb), Bridge)
}

func TestHostPort(t *testing.T) {
	for _, mode := range []Mode{Bridge, VEPA, Private} {
		t.Run(mode.String(), func(t *testing.T) {
			a, b, h := mac(0xa), mac(0xb), mac(0x40)
			r := newRig(t)
			r.add("a", a, mode)
			r.add("b", b, mode)
			if err := r.addErr("host", ChildConfig{MAC: h, Mode: Bridge, Host: true}); err != nil {
				t.Fatal(err)
			}
			wantFlood := "host:2 wire:2"
			if mode == Bridge {
				wantFlood = "b:2 host:2 wire:2"
			}
			for i, s := range []struct {
				from  string
				frame []byte
				want  string
			}{
				{"a", eth(h, a, '1'), "host:1"},                // child to host: direct in every mode
				{"a", eth(bcast, a, '2'), wantFlood},           // child flood: the host too
				{"host", eth(a, h, '3'), "a:3"},                // host to child: direct
				{"host", eth(bcast, h, '4'), "a:4 b:4 wire:4"}, // host flood: every child and the wire
				{"host", eth(extMAC, h, '5'), "wire:5"},        //
				{"wire", eth(bcast, h, '6'), ""},               // the host's flood, hairpinned: seen already
				{"wire", eth(h, extMAC, '7'), "host:7"},        // the host has its own MAC on the wire
				{"wire", eth(bcast, extMAC, '8'), "a:8 b:8 host:8"},
			} {
				r.send(s.from, s.frame)
				if got := r.got(); got != s.want {
					t.Errorf("step %d: got %q, want %q", i, got, s.want)
				}
			}
			if err := r.addErr("h2", ChildConfig{MAC: mac(0x41), Mode: VEPA, Host: true}); !errors.Is(err, ErrBadMode) {
				t.Errorf("a host port in VEPA mode: %v, want ErrBadMode", err)
			}
		})
	}
}

func TestBadChildren(t *testing.T) {
	r := newRig(t)
	r.add("a", mac(0xa), Bridge)
	for _, tc := range []struct {
		name string
		cc   ChildConfig
		want error
	}{
		{"zero", ChildConfig{Mode: Bridge}, ErrBadMAC},
		{"mcast", ChildConfig{MAC: mcast, Mode: Bridge}, ErrBadMAC},
		{"bcast", ChildConfig{MAC: bcast, Mode: VEPA}, ErrBadMAC},
		{"dup", ChildConfig{MAC: mac(0xa), Mode: Bridge}, ErrMACInUse},
		{"parentmac", ChildConfig{MAC: parentMAC, Mode: Private}, ErrMACInUse},
		{"a", ChildConfig{MAC: mac(0xc), Mode: Bridge}, ErrPortExists},
		{ParentPort, ChildConfig{MAC: mac(0xc), Mode: Bridge}, ErrPortExists},
		{"nomode", ChildConfig{MAC: mac(0xc)}, ErrBadMode},
		{"pt", ChildConfig{MAC: parentMAC, Mode: Passthru}, ErrPassthruBusy},
	} {
		if err := r.addErr(tc.name, tc.cc); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if n := len(r.sw.Children()); n != 1 {
		t.Errorf("%d children after refusals, want 1", n)
	}
	if err := r.sw.SetChildMAC("a", parentMAC); !errors.Is(err, ErrMACInUse) {
		t.Errorf("SetChildMAC to the parent's: %v", err)
	}
	if err := r.sw.SetChildMAC("a", mac(0xd)); err != nil {
		t.Fatal(err)
	}
	r.send("wire", eth(mac(0xd), extMAC, '1'), eth(mac(0xa), extMAC, '2'))
	if got := r.got(); got != "a:1" {
		t.Errorf("after the MAC change: %q, want a:1", got)
	}
	if c := r.sw.Parent().Counters; c.Dropped(DropNotChild) != 1 {
		t.Errorf("not_child drops %v, want 1", c.Drops)
	}
}

func TestBadFrames(t *testing.T) {
	r := newRig(t)
	r.add("a", mac(0xa), Bridge)
	pause := eth(frame.MAC{0x01, 0x80, 0xc2, 0, 0, 1}, extMAC, 'p')
	pause[12], pause[13] = 0x88, 0x08
	r.send("wire", []byte{1, 2, 3}, pause)
	r.send("a", make([]byte, 13))
	if got := r.got(); got != "" {
		t.Errorf("got %q, want nothing", got)
	}
	pc := r.sw.Parent().Counters
	if pc.Dropped(DropMalformed) != 1 || pc.Dropped(DropPause) != 1 {
		t.Errorf("parent drops %v, want malformed 1, pause 1", pc.Drops)
	}
	if c, _ := r.sw.Child("a"); c.Counters.Dropped(DropMalformed) != 1 {
		t.Errorf("child drops %v", c.Counters.Drops)
	}
}

// gonePort reads nothing and then reports its link gone.
type gonePort struct {
	porttest.Sink
	gone chan struct{}
}

func (g *gonePort) Read([]port.Frame) (int, error) {
	<-g.gone
	return 0, fmt.Errorf("read: %w", port.ErrLinkGone)
}

func TestPortGone(t *testing.T) {
	checkGoroutines(t)
	removed := make(chan string, 2)
	pg := &gonePort{gone: make(chan struct{})}
	sw := New(pg, parentMAC, &Config{OnPortGone: func(name string, err error) {
		if !errors.Is(err, port.ErrLinkGone) {
			t.Errorf("OnPortGone(%s) error = %v", name, err)
		}
		removed <- name
	}})
	defer sw.Close()
	cg := &gonePort{gone: make(chan struct{})}
	if err := sw.AddChild("c", cg, ChildConfig{MAC: mac(1), Mode: VEPA}); err != nil {
		t.Fatal(err)
	}
	close(cg.gone)
	if n := <-removed; n != "c" {
		t.Errorf("removed %q, want c", n)
	}
	if _, err := sw.Child("c"); !errors.Is(err, ErrNoPort) {
		t.Errorf("child c still there: %v", err)
	}
	close(pg.gone)
	if n := <-removed; n != ParentPort {
		t.Errorf("removed %q, want parent", n)
	}
}

func TestParseMode(t *testing.T) {
	for m := Bridge; m <= Passthru; m++ {
		if got, err := ParseMode(m.String()); got != m || err != nil {
			t.Errorf("ParseMode(%q) = %v, %v", m, got, err)
		}
	}
	if _, err := ParseMode("source"); err == nil {
		t.Error("ParseMode(source) succeeded")
	}
}

// TestForwardZeroAllocs runs batches of unicast, local and broadcast
// frames through both directions of the engine and counts allocations.
func TestForwardZeroAllocs(t *testing.T) {
	sw := New(&porttest.Sink{}, parentMAC, nil)
	defer sw.Close()
	for i, mode := range []Mode{Bridge, Bridge, VEPA} {
		if err := sw.AddChild(fmt.Sprint(i), &porttest.Sink{}, ChildConfig{MAC: mac(byte(i + 1)), Mode: mode}); err != nil {
			t.Fatal(err)
		}
	}
	// A down child and multicast filters: the checks they add must not
	// allocate either.
	if err := sw.AddChild("down", &porttest.Sink{}, ChildConfig{MAC: mac(9), Mode: Bridge}); err != nil {
		t.Fatal(err)
	}
	if err := sw.SetChildUp("down", false); err != nil {
		t.Fatal(err)
	}
	g := frame.MAC{0x01, 0x00, 0x5e, 0, 0, 0xfb}
	if err := sw.SetChildMulticast("1", false, []frame.MAC{g, mcast}); err != nil {
		t.Fatal(err)
	}
	if err := sw.SetChildMulticast("2", false, []frame.MAC{g}); err != nil {
		t.Fatal(err)
	}
	t0 := sw.tab.Load()
	in := t0.byMAC[mac(1)]
	frames := make([]port.Frame, 64)
	for i := range frames {
		switch i % 7 {
		case 0:
			frames[i].Data = eth(mac(2), mac(1), 'l') // local
		case 1:
			frames[i].Data = eth(extMAC, mac(1), 'w') // the wire
		case 2:
			frames[i].Data = eth(bcast, mac(1), 'b')
		case 3:
			frames[i].Data = eth(mcast, extMAC, 'm') // filtered out at child 2
		case 4:
			frames[i].Data = eth(mac(9), mac(1), 'd') // to the down child
		case 5:
			frames[i].Data = eth(g, mac(3), 'g')
		default:
			frames[i].Data = eth(mac(3), extMAC, 'u')
		}
	}
	st := &port.Stage{}
	for _, from := range []*child{in, sw.parent} {
		sw.forward(from, frames, st)
		if a := testing.AllocsPerRun(100, func() { sw.forward(from, frames, st) }); a != 0 {
			t.Errorf("forward from %s: %v allocs per batch, want 0", from.name, a)
		}
	}
	if c, _ := sw.Child("1"); c.Counters.TxFrames == 0 {
		t.Error("nothing forwarded to child 1")
	}
	if c, _ := sw.Child("2"); c.Counters.Dropped(DropMcastFilter) == 0 {
		t.Error("nothing filtered at child 2")
	}
	if c, _ := sw.Child("down"); c.Counters.Dropped(DropChildDown) == 0 || c.Counters.TxFrames != 0 {
		t.Errorf("down child: %+v", c.Counters)
	}
}

// BenchmarkForward64 forwards 64-byte frames from one bridge child to
// another through the whole engine: one RX goroutine reads batches from an
// in-memory source and writes them to a sink that copies every frame as a
// transmit ring would. One op is one frame.
func BenchmarkForward64(b *testing.B) {
	sw := New(&porttest.Sink{}, parentMAC, nil)
	defer sw.Close()
	sink := &porttest.Sink{}
	if err := sw.AddChild("sink", sink, ChildConfig{MAC: mac(2), Mode: Bridge}); err != nil {
		b.Fatal(err)
	}
	frames := make([][]byte, 64)
	for i := range frames {
		frames[i] = append(eth(mac(2), mac(1), byte(i)), 0, 0, 0, 0)
	}
	src := &porttest.Source{Frames: frames, Limit: b.N}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if err := sw.AddChild("src", src, ChildConfig{MAC: mac(1), Mode: Bridge}); err != nil {
		b.Fatal(err)
	}
	<-src.Done()
	el := time.Since(start)
	b.StopTimer()
	for deadline := time.Now().Add(5 * time.Second); sink.Frames() < uint64(b.N) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if got := sink.Frames(); got != uint64(b.N) {
		b.Fatalf("sink got %d frames, want %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/el.Seconds()/1e6, "Mpps")
}

// BenchmarkFlood64 forwards 64-byte multicast frames from the wire to four
// VEPA children: the multicast path with its per-child checks. One op is
// one frame read (four delivered).
func BenchmarkFlood64(b *testing.B) { benchFlood(b, false) }

// BenchmarkFlood64Filtered is BenchmarkFlood64 with a multicast list of
// five groups on every child, the frames' group among them, as the daemon
// sets from the children's lists.
func BenchmarkFlood64Filtered(b *testing.B) { benchFlood(b, true) }

func benchFlood(b *testing.B, filtered bool) {
	const children = 4
	sinks := make([]*porttest.Sink, children)
	frames := make([][]byte, 64)
	for i := range frames {
		frames[i] = append(eth(mcast, extMAC, byte(i)), 0, 0, 0, 0)
	}
	src := &gatedPort{Source: porttest.Source{Frames: frames, Limit: b.N}, gate: make(chan struct{}), stop: make(chan struct{})}
	sw := New(src, parentMAC, nil)
	defer sw.Close()
	for i := range sinks {
		sinks[i] = &porttest.Sink{}
		if err := sw.AddChild(fmt.Sprint(i), sinks[i], ChildConfig{MAC: mac(byte(i + 1)), Mode: VEPA}); err != nil {
			b.Fatal(err)
		}
		if filtered {
			groups := []frame.MAC{{0x01, 0, 0x5e, 0, 0, 0xfb}, {0x33, 0x33, 0, 0, 0, 1}, {0x33, 0x33, 0xff, 0, 0, byte(i)}, {0x01, 0, 0x5e, 0, 0, 0xfc}, mcast}
			if err := sw.SetChildMulticast(fmt.Sprint(i), false, groups); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	close(src.gate)
	<-src.Done()
	el := time.Since(start)
	b.StopTimer()
	want := uint64(b.N)
	for deadline := time.Now().Add(5 * time.Second); sinks[children-1].Frames() < want && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	for i, s := range sinks {
		if got := s.Frames(); got != want {
			b.Fatalf("sink %d got %d frames, want %d", i, got, want)
		}
	}
	b.ReportMetric(float64(b.N)/el.Seconds()/1e6, "Mpps")
}

// gatedPort is a Source that hands out nothing until gate is closed.
type gatedPort struct {
	porttest.Source
	gate, stop chan struct{}
	once       sync.Once
}

func (g *gatedPort) Read(frames []port.Frame) (int, error) {
	select {
	case <-g.gate:
	case <-g.stop:
		return 0, port.ErrClosed
	}
	return g.Source.Read(frames)
}

func (g *gatedPort) Close() error {
	g.once.Do(func() { close(g.stop) })
	return g.Source.Close()
}
