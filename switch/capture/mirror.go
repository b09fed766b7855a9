// Package capture mirrors the frames a switch engine handles into captures:
// filtered, lossy, bounded copies that a reader turns into pcapng (Writer)
// or text.
//
// An engine holds one *Mirror per switch and offers it frames at its
// mirror points (Inbound, Outbound, Dropped, Note) while at least one
// capture runs; the Mirror calls OnActive so that the engine can install
// itself as the hook when the first capture starts and take it away when the
// last one ends, leaving the fast path with one atomic load of a nil pointer
// when nobody captures.
//
// Each capture has its own ring of preallocated slots that producers (the
// engine's RX goroutines, concurrently) claim without locks and copy into;
// a full ring counts the frame as lost and never blocks forwarding.
//
// Engines that may not import this package (the dependency graph keeps
// bridge and nat apart from it) declare the methods they call as a small
// interface of their own; *Mirror's methods use only basic types and
// package frame for that reason.
package capture

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-net/switchyard/switch/frame"
)

// Dir is the direction of a frame relative to the switch port it was seen
// on, as pcapng's epb_flags have it.
type Dir uint8

// Directions.
const (
	DirUnknown Dir = 0
	In         Dir = 1 // received by the switch on the port
	Out        Dir = 2 // sent by the switch out of the port
)

func (d Dir) String() string {
	switch d {
	case In:
		return "in"
	case Out:
		return "out"
	}
	return "?"
}

// Record is one captured frame.
type Record struct {
	Time    int64  // when the engine offered it, Unix nanoseconds
	Port    string // the switch port it was seen on
	Dir     Dir
	Drop    string // the drop reason when the engine dropped it, else ""
	Note    string // a mark from the engine (e.g. "pre-nat", "post-nat"), else ""
	OrigLen int    // the frame's length; Data may be shorter (snap length)
	Data    []byte
}

// Defaults and limits of a capture's ring.
const (
	DefaultSlots   = 1024
	DefaultSnapLen = 2048
	MaxSnapLen     = 262144
	// MaxRingBytes bounds one capture's memory: Slots is reduced to fit.
	MaxRingBytes = 64 << 20
)

// ErrClosed is returned by Start on a closed Mirror.
var ErrClosed = errors.New("capture: mirror closed")

// EndError is returned by Read once a capture has ended and every frame
// it took has been read.
type EndError struct{ Reason string }

func (e *EndError) Error() string { return "capture ended: " + e.Reason }

// MirrorConfig sets up a Mirror. A nil *MirrorConfig means defaults.
type MirrorConfig struct {
	// Clock returns the time stamped on records; default time.Now.
	Clock func() time.Time
	// OnActive is called, with the mirror's lock held, when the first
	// capture starts (true) and when the last one ends (false).
	OnActive func(active bool)
}

// Mirror fans the frames of one switch out to its running captures.
type Mirror struct {
	clock    func() time.Time
	onActive func(bool)

	active atomic.Pointer[[]*Capture] // nil when none runs

	mu     sync.Mutex // guards caps, closed, lastID; serialises OnActive
	caps   []*Capture
	closed bool
	lastID uint64
}

// NewMirror returns a mirror with no captures.
func NewMirror(cfg *MirrorConfig) *Mirror {
	m := &Mirror{clock: time.Now}
	if cfg != nil {
		if cfg.Clock != nil {
			m.clock = cfg.Clock
		}
		m.onActive = cfg.OnActive
	}
	return m
}

// Config sets up one capture. A nil *Config means defaults.
type Config struct {
	// Port restricts the capture to one switch port; empty means all.
	Port string
	// Filter selects frames; nil means all.
	Filter *Filter
	// Slots is the ring's size in frames, rounded up to a power of two;
	// default DefaultSlots.
	Slots int
	// SnapLen is how many bytes of each frame are kept; default
	// DefaultSnapLen, at most MaxSnapLen.
	SnapLen int
}

