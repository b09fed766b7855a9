// Package ipam hands out IP addresses to the endpoints of networks and keeps
// them in a state file that survives a crash at any moment.
//
// Policies:
//   - A network has at most one IPv4 and one IPv6 subnet; with none given it
//     gets the first of Docker's default pools (DefaultPools) that overlaps no
//     existing network (nor a prefix given to SetAvoid).
//   - Never handed out: the gateway (default: the first usable address of the
//     subnet; none with NoGateway), aux addresses, the IPv4 network and
//     broadcast addresses and the IPv6 subnet-router anycast address (host
//     part all zero). A /31 or /127 uses both of its addresses and a /32 or
//     /128 its only one; there the default gateway is the first address, so
//     a /32 or /128 network only has room for an endpoint with NoGateway.
//   - Allocate gives one address per subnet. Without a requested address it
//     takes the next free one inside the ip-range (or the subnet) after the
//     last one it handed out, wrapping round at the end, like Docker: a
//     released address is reused as late as possible. A requested address may
//     be anywhere in the subnet, inside the ip-range or not, and is either
//     given or refused with an error; it does not move the round-robin
//     cursor. An owner holds one address per subnet and is refused a second
//     Allocate (ErrDuplicateOwner) until Release.
//   - The cost of an allocation grows with the number of leases in the
//     subnet, not with its size: leases are a sorted set searched for the
//     next free address.
//
// Errors: every error is one line that names the problem and the values and
// wraps one of the sentinel errors below (errors.Is). A call that fails leaves
// the state, in memory and in the file, as it was. One exception: if the
// directory cannot be synced after the new state file has been renamed into
// place, the change is kept (it is in the file), the error is returned and
// every later change is refused until the state is reopened.
//
// Persistence: every change is written to a temporary file in the state
// file's directory, fsynced, renamed over the state file, and the directory
// is fsynced, before the call returns.
package ipam

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// Sentinel errors; every error of the package wraps one of them.
var (
	ErrOverlap          = errors.New("ipam: subnets overlap")
	ErrOutsideSubnet    = errors.New("ipam: address outside subnet")
	ErrRangeNotInSubnet = errors.New("ipam: ip-range not inside subnet")
	ErrAuxCollision     = errors.New("ipam: aux address collision")
	ErrTaken            = errors.New("ipam: address taken")
	ErrExhausted        = errors.New("ipam: pool exhausted")
	ErrUnknownNetwork   = errors.New("ipam: unknown network")
	ErrDuplicateNetwork = errors.New("ipam: duplicate network")
	ErrCorruptState     = errors.New("ipam: corrupt state file")
	ErrInvalid          = errors.New("ipam: invalid argument")

	// ErrDuplicateOwner: the owner already holds addresses in the network.
	ErrDuplicateOwner = errors.New("ipam: owner already has addresses")
	// ErrNotAllocated: Release or ReleaseAddr of something that holds no lease.
	ErrNotAllocated = errors.New("ipam: not allocated")
	// ErrInUse: RemoveNetwork of a network that still has leases.
	ErrInUse = errors.New("ipam: network in use")
	// ErrPersist: the state could not be saved.
	ErrPersist = errors.New("ipam: cannot save state")
)

// ipamError is one line of text wrapping a sentinel.
type ipamError struct {
	msg  string
	kind error
	err  error // underlying cause, if any
}

func (e *ipamError) Error() string { return e.msg }

func (e *ipamError) Unwrap() []error {
	if e.err != nil {
		return []error{e.kind, e.err}
	}
	return []error{e.kind}
}

func errorf(kind error, format string, args ...any) error {
	return &ipamError{msg: "ipam: " + fmt.Sprintf(format, args...), kind: kind}
}

// Lease is an address held by an owner.
type Lease struct {
	Addr  netip.Addr `json:"addr"`
	Owner string     `json:"owner"`
}

type network struct {
	cfg     Config // effective
	pools   []*pool
	byOwner map[string][]netip.Addr
}

