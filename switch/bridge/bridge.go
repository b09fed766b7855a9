// Package bridge is switchyard's learning bridge: frames read from a port are
// learned by source MAC, then sent to the one port their destination was
// learned on, or flooded to every other port when the destination is
// unknown, broadcast or multicast. Per-port flags give hairpin, isolation and
// flood control as the kernel bridge has them.
//
// Each port has one RX goroutine that runs a batch to completion: read,
// decide, stage per egress port, then one Write per egress port. The port
// set is an immutable snapshot swapped atomically, so forwarding takes no
// lock; the MAC table is sharded (see fdb).
package bridge

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/switch/fdb"
	"github.com/switchyard-net/switchyard/switch/port"
)

var (
	// ErrNoPort is returned for a port name the bridge does not have.
	ErrNoPort = errors.New("no such port")
	// ErrPortExists is returned by AddPort for a name already in use.
	ErrPortExists = errors.New("port already exists")
	// ErrClosed is returned by calls on a closed bridge.
	ErrClosed = errors.New("bridge closed")
)

// Config sets up a bridge. A nil *Config means all defaults.
type Config struct {
	Logger *zap.Logger      // default: no logging
	Clock  func() time.Time // default: time.Now; drives MAC ageing
	// Ageing, MACLimit and PortMACLimit are the MAC table's policy (see
	// fdb.Config: 0 means the default, 300 s and 65536 entries).
	Ageing       time.Duration
	MACLimit     int
	PortMACLimit int
	// SweepInterval is how often aged entries are removed from memory;
	// lookups ignore them anyway. Default 10 s; negative disables the sweeper.
	SweepInterval time.Duration
	// OnPortGone is called (from its own goroutine) after a port whose
	// link disappeared has been removed.
	OnPortGone func(name string, err error)
}

// Flags are a port's forwarding flags. The zero value is not the default:
// use DefaultFlags.
type Flags struct {
	Hairpin    bool `json:"hairpin"`     // frames may leave by the port they came in on
	Isolated   bool `json:"isolated"`    // reaches only non-isolated ports
	Flood      bool `json:"flood"`       // receives unknown unicast floods
	McastFlood bool `json:"mcast_flood"` // receives multicast floods
	BcastFlood bool `json:"bcast_flood"` // receives broadcast floods
	// NoLearning: source MACs of frames from the port are not learned
	// (the kernel's "learning off"), e.g. for a port that sends as a MAC
	// that lives on another port, as a gateway's uplink side does.
	NoLearning bool `json:"no_learning,omitempty"`
	// OwnMirror: the port shows captures what it reads itself, so the
	// bridge does not (a gateway's uplink side, which shows each frame
	// as it came off the wire and again after NAT).
	OwnMirror bool `json:"own_mirror,omitempty"`
}

// DefaultFlags are a new port's flags, as on a kernel bridge: no hairpin, not
// isolated, every kind of flood on.
func DefaultFlags() Flags { return Flags{Flood: true, McastFlood: true, BcastFlood: true} }

const (
	fHairpin uint32 = 1 << iota
	fIsolated
	fFlood
	fMcastFlood
	fBcastFlood
	fNoLearning
	fOwnMirror
)

func (f Flags) bits() uint32 {
	var b uint32
	for _, x := range []struct {
		on  bool
		bit uint32
	}{{f.Hairpin, fHairpin}, {f.Isolated, fIsolated}, {f.Flood, fFlood}, {f.McastFlood, fMcastFlood}, {f.BcastFlood, fBcastFlood}, {f.NoLearning, fNoLearning}, {f.OwnMirror, fOwnMirror}} {
		if x.on {
			b |= x.bit
		}
	}
	return b
}

func flagsFromBits(b uint32) Flags {
	return Flags{
		Hairpin:    b&fHairpin != 0,
		Isolated:   b&fIsolated != 0,
		Flood:      b&fFlood != 0,
		McastFlood: b&fMcastFlood != 0,
		BcastFlood: b&fBcastFlood != 0,
		NoLearning: b&fNoLearning != 0,
		OwnMirror:  b&fOwnMirror != 0,
	}
}

