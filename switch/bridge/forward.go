package bridge

import (
	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/switch/fdb"
	"github.com/switchyard-net/switchyard/switch/port"
)

// rxLoop is a port's RX goroutine: read a batch, forward it, repeat, until
// the port is closed or its link is gone.
func (b *Bridge) rxLoop(in *bport) {
	defer close(in.done)
	st := &port.Stage{}
	err := port.ReadLoop(in.Port, func(frames []port.Frame) { b.forward(in, frames, st) }, func(err error) {
		b.log.Warn("port read failed", zap.String("port", in.name), zap.Error(err))
	})
	if err != nil {
		b.log.Warn("port gone, removing it", zap.String("port", in.name), zap.Error(err))
		go b.removeGone(in, err)
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

type floodKind uint8

const (
	floodUnknown floodKind = iota
	floodMulticast
	floodBroadcast
)

var floodFlag = [...]uint32{floodUnknown: fFlood, floodMulticast: fMcastFlood, floodBroadcast: fBcastFlood}

// forward decides every frame of a batch read from in and writes the result,
// one Write per egress port.
func (b *Bridge) forward(in *bport, frames []port.Frame, st *port.Stage) {
	set := b.set.Load()
	st.Reset(len(set.byID), cap(frames))
	mir := b.mirror.Load()
	if mir != nil {
		st.Mirror = mir
	}
	now := b.clock().UnixNano()
	inFlags := in.flags.Load()
	var rxBytes uint64
	for i := range frames {
		f := &frames[i]
		d := f.Data
		rxBytes += uint64(len(d))
		if mir != nil && inFlags&fOwnMirror == 0 {
			mir.m.Inbound(in.name, d, f.VNet)
		}
		if len(d) < 14 {
			mir.drop(in, DropMalformed, d)
			continue
		}
		var dst, src fdb.MAC
		copy(dst[:], d[0:6])
		copy(src[:], d[6:12])
		if inFlags&fNoLearning == 0 {
			switch b.fdb.Learn(src, in.ID, now) {
			case fdb.Ignored:
				mir.drop(in, DropBadSource, d)
				continue
			case fdb.Static:
				if p, ok := b.fdb.Lookup(src, now); ok && p != in.ID {
					mir.drop(in, DropLooped, d)
					continue
				}
			}
		}
		if dst[0]&1 != 0 {
			kind := floodMulticast
			if dst == (fdb.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) {
				kind = floodBroadcast
			}
			b.flood(in, inFlags, set, f, kind, st, mir)
			continue
		}
		id, ok := b.fdb.Lookup(dst, now)
		if !ok || id >= len(set.byID) || set.byID[id] == nil {
			b.flood(in, inFlags, set, f, floodUnknown, st, mir)
			continue
		}
		out := set.byID[id]
		if out == in && inFlags&fHairpin == 0 {
			mir.drop(in, DropSamePort, d)
			continue
		}
		if inFlags&fIsolated != 0 && out.flags.Load()&fIsolated != 0 {
			mir.drop(in, DropIsolated, d)
			continue
		}
		st.Add(&out.Egress, f, false)
	}
	st.Flush()
	st.Mirror = nil
	// Counted after the flush, so a reader who sees the count knows the
	// frames have been forwarded.
	in.C.RxFrames.Add(uint64(len(frames)))
	in.C.RxBytes.Add(rxBytes)
}

// flood stages f for every port that should get a flood of this kind.
func (b *Bridge) flood(in *bport, inFlags uint32, set *portSet, f *port.Frame, kind floodKind, st *port.Stage, mir *mirrorBox) {
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
		st.Add(&out.Egress, f, true)
		delivered++
	}
	if delivered == 0 && filtered > 0 {
		if inFlags&fIsolated != 0 {
			mir.drop(in, DropIsolated, f.Data)
		} else {
			mir.drop(in, DropFloodOff, f.Data)
		}
	}
}
