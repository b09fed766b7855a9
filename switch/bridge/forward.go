package bridge

import (
	"errors"
	"runtime"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/switch/fdb"
	"github.com/switchyard-net/switchyard/switch/frame"
	"github.com/switchyard-net/switchyard/switch/port"
)

// maxReadErrors is how many failed reads in a row make a port count as gone.
const maxReadErrors = 100

// rxLoop is a port's RX goroutine: read a batch, forward it, repeat, until
// the port is closed or its link is gone.
func (b *Bridge) rxLoop(in *bport) {
	defer close(in.done)
	frames := make([]port.Frame, in.p.BatchSize())
	st := &staging{}
	failed := 0
	for {
		n, err := in.p.Read(frames)
		if err != nil {
			if errors.Is(err, port.ErrClosed) {
				return
			}
			failed++
			if errors.Is(err, port.ErrLinkGone) || failed >= maxReadErrors {
				b.log.Warn("port gone, removing it", zap.String("port", in.name), zap.Error(err))
				go b.removeGone(in, err)
				return
			}
			if failed == 1 {
				b.log.Warn("port read failed", zap.String("port", in.name), zap.Error(err))
			}
			time.Sleep(time.Millisecond)
			continue
		}
		failed = 0
		b.forward(in, frames[:n], st)
		// Let the other ports' goroutines run between batches: on a
		// switch with one P, a port that always has frames would
		// otherwise hold it until async preemption (10 ms), and the
		// other direction of its flows (TCP's ACKs) would wait that long.
		runtime.Gosched()
	}
}

func (b *Bridge) removeGone(bp *bport, cause error) {
	b.mu.Lock()
	cur, ok := b.byName[bp.name]
	b.mu.Unlock()
	if !ok || cur != bp {
		return // removed already
	}
	_ = b.RemovePort(bp.name)
	if b.gone != nil {
		b.gone(bp.name, cause)
	}
}

// staging collects one batch's frames per egress port. Each RX goroutine
// has its own; the slices are kept between batches so forwarding does not
// allocate.
type staging struct {
	arena   []byte         // software-offload output, reset every batch
	used    int            // bytes of arena in use
	segs    [][]byte       // scratch for Segment's output
	out     [][]port.Frame // by egress port id
	flooded [][]bool       // by egress port id: whether out[id][i] is a flood copy
	touched []int          // ids with frames staged, in first-touch order
	parsed  frame.Parsed   // scratch for finish
	mir     *mirrorBox     // the batch's mirror hook; nil when nobody captures
}

func (s *staging) reset(ports, batch int) {
	if len(s.out) < ports {
		out := make([][]port.Frame, ports)
		copy(out, s.out)
		s.out = out
		fl := make([][]bool, ports)
		copy(fl, s.flooded)
		s.flooded = fl
	}
	for i := 0; i < ports; i++ {
		if cap(s.out[i]) < batch {
			s.out[i] = make([]port.Frame, 0, batch)
			s.flooded[i] = make([]bool, 0, batch)
		}
	}
	s.touched = s.touched[:0]
	s.used = 0
}

// arenaSize bounds the software-offload output of one batch: finished
// copies and segments of GSO super-frames for ports that take no offloads.
const arenaSize = 1 << 20

// take returns n bytes of the batch's arena, or nil when it is used up.
func (s *staging) take(n int) []byte {
	if s.arena == nil {
		s.arena = make([]byte, arenaSize)
	}
	if s.used+n > len(s.arena) {
		return nil
	}
	b := s.arena[s.used : s.used+n : s.used+n]
	s.used += n
	return b
}

// finish stages f for a port that takes no offloads: the frame's checksum
// finished, or its GSO super-frame cut into segments, in copies from the
// arena (other egress ports may still get f as it is). It reports false
// when the frame cannot be finished.
func (s *staging) finish(out *bport, f *port.Frame, flood bool) bool {
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
		s.stage(out, &port.Frame{Data: c}, flood)
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
		s.stage(out, &port.Frame{Data: s.segs[i]}, flood)
	}
	return true
}

func (s *staging) add(out *bport, f *port.Frame, flood bool) {
	if !out.offloads && !f.VNet.IsZero() {
		if !s.finish(out, f, flood) {
			s.drop(out, true, DropOffload, f.Data)
		}
		return
	}
	s.stage(out, f, flood)
}

// drop counts a drop of data on p for reason r and shows it to the mirror
// (out: p is the egress port).
func (s *staging) drop(p *bport, out bool, r Reason, data []byte) {
	p.c.drops[r].Add(1)
	if s.mir != nil {
		s.mir.m.Dropped(p.name, out, reasonNames[r], data)
	}
}

func (s *staging) stage(out *bport, f *port.Frame, flood bool) {
	q := s.out[out.id]
	if len(q) == 0 {
		s.touched = append(s.touched, out.id)
	}
	// Segments can outnumber the batch; append grows the slices once
	// and the room is kept.
	s.out[out.id] = append(q, *f)
	s.flooded[out.id] = append(s.flooded[out.id], flood)
}