// bport is a port as the bridge holds it.
type bport struct {
	port.Egress // ID, Port, Offloads and the forwarding counters
	name        string
	flags       atomic.Uint32
	done        chan struct{} // closed when the RX goroutine has returned
}

// portSet is an immutable snapshot of the ports.
type portSet struct {
	byID []*bport // index: port id; nil where free
	list []*bport // the same ports, dense, in id order
}

// Bridge is a learning bridge. Its methods are safe for concurrent use.
type Bridge struct {
	log   *zap.Logger
	clock func() time.Time
	fdb   *fdb.Table
	gone  func(string, error)

	set    atomic.Pointer[portSet]
	mirror atomic.Pointer[mirrorBox] // nil unless a capture runs (see SetMirror)

	mu      sync.Mutex // guards the fields below and serialises port set changes
	byName  map[string]*bport
	freeIDs []int
	nextID  int
	closed  bool

	stop chan struct{}
	wg   sync.WaitGroup // the sweeper
}

// New returns a bridge with no ports.
func New(cfg *Config) *Bridge {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = 10 * time.Second
	}
	b := &Bridge{
		log:    c.Logger,
		clock:  c.Clock,
		fdb:    fdb.New(&fdb.Config{Ageing: c.Ageing, Limit: c.MACLimit, PortLimit: c.PortMACLimit}),
		gone:   c.OnPortGone,
		byName: make(map[string]*bport),
		stop:   make(chan struct{}),
	}
	b.set.Store(&portSet{})
	if c.SweepInterval > 0 {
		b.wg.Add(1)
		go b.sweep(c.SweepInterval)
	}
	return b
}

func (b *Bridge) sweep(every time.Duration) {
	defer b.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.fdb.Age(b.clock().UnixNano())
		}
	}
}

// AddPort attaches p under name with flags and starts forwarding its
// frames. The bridge owns p from now on and closes it when the port is
// removed.
func (b *Bridge) AddPort(name string, p port.Port, flags Flags) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	if _, ok := b.byName[name]; ok {
		return fmt.Errorf("bridge: add port %q: %w", name, ErrPortExists)
	}
	bp := &bport{name: name, done: make(chan struct{})}
	bp.Init(0, p)
	bp.Name = name
	bp.flags.Store(flags.bits())
	if n := len(b.freeIDs); n > 0 {
		bp.ID = b.freeIDs[n-1]
		b.freeIDs = b.freeIDs[:n-1]
	} else {
		bp.ID = b.nextID
		b.nextID++
	}
	b.byName[name] = bp
	b.publishLocked()
	go b.rxLoop(bp)
	b.log.Debug("port added", zap.String("port", name), zap.Int("id", bp.ID))
	return nil
}

// publishLocked makes a new snapshot of byName; b.mu is held.
func (b *Bridge) publishLocked() {
	s := &portSet{byID: make([]*bport, b.nextID)}
	for _, bp := range b.byName {
		s.byID[bp.ID] = bp
	}
	for _, bp := range s.byID {
		if bp != nil {
			s.list = append(s.list, bp)
		}
	}
	b.set.Store(s)
}

// RemovePort detaches the named port: it stops forwarding to and from it,
// closes it, waits for its RX goroutine and flushes its MAC entries.
func (b *Bridge) RemovePort(name string) error {
	b.mu.Lock()
	bp, ok := b.byName[name]
	if !ok {
		b.mu.Unlock()
		return fmt.Errorf("bridge: remove port %q: %w", name, ErrNoPort)
	}
	delete(b.byName, name)
	b.publishLocked()
	b.mu.Unlock()

	err := bp.Port.Close()
	<-bp.done
	b.fdb.FlushPort(bp.ID)

	b.mu.Lock()
	b.freeIDs = append(b.freeIDs, bp.ID)
	b.mu.Unlock()
	b.log.Debug("port removed", zap.String("port", name))
	return err
}