// Start begins a capture.
func (m *Mirror) Start(cfg *Config) (*Capture, error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if c.SnapLen <= 0 {
		c.SnapLen = DefaultSnapLen
	}
	c.SnapLen = min(c.SnapLen, MaxSnapLen)
	if c.Slots <= 0 {
		c.Slots = DefaultSlots
	}
	c.Slots = min(c.Slots, max(MaxRingBytes/c.SnapLen, 2))
	n := 2
	for n < c.Slots {
		n <<= 1
	}
	cp := &Capture{
		m: m, port: c.Port, filter: c.Filter, snap: c.SnapLen,
		slots: make([]slot, n), mask: uint64(n - 1),
		arena: make([]byte, n*c.SnapLen),
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	for i := range cp.slots {
		cp.slots[i].seq.Store(uint64(i))
		cp.slots[i].buf = cp.arena[i*c.SnapLen : (i+1)*c.SnapLen : (i+1)*c.SnapLen]
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	m.lastID++
	cp.id = m.lastID
	m.caps = append(m.caps, cp)
	m.publishLocked()
	return cp, nil
}

func (m *Mirror) publishLocked() {
	if len(m.caps) == 0 {
		m.active.Store(nil)
		if m.onActive != nil {
			m.onActive(false)
		}
		return
	}
	s := make([]*Capture, len(m.caps))
	copy(s, m.caps)
	was := m.active.Load() != nil
	m.active.Store(&s)
	if !was && m.onActive != nil {
		m.onActive(true)
	}
}

func (m *Mirror) remove(c *Capture) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, x := range m.caps {
		if x == c {
			m.caps = append(m.caps[:i], m.caps[i+1:]...)
			m.publishLocked()
			return true
		}
	}
	return false
}

// Stop ends the running capture with the given ID with reason, as Close
// would; it reports false when there is none.
func (m *Mirror) Stop(id uint64, reason string) bool {
	m.mu.Lock()
	var c *Capture
	for _, x := range m.caps {
		if x.id == id {
			c = x
		}
	}
	m.mu.Unlock()
	if c == nil {
		return false
	}
	c.m.remove(c)
	c.end(reason)
	return true
}

// Active returns the number of running captures.
func (m *Mirror) Active() int {
	if m == nil {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.caps)
}

// Close ends every capture with reason (their readers get an *EndError
// once they have read what was taken) and makes later Starts fail.
func (m *Mirror) Close(reason string) {
	m.mu.Lock()
	caps := m.caps
	m.caps = nil
	m.closed = true
	if len(caps) > 0 {
		m.publishLocked()
	}
	m.mu.Unlock()
	for _, c := range caps {
		c.end(reason)
	}
}

// Inbound offers a frame the engine received on port. vnet describes its
// pending offloads (a partial checksum is finished in the copy).
func (m *Mirror) Inbound(port string, data []byte, vnet frame.VNetHdr) {
	m.offer(port, In, "", "", data, vnet)
}

// Outbound offers a frame the engine hands to port for sending.
func (m *Mirror) Outbound(port string, data []byte, vnet frame.VNetHdr) {
	m.offer(port, Out, "", "", data, vnet)
}

// Dropped offers a frame the engine dropped on port (out: on its way out of
// port) with the reason's name. reason should be a constant: it is kept, not
// copied.
func (m *Mirror) Dropped(port string, out bool, reason string, data []byte) {
	d := In
	if out {
		d = Out
	}
	m.offer(port, d, reason, "", data, frame.VNetHdr{})
}

// Note offers a frame with a mark, for engines that show one frame at
// several stages: NAT offers the frame before ("pre-nat") and after
// ("post-nat") translation. note should be a constant.
func (m *Mirror) Note(port string, out bool, note string, data []byte, vnet frame.VNetHdr) {
	d := In
	if out {
		d = Out
	}
	m.offer(port, d, "", note, data, vnet)
}

func (m *Mirror) offer(port string, d Dir, drop, note string, data []byte, vnet frame.VNetHdr) {
	caps := m.active.Load()
	if caps == nil {
		return
	}
	var p frame.Parsed
	parsed := false
	var now int64
	for _, c := range *caps {
		if c.port != "" && c.port != port {
			continue
		}
		if c.filter != nil && len(c.filter.nodes) > 0 {
			if !parsed {
				p.Decode(data)
				parsed = true
			}
			if !c.filter.Match(&p) {
				continue
			}
		}
		if now == 0 {
			now = m.clock().UnixNano()
		}
		c.put(now, port, d, drop, note, data, vnet)
	}
}

// slot is one ring entry. seq follows Vyukov's bounded queue: equal to the
// position when free for a producer, position+1 when filled for the reader.
type slot struct {
	seq  atomic.Uint64
	rec  Record // Data aliases buf
	buf  []byte
	vnet frame.VNetHdr
}

// Capture is one running capture: producers put, one reader Reads.
type Capture struct {
	m      *Mirror
	id     uint64
	port   string
	filter *Filter
	snap   int

	slots []slot
	arena []byte
	mask  uint64
	tail  atomic.Uint64 // next position for producers
	head  uint64        // next position for the reader (reader only)

	taken atomic.Uint64 // frames put in the ring
	lost  atomic.Uint64 // frames that matched but found the ring full

	wake    chan struct{}
	done    chan struct{}
	endOnce sync.Once
	reason  string // set before done is closed
}

func (c *Capture) put(now int64, port string, d Dir, drop, note string, data []byte, vnet frame.VNetHdr) {
	pos := c.tail.Load()
	var s *slot
claim:
	for {
		s = &c.slots[pos&c.mask]
		switch dif := int64(s.seq.Load() - pos); {
		case dif == 0:
			if c.tail.CompareAndSwap(pos, pos+1) {
				break claim
			}
			pos = c.tail.Load()
		case dif < 0:
			c.lost.Add(1) // full: the reader has not freed this slot yet
			return
		default: // another producer took pos
			pos = c.tail.Load()
		}
	}
	n := copy(s.buf, data)
	if vnet.Flags&frame.VNetNeedsCsum != 0 && !vnet.GSO() && n == len(data) {
		frame.FinishChecksum(s.buf[:n], &vnet)
	}
	s.rec = Record{Time: now, Port: port, Dir: d, Drop: drop, Note: note, OrigLen: len(data), Data: s.buf[:n]}
	s.seq.Store(pos + 1)
	c.taken.Add(1)
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// get copies the next record into rec, reusing rec.Data's memory, and
// frees its slot. It reports false when the ring is empty.
func (c *Capture) get(rec *Record) bool {
	s := &c.slots[c.head&c.mask]
	if s.seq.Load() != c.head+1 {
		return false
	}
	data := append(rec.Data[:0], s.rec.Data...)
	*rec = s.rec
	rec.Data = data
	s.rec = Record{}
	s.seq.Store(c.head + c.mask + 1)
	c.head++
	return true
}

// Read waits for the next record and copies it into rec (rec.Data's
// memory is reused). It returns ctx's error when ctx ends first, and an
// *EndError when the capture has ended and nothing is left to read.
// Read must not be called concurrently.
func (c *Capture) Read(ctx context.Context, rec *Record) error {
	for {
		if c.get(rec) {
			return nil
		}
		select {
		case <-c.wake:
		case <-c.done:
			if c.get(rec) {
				return nil
			}
			return &EndError{Reason: c.reason}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// TryRead is Read without waiting: it reports whether rec was filled.
func (c *Capture) TryRead(rec *Record) bool { return c.get(rec) }

// Done is closed when the capture has ended (Close, or the mirror's Close).
func (c *Capture) Done() <-chan struct{} { return c.done }

// Reason says why the capture ended; empty while it runs.
func (c *Capture) Reason() string {
	select {
	case <-c.done:
		return c.reason
	default:
		return ""
	}
}

// Taken returns how many frames the capture has taken into its ring.
func (c *Capture) Taken() uint64 { return c.taken.Load() }

// Lost returns how many matching frames were lost because the reader was
// too slow (the ring was full).
func (c *Capture) Lost() uint64 { return c.lost.Load() }

// ID returns the capture's ID, unique within its mirror.
func (c *Capture) ID() uint64 { return c.id }

// SnapLen returns the capture's snap length.
func (c *Capture) SnapLen() int { return c.snap }

// Close stops the capture: no more frames are taken. What is in the ring
// can still be read.
func (c *Capture) Close() {
	c.m.remove(c)
	c.end("stopped")
}

func (c *Capture) end(reason string) {
	c.endOnce.Do(func() {
		c.reason = reason
		close(c.done)
	})
}
