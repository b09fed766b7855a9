package nat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-net/switchyard/switch/frame"
)

// Config sets up a NAT. Addresses are IPv4; the NAT leaves IPv6 alone.
type Config struct {
	// Inside are the network's subnets: the hosts behind the NAT.
	Inside []netip.Prefix
	// Gateway is the gateway's inside address. Hairpin flows (an endpoint
	// reaching a published port through an external address) leave it
	// with this source, so that the reply comes back through the NAT.
	Gateway netip.Addr
	// External are the uplink addresses. Masquerade uses the first.
	External []netip.Addr
	// Masquerade translates new flows from inside to the outside. Without
	// it only published ports and their replies pass.
	Masquerade bool
	// Deny are destinations that flows from inside never reach (other
	// networks' subnets).
	Deny []netip.Prefix
	// AllowFrom, when set, are the only sources from outside that may
	// reach any published port.
	AllowFrom []netip.Prefix
	// MaxFlows bounds the table (default 262144, netfilter's default).
	MaxFlows int
	// Timeouts of idle flows; zero fields take DefaultTimeouts.
	Timeouts Timeouts
	// PortMin and PortMax bound the ports (and ICMP ids) masquerade
	// allocates when a flow's own source port is taken; default 1024-65535.
	PortMin, PortMax uint16
	// Now is the clock's start; default time.Now().
	Now time.Time
}

// DefaultMaxFlows is the default table size.
const DefaultMaxFlows = 262144

// MaxMaxFlows is the largest table a NAT takes.
const MaxMaxFlows = 1 << 24

// Mapping is a published port range: packets from outside to ExtIP (any
// external address when unset) on ExtPort..ExtEnd go to CtrIP on
// CtrPort..CtrPort+(ExtEnd-ExtPort), their source kept.
type Mapping struct {
	Proto     uint8 // frame.ProtoTCP or frame.ProtoUDP
	ExtIP     netip.Addr
	ExtPort   uint16
	ExtEnd    uint16
	CtrIP     netip.Addr
	CtrPort   uint16
	AllowFrom []netip.Prefix // if set, the only sources this mapping takes
	Owner     string         // who published it (an endpoint), for listings
}

func (m Mapping) String() string {
	ext := ""
	if m.ExtIP.IsValid() {
		ext = m.ExtIP.String() + ":"
	}
	proto := "tcp"
	if m.Proto == frame.ProtoUDP {
		proto = "udp"
	}
	n := m.ExtEnd - m.ExtPort
	if n == 0 {
		return fmt.Sprintf("%s%d -> %s:%d/%s", ext, m.ExtPort, m.CtrIP, m.CtrPort, proto)
	}
	return fmt.Sprintf("%s%d-%d -> %s:%d-%d/%s", ext, m.ExtPort, m.ExtEnd, m.CtrIP, m.CtrPort, m.CtrPort+n, proto)
}

type pfx struct{ net, mask uint32 }

func (p pfx) has(a uint32) bool { return a&p.mask == p.net }

func toPfx(ps []netip.Prefix) []pfx {
	var out []pfx
	for _, p := range ps {
		if !p.Addr().Is4() {
			continue
		}
		m := ^uint32(0)
		if p.Bits() < 32 {
			m = ^(^uint32(0) >> p.Bits())
		}
		out = append(out, pfx{addr32(p.Masked().Addr()) & m, m})
	}
	return out
}

func inAny(ps []pfx, a uint32) bool {
	for _, p := range ps {
		if p.has(a) {
			return true
		}
	}
	return false
}

func addr32(a netip.Addr) uint32 {
	if !a.Is4() {
		return 0
	}
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func addrOf(a uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], a)
	return netip.AddrFrom4(b)
}

type mapping struct {
	proto    uint8
	ext      uint32 // 0: any external address
	lo, hi   uint16
	ctr      uint32
	ctrLo    uint16
	allow    []pfx
	Mapping  Mapping
	ownerKey string
}

// Verdict is what the caller does with a packet after Translate. A drop
// carries its Reason: compare Kind() with Drop, and read Reason().
type Verdict uint8

// Verdicts.
const (
	// Pass: not a translated flow; the packet is unchanged and the caller
	// handles it (the gateway's own addresses: ping, or a drop).
	Pass Verdict = iota
	// Forward: the packet was rewritten (or needs no rewrite) and goes on
	// to its destination address.
	Forward
	// Drop: dropped, and counted under a Reason.
	Drop
)

