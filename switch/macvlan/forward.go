package macvlan

import (
	"encoding/binary"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/switch/frame"
	"github.com/switchyard-net/switchyard/switch/port"
)

// Reason names why the switch dropped (or did not forward) a frame. The
// egress-side reasons are shared with every engine (port.Stage).
type Reason uint8

const (
	DropOffload  Reason = port.DropOffload  // pending offloads the egress cannot take, not finishable
	DropTxFull   Reason = port.DropTxFull   // the egress port did not take the frame
	DropPortGone Reason = port.DropPortGone // the egress port went away while forwarding
)

const (
	// DropMalformed: shorter than an Ethernet header.
	DropMalformed Reason = port.NumCommonDrops + iota
	// DropNotChild: unicast from the wire to a MAC no child has; the
	// kernel leaves it to the parent's own stack, which has it anyway.
	DropNotChild
	// DropPause: an 802.3x pause frame, which macvlan never floods.
	DropPause
	// DropChildDown: for a child whose link is down (counted on the
	// child).
	DropChildDown
	// DropMcastFilter: a multicast group the child has not joined
	// (counted on the child).
	DropMcastFilter
	nReasons
)

var reasonNames = [nReasons]string{
	DropOffload:     "offload",
	DropTxFull:      "tx_full",
	DropPortGone:    "port_gone",
	DropMalformed:   "malformed",
	DropNotChild:    "not_child",
	DropPause:       "pause",
	DropChildDown:   "child_down",
	DropMcastFilter: "mcast_filter",
}

func (r Reason) String() string {
	if r < nReasons {
		return reasonNames[r]
	}
	return "unknown"
}

const etherTypePause = 0x8808

// rxLoop is a port's RX goroutine: read a batch, forward it, repeat, until
// the port is closed or its link is gone.
func (s *Switch) rxLoop(in *child) {
	defer close(in.done)
	st := &port.Stage{}
	err := port.ReadLoop(in.Port, func(frames []port.Frame) { s.forward(in, frames, st) }, func(err error) {
		s.log.Warn("port read failed", zap.String("port", in.name), zap.Error(err))
	})
	if err != nil {
		s.log.Warn("port gone", zap.String("port", in.name), zap.Error(err))
		go s.removeGone(in, err)
	}
}

func (s *Switch) removeGone(c *child, cause error) {
	if c == s.parent {
		if s.gone != nil {
			s.gone(ParentPort, cause)
		}
		return
	}
	s.mu.Lock()
	cur, ok := s.byName[c.name]
	s.mu.Unlock()
	if !ok || cur != c {
		return // removed already
	}
	_ = s.RemoveChild(c.name)
	if s.gone != nil {
		s.gone(c.name, cause)
	}
}

// forward decides every frame of a batch read from in and writes the
// result, one Write per egress port.
func (s *Switch) forward(in *child, frames []port.Frame, st *port.Stage) {
	t := s.tab.Load()
	st.Reset(len(t.byID), cap(frames))
	var rxBytes uint64
	for i := range frames {
		f := &frames[i]
		rxBytes += uint64(len(f.Data))
		if len(f.Data) < frame.EthernetLen {
			in.C.Drops[DropMalformed].Add(1)
			continue
		}
		if in == s.parent {
			s.fromWire(t, f, st)
		} else {
			s.fromChild(t, in, f, st)
		}
	}
	st.Flush()
	// Counted after the flush, so a reader who sees the count knows the
	// frames have been forwarded.
	in.C.RxFrames.Add(uint64(len(frames)))
	in.C.RxBytes.Add(rxBytes)
}

func isPause(d []byte) bool { return binary.BigEndian.Uint16(d[12:]) == etherTypePause }

// fromWire handles a frame the parent received: macvlan_handle_frame.
func (s *Switch) fromWire(t *table, f *port.Frame, st *port.Stage) {
	e := frame.Ethernet(f.Data)
	dst := e.Dst()
	if !dst.IsMulticast() {
		c := t.passthru
		if c == nil {
			c = t.byMAC[dst]
		}
		if c == nil {
			s.parent.C.Drops[DropNotChild].Add(1)
			return
		}
		if c.isDown() {
			c.C.Drops[DropChildDown].Add(1)
			return
		}
		st.Add(&c.Egress, f, false)
		return
	}
	if isPause(f.Data) {
		s.parent.C.Drops[DropPause].Add(1)
		return
	}
	src := t.lookup(e.Src())
	switch {
	case src == nil:
		// From outside: every child.
		for _, c := range t.list {
			if c.acceptsMcast(dst) {
				st.Add(&c.Egress, f, true)
			}
		}
	case src.host:
		// A host port's flood reached every child on the way out.
	case src.mode == Private || src.mode == Passthru:
		// Back to the child it came from, and to no one else; the
		// kernel hands it back without a look at its filter.
		st.Add(&src.Egress, f, true)
	case src.mode == VEPA:
		for _, c := range t.list {
			if c != src && !c.host && (c.mode == VEPA || c.mode == Bridge) && c.acceptsMcast(dst) {
				st.Add(&c.Egress, f, true)
			}
		}
	default: // Bridge: the bridge children had it on the way out.
		for _, c := range t.list {
			if c != src && c.mode == VEPA && c.acceptsMcast(dst) {
				st.Add(&c.Egress, f, true)
			}
		}
	}
}

// fromChild handles a frame a child sent: macvlan_queue_xmit, with the
// host ports' direct path. A child that is down sends nothing; a frame it
// sent before is forwarded, as the kernel had transmitted it.
func (s *Switch) fromChild(t *table, in *child, f *port.Frame, st *port.Stage) {
	wire := &s.parent.Egress
	if in.mode == Passthru {
		st.Add(wire, f, false)
		return
	}
	dst := frame.Ethernet(f.Data).Dst()
	mcast := dst.IsMulticast()
	if mcast && isPause(f.Data) {
		in.C.Drops[DropPause].Add(1)
		return
	}
	if in.host {
		// The host reaches every child directly, and the wire.
		if mcast {
			for _, c := range t.list {
				if c != in && c.acceptsMcast(dst) {
					st.Add(&c.Egress, f, true)
				}
			}
			st.Add(wire, f, true)
			return
		}
		if c := t.lookup(dst); c != nil && c != in {
			st.Add(&c.Egress, f, false)
			return
		}
		st.Add(wire, f, false)
		return
	}
	if len(t.hosts) > 0 {
		if mcast {
			for _, h := range t.hosts {
				st.Add(&h.Egress, f, true)
			}
		} else if c := t.lookup(dst); c != nil && c.host {
			st.Add(&c.Egress, f, false)
			return
		}
	}
	if in.mode == Bridge {
		if mcast {
			for _, c := range t.list {
				if c != in && !c.host && c.mode == Bridge && c.acceptsMcast(dst) {
					st.Add(&c.Egress, f, true)
				}
			}
			st.Add(wire, f, true)
			return
		}
		// A bridge child's frame to its own MAC comes back to it, as the
		// kernel's dev_forward_skb through the parent delivers it. A
		// sibling that is down is not found: the frame goes to the
		// wire, as the kernel's does.
		if c := t.lookup(dst); c != nil && c.mode == Bridge {
			st.Add(&c.Egress, f, false)
			return
		}
	}
	st.Add(wire, f, mcast)
}
