// Package fdb is the MAC table of a learning switch: which port a MAC address
// was last seen on. It learns from source addresses, ages entries out on an
// injected clock, holds static entries, limits how many addresses are
// learned (globally and per port) and flushes a port's entries when the
// port goes away.
//
// Lookups and refreshes of known entries take a shard's read lock only, so
// the RX goroutines of all ports can use one table at once.
package fdb

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// MAC is an Ethernet address.
type MAC = [6]byte

// DefaultAgeing is how long a learned entry lives without traffic, as in the
// kernel bridge and Docker's networks.
const DefaultAgeing = 300 * time.Second

// DefaultLimit is the global limit on learned entries when Config leaves it 0.
const DefaultLimit = 64 << 10

// refreshEvery bounds how often a hot entry's timestamp is written: a store
// per frame would bounce the entry's cache line between RX cores.
const refreshEvery = int64(time.Second)

const nShards = 64 // a power of two

// Config sets a table's policy. The zero value (or a nil *Config) means
// DefaultAgeing, DefaultLimit and no per-port limit.
type Config struct {
	// Ageing is the lifetime of a learned entry without traffic; 0 means
	// DefaultAgeing, a negative value means entries never age.
	Ageing time.Duration
	// Limit is the most learned entries the table holds; 0 means
	// DefaultLimit, a negative value means no limit.
	Limit int
	// PortLimit is the most learned entries per port; 0 or negative
	// means no per-port limit.
	PortLimit int
}

// Result says what Learn did.
type Result uint8

const (
	Refreshed Result = iota // known on this port; timestamp renewed
	Learned                 // new entry
	Moved                   // entry moved from another port
	Ignored                 // not a learnable source (multicast, broadcast, zero)
	Static                  // a static entry owns the address; not changed
	Limited                 // a limit is reached; nothing learned
)

var (
	// ErrNotLearnable is returned by AddStatic for multicast or zero addresses.
	ErrNotLearnable = errors.New("fdb: not a unicast address")
)

type entry struct {
	port   atomic.Int32
	seen   atomic.Int64 // clock nanoseconds of the last frame from it
	static bool         // set at creation, never changed
}

type shard struct {
	mu sync.RWMutex
	m  map[MAC]*entry
}

// Table is a MAC table. It is safe for concurrent use.
type Table struct {
	shards [nShards]shard

	ageing    atomic.Int64 // nanoseconds, <= 0: never
	limit     atomic.Int64 // < 0: none
	portLimit atomic.Int64 // <= 0: none

	learned atomic.Int64 // learned (non-static) entries
	cntMu   sync.Mutex   // guards perPort
	perPort map[int]int  // learned entries per port

	nLearned   atomic.Uint64
	nMoves     atomic.Uint64
	nLimitHits atomic.Uint64
	nAged      atomic.Uint64
	lastSweep  atomic.Int64 // clock of the last sweep forced by a limit
}

// Stats are a table's counters.
type Stats struct {
	Entries   int    `json:"entries"`
	Learned   uint64 `json:"learned"`    // entries learned, ever
	Moves     uint64 `json:"moves"`      // entries moved between ports
	LimitHits uint64 `json:"limit_hits"` // addresses not learned because a limit was reached
	Aged      uint64 `json:"aged"`       // entries removed by ageing
}

// Entry is one row of the table, for display.
type Entry struct {
	MAC    MAC
	Port   int
	Static bool
	Age    time.Duration // since the last frame; 0 for static entries
}

// New returns an empty table.
func New(cfg *Config) *Table {
	t := &Table{perPort: make(map[int]int)}
	for i := range t.shards {
		t.shards[i].m = make(map[MAC]*entry)
	}
	var c Config
	if cfg != nil {
		c = *cfg
	}
	t.SetAgeing(c.Ageing)
	t.SetLimits(c.Limit, c.PortLimit)
	return t
}

// SetAgeing changes the lifetime of learned entries (0: DefaultAgeing,
// negative: never). It applies to existing entries too.
func (t *Table) SetAgeing(d time.Duration) {
	if d == 0 {
		d = DefaultAgeing
	}
	t.ageing.Store(int64(d))
}

// Ageing returns the current lifetime of learned entries (negative: never).
func (t *Table) Ageing() time.Duration { return time.Duration(t.ageing.Load()) }