const verdictBits = 2

// Kind is Pass, Forward or Drop, without the reason.
func (v Verdict) Kind() Verdict { return v & (1<<verdictBits - 1) }

// Reason is why a Drop verdict dropped (ReasonNone for the others).
func (v Verdict) Reason() Reason { return Reason(v >> verdictBits) }

func (v Verdict) String() string {
	switch v.Kind() {
	case Pass:
		return "pass"
	case Forward:
		return "forward"
	}
	return "drop: " + v.Reason().String()
}

// Reason says why the NAT dropped a packet.
type Reason uint8

// Drop reasons.
const (
	ReasonNone         Reason = iota
	ReasonMalformed           // truncated or inconsistent headers
	ReasonBadChecksum         // a packet that would open a flow failed its checksum
	ReasonNoFlow              // no flow matches and the packet cannot open one (TCP without SYN, ICMP reply, ICMP error)
	ReasonFragment            // a later fragment whose first fragment was not seen
	ReasonFiltered            // source not on the allow-list of a published port
	ReasonDenied              // destination is another network
	ReasonNotOurs             // from outside to an address that is not ours
	ReasonTableFull           // the table is full and no unreplied flow could be evicted
	ReasonNoPort              // no free port (or ICMP id) to masquerade with, or a reply tuple in use
	ReasonNoMasquerade        // a new flow from inside on a network without masquerade
	numReasons
)

var reasonNames = [numReasons]string{
	"none", "malformed", "bad-checksum", "no-flow", "fragment-no-flow", "filtered", "denied",
	"not-ours", "table-full", "no-port", "no-masquerade",
}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// NAT is one network's address translation. Translate is safe for
// concurrent use; so are the other methods.
type NAT struct {
	inside  []pfx
	gw      uint32
	ext     []uint32
	masq    bool
	deny    atomic.Pointer[[]pfx]
	allow   []pfx
	portMin uint16
	portMax uint16

	tmo   atomic.Pointer[secs]
	maps  atomic.Pointer[[]mapping]
	mapMu sync.Mutex // serialises mapping updates

	t     *table
	frags fragTable
	start time.Time
	rnd   atomic.Uint32

	drops    [numReasons]atomic.Uint64
	created  atomic.Uint64
	evicted  atomic.Uint64
	expiredN atomic.Uint64
	sweepPos atomic.Uint32
}

// New returns a NAT for cfg.
func New(cfg *Config) (*NAT, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	max := cfg.MaxFlows
	if max == 0 {
		max = DefaultMaxFlows
	}
	if max < 1 || max > MaxMaxFlows {
		return nil, fmt.Errorf("nat: max flows %d out of range; want 1 to %d", max, MaxMaxFlows)
	}
	n := &NAT{
		inside: toPfx(cfg.Inside), gw: addr32(cfg.Gateway), masq: cfg.Masquerade,
		allow:   toPfx(cfg.AllowFrom),
		portMin: cfg.PortMin, portMax: cfg.PortMax, t: newTable(max), start: cfg.Now,
	}
	for _, a := range cfg.External {
		if !a.Is4() {
			return nil, fmt.Errorf("nat: external address %s is not IPv4", a)
		}
		n.ext = append(n.ext, addr32(a))
	}
	if n.masq && len(n.ext) == 0 {
		return nil, errors.New("nat: masquerade needs an external address")
	}
	if n.portMin == 0 {
		n.portMin = 1024
	}
	if n.portMax == 0 {
		n.portMax = 65535
	}
	if n.portMin > n.portMax {
		return nil, fmt.Errorf("nat: port range %d-%d is empty", n.portMin, n.portMax)
	}
	if n.start.IsZero() {
		n.start = time.Now()
	}
	if err := n.SetTimeouts(cfg.Timeouts); err != nil {
		return nil, err
	}
	n.maps.Store(&[]mapping{})
	n.SetDeny(cfg.Deny)
	n.rnd.Store(uint32(n.t.seed))
	return n, nil
}

