package nat

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/switchyard-net/switchyard/switch/frame"
)

// ErrConflict is wrapped by AddMappings when a port is published already.
var ErrConflict = errors.New("port already published")

func overlaps(a, b *mapping) bool {
	return a.proto == b.proto && a.lo <= b.hi && b.lo <= a.hi && (a.ext == 0 || b.ext == 0 || a.ext == b.ext)
}

// CheckMapping validates m on its own (not against the published ones).
func CheckMapping(m Mapping) error {
	if m.Proto != frame.ProtoTCP && m.Proto != frame.ProtoUDP {
		return fmt.Errorf("protocol %d: want tcp or udp", m.Proto)
	}
	if m.ExtPort == 0 || m.ExtEnd < m.ExtPort {
		return fmt.Errorf("bad host port range %d-%d", m.ExtPort, m.ExtEnd)
	}
	if m.CtrPort == 0 || int(m.CtrPort)+int(m.ExtEnd-m.ExtPort) > 65535 {
		return fmt.Errorf("bad container port %d for a range of %d", m.CtrPort, m.ExtEnd-m.ExtPort+1)
	}
	if !m.CtrIP.Is4() {
		return fmt.Errorf("container address %v is not IPv4", m.CtrIP)
	}
	if m.ExtIP.IsValid() && !m.ExtIP.Is4() {
		return fmt.Errorf("host address %v is not IPv4", m.ExtIP)
	}
	return nil
}

// AddMappings publishes ms, all or none: a mapping that overlaps a
// published one (same protocol, overlapping host ports, the same or an
// unbound host address) or another of ms is refused with ErrConflict, and
// one whose host address is not external is refused too.
func (n *NAT) AddMappings(ms ...Mapping) error {
	n.mapMu.Lock()
	defer n.mapMu.Unlock()
	next, err := n.withMappingsLocked(ms)
	if err != nil {
		return err
	}
	n.maps.Store(&next)
	return nil
}

// CheckMappings reports the error AddMappings(ms...) would return now,
// publishing nothing.
func (n *NAT) CheckMappings(ms ...Mapping) error {
	n.mapMu.Lock()
	defer n.mapMu.Unlock()
	_, err := n.withMappingsLocked(ms)
	return err
}

func (n *NAT) withMappingsLocked(ms []Mapping) ([]mapping, error) {
	next := slices.Clone(*n.maps.Load())
	for _, m := range ms {
		if err := CheckMapping(m); err != nil {
			return nil, err
		}
		if m.ExtIP.IsValid() && !n.isExt(addr32(m.ExtIP)) {
			return nil, fmt.Errorf("host address %v is not one of the uplink's addresses", m.ExtIP)
		}
		nm := mapping{
			proto: m.Proto, ext: addr32(m.ExtIP), lo: m.ExtPort, hi: m.ExtEnd,
			ctr: addr32(m.CtrIP), ctrLo: m.CtrPort, allow: toPfx(m.AllowFrom), Mapping: m,
		}
		for i := range next {
			if overlaps(&next[i], &nm) {
				return nil, fmt.Errorf("%w: %s overlaps %s (published by %s)", ErrConflict, m, next[i].Mapping, next[i].Mapping.Owner)
			}
		}
		next = append(next, nm)
	}
	return next, nil
}

// RemoveMappings unpublishes every mapping of owner and returns how many.
// Flows already open through them stay until they end or are flushed.
func (n *NAT) RemoveMappings(owner string) int {
	n.mapMu.Lock()
	defer n.mapMu.Unlock()
	cur := *n.maps.Load()
	next := make([]mapping, 0, len(cur))
	for _, m := range cur {
		if m.Mapping.Owner != owner {
			next = append(next, m)
		}
	}
	n.maps.Store(&next)
	return len(cur) - len(next)
}

// Mappings returns the published mappings.
func (n *NAT) Mappings() []Mapping {
	cur := *n.maps.Load()
	out := make([]Mapping, len(cur))
	for i := range cur {
		out[i] = cur[i].Mapping
	}
	return out
}

// Flow is one connection-table entry as a listing shows it.
type Flow struct {
	Proto string `json:"proto"`
	// Kind is masquerade, published or hairpin.
	Kind string `json:"kind"`
	// Original is the first packet's source and destination as it
	// arrived; Translated the same packet as it left.
	OrigSrc netip.AddrPort `json:"orig_src"`
	OrigDst netip.AddrPort `json:"orig_dst"`
	NewSrc  netip.AddrPort `json:"new_src"`
	NewDst  netip.AddrPort `json:"new_dst"`
	State   string         `json:"state"`
	Timeout time.Duration  `json:"timeout"`
	Packets uint64         `json:"packets"`
	Bytes   uint64         `json:"bytes"`
}

