package bridge

import (
	"testing"

	"github.com/switchyard-net/switchyard/switch/frame"
	"github.com/switchyard-net/switchyard/switch/port"
	"github.com/switchyard-net/switchyard/switch/port/porttest"
)

// FuzzForward pushes arbitrary frames with arbitrary offload headers through
// the forwarding path, to ports that take offloads and to one that does not.
// The engine must not panic, and what leaves must be bounded by what came in.
func FuzzForward(f *testing.F) {
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 8, 0}, []byte{})
	f.Add(eth(mac(2), mac(1), 'x'), []byte{1, 1, 54, 0, 200, 5, 34, 0, 16, 0})
	f.Add(eth(mac(2), mac(1), 'x'), []byte{1, 0, 0, 0, 0, 0, 200, 0, 16, 0})
	f.Fuzz(func(t *testing.T, data, vnet []byte) {
		br := New(&Config{SweepInterval: -1})
		defer br.Close()
		plain, _ := porttest.Pipe("plain", "h", &porttest.Config{Slots: 4096})
		sinks := []port.Port{&porttest.Sink{}, &porttest.Sink{}, plain}
		for i, s := range sinks {
			if err := br.AddPort(string(rune('a'+i)), s, DefaultFlags()); err != nil {
				t.Fatal(err)
			}
		}
		set := br.set.Load()
		in := set.list[0]
		var h frame.VNetHdr
		if len(vnet) >= frame.VNetHdrLen {
			h.Decode(vnet)
		}
		frames := []port.Frame{{Data: data, VNet: h}, {Data: data}}
		st := &port.Stage{}
		br.forward(in, frames, st)
		br.forward(in, frames, st) // learned now
		var out uint64
		for _, pi := range br.Ports() {
			out += pi.Counters.TxFrames
		}
		// Each frame reaches at most the two other ports; a super-frame
		// becomes at most 64 KiB / 1 byte segments.
		if limit := uint64(4 * 2 * 65536); out > limit {
			t.Fatalf("%d frames out of 4 in", out)
		}
	})
}
