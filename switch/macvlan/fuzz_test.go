package macvlan

import (
	"testing"

	"github.com/switchyard-net/switchyard/switch/frame"
	"github.com/switchyard-net/switchyard/switch/port"
	"github.com/switchyard-net/switchyard/switch/port/porttest"
)

// FuzzForward pushes arbitrary frames with arbitrary offload headers into
// the engine from the wire and from a child of each mode, with one egress
// (a child) that takes no offloads. The engine must not panic, and what
// leaves must be bounded by what came in.
func FuzzForward(f *testing.F) {
	f.Add(eth(bcast, mac(1), 'x'), []byte{}, uint8(0))
	f.Add(eth(mac(2), mac(1), 'x'), []byte{1, 1, 54, 0, 200, 5, 34, 0, 16, 0}, uint8(1))
	f.Add(eth(bcast, mac(3), 'x'), []byte{1, 0, 0, 0, 0, 0, 200, 0, 16, 0}, uint8(0))
	f.Add(eth(mac(4), extMAC, 'x'), []byte{}, uint8(4))
	f.Fuzz(func(t *testing.T, data, vnet []byte, from uint8) {
		sw := New(&porttest.Sink{}, parentMAC, nil)
		defer sw.Close()
		plain, _ := porttest.Pipe("plain", "h", &porttest.Config{Slots: 4096})
		ports := []port.Port{&porttest.Sink{}, &porttest.Sink{}, &porttest.Sink{}, plain}
		modes := []Mode{Bridge, VEPA, Private, Bridge}
		for i, p := range ports {
			if err := sw.AddChild(string(rune('a'+i)), p, ChildConfig{MAC: mac(byte(i + 1)), Mode: modes[i], Host: i == 3}); err != nil {
				t.Fatal(err)
			}
		}
		// The first byte of the frame's payload, when there is one,
		// takes child b down and gives c a multicast list.
		if len(data) > 14 && data[14]&1 != 0 {
			if err := sw.SetChildUp("b", false); err != nil {
				t.Fatal(err)
			}
		}
		if len(data) > 14 && data[14]&2 != 0 {
			if err := sw.SetChildMulticast("c", data[14]&4 != 0, []frame.MAC{frame.Ethernet(data).Dst()}); err != nil {
				t.Fatal(err)
			}
		}
		t0 := sw.tab.Load()
		in := t0.byID[int(from)%len(t0.byID)]
		var h frame.VNetHdr
		if len(vnet) >= frame.VNetHdrLen {
			h.Decode(vnet)
		}
		frames := []port.Frame{{Data: data, VNet: h}, {Data: data}}
		st := &port.Stage{}
		sw.forward(in, frames, st)
		var out uint64
		for _, pi := range sw.Children() {
			out += pi.Counters.TxFrames
		}
		out += sw.Parent().Counters.TxFrames
		// Each frame reaches at most the four other ports; a super-frame
		// becomes at most 64 KiB / 1 byte segments.
		if limit := uint64(2 * 4 * 65536); out > limit {
			t.Fatalf("%d frames out of 2 in", out)
		}
	})
}