// SetTimeouts replaces the timeouts; zero fields take the defaults. Flows
// pick the new values up with their next packet.
func (n *NAT) SetTimeouts(t Timeouts) error {
	t = t.withDefaults()
	for _, name := range TimeoutNames {
		if d := *t.field(name); d < time.Second {
			return fmt.Errorf("nat: timeout %s=%v is under a second", name, d)
		}
	}
	s := t.secs()
	n.tmo.Store(&s)
	return nil
}

// SetDeny replaces the destinations flows from inside never reach.
func (n *NAT) SetDeny(ps []netip.Prefix) {
	d := toPfx(ps)
	n.deny.Store(&d)
}

// Tick advances the NAT's clock to now and expires a slice of idle flows
// (all of them over eight ticks). Call it about once a second.
func (n *NAT) Tick(now time.Time) {
	d := now.Sub(n.start)
	if d < 0 {
		d = 0
	}
	s := uint32(d / time.Second)
	if s > n.t.now.Load() {
		n.t.now.Store(s)
	}
	n.sweep(len(n.t.entries)/8 + 1)
}

// SweepAll expires every idle flow now.
func (n *NAT) SweepAll() { n.sweep(len(n.t.entries)) }

func (n *NAT) sweep(count int) {
	total := uint32(len(n.t.entries))
	now := n.t.now.Load()
	pos := n.sweepPos.Load()
	for range count {
		idx := pos % total
		pos++
		e := &n.t.entries[idx]
		w := e.word.Load()
		if wState(w)&stLive == 0 || !expired(wExp(w), now) {
			continue
		}
		// remove checks the generation again under the lock.
		gen := wGen(w)
		if n.t.remove(idx, gen) {
			n.expiredN.Add(1)
		}
	}
	n.sweepPos.Store(pos % total)
}

func (n *NAT) isExt(a uint32) bool {
	for _, e := range n.ext {
		if e == a {
			return true
		}
	}
	return false
}

func (n *NAT) drop(r Reason) Verdict {
	n.drops[r].Add(1)
	return Drop | Verdict(r)<<verdictBits
}

// Translate looks up (or creates) the flow of the frame b, decoded in pr,
// arriving from side, and rewrites it in place: addresses, ports or ICMP
// id, checksums (incrementally; for a frame whose vnet header says its
// checksum is partial, the pseudo-header seed). On Forward, pr's
// addresses and ports describe the rewritten packet. The frame's TTL is
// the caller's.
func (n *NAT) Translate(side Side, b []byte, pr *frame.Parsed, vnet *frame.VNetHdr) Verdict {
	if pr.IPVersion != 4 || pr.VLANTags != 0 {
		return Pass
	}
	if pr.Reason != frame.OK || pr.L3End > len(b) {
		return n.drop(ReasonMalformed)
	}
	if pr.Frag == frame.LaterFragment {
		return n.laterFragment(side, b, pr)
	}
	k, kind := keyOfP(side, pr)
	switch kind {
	case keyICMPError:
		return n.icmpError(side, b, pr, vnet)
	case keyNone:
		return Pass
	}
	return n.translateFlow(k, n.t.hashP(k), b, pr, vnet)
}

// translateFlow is Translate for a packet of the flow key k, whose hash is h.
func (n *NAT) translateFlow(k pkey, h uint64, b []byte, pr *frame.Parsed, vnet *frame.VNetHdr) Verdict {
	if tgt, ok := n.lookupFast(k, h, pr, len(b)); ok {
		n.rewrite(b, pr, vnet, k, tgt)
		return Forward
	}
	return n.translateSlow(k.unpack(), h, b, pr, vnet)
}

// translateSlow is translateFlow when lookupFast was not sure.
func (n *NAT) translateSlow(k key, h uint64, b []byte, pr *frame.Parsed, vnet *frame.VNetHdr) Verdict {
	var tgt key
	if !n.lookupLocked(k, h, pr, len(b), &tgt) {
		return n.newFlow(k, b, pr, vnet)
	}
	n.rewrite(b, pr, vnet, k.pack(), tgt.pack())
	return Forward
}

// What keyOf found.
const (
	keyFlow      = iota // a packet of a flow: k is its key
	keyICMPError        // an ICMP error, translated with the flow it quotes
	keyNone             // an ICMP message that belongs to no flow
)

// keyOf returns the flow key of a packet decoded in pr arriving from side.
func keyOf(side Side, pr *frame.Parsed) (key, int) {
	k, kind := keyOfP(side, pr)
	return k.unpack(), kind
}

