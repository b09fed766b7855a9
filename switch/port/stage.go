package port

import (
	"errors"
	"sync/atomic"

	"github.com/switchyard-net/switchyard/switch/frame"
)

// Drop reasons every switch engine shares: the ones the egress side of
// forwarding (Stage) counts. Engines number their own reasons from
// NumCommonDrops up, below MaxDrops.
const (
	DropOffload    = iota // pending offloads the egress cannot take, not finishable
	DropTxFull            // the egress port did not take the frame
	DropPortGone          // the egress port went away while forwarding
	NumCommonDrops        // the first reason an engine may define
	MaxDrops       = 16   // the room FwdCounters has for reasons
)

// FwdCounters are a port's forwarding counters as an engine keeps them (the
// port keeps its own I/O counters in Counters). RX counts are bumped by the
// port's own RX goroutine; TX counts by whichever RX goroutine forwards to
// the port; drops are counted on the ingress port for decisions and on the
// egress port for transmit failures.
type FwdCounters struct {
	RxFrames, RxBytes atomic.Uint64
	TxFrames, TxBytes atomic.Uint64
	TxFlooded         atomic.Uint64 // of TxFrames: broadcast, multicast, unknown-unicast copies
	TxUnicast         atomic.Uint64 // of TxFrames: the rest
	Drops             [MaxDrops]atomic.Uint64
}

// FwdStats is a snapshot of FwdCounters, with drops by reason name.
type FwdStats struct {
	RxFrames  uint64            `json:"rx_frames"`
	RxBytes   uint64            `json:"rx_bytes"`
	TxFrames  uint64            `json:"tx_frames"`
	TxBytes   uint64            `json:"tx_bytes"`
	TxFlooded uint64            `json:"tx_flooded"`
	TxUnicast uint64            `json:"tx_unicast"`
	Drops     map[string]uint64 `json:"drops,omitempty"`
}

// Snapshot returns the current values; names[r] names reason r (reasons
// without a name are not reported).
func (c *FwdCounters) Snapshot(names []string) FwdStats {
	s := FwdStats{
		RxFrames:  c.RxFrames.Load(),
		RxBytes:   c.RxBytes.Load(),
		TxFrames:  c.TxFrames.Load(),
		TxBytes:   c.TxBytes.Load(),
		TxFlooded: c.TxFlooded.Load(),
		TxUnicast: c.TxUnicast.Load(),
	}
	for r := range min(len(names), MaxDrops) {
		if v := c.Drops[r].Load(); v > 0 && names[r] != "" {
			if s.Drops == nil {
				s.Drops = make(map[string]uint64)
			}
			s.Drops[names[r]] = v
		}
	}
	return s
}

// Egress is a port as an engine forwards to it: Stage stages frames by ID
// and writes them to Port, finishing pending offloads in software when
// Offloads is false.
type Egress struct {
	ID       int    // dense, unique among the engine's ports; indexes Stage's queues
	Name     string // the port's name in the engine, for mirrors
	Port     Port
	Offloads bool
	C        FwdCounters
}

// Init sets e up for p under id, with Offloads from p's Offloader
// capability.
func (e *Egress) Init(id int, p Port) {
	e.ID, e.Port, e.Offloads = id, p, false
	if o, ok := p.(Offloader); ok {
		e.Offloads = o.Offloads()
	}
}

// Stage collects one batch's frames per egress port, then writes each
// egress's frames with one Write. Each RX goroutine has its own; the slices
// are kept between batches so that forwarding does not allocate. Frames
// with pending offloads bound for a port that takes none are finished in
// software (checksum completed, GSO super-frame segmented) into copies from
// a per-batch arena; the other egress ports may still get the frame whole.
type Stage struct {
	arena   []byte    // software-offload output, reset every batch
	used    int       // bytes of arena in use
	segs    [][]byte  // scratch for Segment's output
	out     [][]Frame // by egress ID
	flooded [][]bool  // by egress ID: whether out[id][i] is a flood copy
	egress  []*Egress // by egress ID, for the flush
	touched []int     // IDs with frames staged, in first-touch order
	parsed  frame.Parsed
	// Mirror, when set (by the engine, per batch), sees every frame Flush
	// hands to a port and every frame the egress side loses.
	Mirror StageMirror
}

// InPlaceWriter is a port whose Write rewrites the frames it is given (a
// gateway translating them): a Stage shows its mirror such a port's frames
// before the Write, as the switch handed them over.
type InPlaceWriter interface {
	WritesInPlace() bool
}

// StageMirror is what a Stage shows a capture: frames a port took (Sent)
// and frames lost on the egress side (Lost, with the drop reason). The
// views are reused after the call.
type StageMirror interface {
	Sent(out *Egress, f *Frame)
	Lost(out *Egress, reason int, data []byte)
}

// StageArenaSize bounds the software-offload output of one batch.
const StageArenaSize = 1 << 20

