package ipam

import (
	"fmt"
	"net/netip"
	"slices"
)

// pool allocates the addresses of one subnet. It keeps the leased addresses
// as a sorted slice and searches it for the next free one, so its cost grows
// with the number of leases, never with the size of the subnet (an IPv6 /64
// costs what an IPv4 /24 does).
type pool struct {
	cfg      SubnetConfig          // effective: gateway filled unless the network has none
	lo, hi   netip.Addr            // allocatable bounds: the ip-range, or the whole subnet
	reserved map[netip.Addr]string // never handed out: what each one is
	taken    []netip.Addr          // leased, sorted
	owner    map[netip.Addr]string // leased address -> owner
	last     netip.Addr            // last address handed out next-free; zero = none yet
}

func newPool(sc SubnetConfig, aux map[string]netip.Addr) *pool {
	r := sc.IPRange
	if !r.IsValid() {
		r = sc.Subnet
	}
	p := &pool{
		cfg:      sc,
		lo:       r.Addr(),
		hi:       lastAddr(r),
		reserved: map[netip.Addr]string{},
		owner:    map[netip.Addr]string{},
	}
	for _, a := range []netip.Addr{sc.Subnet.Addr(), lastAddr(sc.Subnet)} {
		if what := formReserved(sc.Subnet, a); what != "" {
			p.reserved[a] = "the " + what + " of " + sc.Subnet.String()
		}
	}
	if sc.Gateway.IsValid() {
		p.reserved[sc.Gateway] = "the gateway"
	}
	for n, a := range aux {
		if sc.Subnet.Contains(a) {
			p.reserved[a] = fmt.Sprintf("reserved as aux address %q", n)
		}
	}
	return p
}

// inRange reports whether a is inside the allocatable bounds.
func (p *pool) inRange(a netip.Addr) bool {
	return p.lo.Compare(a) <= 0 && a.Compare(p.hi) <= 0
}

// nextFree returns the first free address after the last one handed out,
// wrapping to the start of the range (round-robin, as Docker does), so a
// released address is reused as late as possible.
func (p *pool) nextFree() (netip.Addr, bool) {
	start := p.lo
	if p.last.IsValid() && p.inRange(p.last) && p.last != p.hi {
		start = p.last.Next()
	}
	if a, ok := p.freeIn(start, p.hi); ok {
		return a, true
	}
	if start == p.lo {
		return netip.Addr{}, false
	}
	return p.freeIn(p.lo, start.Prev())
}

// freeIn returns the lowest free address in [from, to]. It steps over
// reserved and taken addresses only, so it costs O(log n + k) for k
// addresses skipped.
func (p *pool) freeIn(from, to netip.Addr) (netip.Addr, bool) {
	i, _ := slices.BinarySearchFunc(p.taken, from, netip.Addr.Compare)
	for a := from; ; a = a.Next() {
		switch {
		case p.reserved[a] != "":
		case i < len(p.taken) && p.taken[i] == a:
			i++
		default:
			return a, true
		}
		if a == to {
			return netip.Addr{}, false
		}
	}
}

func (p *pool) add(a netip.Addr, owner string) {
	i, _ := slices.BinarySearchFunc(p.taken, a, netip.Addr.Compare)
	p.taken = slices.Insert(p.taken, i, a)
	p.owner[a] = owner
}

func (p *pool) remove(a netip.Addr) {
	i, found := slices.BinarySearchFunc(p.taken, a, netip.Addr.Compare)
	if found {
		p.taken = slices.Delete(p.taken, i, i+1)
	}
	delete(p.owner, a)
}

func (p *pool) rangeText() string {
	if p.cfg.IPRange.IsValid() {
		return fmt.Sprintf("ip-range %s of subnet %s", p.cfg.IPRange, p.cfg.Subnet)
	}
	return "subnet " + p.cfg.Subnet.String()
}
