package nat

import (
	"crypto/rand"
	"encoding/binary"
	"math/bits"
	"sync"
	"sync/atomic"
)

// Side is where a packet enters the NAT: from the network's endpoints or
// from the uplink.
type Side uint8

// Sides.
const (
	Inside Side = iota
	Outside
)

func (s Side) String() string {
	if s == Inside {
		return "inside"
	}
	return "outside"
}

// key is one direction of a flow as packets carry it: addresses and ports
// (the echo id in both port fields for ICMP), the protocol, and the side
// the packets arrive from. 16 bytes.
type key struct {
	src, dst     uint32
	sport, dport uint16
	proto        uint8
	side         Side
}

// reverse returns the key of a packet going the other way on side s.
func (k key) reverse(s Side) key {
	return key{src: k.dst, dst: k.src, sport: k.dport, dport: k.sport, proto: k.proto, side: s}
}

// pkey is a key packed into two words, the form the table stores, hashes
// and compares, and the established-flow path carries: two words stay in
// registers where the six fields of a key go through memory. a holds the
// addresses (src high), b the ports (sport in the top 16 bits, then
// dport), the protocol (bits 8-15) and the side (bits 0-7).
type pkey struct{ a, b uint64 }

func mkpkey(src, dst uint32, sport, dport uint16, proto uint8, side Side) pkey {
	return pkey{uint64(src)<<32 | uint64(dst), uint64(sport)<<48 | uint64(dport)<<32 | uint64(proto)<<8 | uint64(side)}
}

// pack returns k packed.
func (k key) pack() pkey { return mkpkey(k.src, k.dst, k.sport, k.dport, k.proto, k.side) }

// unpack returns p as a key.
func (p pkey) unpack() key {
	return key{src: p.src(), dst: p.dst(), sport: p.sport(), dport: p.dport(), proto: p.proto(), side: p.side()}
}

func (p pkey) src() uint32   { return uint32(p.a >> 32) }
func (p pkey) dst() uint32   { return uint32(p.a) }
func (p pkey) sport() uint16 { return uint16(p.b >> 48) }
func (p pkey) dport() uint16 { return uint16(p.b >> 32) }
func (p pkey) proto() uint8  { return uint8(p.b >> 8) }
func (p pkey) side() Side    { return Side(p.b) }

// reverse is key.reverse for a packed key.
func (p pkey) reverse(s Side) pkey {
	return pkey{bits.RotateLeft64(p.a, 32), uint64(bits.RotateLeft32(uint32(p.b>>32), 16))<<32 | p.b&0xff00 | uint64(s)}
}

// entry is one flow. key[0] is the original direction (the first packet),
// key[1] the reply direction as it arrives after translation. A packet
// matching key[d] leaves rewritten as key[1-d] reversed. 64 bytes.
//
// Concurrency. The established-flow path reads entries without a lock
// (lookupFast), so every field is accessed atomically:
//   - kw holds the keys packed (key.pack). They are written, with atomic
//     stores, only by insert, under the owner shard's lock (ownerShard),
//     while the entry is not live.
//   - word packs the expiry, a generation and the state bits (mkword).
//     The generation changes only when the entry is freed (freeLocked,
//     under the owner shard's lock); the state and expiry change by
//     compare-and-swap of the whole word, so an update computed from a
//     freed or reused flow fails. A reader that loads word, then the
//     keys, then finds word unchanged (or swaps it) has read keys of the
//     flow that word describes: a seqlock whose writer is the free.
//   - pkts and bytes are per direction, updated with atomic adds
//     (addCounts).
type entry struct {
	kw    [2]pkey
	word  atomic.Uint64
	pkts  [2]uint32
	bytes [2]uint64
}

// The entry word: expiry (table seconds) in the high 32 bits, then a
// generation of genBits, then the state bits of conn.go.
const (
	genShift = 15
	genBits  = 32 - genShift
	stBits   = 1<<genShift - 1
)

