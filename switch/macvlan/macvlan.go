// Package macvlan is switchyard's macvlan engine: children (endpoints)
// with MAC addresses of their own share one parent interface, as the
// kernel's macvlan devices share a lower device, and frames move between
// them by the kernel's rules for the four modes (drivers/net/macvlan.c):
//
//   - from the parent (the wire), unicast goes to the child that has the
//     destination MAC (in passthru mode, to the one child whatever the
//     destination); anything else is left to the parent's own stack.
//     Broadcast and multicast go to the children as macvlan_multicast_rx
//     has it: from an outside source to every child; with the source MAC of
//     a VEPA child to the VEPA and bridge children but that one; of a
//     bridge child to the VEPA children but that one (the bridge children
//     had it on the way out); of a private or passthru child back to that
//     child only.
//   - from a child in bridge mode, unicast to another bridge child is
//     delivered directly and never reaches the wire; broadcast and
//     multicast go to the other bridge children and once to the wire.
//   - from a child in VEPA, private or passthru mode, everything goes to
//     the wire; what an upstream switch sends back (hairpin) arrives as
//     from the wire. Hairpinned unicast is delivered by destination MAC in
//     every mode, private too: the kernel checks the source only of
//     broadcast and multicast.
//
// As in the kernel, a child whose link is down (SetChildUp) is as good as
// absent: nothing is delivered to it. Broadcast always reaches a child,
// multicast only for groups on its multicast list (SetChildMulticast), or
// every group when it is promiscuous or allmulti; the kernel's filter is a
// hash, ours is exact (mcfilter.go).
//
// Modes are per child, as in the kernel; a passthru child needs the parent
// alone. The parent's own stack and the children never talk directly.
// A host port (ChildConfig.Host) is the opt-in exception: an interface
// for the parent's host that every child reaches directly, whatever its
// mode, and that reaches every child.
//
// Like the bridge, every port has one RX goroutine that runs a batch to
// completion: read, decide, stage per egress port (port.Stage), one Write
// per egress port. The child table is an immutable snapshot swapped
// atomically, so forwarding takes no lock.
package macvlan

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/switch/frame"
	"github.com/switchyard-net/switchyard/switch/port"
)

// Mode is a child's macvlan mode.
type Mode uint8

// Modes, as the kernel's IFLA_MACVLAN_MODE.
const (
	Bridge Mode = iota + 1
	Private
	VEPA
	Passthru
)

var modeNames = [...]string{Bridge: "bridge", Private: "private", VEPA: "vepa", Passthru: "passthru"}

func (m Mode) String() string {
	if m >= Bridge && m <= Passthru {
		return modeNames[m]
	}
	return "unknown"
}

// ParseMode parses a mode name: bridge, private, vepa or passthru.
func ParseMode(s string) (Mode, error) {
	for m := Bridge; m <= Passthru; m++ {
		if modeNames[m] == s {
			return m, nil
		}
	}
	return 0, fmt.Errorf("unknown macvlan mode %q; want bridge, private, vepa or passthru", s)
}

var (
	// ErrNoPort is returned for a child name the switch does not have.
	ErrNoPort = errors.New("no such port")
	// ErrPortExists is returned by AddChild for a name already in use.
	ErrPortExists = errors.New("port already exists")
	// ErrClosed is returned by calls on a closed switch.
	ErrClosed = errors.New("macvlan switch closed")
	// ErrBadMAC is returned for a zero, multicast or broadcast child MAC.
	ErrBadMAC = errors.New("not a usable unicast MAC")
	// ErrMACInUse is returned for a child MAC that the parent or another
	// child has.
	ErrMACInUse = errors.New("MAC in use")
	// ErrPassthruBusy is returned when a passthru child would share the
	// parent with another child.
	ErrPassthruBusy = errors.New("passthru needs the parent alone")
	// ErrBadMode is returned for a mode that is not one of the four.
	ErrBadMode = errors.New("unknown mode")
)

// ParentPort is the parent's name in port listings and OnPortGone.
const ParentPort = "parent"

// Config sets up a switch. A nil *Config means all defaults.
type Config struct {
	Logger *zap.Logger // default: no logging
	// OnPortGone is called (from its own goroutine) after a child whose
	// link disappeared has been removed, or with ParentPort when the
	// parent's link disappeared (the children stay; frames to the wire
	// are dropped as port_gone).
	OnPortGone func(name string, err error)
}

