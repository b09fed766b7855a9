package bridge

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/switch/capture"
	"github.com/switchyard-net/switchyard/switch/fdb"
	"github.com/switchyard-net/switchyard/switch/port"
	"github.com/switchyard-net/switchyard/switch/port/porttest"
)

var _ Mirror = (*capture.Mirror)(nil)

// readAll ends c and returns its records as "PORT DIR COMMENT TAG".
func readAll(t *testing.T, c *capture.Capture) []string {
	t.Helper()
	c.Close()
	var out []string
	var r capture.Record
	for c.Read(context.Background(), &r) == nil {
		out = append(out, fmt.Sprintf("%s %s %s %c", r.Port, r.Dir, r.Comment(), r.Data[14]))
	}
	return out
}

// TestMirrorPoints runs frames through a bridge with a capture attached and
// checks what the capture saw at the RX, TX and drop points.
func TestMirrorPoints(t *testing.T) {
	r := newRig(t, "a", "b", "c")
	m := capture.NewMirror(nil)
	c, err := m.Start(nil)
	if err != nil {
		t.Fatal(err)
	}
	onB, _ := m.Start(&capture.Config{Port: "b"})
	r.br.SetMirror(m)

	r.send("a", eth(bcast, mac(0xa), '1'))    // flood to b and c
	r.send("b", eth(mac(0xa), mac(0xb), '2')) // known unicast to a
	r.send("b", eth(mac(0xb), mac(0xb), '3')) // to itself: same_port
	r.send("c", eth(bcast, bcast, '4'))       // bad source
	r.br.SetMirror(nil)
	r.send("a", eth(bcast, mac(0xa), '5')) // not seen
	r.expect(map[string]string{"a": "2", "b": "15", "c": "15"})

	got := readAll(t, c)
	// A flood's copies leave in the order the bridge flushes its ports.
	want := []string{"a in  1", "b out  1", "c out  1", "b in  2", "a out  2", "b in  3", "b in dropped: same_port 3",
		"c in  4", "c in dropped: bad_source 4"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("capture saw:\n got %q\nwant %q", got, want)
	}
	if got, want := readAll(t, onB), []string{"b out  1", "b in  2", "b in  3", "b in dropped: same_port 3"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("capture of port b saw:\n got %q\nwant %q", got, want)
	}
}

// TestMirrorTxDrop: a frame the egress port did not take is shown as
// dropped there, with the reason, not as sent.
func TestMirrorTxDrop(t *testing.T) {
	checkGoroutines(t)
	br := New(&Config{SweepInterval: -1})
	defer br.Close()
	bp, host := porttest.Pipe("a", "host-a", nil)
	full, _ := porttest.Pipe("b", "host-b", &porttest.Config{Slots: 1})
	if err := br.AddPort("a", bp, DefaultFlags()); err != nil {
		t.Fatal(err)
	}
	if err := br.AddPort("b", full, DefaultFlags()); err != nil {
		t.Fatal(err)
	}
	m := capture.NewMirror(nil)
	c, _ := m.Start(nil)
	br.SetMirror(m)
	if n, err := host.Write([]port.Frame{{Data: eth(bcast, mac(1), 'x')}, {Data: eth(bcast, mac(1), 'y')}}); n != 2 || err != nil {
		t.Fatal(n, err)
	}
	waitFor(t, func() bool { pi, _ := br.Port("a"); return pi.Counters.RxFrames == 2 })
	got := readAll(t, c)
	want := []string{"a in  x", "a in  y", "b out  x", "b out dropped: tx_full y"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("capture saw:\n got %q\nwant %q", got, want)
	}
}

// TestForwardZeroAllocsCapturing: with a filtered capture running (the
// filter decodes every frame), forwarding still allocates nothing.
func TestForwardZeroAllocsCapturing(t *testing.T) {
	br := New(&Config{SweepInterval: -1})
	defer br.Close()
	for _, n := range []string{"0", "1"} {
		if err := br.AddPort(n, &porttest.Sink{}, DefaultFlags()); err != nil {
			t.Fatal(err)
		}
	}
	set := br.set.Load()
	br.fdb.Learn(mac(2), set.list[1].ID, time.Now().UnixNano())
	frames := make([]port.Frame, 64)
	for i := range frames {
		frames[i].Data = eth(mac(2), mac(1), 'u')
	}
	m := capture.NewMirror(nil)
	flt, err := capture.Compile("not tcp and not vlan")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := m.Start(&capture.Config{Filter: flt, Slots: 16})
	defer c.Close()
	br.SetMirror(m)
	st := &port.Stage{}
	br.forward(set.list[0], frames, st)
	if allocs := testing.AllocsPerRun(100, func() { br.forward(set.list[0], frames, st) }); allocs != 0 {
		t.Errorf("forward while capturing: %v allocs per batch, want 0", allocs)
	}
	if c.Taken() == 0 || c.Lost() == 0 {
		t.Errorf("taken %d lost %d: the capture should have filled", c.Taken(), c.Lost())
	}
}