// keyOfP is keyOf with the key packed.
func keyOfP(side Side, pr *frame.Parsed) (pkey, int) {
	var sport, dport uint16
	kind := keyFlow
	switch pr.Proto {
	case frame.ProtoTCP, frame.ProtoUDP:
		sport, dport = pr.SrcPort, pr.DstPort
	case frame.ProtoICMPv4:
		switch pr.ICMPType {
		case frame.ICMPv4EchoRequest, frame.ICMPv4EchoReply:
			sport, dport = pr.ICMPEchoID, pr.ICMPEchoID
		case icmpDestUnreach, icmpTimeExceeded, icmpParamProblem, icmpSourceQuench:
			kind = keyICMPError
		default:
			kind = keyNone
		}
	}
	return mkpkey(addr32(pr.SrcIP), addr32(pr.DstIP), sport, dport, pr.Proto, side), kind
}

// lookup finds k's flow, updates its state, expiry and counters, and sets
// tgt to what the packet becomes. It reports false when there is no live
// flow (an expired one is removed on the way).
func (n *NAT) lookup(k key, pr *frame.Parsed, size int, tgt *key) bool {
	return n.lookupHashed(k, n.t.hash(k), pr, size, tgt)
}

// lookupHashed is lookup for a key whose hash h the caller has.
func (n *NAT) lookupHashed(k key, h uint64, pr *frame.Parsed, size int, tgt *key) bool {
	if p, ok := n.lookupFast(k.pack(), h, pr, size); ok {
		*tgt = p.unpack()
		return true
	}
	return n.lookupLocked(k, h, pr, size, tgt)
}

// fastProbes bounds lookupFast's walk along a probe run.
const fastProbes = 16

// lookupFast is lookup for a live flow, without the shard lock: it walks
// the index with atomic loads, checks the entry's key between two looks
// at its word (see entry), and commits the state and expiry by swapping
// the word. It reports false, having changed nothing, whenever it is not
// sure: no slot found (a concurrent removal may be shifting the run), an
// entry not live or expired, the word changed under it. lookupLocked then
// decides. A true result is what lookupLocked would have done at the
// moment of the swap (or of the second look); tgt is what the packet
// becomes.
func (n *NAT) lookupFast(k pkey, h uint64, pr *frame.Parsed, size int) (tgt pkey, ok bool) {
	t := n.t
	s := &t.shards[t.shardOf(h)]
	tag := uint32(h)
	mask := s.mask
	slots := s.slots
	i := tag & mask
	for range fastProbes {
		sl := atomic.LoadUint64(&slots[i&mask])
		if sl == 0 {
			return tgt, false
		}
		if uint32(sl) != tag {
			i++
			continue
		}
		idx, dir := slotRef(sl)
		if uint(idx) >= uint(len(t.entries)) {
			return tgt, false
		}
		e := &t.entries[idx]
		w := e.word.Load()
		if w&stLive == 0 || !e.keyIs(dir, k) {
			// Stale slot, tag collision or a flow being replaced.
			i++
			continue
		}
		now := t.now.Load()
		if expired(wExp(w), now) {
			return tgt, false // lookupLocked removes it
		}
		to := e.pkey(1 - dir)
		st := n.nextState(wState(w), dir, k.proto(), pr)
		nw := mkword(now+n.timeout(k.proto(), st), wGen(w), st)
		if nw != w {
			if !e.word.CompareAndSwap(w, nw) {
				return tgt, false
			}
		} else if e.word.Load() != w {
			return tgt, false
		}
		addCounts(&e.pkts[dir], &e.bytes[dir], uint64(size))
		return to.reverse(0), true
	}
	return tgt, false
}

// nextState is the state word st after a packet in direction dir.
func (n *NAT) nextState(st uint32, dir int, proto uint8, pr *frame.Parsed) uint32 {
	if dir == 1 {
		st |= stSeenReply
	}
	switch proto {
	case frame.ProtoTCP:
		st = tcpNext(st, dir, pr.TCPFlags)
	case frame.ProtoUDP:
		if dir == 1 {
			st |= stAssured
		}
	}
	return st
}