// ChildConfig describes a child.
type ChildConfig struct {
	MAC  frame.MAC
	Mode Mode
	// Host makes the child the parent host's path to the children (see
	// the package comment): reached directly from every child, reaching
	// every child directly. Its Mode must be Bridge.
	Host bool
}

// child is a port as the switch holds it. Its fields do not change after
// AddChild but for the MAC, which is read from the table's snapshot, and
// for the link state and multicast filter, which the forwarding path
// loads atomically.
type child struct {
	port.Egress
	name string
	mode Mode
	host bool
	done chan struct{} // closed when the RX goroutine has returned

	// rx is what the child takes: nil while it is up with no multicast
	// filter, the common case, which costs one load to check.
	rx atomic.Pointer[rxState]
}

// rxState is a child's link state and multicast filter; immutable once
// published, replaced under Switch.mu.
type rxState struct {
	down bool      // the child's link is down: nothing is delivered to it
	mc   *mcFilter // nil: every group passes (the list is not known)
}

func (c *child) isDown() bool {
	r := c.rx.Load()
	return r != nil && r.down
}

// acceptsMcast reports whether c takes a broadcast or multicast frame to
// dst, as macvlan_broadcast decides once the mode has let it through: a
// down child is not in the kernel's hash, and a group must pass the
// child's filter. A refusal is counted on c.
func (c *child) acceptsMcast(dst frame.MAC) bool {
	r := c.rx.Load()
	return r == nil || c.acceptsMcastIn(r, dst)
}

// acceptsMcastIn is acceptsMcast's part for a child with a state, kept
// apart so that the common case inlines.
func (c *child) acceptsMcastIn(r *rxState, dst frame.MAC) bool {
	switch {
	case r.down:
		c.C.Drops[DropChildDown].Add(1)
		return false
	case !r.mc.has(dst):
		c.C.Drops[DropMcastFilter].Add(1)
		return false
	}
	return true
}

// setRxLocked publishes a child's new state; Switch.mu is held.
func (c *child) setRxLocked(down bool, mc *mcFilter) {
	if !down && mc == nil {
		c.rx.Store(nil)
		return
	}
	c.rx.Store(&rxState{down: down, mc: mc})
}

// rxLocked returns a child's state; Switch.mu is held.
func (c *child) rxLocked() rxState {
	if r := c.rx.Load(); r != nil {
		return *r
	}
	return rxState{}
}

// lookup returns the child with MAC m that is up, as macvlan_hash_lookup
// finds only open devices, or nil.
func (t *table) lookup(m frame.MAC) *child {
	if c := t.byMAC[m]; c != nil && !c.isDown() {
		return c
	}
	return nil
}

// table is an immutable snapshot of the children.
type table struct {
	byID     []*child // by egress ID; 0 is the parent
	byMAC    map[frame.MAC]*child
	macOf    map[*child]frame.MAC
	list     []*child // every child, in ID order
	hosts    []*child // the host ports
	passthru *child   // the passthru child, when there is one
}

// Switch is one parent with its children. Its methods are safe for
// concurrent use.
type Switch struct {
	log  *zap.Logger
	gone func(string, error)

	parent *child // ID 0
	tab    atomic.Pointer[table]

	mu        sync.Mutex // guards the fields below and serialises table changes
	parentMAC frame.MAC
	byName    map[string]*child
	macs      map[*child]frame.MAC
	freeIDs   []int
	nextID    int
	closed    bool
}

// New returns a switch over parent, whose own MAC is parentMAC, with no
// children, and starts forwarding the parent's frames. The switch owns
// parent from now on and closes it on Close.
func New(parent port.Port, parentMAC frame.MAC, cfg *Config) *Switch {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	s := &Switch{
		log:       c.Logger,
		gone:      c.OnPortGone,
		parentMAC: parentMAC,
		byName:    map[string]*child{},
		macs:      map[*child]frame.MAC{},
		nextID:    1,
	}
	s.parent = &child{name: ParentPort, done: make(chan struct{})}
	s.parent.Init(0, parent)
	s.publishLocked()
	go s.rxLoop(s.parent)
	return s
}

