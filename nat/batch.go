package nat

import (
	"sync/atomic"
	"unsafe"

	"github.com/switchyard-net/switchyard/switch/frame"
)

// Batches. A cold established-flow lookup in a large table waits for two
// dependent cache misses, the key's index slot and then its entry, about
// 180 ns each on a typical server. The packets of a batch do not depend on
// each other, so their misses can overlap: Look hashes a packet's flow
// and starts loading its slot, Touch (some packets later) reads the slot
// and starts loading the entry, and TranslateAt (some packets later
// again) translates the packet as Translate would, by then from the cache.
// TranslateBatch runs the three stages over a batch; the gateway, which
// does more per frame than translate, calls them itself.
//
// A Lookahead only remembers what the packets are (key and hash); the
// table may change between the stages, and TranslateAt looks the flow up
// again (as Translate: lock-free for a live flow, else under the shard
// lock), so the verdicts and bytes are exactly those of Translate.

// BatchMax is how many packets one Lookahead covers.
const BatchMax = 64

// The pipeline: TranslateBatch (like the gateway) looks at every packet
// of a batch first, then, while it translates packet i, touches packet
// i+touchAhead. Looking at the whole batch up front rather than a fixed
// distance ahead gives the first packets' slot loads the most time; it
// measured 85 -> 77 ns/packet over 1M flows (BenchmarkEstablishedBatch),
// and touchAhead from 4 to 20 all within 2 ns of each other.
const touchAhead = 6

// Lookahead carries a batch's packets through Look, Touch and
// TranslateAt, indexed by their place in the batch. Its zero value is
// ready; it is not safe for concurrent use: keep one per worker (it holds
// no pointers and is about 2 KiB).
type Lookahead struct {
	p [BatchMax]ahead
}

type ahead struct {
	k  pkey
	h  uint64
	ok bool // k and h are set: an IPv4 packet of a flow
}

// Reset forgets the first m packets: Touch and TranslateAt treat a
// packet that was not looked at since as one that needs no lookahead.
func (l *Lookahead) Reset(m int) {
	for i := range min(m, BatchMax) {
		l.p[i].ok = false
	}
}

// Look is the first stage for packet i (below BatchMax) of a batch: b
// decoded in pr, arriving from side. It computes the packet's flow key and
// its hash and starts loading its index slot. b and pr must not change
// before TranslateAt(l, i, ...).
func (n *NAT) Look(l *Lookahead, i int, side Side, b []byte, pr *frame.Parsed) {
	a := &l.p[i]
	a.ok = false
	if pr.IPVersion != 4 || pr.VLANTags != 0 || pr.Reason != frame.OK || pr.L3End > len(b) || pr.Frag == frame.LaterFragment {
		return
	}
	k, kind := keyOfP(side, pr)
	if kind != keyFlow {
		return
	}
	t := n.t
	h := t.hashP(k)
	a.k, a.h, a.ok = k, h, true
	s := &t.shards[t.shardOf(h)]
	prefetch(uintptr(unsafe.Pointer(&s.slots[uint32(h)&s.mask])))
}

// Touch is the second stage for packet i: it reads the packet's index
// slot, without the lock (a stale answer costs only a wasted load), and
// starts loading the entry it points at. An i that was not looked at, or
// past BatchMax, is ignored, so callers can touch ahead blindly.
func (n *NAT) Touch(l *Lookahead, i int) {
	if uint(i) >= BatchMax || !l.p[i].ok {
		return
	}
	a := &l.p[i]
	t := n.t
	s := &t.shards[t.shardOf(a.h)]
	tag := uint32(a.h)
	j := tag & s.mask
	for range 4 {
		sl := atomic.LoadUint64(&s.slots[j])
		if sl == 0 {
			return
		}
		if uint32(sl) == tag {
			if idx, _ := slotRef(sl); int(idx) < len(t.entries) {
				prefetch(uintptr(unsafe.Pointer(&t.entries[idx])))
			}
			return
		}
		j = (j + 1) & s.mask
	}
}

// TouchFirst runs Touch for the packets of a batch of m that Step does
// not reach: call it once between the Looks and the first TranslateAt,
// and Step(l, i) before each TranslateAt(l, i, ...).
func (n *NAT) TouchFirst(l *Lookahead, m int) {
	for i := range min(m, touchAhead) {
		n.Touch(l, i)
	}
}

// Step keeps the pipeline ahead of packet i, the next to translate: it
// touches the packet touchAhead places on. Past the end of a batch that
// is a place not looked at (ignored) or one left from an earlier batch
// (at worst a wasted load).
func (n *NAT) Step(l *Lookahead, i int) {
	n.Touch(l, i+touchAhead)
}

// TranslateAt is the last stage for packet i: Translate(side, b, pr,
// vnet), with the same verdict and rewrite, for the side, b and pr given
// to Look (or any, when packet i was not looked at since Reset).
func (n *NAT) TranslateAt(l *Lookahead, i int, side Side, b []byte, pr *frame.Parsed, vnet *frame.VNetHdr) Verdict {
	if uint(i) >= BatchMax || !l.p[i].ok {
		return n.Translate(side, b, pr, vnet)
	}
	a := &l.p[i]
	return n.translateFlow(a.k, a.h, b, pr, vnet)
}

// TranslateBatch translates a batch of packets arriving from side, each
// frame bufs[i] decoded in prs[i] with its vnet header vnets[i] (vnets may
// be nil: no headers), and sets verdicts[i]. It is Translate for each
// packet in order, with the memory loads of the batch overlapped. l is
// the caller's scratch.
func (n *NAT) TranslateBatch(l *Lookahead, side Side, bufs [][]byte, prs []frame.Parsed, vnets []frame.VNetHdr, verdicts []Verdict) {
	for len(bufs) > 0 {
		m := min(len(bufs), BatchMax)
		for i := range m {
			n.Look(l, i, side, bufs[i], &prs[i])
		}
		n.TouchFirst(l, m)
		for i := range m {
			n.Step(l, i)
			var vh *frame.VNetHdr
			if vnets != nil {
				vh = &vnets[i]
			}
			verdicts[i] = n.TranslateAt(l, i, side, bufs[i], &prs[i], vh)
		}
		bufs, prs, verdicts = bufs[m:], prs[m:], verdicts[m:]
		if vnets != nil {
			vnets = vnets[m:]
		}
	}
}
