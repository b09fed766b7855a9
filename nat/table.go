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

// entry is one flow. key[0] is the original direction (the first packet),
// key[1] the reply direction as it arrives after translation. A packet
// matching key[d] leaves rewritten as key[1-d] reversed. 64 bytes.
type entry struct {
	key   [2]key
	exp   atomic.Uint32 // expiry, table seconds
	state atomic.Uint32 // see the state bits in conn.go
	pkts  [2]atomic.Uint32
	bytes atomic.Uint64
	gen   uint32 // bumped when the slot is freed; guarded by the shard lock
	_     uint32
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

func (t *table) hash(k key) uint64 {
	a := uint64(k.src)<<32 | uint64(k.dst)
	b := uint64(k.sport)<<48 | uint64(k.dport)<<32 | uint64(k.proto)<<8 | uint64(k.side)
	return mix(mix(a^t.seed) ^ b)
}

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
	for i := tag & s.mask; ; i = (i + 1) & s.mask {
		sl := s.slots[i]
		if sl == 0 {
			return -1
		}
		if uint32(sl) == tag {
			idx, dir := slotRef(sl)
			if t.entries[idx].key[dir] == k {
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
	e.key[0], e.key[1] = k0, k1
	e.pkts[0].Store(1)
	e.pkts[1].Store(0)
	e.bytes.Store(uint64(size))
	e.exp.Store(exp)
	e.state.Store(st | stLive)
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
		st := e.state.Load()
		if st&stLive == 0 || (st&stSeenReply != 0 && !expired(e.exp.Load(), now)) {
			continue
		}
		h1 := t.hash(e.key[1])
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
		h := t.hash(e.key[d])
		s := &t.shards[t.shardOf(h)]
		if i := t.findLocked(s, e.key[d], h); i >= 0 {
			s.removeLocked(uint32(i))
		}
	}
	e.state.Store(0)
	e.gen++
	s0 := &t.shards[t.shardOf(t.hash(e.key[0]))]
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
	if e.gen != gen || e.state.Load()&stLive == 0 {
		t.shards[owner].mu.Unlock()
		return false
	}
	other := t.shardOf(t.hash(e.key[1]))
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
	if e.gen != gen || e.state.Load()&stLive == 0 {
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