// timeout is the idle timeout of a flow of proto in state st.
func (n *NAT) timeout(proto uint8, st uint32) uint32 {
	tm := n.tmo.Load()
	switch proto {
	case frame.ProtoTCP:
		return tm.tcp[st&stMask]
	case frame.ProtoUDP:
		if st&stAssured != 0 {
			return tm.udpStream
		}
		return tm.udp
	case frame.ProtoICMPv4:
		return tm.icmp
	}
	return tm.other
}

// lookupLocked is lookup under the shard lock of k. The entry cannot be
// freed meanwhile (freeing takes the locks of both its keys' shards), but
// the other direction's packets update its word without this lock: the
// update is a compare-and-swap loop.
func (n *NAT) lookupLocked(k key, h uint64, pr *frame.Parsed, size int, tgt *key) bool {
	t := n.t
	s := &t.shards[t.shardOf(h)]
	s.mu.Lock()
	i := t.findLocked(s, k, h)
	if i < 0 {
		s.mu.Unlock()
		return false
	}
	idx, dir := slotRef(s.slots[i])
	e := &t.entries[idx]
	now := t.now.Load()
	for {
		w := e.word.Load()
		if expired(wExp(w), now) {
			s.mu.Unlock()
			if t.remove(idx, wGen(w)) {
				n.expiredN.Add(1)
			}
			return false
		}
		st := n.nextState(wState(w), dir, k.proto, pr)
		nw := mkword(now+n.timeout(k.proto, st), wGen(w), st)
		if nw == w || e.word.CompareAndSwap(w, nw) {
			break
		}
	}
	addCounts(&e.pkts[dir], &e.bytes[dir], uint64(size))
	*tgt = e.key(1 - dir).reverse(0)
	s.mu.Unlock()
	return true
}

// mappingFor returns the mapping a packet to dst:dport/proto hits, or nil.
func (n *NAT) mappingFor(proto uint8, dst uint32, dport uint16) *mapping {
	ms := *n.maps.Load()
	for i := range ms {
		m := &ms[i]
		if m.proto == proto && dport >= m.lo && dport <= m.hi && (m.ext == 0 || m.ext == dst) {
			return m
		}
	}
	return nil
}

// opens reports whether a packet may open a new flow: a TCP SYN, any UDP
// datagram, an ICMP echo request, any other protocol.
func opens(pr *frame.Parsed) bool {
	switch pr.Proto {
	case frame.ProtoTCP:
		return pr.TCPFlags&(tcpSYN|tcpACK|tcpRST|tcpFIN) == tcpSYN
	case frame.ProtoICMPv4:
		return pr.ICMPType == frame.ICMPv4EchoRequest
	}
	return true
}

// checksumOK verifies the transport checksum of a packet about to open a
// flow. A partial checksum (offloaded) and a first fragment (the checksum
// covers data not here) pass.
func checksumOK(b []byte, pr *frame.Parsed, vnet *frame.VNetHdr) bool {
	if (vnet != nil && vnet.Flags&(frame.VNetNeedsCsum|frame.VNetDataValid) != 0) || pr.Frag != frame.NotFragment {
		return true
	}
	l4 := b[pr.L4Off:pr.L3End]
	switch pr.Proto {
	case frame.ProtoTCP:
		return frame.TCP(l4).Verify(pr.SrcIP, pr.DstIP)
	case frame.ProtoUDP:
		return binary.BigEndian.Uint16(l4[6:]) == 0 || frame.UDP(l4).Verify(pr.SrcIP, pr.DstIP)
	case frame.ProtoICMPv4:
		return frame.ICMPv4(l4).Verify()
	}
	return true
}

func (n *NAT) initial(proto uint8, flags uint32) (st, exp uint32) {
	tm := n.tmo.Load()
	now := n.t.now.Load()
	switch proto {
	case frame.ProtoTCP:
		return flags | tcpSynSent, now + tm.tcp[tcpSynSent]
	case frame.ProtoUDP:
		return flags, now + tm.udp
	case frame.ProtoICMPv4:
		return flags, now + tm.icmp
	}
	return flags, now + tm.other
}

// newFlow decides what a packet with no flow becomes, creates the flow and
// rewrites the packet.
func (n *NAT) newFlow(k key, b []byte, pr *frame.Parsed, vnet *frame.VNetHdr) Verdict {
	pl := n.plan(k)
	switch pl.verdict {
	case Forward:
		return n.open(k, pl.to, pl.flags, b, pr, vnet)
	case Pass:
		return Pass
	}
	return n.drop(pl.reason)
}