func newNetwork(cfg Config) *network {
	n := &network{cfg: cfg, byOwner: map[string][]netip.Addr{}}
	for _, sc := range cfg.Subnets {
		n.pools = append(n.pools, newPool(sc, cfg.Aux))
	}
	return n
}

func (n *network) poolFor(a netip.Addr) (int, *pool) {
	for i, p := range n.pools {
		if p.cfg.Subnet.Contains(a) {
			return i, p
		}
	}
	return -1, nil
}

// IPAM is the address manager of all networks, backed by one state file. It
// is safe for concurrent use.
type IPAM struct {
	mu     sync.Mutex // guards everything below; held across the file write
	path   string
	nets   map[string]*network
	avoid  []netip.Prefix
	broken error // set when the file may hold a state memory does not know is durable

	// test seams
	noSync bool                     // skip fsync (fuzzing speed); never in production
	hook   func(stage string) error // called at "write" (before rename) and "dirsync"
}

// Open loads the state file at path, or creates it (and its directory) when
// it does not exist. A file that cannot be parsed or does not make sense is
// reported with an error wrapping ErrCorruptState that names the path; it is
// never reset. Temporary files left by a crash in the middle of a save are
// removed.
func Open(path string) (*IPAM, error) {
	m := &IPAM{path: path, nets: map[string]*network{}}
	created, err := m.load()
	if err != nil {
		return nil, err
	}
	if created {
		if _, err := m.persistLocked(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// SetAvoid sets prefixes the choice of a default pool keeps clear of, besides
// the existing networks (e.g. the host's routes). It is not persisted and does
// not restrict explicit subnets.
func (m *IPAM) SetAvoid(prefixes []netip.Prefix) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.avoid = append([]netip.Prefix(nil), prefixes...)
}

// Path returns the state file's path.
func (m *IPAM) Path() string { return m.path }

// AddNetwork validates cfg, fills in the defaults (a default pool when no
// subnet is given, the gateway), checks that no subnet overlaps another
// network's, persists the network and returns its effective config.
func (m *IPAM) AddNetwork(name string, cfg Config) (Config, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.usableLocked(); err != nil {
		return Config{}, err
	}
	if err := checkName("network name", name); err != nil {
		return Config{}, err
	}
	if _, ok := m.nets[name]; ok {
		return Config{}, errorf(ErrDuplicateNetwork, "network %q already exists", name)
	}
	eff, err := cfg.effective()
	if err != nil {
		return Config{}, err
	}
	if len(eff.Subnets) == 0 {
		p, err := m.pickPoolLocked()
		if err != nil {
			return Config{}, err
		}
		sc := SubnetConfig{Subnet: p}
		if !eff.NoGateway {
			sc.Gateway = firstHost(p)
		}
		eff.Subnets = []SubnetConfig{sc}
	} else {
		for _, sc := range eff.Subnets {
			if other, op, ok := m.overlapLocked(sc.Subnet); ok {
				return Config{}, errorf(ErrOverlap, "subnet %s overlaps network %q (%s)", sc.Subnet, other, op)
			}
		}
	}
	m.nets[name] = newNetwork(eff)
	if err := m.commitLocked(func() { delete(m.nets, name) }); err != nil {
		return Config{}, err
	}
	return eff.clone(), nil
}

// overlapLocked returns the first network (by name) with a subnet overlapping p.
func (m *IPAM) overlapLocked(p netip.Prefix) (string, netip.Prefix, bool) {
	for _, name := range m.namesLocked() {
		for _, sc := range m.nets[name].cfg.Subnets {
			if sc.Subnet.Overlaps(p) {
				return name, sc.Subnet, true
			}
		}
	}
	return "", netip.Prefix{}, false
}

func (m *IPAM) pickPoolLocked() (netip.Prefix, error) {
	pools := DefaultPools()
next:
	for _, p := range pools {
		if _, _, ok := m.overlapLocked(p); ok {
			continue
		}
		for _, a := range m.avoid {
			if a.Overlaps(p) {
				continue next
			}
		}
		return p, nil
	}
	return netip.Prefix{}, errorf(ErrExhausted, "no free default address pool: all %d (%s to %s) overlap existing networks or avoided prefixes; give --subnet",
		len(pools), pools[0], pools[len(pools)-1])
}

// RemoveNetwork removes a network that holds no leases.
func (m *IPAM) RemoveNetwork(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.usableLocked(); err != nil {
		return err
	}
	n, err := m.netLocked(name)
	if err != nil {
		return err
	}
	if len(n.byOwner) > 0 {
		owners := slices.Sorted(maps.Keys(n.byOwner))
		more := ""
		if len(owners) > 3 {
			owners, more = owners[:3], ", ..."
		}
		return errorf(ErrInUse, "network %q still has addresses of %d owner(s) (%s%s); release them first",
			name, len(n.byOwner), quoteList(owners), more)
	}
	delete(m.nets, name)
	return m.commitLocked(func() { m.nets[name] = n })
}

// Network returns the effective config of a network and its leases, ordered
// by subnet then address.
func (m *IPAM) Network(name string) (Config, []Lease, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.netLocked(name)
	if err != nil {
		return Config{}, nil, err
	}
	return n.cfg.clone(), n.leases(), nil
}

func (n *network) leases() []Lease {
	out := []Lease{}
	for _, p := range n.pools {
		for _, a := range p.taken {
			out = append(out, Lease{Addr: a, Owner: p.owner[a]})
		}
	}
	return out
}

// Networks returns the names of all networks, sorted.
func (m *IPAM) Networks() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.namesLocked()
}

func (m *IPAM) namesLocked() []string {
	return slices.Sorted(maps.Keys(m.nets))
}

// Allocate gives owner one address in each subnet of the network, in the
// order of the config's subnets. want may name the address for some subnets
// (at most one per subnet); each is given or refused. The others are the
// next free addresses (see the package comment). Nothing is allocated unless
// everything is, and the leases are persisted before Allocate returns.
func (m *IPAM) Allocate(network, owner string, want []netip.Addr) ([]netip.Addr, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.usableLocked(); err != nil {
		return nil, err
	}
	n, err := m.netLocked(network)
	if err != nil {
		return nil, err
	}
	if err := checkName("owner", owner); err != nil {
		return nil, err
	}
	if have, ok := n.byOwner[owner]; ok {
		return nil, errorf(ErrDuplicateOwner, "owner %q already has %s in network %q; release it first", owner, addrList(have), network)
	}
	got := make([]netip.Addr, len(n.pools))
	for _, a := range want {
		if err := checkAddr("requested address", a); err != nil {
			return nil, err
		}
		i, p := n.poolFor(a)
		if p == nil {
			return nil, errorf(ErrOutsideSubnet, "requested address %s is outside the subnets of network %q (%s)", a, network, n.cfg.subnetList())
		}
		if got[i].IsValid() {
			return nil, errorf(ErrInvalid, "requested addresses %s and %s are both in subnet %s; one per subnet", got[i], a, p.cfg.Subnet)
		}
		if what := formReserved(p.cfg.Subnet, a); what != "" {
			return nil, errorf(ErrInvalid, "requested address %s is the %s of %s", a, what, p.cfg.Subnet)
		}
		if why := p.reserved[a]; why != "" {
			return nil, errorf(ErrTaken, "requested address %s in network %q is %s", a, network, why)
		}
		if o, ok := p.owner[a]; ok {
			return nil, errorf(ErrTaken, "requested address %s in network %q is already allocated to %q", a, network, o)
		}
		got[i] = a
	}
	auto := make([]bool, len(n.pools))
	for i, p := range n.pools {
		if got[i].IsValid() {
			continue
		}
		a, ok := p.nextFree()
		if !ok {
			return nil, errorf(ErrExhausted, "no free address left in %s of network %q", p.rangeText(), network)
		}
		got[i], auto[i] = a, true
	}

	oldLast := make([]netip.Addr, len(n.pools))
	for i, p := range n.pools {
		oldLast[i] = p.last
		p.add(got[i], owner)
		if auto[i] {
			p.last = got[i]
		}
	}
	n.byOwner[owner] = slices.Clone(got)
	err = m.commitLocked(func() {
		for i, p := range n.pools {
			p.remove(got[i])
			p.last = oldLast[i]
		}
		delete(n.byOwner, owner)
	})
	if err != nil {
		return nil, err
	}
	return got, nil
}

// Release releases all of owner's addresses in the network, persisted.
func (m *IPAM) Release(network, owner string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.usableLocked(); err != nil {
		return err
	}
	n, err := m.netLocked(network)
	if err != nil {
		return err
	}
	addrs, ok := n.byOwner[owner]
	if !ok {
		return errorf(ErrNotAllocated, "owner %q has no address in network %q", owner, network)
	}
	for _, a := range addrs {
		_, p := n.poolFor(a)
		p.remove(a)
	}
	delete(n.byOwner, owner)
	return m.commitLocked(func() {
		for _, a := range addrs {
			_, p := n.poolFor(a)
			p.add(a, owner)
		}
		n.byOwner[owner] = addrs
	})
}

// ReleaseAddr releases one leased address of the network, persisted.
func (m *IPAM) ReleaseAddr(network string, a netip.Addr) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.usableLocked(); err != nil {
		return err
	}
	n, err := m.netLocked(network)
	if err != nil {
		return err
	}
	if err := checkAddr("address", a); err != nil {
		return err
	}
	_, p := n.poolFor(a)
	if p == nil {
		return errorf(ErrOutsideSubnet, "address %s is outside the subnets of network %q (%s)", a, network, n.cfg.subnetList())
	}
	owner, ok := p.owner[a]
	if !ok {
		if why := p.reserved[a]; why != "" {
			return errorf(ErrNotAllocated, "address %s in network %q is %s, not a lease", a, network, why)
		}
		return errorf(ErrNotAllocated, "address %s is not allocated in network %q", a, network)
	}
	old := n.byOwner[owner]
	rest := slices.DeleteFunc(slices.Clone(old), func(b netip.Addr) bool { return b == a })
	p.remove(a)
	if len(rest) == 0 {
		delete(n.byOwner, owner)
	} else {
		n.byOwner[owner] = rest
	}
	return m.commitLocked(func() {
		p.add(a, owner)
		n.byOwner[owner] = old
	})
}

// Owners returns the owners holding addresses in the network, sorted; nil for
// an unknown network.
func (m *IPAM) Owners(network string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.nets[network]
	if !ok {
		return nil
	}
	return slices.Sorted(maps.Keys(n.byOwner))
}

func (m *IPAM) netLocked(name string) (*network, error) {
	n, ok := m.nets[name]
	if !ok {
		return nil, errorf(ErrUnknownNetwork, "no network %q", name)
	}
	return n, nil
}

func (m *IPAM) usableLocked() error {
	if m.broken != nil {
		return &ipamError{
			msg:  fmt.Sprintf("ipam: changes refused until %s is reopened: an earlier save may not be durable (%v)", m.path, m.broken),
			kind: ErrPersist, err: m.broken,
		}
	}
	return nil
}

// commitLocked saves the state as it is in memory. If the save fails before
// the new file is in place, undo restores memory to the old state and the
// error is returned; if it fails after, memory is kept (it matches the file)
// and the IPAM refuses further changes.
func (m *IPAM) commitLocked(undo func()) error {
	renamed, err := m.persistLocked()
	if err == nil {
		return nil
	}
	if renamed {
		m.broken = err
	} else {
		undo()
	}
	return err
}

func quoteList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}

func addrList(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}