// publishLocked makes a new snapshot of the children; s.mu is held (or
// the switch is not shared yet).
func (s *Switch) publishLocked() {
	t := &table{byID: make([]*child, s.nextID), byMAC: make(map[frame.MAC]*child, len(s.byName)),
		macOf: make(map[*child]frame.MAC, len(s.byName))}
	t.byID[0] = s.parent
	for _, c := range s.byName {
		t.byID[c.ID] = c
	}
	for _, c := range t.byID[1:] {
		if c == nil {
			continue
		}
		t.list = append(t.list, c)
		m := s.macs[c]
		t.byMAC[m] = c
		t.macOf[c] = m
		if c.host {
			t.hosts = append(t.hosts, c)
		}
		if c.mode == Passthru {
			t.passthru = c
		}
	}
	s.tab.Store(t)
}

// checkMACLocked checks that mac can be self's (nil: a new child's) in
// mode.
func (s *Switch) checkMACLocked(self *child, mac frame.MAC, mode Mode) error {
	if mac.IsZero() || mac.IsMulticast() {
		return fmt.Errorf("%w: %s", ErrBadMAC, mac)
	}
	if mac == s.parentMAC && mode != Passthru {
		return fmt.Errorf("%w: %s is the parent's MAC", ErrMACInUse, mac)
	}
	for c, m := range s.macs {
		if c != self && m == mac {
			return fmt.Errorf("%w: %s is child %q's MAC", ErrMACInUse, mac, c.name)
		}
	}
	return nil
}

// AddChild attaches p under name and starts forwarding its frames. The
// switch owns p from now on and closes it when the child is removed.
func (s *Switch) AddChild(name string, p port.Port, cc ChildConfig) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if name == ParentPort {
		return fmt.Errorf("macvlan: add child %q: %w (the parent's name)", name, ErrPortExists)
	}
	if _, ok := s.byName[name]; ok {
		return fmt.Errorf("macvlan: add child %q: %w", name, ErrPortExists)
	}
	if cc.Mode < Bridge || cc.Mode > Passthru {
		return fmt.Errorf("macvlan: add child %q: %w %d", name, ErrBadMode, cc.Mode)
	}
	if cc.Host && cc.Mode != Bridge {
		return fmt.Errorf("macvlan: add child %q: a host port is in bridge mode, not %s: %w", name, cc.Mode, ErrBadMode)
	}
	if t := s.tab.Load(); t.passthru != nil || (cc.Mode == Passthru && len(t.list) > 0) {
		return fmt.Errorf("macvlan: add child %q: %w", name, ErrPassthruBusy)
	}
	if err := s.checkMACLocked(nil, cc.MAC, cc.Mode); err != nil {
		return fmt.Errorf("macvlan: add child %q: %w", name, err)
	}
	c := &child{name: name, mode: cc.Mode, host: cc.Host, done: make(chan struct{})}
	id := s.nextID
	if n := len(s.freeIDs); n > 0 {
		id = s.freeIDs[n-1]
		s.freeIDs = s.freeIDs[:n-1]
	} else {
		s.nextID++
	}
	c.Init(id, p)
	s.byName[name] = c
	s.macs[c] = cc.MAC
	s.publishLocked()
	go s.rxLoop(c)
	s.log.Debug("child added", zap.String("port", name), zap.Stringer("mac", cc.MAC), zap.Stringer("mode", cc.Mode))
	return nil
}

// RemoveChild detaches the named child: it stops forwarding to and from
// it, closes its port and waits for its RX goroutine.
func (s *Switch) RemoveChild(name string) error {
	s.mu.Lock()
	c, ok := s.byName[name]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("macvlan: remove child %q: %w", name, ErrNoPort)
	}
	delete(s.byName, name)
	delete(s.macs, c)
	s.publishLocked()
	s.mu.Unlock()

	err := c.Port.Close()
	<-c.done

	s.mu.Lock()
	s.freeIDs = append(s.freeIDs, c.ID)
	s.mu.Unlock()
	s.log.Debug("child removed", zap.String("port", name))
	return err
}

// SetChildMAC changes the named child's MAC, as a MAC change on a macvlan
// device re-keys it in the kernel's hash.
func (s *Switch) SetChildMAC(name string, mac frame.MAC) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.byName[name]
	if !ok {
		return fmt.Errorf("macvlan: set MAC of %q: %w", name, ErrNoPort)
	}
	if err := s.checkMACLocked(c, mac, c.mode); err != nil {
		return fmt.Errorf("macvlan: set MAC of %q: %w", name, err)
	}
	s.macs[c] = mac
	s.publishLocked()
	return nil
}