// SetLimits changes the global and per-port limits (see Config). Entries
// above a lowered limit stay until they age out or are flushed.
func (t *Table) SetLimits(limit, portLimit int) {
	if limit == 0 {
		limit = DefaultLimit
	}
	t.limit.Store(int64(limit))
	t.portLimit.Store(int64(portLimit))
}

// Limits returns the global and per-port limits (negative or 0: none).
func (t *Table) Limits() (limit, portLimit int) {
	return int(t.limit.Load()), int(t.portLimit.Load())
}

func (t *Table) shard(m MAC) *shard {
	// The low bytes of a MAC vary most; the OUI bytes barely at all.
	h := uint32(m[5]) ^ uint32(m[4])<<3 ^ uint32(m[3])<<5
	return &t.shards[h&(nShards-1)]
}

// Learnable reports whether m may be learned as a source: not multicast
// (which includes broadcast) and not all zero.
func Learnable(m MAC) bool {
	return m[0]&1 == 0 && m != MAC{}
}

func (t *Table) expired(e *entry, now int64) bool {
	if e.static {
		return false
	}
	a := t.ageing.Load()
	return a > 0 && now-e.seen.Load() > a
}

// Lookup returns the port m was last seen on. now is the clock in
// nanoseconds; an entry older than the ageing time is a miss.
func (t *Table) Lookup(m MAC, now int64) (port int, ok bool) {
	s := t.shard(m)
	s.mu.RLock()
	e := s.m[m]
	s.mu.RUnlock()
	if e == nil || t.expired(e, now) {
		return 0, false
	}
	return int(e.port.Load()), true
}

// Peek is Lookup that also says whether the entry is static. It changes
// nothing (for tracing a frame without forwarding it).
func (t *Table) Peek(m MAC, now int64) (port int, static, ok bool) {
	s := t.shard(m)
	s.mu.RLock()
	e := s.m[m]
	s.mu.RUnlock()
	if e == nil || t.expired(e, now) {
		return 0, false, false
	}
	return int(e.port.Load()), e.static, true
}

// Learn records that a frame with source m arrived on port at now.
func (t *Table) Learn(m MAC, port int, now int64) Result {
	if !Learnable(m) {
		return Ignored
	}
	s := t.shard(m)
	s.mu.RLock()
	e := s.m[m]
	if e != nil && !e.static && int(e.port.Load()) == port && !t.expired(e, now) {
		if now-e.seen.Load() >= t.refreshEvery() {
			e.seen.Store(now)
		}
		s.mu.RUnlock()
		return Refreshed
	}
	s.mu.RUnlock()
	r := t.learnSlow(s, m, port, now)
	if r == Limited && t.sweepExpired(now) > 0 {
		// Entries past their age still counted against the limit: the
		// sweeper had not come by yet.
		r = t.learnSlow(s, m, port, now)
	}
	return r
}

// refreshEvery is how often a hot entry's timestamp is written: at most
// once a second, and often enough for short ageing times.
func (t *Table) refreshEvery() int64 {
	if a := t.ageing.Load(); a > 0 && a/4 < refreshEvery {
		return a / 4
	}
	return refreshEvery
}

// sweepExpired ages the table when a limit was hit, at most once a second
// (a full table of live entries would otherwise be swept on every frame).
func (t *Table) sweepExpired(now int64) int {
	last := t.lastSweep.Load()
	if now-last < int64(time.Second) || !t.lastSweep.CompareAndSwap(last, now) {
		return 0
	}
	return t.Age(now)
}

func (t *Table) learnSlow(s *shard, m MAC, port int, now int64) Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[m]
	switch {
	case e != nil && e.static:
		return Static
	case e != nil && int(e.port.Load()) == port:
		e.seen.Store(now)
		return Refreshed
	case e != nil:
		// A move: the entry keeps counting globally, per port it changes hands.
		if !t.takePortSlot(port) {
			// The new port is full. The old entry is wrong now: drop it,
			// so the host's frames are flooded, not sent where it was.
			t.removeLocked(s, m, e)
			t.nLimitHits.Add(1)
			return Limited
		}
		t.releasePortSlot(int(e.port.Load()))
		e.port.Store(int32(port))
		e.seen.Store(now)
		t.nMoves.Add(1)
		return Moved
	}
	if !t.takeGlobalSlot() {
		t.nLimitHits.Add(1)
		return Limited
	}
	if !t.takePortSlot(port) {
		t.learned.Add(-1)
		t.nLimitHits.Add(1)
		return Limited
	}
	e = &entry{}
	e.port.Store(int32(port))
	e.seen.Store(now)
	s.m[m] = e
	t.nLearned.Add(1)
	return Learned
}