// The state flags must fit below the generation.
var _ [stBits - (stHairpin<<1 - 1)]struct{}

func mkword(exp, gen, st uint32) uint64 {
	return uint64(exp)<<32 | uint64(gen&(1<<genBits-1))<<genShift | uint64(st&stBits)
}

func wExp(w uint64) uint32   { return uint32(w >> 32) }
func wGen(w uint64) uint32   { return uint32(w) >> genShift }
func wState(w uint64) uint32 { return uint32(w) & stBits }

// key returns key d of e.
func (e *entry) key(d int) key { return e.pkey(d).unpack() }

// pkey returns key d of e packed.
func (e *entry) pkey(d int) pkey {
	return pkey{atomic.LoadUint64(&e.kw[d].a), atomic.LoadUint64(&e.kw[d].b)}
}

// keyIs reports whether key d of e is p.
func (e *entry) keyIs(d int, p pkey) bool {
	return atomic.LoadUint64(&e.kw[d].a) == p.a && atomic.LoadUint64(&e.kw[d].b) == p.b
}

func (e *entry) setKey(d int, k key) {
	p := k.pack()
	atomic.StoreUint64(&e.kw[d].a, p.a)
	atomic.StoreUint64(&e.kw[d].b, p.b)
}

// gen returns e's generation: it changes every time e is freed.
func (e *entry) gen() uint32 { return wGen(e.word.Load()) }

// packets and octets return e's counters, both directions together.
func (e *entry) packets() uint64 {
	return uint64(atomic.LoadUint32(&e.pkts[0])) + uint64(atomic.LoadUint32(&e.pkts[1]))
}

func (e *entry) octets() uint64 {
	return atomic.LoadUint64(&e.bytes[0]) + atomic.LoadUint64(&e.bytes[1])
}

// slot encoding in a shard index: low 32 bits the key's hash (its low bits
// pick the home position), high 32 bits entry index*2+direction+1; 0 is empty.
func mkslot(h uint32, idx uint32, dir int) uint64 {
	return uint64(h) | uint64(idx<<1|uint32(dir)+1)<<32
}

func slotRef(s uint64) (idx uint32, dir int) {
	r := uint32(s>>32) - 1
	return r >> 1, int(r & 1)
}

// A shard's slots are read and written under its lock, except that the
// batch path (batch.go) reads them without it, atomically, as a hint of
// which entry to start loading; every write is therefore an atomic store.
type shard struct {
	mu     sync.Mutex
	slots  []uint64
	mask   uint32
	free   []uint32 // free entry indices
	lo, hi uint32   // this shard's entry range [lo, hi)
	cursor uint32   // eviction and sweep position
	_      [40]byte // keep shards on separate cache lines
}

// table is the sharded connection table. It knows keys and entries; the
// policy (what a new flow becomes) is the NAT's.
type table struct {
	shards  []shard
	shift   uint // hash >> shift picks the shard
	entries []entry
	seed    uint64
	limit   int64
	count   atomic.Int64
	now     atomic.Uint32 // seconds since the NAT started
}

// newTable sizes a table for limit flows. Memory is reserved up front but
// the kernel backs pages only as they are first written.
func newTable(limit int) *table {
	nshards := 64
	for nshards > 1 && limit/nshards < 256 {
		nshards /= 2
	}
	per := (limit+nshards-1)/nshards + limit/nshards/8 + 8 // slack for uneven hashing
	// Two keys per flow at a load factor of at most 2/3.
	nslots := 1 << bits.Len(uint(per*3-1))
	t := &table{
		shards:  make([]shard, nshards),
		shift:   uint(64 - bits.Len(uint(nshards-1))),
		entries: allocSlice[entry](per * nshards),
		limit:   int64(limit),
	}
	if nshards == 1 {
		t.shift = 64
	}
	var sb [8]byte
	_, _ = rand.Read(sb[:])
	t.seed = binary.LittleEndian.Uint64(sb[:]) | 1
	slots := allocSlice[uint64](nslots * nshards)
	for i := range t.shards {
		s := &t.shards[i]
		s.slots = slots[i*nslots : (i+1)*nslots : (i+1)*nslots]
		s.mask = uint32(nslots - 1)
		s.lo, s.hi = uint32(i*per), uint32((i+1)*per)
		s.free = make([]uint32, 0, per)
		for j := s.hi; j > s.lo; j-- {
			s.free = append(s.free, j-1)
		}
	}
	return t
}