type floodKind uint8

const (
	floodUnknown floodKind = iota
	floodMulticast
	floodBroadcast
)

var floodFlag = [...]uint32{floodUnknown: fFlood, floodMulticast: fMcastFlood, floodBroadcast: fBcastFlood}

// forward decides every frame of a batch read from in and writes the result,
// one Write per egress port.
func (b *Bridge) forward(in *bport, frames []port.Frame, st *staging) {
	set := b.set.Load()
	st.reset(len(set.byID), cap(frames))
	st.mir = b.mirror.Load()
	now := b.clock().UnixNano()
	inFlags := in.flags.Load()
	var rxBytes uint64
	for i := range frames {
		f := &frames[i]
		d := f.Data
		rxBytes += uint64(len(d))
		if st.mir != nil {
			st.mir.m.Inbound(in.name, d, f.VNet)
		}
		if len(d) < 14 {
			st.drop(in, false, DropMalformed, d)
			continue
		}
		var dst, src fdb.MAC
		copy(dst[:], d[0:6])
		copy(src[:], d[6:12])
		switch b.fdb.Learn(src, in.id, now) {
		case fdb.Ignored:
			st.drop(in, false, DropBadSource, d)
			continue
		case fdb.Static:
			if p, ok := b.fdb.Lookup(src, now); ok && p != in.id {
				st.drop(in, false, DropLooped, d)
				continue
			}
		}
		if dst[0]&1 != 0 {
			kind := floodMulticast
			if dst == (fdb.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) {
				kind = floodBroadcast
			}
			b.flood(in, inFlags, set, f, kind, st)
			continue
		}
		id, ok := b.fdb.Lookup(dst, now)
		if !ok || id >= len(set.byID) || set.byID[id] == nil {
			b.flood(in, inFlags, set, f, floodUnknown, st)
			continue
		}
		out := set.byID[id]
		if out == in && inFlags&fHairpin == 0 {
			st.drop(in, false, DropSamePort, d)
			continue
		}
		if inFlags&fIsolated != 0 && out.flags.Load()&fIsolated != 0 {
			st.drop(in, false, DropIsolated, d)
			continue
		}
		st.add(out, f, false)
	}
	b.flush(set, st)
	st.mir = nil
	// Counted after the flush, so a reader who sees the count knows the
	// frames have been forwarded.
	in.c.rxFrames.Add(uint64(len(frames)))
	in.c.rxBytes.Add(rxBytes)
}

// flood stages f for every port that should get a flood of this kind.
func (b *Bridge) flood(in *bport, inFlags uint32, set *portSet, f *port.Frame, kind floodKind, st *staging) {
	delivered, filtered := 0, 0
	want := floodFlag[kind]
	for _, out := range set.list {
		if out == in && inFlags&fHairpin == 0 {
			continue
		}
		of := out.flags.Load()
		if inFlags&fIsolated != 0 && of&fIsolated != 0 {
			filtered++
			continue
		}
		if of&want == 0 {
			filtered++
			continue
		}
		st.add(out, f, true)
		delivered++
	}
	if delivered == 0 && filtered > 0 {
		if inFlags&fIsolated != 0 {
			st.drop(in, false, DropIsolated, f.Data)
		} else {
			st.drop(in, false, DropFloodOff, f.Data)
		}
	}
}

// flush writes every staged batch to its port.
func (b *Bridge) flush(set *portSet, st *staging) {
	for _, id := range st.touched {
		out := set.byID[id]
		q := st.out[id]
		n, err := out.p.Write(q)
		if n > len(q) || n < 0 {
			n = 0
		}
		var bytes uint64
		for i := range q[:n] {
			bytes += uint64(len(q[i].Data))
		}
		out.c.txFrames.Add(uint64(n))
		out.c.txBytes.Add(bytes)
		// A port takes a prefix of the batch in practice; count the
		// flood copies among the frames it took.
		var fl uint64
		for _, f := range st.flooded[id][:n] {
			if f {
				fl++
			}
		}
		out.c.txFlooded.Add(fl)
		out.c.txUnicast.Add(uint64(n) - fl)
		if st.mir != nil {
			for i := range q[:n] {
				st.mir.m.Outbound(out.name, q[i].Data, q[i].VNet)
			}
		}
		if lost := len(q) - n; lost > 0 {
			r := DropTxFull
			if errors.Is(err, port.ErrClosed) {
				r = DropPortGone
			}
			out.c.drops[r].Add(uint64(lost))
			if st.mir != nil {
				for i := range q[n:] {
					st.mir.m.Dropped(out.name, true, reasonNames[r], q[n+i].Data)
				}
			}
		}
		clear(q) // drop references to the ingress port's memory
		st.out[id] = q[:0]
		st.flooded[id] = st.flooded[id][:0]
	}
}
