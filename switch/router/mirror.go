package router

import (
	"github.com/switchyard-net/switchyard/nat"
	"github.com/switchyard-net/switchyard/switch/frame"
)

// Mirror is what the gateway shows its frames to while a capture runs
// (package capture's *Mirror implements it). The bridge sees what it
// hands the gateway and what the gateway queues back; the gateway shows
// the rest:
//   - on the uplink's port, every frame read from the uplink and every
//     frame written to it, as on the wire;
//   - every packet the NAT translates twice, marked "pre-nat" and
//     "post-nat": on the uplink's port (out for endpoints to the uplink,
//     in for the uplink to endpoints), or on the gateway's port for a
//     hairpin;
//   - every frame the gateway or its NAT drops, with the reason.
//
// The calls come from the bridge's RX goroutines and the uplink's, with
// views reused after the call: an implementation copies what it keeps and
// never blocks.
type Mirror interface {
	Inbound(port string, data []byte, vnet frame.VNetHdr)
	Outbound(port string, data []byte, vnet frame.VNetHdr)
	Dropped(port string, out bool, reason string, data []byte)
	Note(port string, out bool, note string, data []byte, vnet frame.VNetHdr)
}

// The marks of a translated packet's two frames.
const (
	NotePreNAT  = "pre-nat"
	NotePostNAT = "post-nat"
)

// Drop reasons the gateway shows captures, besides the NAT's own
// ("nat: " and the nat.Reason).
const (
	dropTTL        = "ttl-exceeded"
	dropNeighMiss  = "neigh-miss"
	dropNoRoute    = "no-route"
	dropOffload    = "offload"
	dropUnroutable = "unroutable"
	dropMalformed  = "malformed"
)

// natDropNames are the NAT's drop reasons as captures show them; constant
// strings, so that showing a drop allocates nothing.
var natDropNames = func() []string {
	var out []string
	for r := nat.Reason(0); r.String() != "unknown"; r++ {
		out = append(out, "nat: "+r.String())
	}
	return out
}()

func natDropName(r nat.Reason) string {
	if int(r) < len(natDropNames) {
		return natDropNames[r]
	}
	return "nat: unknown"
}

// mirrorBox holds a Mirror behind a pointer: one atomic load of nil per
// batch when nobody captures. Its methods do nothing on a nil box.
type mirrorBox struct{ m Mirror }

// SetMirror installs m (nil removes it); it takes effect from the next
// batch.
func (p *Port) SetMirror(m Mirror) {
	if m == nil {
		p.mirror.Store(nil)
		return
	}
	p.mirror.Store(&mirrorBox{m: m})
}

func (x *mirrorBox) in(port string, d []byte, vnet frame.VNetHdr) {
	if x != nil {
		x.m.Inbound(port, d, vnet)
	}
}

func (x *mirrorBox) out(port string, d []byte) {
	if x != nil {
		x.m.Outbound(port, d, frame.VNetHdr{})
	}
}

func (x *mirrorBox) drop(port string, out bool, reason string, d []byte) {
	if x != nil {
		x.m.Dropped(port, out, reason, d)
	}
}

func (x *mirrorBox) note(port string, out bool, note string, d []byte, vnet frame.VNetHdr) {
	if x != nil {
		x.m.Note(port, out, note, d, vnet)
	}
}

// keepPre copies a frame before the NAT rewrites it in place, while a
// capture runs.
func (s *scratch) keepPre(d []byte, vnet frame.VNetHdr) {
	if s.mir != nil {
		s.pre = append(s.pre[:0], d...)
		s.preVNet = vnet
	}
}

// showPre shows the copy keepPre made as the pre-NAT frame.
func (s *scratch) showPre(port string, out bool) {
	s.mir.note(port, out, NotePreNAT, s.pre, s.preVNet)
}