// SetChildUp records the named child's link state. A child that is down
// gets nothing, as a macvlan device that is down leaves the kernel's hash:
// unicast for it from the wire is dropped (counted as child_down on it), a
// bridge sibling's unicast for it goes to the wire, floods skip it
// (counted likewise). Frames it sent before going down are still
// forwarded. A new child is up.
func (s *Switch) SetChildUp(name string, up bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.byName[name]
	if !ok {
		return fmt.Errorf("macvlan: set link state of %q: %w", name, ErrNoPort)
	}
	c.setRxLocked(!up, c.rxLocked().mc)
	return nil
}

// SetChildMulticast sets the named child's multicast filter: with all
// (the child is promiscuous or allmulti) every group passes, otherwise
// only the groups listed (and broadcast). A new child has no filter and
// takes every group until the first call.
func (s *Switch) SetChildMulticast(name string, all bool, groups []frame.MAC) error {
	f := newMcFilter(all, groups)
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.byName[name]
	if !ok {
		return fmt.Errorf("macvlan: set multicast filter of %q: %w", name, ErrNoPort)
	}
	c.setRxLocked(c.rxLocked().down, f)
	return nil
}

// SetParentMAC records a change of the parent's MAC (in passthru mode the
// child's MAC change is applied to the parent).
func (s *Switch) SetParentMAC(mac frame.MAC) {
	s.mu.Lock()
	s.parentMAC = mac
	s.mu.Unlock()
}

// Counters is a snapshot of a port's forwarding counters.
type Counters port.FwdStats

// Dropped returns the count for one reason.
func (c Counters) Dropped(r Reason) uint64 { return c.Drops[r.String()] }

// PortInfo describes the parent or a child.
type PortInfo struct {
	Name     string `json:"name"`
	MAC      string `json:"mac,omitempty"`
	Mode     string `json:"mode,omitempty"` // children only
	Host     bool   `json:"host,omitempty"`
	Down     bool   `json:"down,omitempty"` // the child's link is down (SetChildUp)
	Offloads bool   `json:"offloads"`
	// Multicast is the child's multicast filter; nil when it has none
	// (every group passes).
	Multicast *Multicast  `json:"multicast,omitempty"`
	Counters  Counters    `json:"counters"`
	IO        *port.Stats `json:"io,omitempty"` // the backend's own counters, where it keeps them
}

// Multicast describes a child's multicast filter.
type Multicast struct {
	All    bool     `json:"all,omitempty"`    // promiscuous or allmulti: every group
	Groups []string `json:"groups,omitempty"` // else these (and broadcast)
}

func info(c *child, mac frame.MAC) PortInfo {
	var rx rxState
	if r := c.rx.Load(); r != nil {
		rx = *r
	}
	pi := PortInfo{Name: c.name, Host: c.host, Down: rx.down, Offloads: c.Offloads, Counters: Counters(c.C.Snapshot(reasonNames[:]))}
	if f := rx.mc; f != nil {
		pi.Multicast = &Multicast{All: f.all}
		for _, g := range f.macs {
			pi.Multicast.Groups = append(pi.Multicast.Groups, g.String())
		}
	}
	if !mac.IsZero() {
		pi.MAC = mac.String()
	}
	if c.mode != 0 {
		pi.Mode = c.mode.String()
	}
	if st, ok := c.Port.(port.Statser); ok {
		x := st.Stats()
		pi.IO = &x
	}
	return pi
}

// Children lists the children sorted by name.
func (s *Switch) Children() []PortInfo {
	t := s.tab.Load()
	out := make([]PortInfo, 0, len(t.list))
	for _, c := range t.list {
		out = append(out, info(c, t.macOf[c]))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Child describes one child.
func (s *Switch) Child(name string) (PortInfo, error) {
	t := s.tab.Load()
	for _, c := range t.list {
		if c.name == name {
			return info(c, t.macOf[c]), nil
		}
	}
	return PortInfo{}, fmt.Errorf("macvlan: child %q: %w", name, ErrNoPort)
}

// Parent describes the parent port.
func (s *Switch) Parent() PortInfo {
	s.mu.Lock()
	m := s.parentMAC
	s.mu.Unlock()
	return info(s.parent, m)
}

// Close removes every child, closes the parent's port and stops the
// switch.
func (s *Switch) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	names := make([]string, 0, len(s.byName))
	for n := range s.byName {
		names = append(names, n)
	}
	s.mu.Unlock()
	for _, n := range names {
		_ = s.RemoveChild(n)
	}
	err := s.parent.Port.Close()
	<-s.parent.done
	return err
}