func protoName(p uint8) string {
	switch p {
	case frame.ProtoTCP:
		return "tcp"
	case frame.ProtoUDP:
		return "udp"
	case frame.ProtoICMPv4:
		return "icmp"
	}
	return fmt.Sprint(p)
}

// flowKind names the rule that made a flow of state st.
func flowKind(st uint32) string {
	switch {
	case st&stHairpin != 0:
		return "hairpin"
	case st&stDNAT != 0:
		return "published"
	}
	return "masquerade"
}

func stateName(proto uint8, st uint32) string {
	if proto == frame.ProtoTCP {
		if s := st & stMask; s < numTCPStates {
			return tcpStateNames[s]
		}
	}
	switch {
	case st&stAssured != 0:
		return "ASSURED"
	case st&stSeenReply != 0:
		return "REPLIED"
	}
	return "UNREPLIED"
}

// Flows returns up to max flows (all when max <= 0) in table order.
func (n *NAT) Flows(max int) []Flow {
	var out []Flow
	now := n.t.now.Load()
	for si := range n.t.shards {
		s := &n.t.shards[si]
		s.mu.Lock()
		for idx := s.lo; idx < s.hi; idx++ {
			e := &n.t.entries[idx]
			w := e.word.Load()
			st := wState(w)
			if st&stLive == 0 {
				continue
			}
			k0, k1 := e.key(0), e.key(1)
			to := k1.reverse(0)
			f := Flow{
				Proto: protoName(k0.proto), Kind: flowKind(st),
				OrigSrc: netip.AddrPortFrom(addrOf(k0.src), k0.sport), OrigDst: netip.AddrPortFrom(addrOf(k0.dst), k0.dport),
				NewSrc: netip.AddrPortFrom(addrOf(to.src), to.sport), NewDst: netip.AddrPortFrom(addrOf(to.dst), to.dport),
				State:   stateName(k0.proto, st),
				Packets: e.packets(), Bytes: e.octets(),
			}
			if exp := wExp(w); !expired(exp, now) {
				f.Timeout = time.Duration(exp-now) * time.Second
			}
			out = append(out, f)
			if max > 0 && len(out) >= max {
				s.mu.Unlock()
				return out
			}
		}
		s.mu.Unlock()
	}
	return out
}

// Stats are a NAT's counters.
type Stats struct {
	Flows    int               `json:"flows"`
	MaxFlows int               `json:"max_flows"`
	Created  uint64            `json:"created"`
	Expired  uint64            `json:"expired"`
	Evicted  uint64            `json:"evicted"`
	Drops    map[string]uint64 `json:"drops,omitempty"`
}

// Stats returns the NAT's counters.
func (n *NAT) Stats() Stats {
	s := Stats{
		Flows: n.t.len(), MaxFlows: int(n.t.limit),
		Created: n.created.Load(), Expired: n.expiredN.Load(), Evicted: n.evicted.Load(),
	}
	for r := Reason(1); r < numReasons; r++ {
		if v := n.drops[r].Load(); v > 0 {
			if s.Drops == nil {
				s.Drops = map[string]uint64{}
			}
			s.Drops[r.String()] = v
		}
	}
	return s
}

// Dropped returns the count of drops for reason r.
func (n *NAT) Dropped(r Reason) uint64 { return n.drops[r].Load() }

// Flush removes every flow one of whose addresses (either direction) is a,
// or every flow when a is not valid, and returns how many.
func (n *NAT) Flush(a netip.Addr) int {
	x := addr32(a)
	removed := 0
	for idx := range n.t.entries {
		e := &n.t.entries[idx]
		if wState(e.word.Load())&stLive == 0 {
			// Free (the word is atomic): no need to lock it to know. A
			// flow opened after this look is one opened after the
			// flush passed it, as it would be with the lock.
			continue
		}
		owner := &n.t.shards[n.t.ownerShard(uint32(idx))]
		owner.mu.Lock()
		w := e.word.Load()
		st, gen := wState(w), wGen(w)
		k0, k1 := e.key(0), e.key(1)
		owner.mu.Unlock()
		if st&stLive == 0 {
			continue
		}
		if a.IsValid() && k0.src != x && k0.dst != x && k1.src != x && k1.dst != x {
			continue
		}
		if n.t.remove(uint32(idx), gen) {
			removed++
		}
	}
	return removed
}
