package router

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/switchyard-net/switchyard/switch/frame"
)

// Neighbour timing, in seconds of the router's clock (see Port.Tick).
const (
	neighReachable = 60  // a learned entry is used without question this long
	neighForget    = 300 // a stale entry unused this long may be dropped when the table is full
	neighRetry     = 1   // at most one ARP request per address per second
	// DefaultNeighbours bounds each neighbour table.
	DefaultNeighbours = 1024
)

type neigh struct {
	mac    frame.MAC
	static bool
	seen   uint32 // when it was last confirmed
}

// neighTable maps IPv4 addresses to MACs. Reads are lock-free (a
// copy-on-write map); writes, which are rare once hosts are known, copy it.
// Entries go stale after neighReachable seconds: a stale entry is still
// used, and its user sends an ARP request to confirm it, at most one a
// second (the kernel's STALE and PROBE, simplified).
type neighTable struct {
	m       atomic.Pointer[map[netip.Addr]neigh]
	mu      sync.Mutex // serialises writers
	max     int
	asked   sync.Map // netip.Addr -> uint32: when we last asked
	full    atomic.Uint64
	learned atomic.Uint64
}

func newNeighTable(max int) *neighTable {
	t := &neighTable{max: max}
	m := map[netip.Addr]neigh{}
	t.m.Store(&m)
	return t
}

// lookup returns a's MAC and whether the entry is stale at now.
func (t *neighTable) lookup(a netip.Addr, now uint32) (mac frame.MAC, ok, stale bool) {
	e, ok := (*t.m.Load())[a]
	if !ok {
		return mac, false, false
	}
	return e.mac, true, !e.static && now-e.seen >= neighReachable
}

// learn records that a has mac, confirmed at now. It writes only when
// something changes or the entry is getting stale.
func (t *neighTable) learn(a netip.Addr, mac frame.MAC, now uint32) {
	if e, ok := (*t.m.Load())[a]; ok && (e.static || (e.mac == mac && now-e.seen < neighReachable/2)) {
		return
	}
	t.set(a, neigh{mac: mac, seen: now}, now, false)
}

// setStatic pins a to mac (the daemon knows its endpoints).
func (t *neighTable) setStatic(a netip.Addr, mac frame.MAC) {
	t.set(a, neigh{mac: mac, static: true}, 0, true)
}

func (t *neighTable) set(a netip.Addr, e neigh, now uint32, force bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := *t.m.Load()
	if old, ok := cur[a]; ok && old.static && !force {
		return
	}
	victim, evict := netip.Addr{}, false
	if _, ok := cur[a]; !ok && len(cur) >= t.max {
		for k, v := range cur {
			if !v.static && now-v.seen >= neighForget {
				victim, evict = k, true
				break
			}
		}
		if !evict {
			t.full.Add(1)
			return
		}
	}
	next := make(map[netip.Addr]neigh, len(cur)+1)
	for k, v := range cur {
		if !evict || k != victim {
			next[k] = v
		}
	}
	next[a] = e
	t.m.Store(&next)
	t.learned.Add(1)
}

func (t *neighTable) remove(a netip.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := *t.m.Load()
	if _, ok := cur[a]; !ok {
		return
	}
	next := make(map[netip.Addr]neigh, len(cur))
	for k, v := range cur {
		if k != a {
			next[k] = v
		}
	}
	t.m.Store(&next)
}

// shouldAsk reports whether an ARP request for a may go out now, and if
// so notes that it did.
func (t *neighTable) shouldAsk(a netip.Addr, now uint32) bool {
	if v, ok := t.asked.Load(a); ok && now-v.(uint32) < neighRetry {
		return false
	}
	t.asked.Store(a, now)
	return true
}

// Neighbour is a neighbour-table entry as listings show it.
type Neighbour struct {
	IP     netip.Addr `json:"ip"`
	MAC    string     `json:"mac"`
	Static bool       `json:"static"`
	Age    uint32     `json:"age_s"`
}

func (t *neighTable) list(now uint32) []Neighbour {
	var out []Neighbour
	for a, e := range *t.m.Load() {
		n := Neighbour{IP: a, MAC: e.mac.String(), Static: e.static}
		if !e.static {
			n.Age = now - e.seen
		}
		out = append(out, n)
	}
	return out
}