// takeGlobalSlot counts one more learned entry unless the limit is reached.
func (t *Table) takeGlobalSlot() bool {
	for {
		c := t.learned.Load()
		if l := t.limit.Load(); l >= 0 && c >= l {
			return false
		}
		if t.learned.CompareAndSwap(c, c+1) {
			return true
		}
	}
}

func (t *Table) takePortSlot(port int) bool {
	t.cntMu.Lock()
	defer t.cntMu.Unlock()
	if l := t.portLimit.Load(); l > 0 && int64(t.perPort[port]) >= l {
		return false
	}
	t.perPort[port]++
	return true
}

func (t *Table) releasePortSlot(port int) {
	t.cntMu.Lock()
	defer t.cntMu.Unlock()
	if t.perPort[port]--; t.perPort[port] <= 0 {
		delete(t.perPort, port)
	}
}

// removeLocked deletes m's entry from s; s.mu is held for writing.
func (t *Table) removeLocked(s *shard, m MAC, e *entry) {
	delete(s.m, m)
	if !e.static {
		t.learned.Add(-1)
		t.releasePortSlot(int(e.port.Load()))
	}
}

// AddStatic puts a static entry for m on port, replacing whatever entry m
// had. Static entries never age, never move and count against no limit.
func (t *Table) AddStatic(m MAC, port int) error {
	if !Learnable(m) {
		return fmt.Errorf("%w: %s", ErrNotLearnable, FormatMAC(m))
	}
	s := t.shard(m)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.m[m]; e != nil {
		t.removeLocked(s, m, e)
	}
	e := &entry{static: true}
	e.port.Store(int32(port))
	s.m[m] = e
	return nil
}

// Delete removes m's entry, static or learned. It reports whether there was one.
func (t *Table) Delete(m MAC) bool {
	s := t.shard(m)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[m]
	if e == nil {
		return false
	}
	t.removeLocked(s, m, e)
	return true
}

// FlushPort removes every entry on port (learned and static) and returns
// how many went; for a port that goes away.
func (t *Table) FlushPort(port int) int {
	return t.sweep(func(e *entry) bool { return int(e.port.Load()) == port })
}

// Flush removes every learned entry and returns how many went; static
// entries stay.
func (t *Table) Flush() int {
	return t.sweep(func(e *entry) bool { return !e.static })
}

// Age removes the learned entries older than the ageing time at now and
// returns how many went.
func (t *Table) Age(now int64) int {
	n := t.sweep(func(e *entry) bool { return t.expired(e, now) })
	t.nAged.Add(uint64(n))
	return n
}

func (t *Table) sweep(drop func(*entry) bool) int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for m, e := range s.m {
			if drop(e) {
				t.removeLocked(s, m, e)
				n++
			}
		}
		s.mu.Unlock()
	}
	return n
}

// Entries lists the live entries at now, sorted by port then MAC.
func (t *Table) Entries(now int64) []Entry {
	var out []Entry
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.RLock()
		for m, e := range s.m {
			if t.expired(e, now) {
				continue
			}
			en := Entry{MAC: m, Port: int(e.port.Load()), Static: e.static}
			if !e.static {
				en.Age = time.Duration(now - e.seen.Load())
			}
			out = append(out, en)
		}
		s.mu.RUnlock()
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Port != out[j].Port {
			return out[i].Port < out[j].Port
		}
		return string(out[i].MAC[:]) < string(out[j].MAC[:])
	})
	return out
}

// Len returns the number of entries, live or not yet swept.
func (t *Table) Len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// Stats returns the table's counters.
func (t *Table) Stats() Stats {
	return Stats{
		Entries:   t.Len(),
		Learned:   t.nLearned.Load(),
		Moves:     t.nMoves.Load(),
		LimitHits: t.nLimitHits.Load(),
		Aged:      t.nAged.Load(),
	}
}

// FormatMAC renders m as aa:bb:cc:dd:ee:ff.
func FormatMAC(m MAC) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}
