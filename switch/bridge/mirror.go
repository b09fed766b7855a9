package bridge

import (
	"github.com/switchyard-net/switchyard/switch/frame"
	"github.com/switchyard-net/switchyard/switch/port"
)

// Mirror is what the bridge shows its frames to while a capture runs:
// every frame read from a port (Inbound, before any decision), every frame
// a port took for sending (Outbound, as it was handed to the port: a
// finished copy or a segment where the port takes no offloads) and every
// dropped frame with the reason's name, on the ingress port for decisions
// and on the egress port (out) for transmit failures. The calls come from
// every port's RX goroutine at once, with views the bridge reuses after the
// call: an implementation copies what it keeps, never blocks and should not
// allocate. package capture's *Mirror implements it.
type Mirror interface {
	Inbound(port string, data []byte, vnet frame.VNetHdr)
	Outbound(port string, data []byte, vnet frame.VNetHdr)
	Dropped(port string, out bool, reason string, data []byte)
}

// mirrorBox holds a Mirror behind a pointer, so that the fast path pays
// one atomic load of a nil pointer per batch when nobody captures. It is
// also the egress stage's mirror (port.StageMirror).
type mirrorBox struct{ m Mirror }

func (x *mirrorBox) Sent(out *port.Egress, f *port.Frame) { x.m.Outbound(out.Name, f.Data, f.VNet) }

func (x *mirrorBox) Lost(out *port.Egress, reason int, data []byte) {
	x.m.Dropped(out.Name, true, Reason(reason).String(), data)
}

// drop counts a decision drop of data on ingress port in and shows it to
// the mirror, if any.
func (x *mirrorBox) drop(in *bport, r Reason, data []byte) {
	in.C.Drops[r].Add(1)
	if x != nil {
		x.m.Dropped(in.name, false, r.String(), data)
	}
}

// SetMirror installs m at the bridge's mirror points (nil removes it). It
// takes effect from the next batch each RX goroutine reads.
func (b *Bridge) SetMirror(m Mirror) {
	if m == nil {
		b.mirror.Store(nil)
		return
	}
	b.mirror.Store(&mirrorBox{m: m})
}

// Reasons returns the names of every drop reason, in order.
func Reasons() []string { return append([]string(nil), reasonNames[:]...) }