// Reset prepares s for a batch of up to batch frames to egress IDs below
// ports.
func (s *Stage) Reset(ports, batch int) {
	if len(s.out) < ports {
		out := make([][]Frame, ports)
		copy(out, s.out)
		s.out = out
		fl := make([][]bool, ports)
		copy(fl, s.flooded)
		s.flooded = fl
		eg := make([]*Egress, ports)
		copy(eg, s.egress)
		s.egress = eg
	}
	for i := 0; i < ports; i++ {
		if cap(s.out[i]) < batch {
			s.out[i] = make([]Frame, 0, batch)
			s.flooded[i] = make([]bool, 0, batch)
		}
	}
	s.touched = s.touched[:0]
	s.used = 0
}

// take returns n bytes of the batch's arena, or nil when it is used up.
func (s *Stage) take(n int) []byte {
	if s.arena == nil {
		s.arena = make([]byte, StageArenaSize)
	}
	if s.used+n > len(s.arena) {
		return nil
	}
	b := s.arena[s.used : s.used+n : s.used+n]
	s.used += n
	return b
}

// Add stages f for out (flood marks a flood copy, for the counters). A
// frame with pending offloads for a port without offloads is finished in
// software first; one that cannot be is dropped and counted as
// DropOffload on out.
func (s *Stage) Add(out *Egress, f *Frame, flood bool) {
	if !out.Offloads && !f.VNet.IsZero() {
		if !s.finish(out, f, flood) {
			out.C.Drops[DropOffload].Add(1)
			if s.Mirror != nil {
				s.Mirror.Lost(out, DropOffload, f.Data)
			}
		}
		return
	}
	s.stage(out, f, flood)
}

// finish stages f's software-finished copies for out; false when f cannot
// be finished.
func (s *Stage) finish(out *Egress, f *Frame, flood bool) bool {
	if !f.VNet.GSO() {
		c := s.take(len(f.Data))
		if c == nil {
			return false
		}
		copy(c, f.Data)
		h := f.VNet
		if !frame.FinishChecksum(c, &h) {
			return false
		}
		s.stage(out, &Frame{Data: c}, flood)
		return true
	}
	// The headers end where the transport payload starts. The vnet
	// header's HdrLen is no guide: the kernel sets it to the linear part
	// of the skb, which may hold payload too.
	s.parsed.Decode(f.Data)
	hdr := s.parsed.PayloadOff
	if s.parsed.Reason != frame.OK || hdr <= 0 || hdr >= len(f.Data) || f.VNet.GSOSize == 0 {
		return false
	}
	seg := hdr + int(f.VNet.GSOSize)
	n := (len(f.Data) - hdr + int(f.VNet.GSOSize) - 1) / int(f.VNet.GSOSize)
	if n > len(s.segs) {
		s.segs = make([][]byte, n)
	}
	for i := 0; i < n; i++ {
		if s.segs[i] = s.take(seg); s.segs[i] == nil {
			return false
		}
	}
	k, err := frame.Segment(f.Data, &f.VNet, s.segs[:n])
	if err != nil {
		return false
	}
	for i := 0; i < k; i++ {
		s.stage(out, &Frame{Data: s.segs[i]}, flood)
	}
	return true
}

func (s *Stage) stage(out *Egress, f *Frame, flood bool) {
	q := s.out[out.ID]
	if len(q) == 0 {
		s.touched = append(s.touched, out.ID)
		s.egress[out.ID] = out
	}
	// Segments can outnumber the batch; append grows the slices once
	// and the room is kept.
	s.out[out.ID] = append(q, *f)
	s.flooded[out.ID] = append(s.flooded[out.ID], flood)
}

// Flush writes every staged batch to its port, one Write per port, and
// counts what each port took and lost.
func (s *Stage) Flush() {
	for _, id := range s.touched {
		out := s.egress[id]
		q := s.out[id]
		before := false
		if s.Mirror != nil {
			// A port that rewrites what it is given is shown it first.
			if rw, ok := out.Port.(InPlaceWriter); ok && rw.WritesInPlace() {
				before = true
				for i := range q {
					s.Mirror.Sent(out, &q[i])
				}
			}
		}
		n, err := out.Port.Write(q)
		if n > len(q) || n < 0 {
			n = 0
		}
		var bytes uint64
		for i := range q[:n] {
			bytes += uint64(len(q[i].Data))
		}
		out.C.TxFrames.Add(uint64(n))
		out.C.TxBytes.Add(bytes)
		// A port takes a prefix of the batch in practice; count the
		// flood copies among the frames it took.
		var fl uint64
		for _, f := range s.flooded[id][:n] {
			if f {
				fl++
			}
		}
		out.C.TxFlooded.Add(fl)
		out.C.TxUnicast.Add(uint64(n) - fl)
		if s.Mirror != nil && !before {
			for i := range q[:n] {
				s.Mirror.Sent(out, &q[i])
			}
		}
		if lost := len(q) - n; lost > 0 {
			r := DropTxFull
			if errors.Is(err, ErrClosed) {
				r = DropPortGone
			}
			out.C.Drops[r].Add(uint64(lost))
			if s.Mirror != nil {
				for i := range q[n:] {
					s.Mirror.Lost(out, r, q[n+i].Data)
				}
			}
		}
		clear(q) // drop references to the ingress port's memory
		s.out[id] = q[:0]
		s.flooded[id] = s.flooded[id][:0]
		s.egress[id] = nil
	}
}