func (t *table) hash(k key) uint64 { return t.hashP(k.pack()) }

// hashP is hash for a packed key.
func (t *table) hashP(p pkey) uint64 { return mix(mix(p.a^t.seed) ^ p.b) }

// mix is splitmix64's finalizer: every input bit reaches every output bit.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

func (t *table) shardOf(h uint64) int {
	if t.shift >= 64 {
		return 0
	}
	return int(h >> t.shift)
}

// findLocked returns the position of k's slot in s, or -1.
func (t *table) findLocked(s *shard, k key, h uint64) int {
	tag := uint32(h)
	p := k.pack()
	for i := tag & s.mask; ; i = (i + 1) & s.mask {
		sl := s.slots[i]
		if sl == 0 {
			return -1
		}
		if uint32(sl) == tag {
			idx, dir := slotRef(sl)
			if t.entries[idx].keyIs(dir, p) {
				return int(i)
			}
		}
	}
}

func (s *shard) insertLocked(h uint64, idx uint32, dir int) {
	tag := uint32(h)
	i := tag & s.mask
	for s.slots[i] != 0 {
		i = (i + 1) & s.mask
	}
	atomic.StoreUint64(&s.slots[i], mkslot(tag, idx, dir))
}

// removeLocked empties position i and shifts later slots of the same
// probe run back, so lookups never need tombstones.
func (s *shard) removeLocked(i uint32) {
	for {
		atomic.StoreUint64(&s.slots[i], 0)
		j := i
		for {
			j = (j + 1) & s.mask
			sl := s.slots[j]
			if sl == 0 {
				return
			}
			home := uint32(sl) & s.mask
			// Move it to i unless its home lies cyclically in (i, j].
			if (i < j && (home <= i || home > j)) || (i > j && home <= i && home > j) {
				atomic.StoreUint64(&s.slots[i], sl)
				i = j
				break
			}
		}
	}
}

// lockPair locks the shards a and b in order and returns an unlock func
// argument pair.
func (t *table) lockPair(a, b int) {
	if a > b {
		a, b = b, a
	}
	t.shards[a].mu.Lock()
	if b != a {
		t.shards[b].mu.Lock()
	}
}

func (t *table) unlockPair(a, b int) {
	t.shards[a].mu.Unlock()
	if b != a {
		t.shards[b].mu.Unlock()
	}
}

// insert result codes.
const (
	insOK = iota
	insExistsOrig
	insExistsReply
	insFull
)

// insert adds a flow with keys k0 (original) and k1 (reply), state word st
// and expiry exp, counting its first packet of size bytes. When the table is full it evicts a flow that never saw a
// reply, if it finds one nearby; evicted reports whether it did.
func (t *table) insert(k0, k1 key, st, exp uint32, size int) (idx uint32, code int, evicted bool) {
	h0, h1 := t.hash(k0), t.hash(k1)
	a, b := t.shardOf(h0), t.shardOf(h1)
	t.lockPair(a, b)
	defer t.unlockPair(a, b)
	s0, s1 := &t.shards[a], &t.shards[b]
	if t.findLocked(s0, k0, h0) >= 0 {
		return 0, insExistsOrig, false
	}
	if t.findLocked(s1, k1, h1) >= 0 {
		return 0, insExistsReply, false
	}
	if t.count.Load() >= t.limit || len(s0.free) == 0 {
		if !t.evictLocked(a, b) {
			return 0, insFull, false
		}
		evicted = true
	}
	idx = s0.free[len(s0.free)-1]
	s0.free = s0.free[:len(s0.free)-1]
	e := &t.entries[idx]
	// Not live: lock-free readers that reach it now give up.
	e.setKey(0, k0)
	e.setKey(1, k1)
	atomic.StoreUint32(&e.pkts[0], 1)
	atomic.StoreUint32(&e.pkts[1], 0)
	atomic.StoreUint64(&e.bytes[0], uint64(size))
	atomic.StoreUint64(&e.bytes[1], 0)
	e.word.Store(mkword(exp, e.gen(), st|stLive))
	s0.insertLocked(h0, idx, 0)
	s1.insertLocked(h1, idx, 1)
	t.count.Add(1)
	return idx, insOK, evicted
}