// SetFlags replaces the named port's flags.
func (b *Bridge) SetFlags(name string, f Flags) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	bp, ok := b.byName[name]
	if !ok {
		return fmt.Errorf("bridge: set flags on %q: %w", name, ErrNoPort)
	}
	bp.flags.Store(f.bits())
	return nil
}

// AddStaticMAC pins mac to the named port: it never ages or moves, and a
// frame from mac arriving on another port is dropped as looped.
func (b *Bridge) AddStaticMAC(name string, mac fdb.MAC) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	bp, ok := b.byName[name]
	if !ok {
		return fmt.Errorf("bridge: static MAC on %q: %w", name, ErrNoPort)
	}
	return b.fdb.AddStatic(mac, bp.ID)
}

// SetAgeing changes the MAC ageing time (0: default, negative: never).
func (b *Bridge) SetAgeing(d time.Duration) { b.fdb.SetAgeing(d) }

// Ageing returns the MAC ageing time.
func (b *Bridge) Ageing() time.Duration { return b.fdb.Ageing() }

// SetMACLimits changes the global and per-port learning limits (see fdb.Config).
func (b *Bridge) SetMACLimits(limit, perPort int) { b.fdb.SetLimits(limit, perPort) }

// FlushFDB removes every learned MAC entry.
func (b *Bridge) FlushFDB() int { return b.fdb.Flush() }

// FDBStats returns the MAC table's counters.
func (b *Bridge) FDBStats() fdb.Stats { return b.fdb.Stats() }

// FDBEntry is one MAC table row with its port's name.
type FDBEntry struct {
	MAC    string        `json:"mac"`
	Port   string        `json:"port"`
	Static bool          `json:"static"`
	Age    time.Duration `json:"age_ns"`
}

// FDB lists the MAC table, sorted by port name then MAC.
func (b *Bridge) FDB() []FDBEntry {
	set := b.set.Load()
	var out []FDBEntry
	for _, e := range b.fdb.Entries(b.clock().UnixNano()) {
		name := "?"
		if e.Port < len(set.byID) && set.byID[e.Port] != nil {
			name = set.byID[e.Port].name
		}
		out = append(out, FDBEntry{MAC: fdb.FormatMAC(e.MAC), Port: name, Static: e.Static, Age: e.Age})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Port != out[j].Port {
			return out[i].Port < out[j].Port
		}
		return out[i].MAC < out[j].MAC
	})
	return out
}

// PortInfo describes one port.
type PortInfo struct {
	Name     string      `json:"name"`
	Flags    Flags       `json:"flags"`
	Offloads bool        `json:"offloads"`
	Counters Counters    `json:"counters"`
	IO       *port.Stats `json:"io,omitempty"` // the backend's own counters, where it keeps them
}

// Ports lists the ports sorted by name.
func (b *Bridge) Ports() []PortInfo {
	set := b.set.Load()
	out := make([]PortInfo, 0, len(set.list))
	for _, bp := range set.list {
		pi := PortInfo{Name: bp.name, Flags: flagsFromBits(bp.flags.Load()), Offloads: bp.Offloads, Counters: bp.snapshotCounters()}
		if s, ok := bp.Port.(port.Statser); ok {
			st := s.Stats()
			pi.IO = &st
		}
		out = append(out, pi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Port returns one port's description.
func (b *Bridge) Port(name string) (PortInfo, error) {
	for _, pi := range b.Ports() {
		if pi.Name == name {
			return pi, nil
		}
	}
	return PortInfo{}, fmt.Errorf("bridge: port %q: %w", name, ErrNoPort)
}

// Close removes every port and stops the bridge.
func (b *Bridge) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	names := make([]string, 0, len(b.byName))
	for n := range b.byName {
		names = append(names, n)
	}
	b.mu.Unlock()
	for _, n := range names {
		_ = b.RemovePort(n)
	}
	close(b.stop)
	b.wg.Wait()
	return nil
}