func TestTrace(t *testing.T) {
	r := newRig(t, "a", "b", "c", "iso1", "iso2")
	r.br.SetFlags("iso1", Flags{Isolated: true, Flood: true, McastFlood: true, BcastFlood: true})
	r.br.SetFlags("iso2", Flags{Isolated: true, Flood: true, McastFlood: true, BcastFlood: true})
	r.br.SetFlags("c", Flags{BcastFlood: true})
	if err := r.br.AddStaticMAC("c", mac(0xc)); err != nil {
		t.Fatal(err)
	}
	r.send("a", eth(bcast, mac(0xa), '1'))
	r.send("iso2", eth(bcast, mac(0xe), '1'))
	r.expect(map[string]string{"b": "11", "c": "11", "iso1": "1", "iso2": "1", "a": "1"})
	before := r.counters("b")
	for _, tc := range []struct {
		in   string
		data []byte
		want string
	}{
		{"b", eth(mac(0xa), mac(0xb), 0), "learn hit:a out:[a]"},
		{"a", eth(mac(0xa), mac(0xa), 0), "refresh hit:a drop:same_port"},
		{"b", eth(mac(0x99), mac(0xa), 0), "move:a miss flood:unknown-unicast out:[a iso1 iso2] skipped:[c (unknown-unicast flooding off)]"},
		{"b", eth(fdb.MAC{0x01, 0, 0x5e, 0, 0, 1}, mac(0xb), 0), "learn multicast flood:multicast out:[a iso1 iso2] skipped:[c (multicast flooding off)]"},
		{"iso1", eth(mac(0xe), mac(0x11), 0), "learn hit:iso2 drop:isolated"},
		{"iso1", eth(bcast, mac(0x11), 0), "learn broadcast flood:broadcast out:[a b c] skipped:[iso2 (isolated)]"},
		{"a", eth(mac(0xa), mac(0xc), 0), "looped:c drop:looped"},
		{"c", eth(mac(0xa), mac(0xc), 0), "static hit:a out:[a]"},
		{"a", eth(mac(0xb), bcast, 0), "ignored drop:bad_source"},
		{"a", []byte{1, 2, 3}, "drop:malformed"},
	} {
		d, err := r.br.Trace(tc.in, tc.data)
		if err != nil {
			t.Fatal(err)
		}
		var parts []string
		add := func(k, v string) {
			if v != "" {
				parts = append(parts, k+v)
			}
		}
		add("", d.Learn)
		if d.MovedFrom != "" {
			parts[len(parts)-1] += ":" + d.MovedFrom
		}
		add("", d.Lookup)
		if d.HitPort != "" {
			parts[len(parts)-1] += ":" + d.HitPort
		}
		add("flood:", d.Flood)
		if d.Out != nil {
			add("out:", fmt.Sprint(d.Out))
		}
		if d.Skipped != nil {
			add("skipped:", fmt.Sprint(d.Skipped))
		}
		add("drop:", d.Drop)
		if got := strings.Join(parts, " "); got != tc.want {
			t.Errorf("Trace(%s, %x):\n got %s\nwant %s", tc.in, tc.data[:min(12, len(tc.data))], got, tc.want)
		}
	}
	if _, err := r.br.Trace("nope", eth(bcast, mac(1), 0)); err == nil {
		t.Error("Trace from an unknown port succeeded")
	}
	// Nothing was learned, sent or counted.
	if after := r.counters("b"); after.RxFrames != before.RxFrames || after.TxFrames != before.TxFrames {
		t.Errorf("trace changed counters: %+v -> %+v", before, after)
	}
	if _, _, ok := r.br.fdb.Peek(mac(0x11), time.Now().UnixNano()); ok {
		t.Error("trace learned a source MAC")
	}
	r.expect(map[string]string{})
}