// evictScan is how many entries an insert into a full table looks at for a
// victim.
const evictScan = 64

// evictLocked frees one flow of shard a that has not seen a reply (or has
// expired), scanning at most evictScan entries. Shards a and b are held; a
// victim whose reply key lives in a third shard is taken only if that
// shard's lock is free right now.
func (t *table) evictLocked(a, b int) bool {
	s := &t.shards[a]
	n := s.hi - s.lo
	now := nowOf(t)
	for range evictScan {
		idx := s.lo + s.cursor%n
		s.cursor++
		e := &t.entries[idx]
		w := e.word.Load()
		if st := wState(w); st&stLive == 0 || (st&stSeenReply != 0 && !expired(wExp(w), now)) {
			continue
		}
		h1 := t.hash(e.key(1))
		c := t.shardOf(h1)
		if c != a && c != b {
			if !t.shards[c].mu.TryLock() {
				continue
			}
			t.freeLocked(idx)
			t.shards[c].mu.Unlock()
		} else {
			t.freeLocked(idx)
		}
		return true
	}
	return false
}

// freeLocked removes entry idx from both indexes and frees it. Both of its
// shards must be held.
func (t *table) freeLocked(idx uint32) {
	e := &t.entries[idx]
	for d := range 2 {
		k := e.key(d)
		h := t.hash(k)
		s := &t.shards[t.shardOf(h)]
		if i := t.findLocked(s, k, h); i >= 0 {
			s.removeLocked(uint32(i))
		}
	}
	// A new generation, not live: lock-free readers that loaded the old
	// word fail their check or swap. Only the owner shard's holder
	// changes the generation, so a plain store after the load loses
	// nothing but a state or expiry update to the flow being freed.
	e.word.Store(mkword(0, e.gen()+1, 0))
	s0 := &t.shards[t.shardOf(t.hash(e.key(0)))]
	s0.free = append(s0.free, idx)
	t.count.Add(-1)
}

// remove frees entry idx if it still holds generation gen.
func (t *table) remove(idx, gen uint32) bool {
	e := &t.entries[idx]
	// The keys of a live entry do not change while either shard is held;
	// read them under the owner shard first.
	owner := t.ownerShard(idx)
	t.shards[owner].mu.Lock()
	if w := e.word.Load(); wGen(w) != gen || wState(w)&stLive == 0 {
		t.shards[owner].mu.Unlock()
		return false
	}
	other := t.shardOf(t.hash(e.key(1)))
	if other == owner {
		t.freeLocked(idx)
		t.shards[owner].mu.Unlock()
		return true
	}
	if other > owner {
		t.shards[other].mu.Lock()
		t.freeLocked(idx)
		t.shards[other].mu.Unlock()
		t.shards[owner].mu.Unlock()
		return true
	}
	// Wrong order: drop the owner, take both in order, and check again.
	t.shards[owner].mu.Unlock()
	t.lockPair(other, owner)
	defer t.unlockPair(other, owner)
	if w := e.word.Load(); wGen(w) != gen || wState(w)&stLive == 0 {
		return false
	}
	t.freeLocked(idx)
	return true
}

func (t *table) ownerShard(idx uint32) int {
	per := uint32(len(t.entries) / len(t.shards))
	return int(idx / per)
}

func (t *table) len() int { return int(t.count.Load()) }