// flowPlan is what a packet with no flow would open: the flow k -> to with
// flags (Forward), nothing (Pass), or a drop for reason.
type flowPlan struct {
	verdict Verdict
	reason  Reason
	to      key
	flags   uint32
	m       *mapping // the published mapping it hits, if any
}

// plan decides, without changing anything, what a packet of k with no
// flow becomes.
func (n *NAT) plan(k key) flowPlan {
	if k.side == Inside {
		if k.dst == n.gw || inAny(n.inside, k.dst) {
			return flowPlan{verdict: Pass}
		}
		if inAny(*n.deny.Load(), k.dst) {
			return flowPlan{verdict: Drop, reason: ReasonDenied}
		}
		if n.isExt(k.dst) {
			m := n.mappingFor(k.proto, k.dst, k.dport)
			if m == nil {
				return flowPlan{verdict: Pass}
			}
			// Hairpin: to the published endpoint, from the gateway.
			to := key{src: n.gw, dst: m.ctr, sport: k.sport, dport: m.ctrLo + (k.dport - m.lo), proto: k.proto}
			return flowPlan{verdict: Forward, to: to, flags: stDNAT | stHairpin, m: m}
		}
		if !n.masq {
			return flowPlan{verdict: Drop, reason: ReasonNoMasquerade}
		}
		to := key{src: n.ext[0], dst: k.dst, sport: k.sport, dport: k.dport, proto: k.proto}
		return flowPlan{verdict: Forward, to: to}
	}
	if !n.isExt(k.dst) {
		return flowPlan{verdict: Drop, reason: ReasonNotOurs}
	}
	m := n.mappingFor(k.proto, k.dst, k.dport)
	if m == nil {
		return flowPlan{verdict: Pass}
	}
	if (len(n.allow) > 0 && !inAny(n.allow, k.src)) || (len(m.allow) > 0 && !inAny(m.allow, k.src)) {
		return flowPlan{verdict: Drop, reason: ReasonFiltered, m: m}
	}
	to := key{src: k.src, dst: m.ctr, sport: k.sport, dport: m.ctrLo + (k.dport - m.lo), proto: k.proto}
	return flowPlan{verdict: Forward, to: to, flags: stDNAT, m: m}
}

// allocTries bounds the search for a free masquerade port.
const allocTries = 128

// open creates the flow k -> to and rewrites the packet. A masquerade or
// hairpin flow whose source port is taken gets another from the port
// range (ICMP: another echo id).
func (n *NAT) open(k, to key, flags uint32, b []byte, pr *frame.Parsed, vnet *frame.VNetHdr) Verdict {
	if !opens(pr) {
		return n.drop(ReasonNoFlow)
	}
	if !checksumOK(b, pr, vnet) {
		return n.drop(ReasonBadChecksum)
	}
	st, exp := n.initial(k.proto, flags)
	replySide := Outside
	if k.side == Outside || flags&stHairpin != 0 {
		replySide = Inside
	}
	snat := to.src != k.src
	icmp := k.proto == frame.ProtoICMPv4
	for try := 0; try < allocTries; try++ {
		if try > 0 {
			if !snat || (k.proto != frame.ProtoTCP && k.proto != frame.ProtoUDP && !icmp) {
				break
			}
			span := uint32(n.portMax-n.portMin) + 1
			p := n.portMin + uint16(n.rnd.Add(0x9e3779b9)%span)
			to.sport = p
		}
		if icmp {
			to.dport = to.sport
		}
		_, code, ev := n.t.insert(k, to.reverse(replySide), st, exp, len(b))
		switch code {
		case insOK:
			n.created.Add(1)
			if ev {
				n.evicted.Add(1)
			}
			n.rewrite(b, pr, vnet, k.pack(), to.pack())
			return Forward
		case insFull:
			return n.drop(ReasonTableFull)
		case insExistsOrig:
			// Another goroutine opened it first: use it.
			var tgt key
			if n.lookup(k, pr, len(b), &tgt) {
				n.rewrite(b, pr, vnet, k.pack(), tgt.pack())
				return Forward
			}
			return n.drop(ReasonNoFlow)
		}
	}
	return n.drop(ReasonNoPort)
}
