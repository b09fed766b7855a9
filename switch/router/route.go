package router

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard-net/switchyard/nat"
	"github.com/switchyard-net/switchyard/switch/frame"
	"github.com/switchyard-net/switchyard/switch/port"
)

// routing is the gateway's L3 state; all zero without an uplink.
type routing struct {
	nat     *nat.NAT
	up      *Uplink
	inside  []netip.Prefix
	inNeigh *neighTable
	scratch sync.Pool
	start   time.Time
	now     atomic.Uint32 // seconds since start, advanced by Tick
	mirror  atomic.Pointer[mirrorBox]
	pending pendingQueue // frames waiting for ARP

	neighQueued atomic.Uint64

	routedOut, routedIn, hairpin, natDrop, neighMiss, noRoute, ttl, resets, arpReq, offDrop atomic.Uint64
}

// scratch is one Write call's working memory.
type scratch struct {
	// The batch's frames decoded, and their flows' lookahead in the NAT:
	// a batch is decoded and looked at first, then handled frame by
	// frame, so that the NAT's table misses of the batch overlap.
	prs   [nat.BatchMax]frame.Parsed
	la    nat.Lookahead
	reply [9216]byte     // a reply to queue (copied by the queue)
	up    []port.Frame   // frames for the uplink, written once per batch
	arena [16][1600]byte // frames the gateway makes for the uplink
	used  int
	// While a capture runs: its mirror, and the frame before NAT.
	mir     *mirrorBox
	pre     []byte
	preVNet frame.VNetHdr
}

func (s *scratch) reset() {
	clear(s.up)
	s.up = s.up[:0]
	s.used = 0
	s.mir = nil
}

// buf returns a buffer for a frame of our own for the uplink, or nil when
// the batch has made too many.
func (s *scratch) buf() []byte {
	if s.used == len(s.arena) {
		return nil
	}
	s.used++
	return s.arena[s.used-1][:]
}

func (p *Port) initRouting(cfg *Config) {
	p.scratch.New = func() any { return &scratch{} }
	p.start = time.Now()
	max := cfg.Neighbours
	if max <= 0 {
		max = DefaultNeighbours
	}
	p.inNeigh = newNeighTable(max)
	for _, a := range cfg.Addrs {
		if a.Addr().Is4() {
			p.inside = append(p.inside, a.Masked())
		}
	}
	if cfg.NAT == nil || cfg.Uplink == nil {
		return
	}
	p.nat = cfg.NAT
	u := &Uplink{r: p, p: cfg.Uplink.Port, name: cfg.Uplink.Name, port: cfg.Uplink.PortName, mac: cfg.Uplink.MAC, gw: cfg.Uplink.Gateway, neigh: newNeighTable(max)}
	if u.port == "" {
		u.port = u.name
	}
	for _, a := range cfg.Uplink.Addrs {
		u.addrs = append(u.addrs, a.Addr())
		u.onlink = append(u.onlink, a.Masked())
	}
	if o, ok := u.p.(port.Offloader); ok {
		u.offloads = o.Offloads()
	}
	u.frames = make([]port.Frame, u.p.BatchSize())
	u.sc.reset()
	p.up = u
}

// Tick advances the gateway's clock (neighbour ageing); call it about once
// a second.
func (p *Port) Tick(now time.Time) {
	if d := now.Sub(p.start); d > 0 {
		p.now.Store(uint32(d / time.Second))
	}
	p.expirePending()
}

// Uplink returns the bridge port that brings frames in from the uplink, or
// nil without one. Add it to the bridge with learning and every kind of
// flood off: it only ever sends (as the gateway's MAC, to endpoints' MACs).
func (p *Port) Uplink() *Uplink { return p.up }

// SetNeighbour pins an endpoint's address to its MAC, so inbound flows
// reach it before it has sent anything; an invalid mac removes the pin.
func (p *Port) SetNeighbour(a netip.Addr, mac frame.MAC, ok bool) {
	if ok {
		p.inNeigh.setStatic(a, mac)
		p.releaseInside(a, mac)
	} else {
		p.inNeigh.remove(a)
	}
}

// Neighbours lists the gateway's ARP tables: the endpoints', and the
// uplink's.
func (p *Port) Neighbours() (inside, uplink []Neighbour) {
	now := p.now.Load()
	inside = p.inNeigh.list(now)
	if p.up != nil {
		uplink = p.up.neigh.list(now)
	}
	return inside, uplink
}

// routingCounters fills the routing part of c.
func (p *Port) routingCounters(c *Counters) {
	c.RoutedOut, c.RoutedIn, c.Hairpinned = p.routedOut.Load(), p.routedIn.Load(), p.hairpin.Load()
	c.NATDropped, c.NeighMiss, c.NeighQueued, c.NoRoute = p.natDrop.Load(), p.neighMiss.Load(), p.neighQueued.Load(), p.noRoute.Load()
	c.TTLExceeded, c.Resets, c.ARPRequests, c.OffloadDrops = p.ttl.Load(), p.resets.Load(), p.arpReq.Load(), p.offDrop.Load()
}

func inPrefixes(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// learnInside notes an endpoint's MAC from a frame it sent us.
func (p *Port) learnInside(pr *frame.Parsed) {
	if pr.SrcIP.Is4() && inPrefixes(p.inside, pr.SrcIP) && !pr.SrcMAC.IsMulticast() {
		p.inNeigh.learn(pr.SrcIP, pr.SrcMAC, p.now.Load())
		p.releaseInside(pr.SrcIP, pr.SrcMAC)
	}
}

// route handles an IPv4 frame for the gateway's MAC from an endpoint,
// frame i of its batch, decoded in pr. It returns the length of a reply
// left in sc.reply, or 0.
func (p *Port) route(sc *scratch, f *port.Frame, pr *frame.Parsed, i int) int {
	d := f.Data
	ours := has(p.v4, pr.DstIP) || (p.up != nil && has(p.up.addrs, pr.DstIP))
	echo := pr.Proto == frame.ProtoICMPv4 && pr.ICMPType == frame.ICMPv4EchoRequest
	if p.up == nil {
		if echo {
			return p.echoReply(pr, d, sc.reply[:], p.mac, p.v4)
		}
		p.unrt.Add(1)
		sc.mir.drop(p.name, true, dropUnroutable, d)
		return 0
	}
	if !ours && pr.TTL <= 1 {
		sc.mir.drop(p.name, true, dropTTL, d)
		return p.timeExceeded(sc, pr, d)
	}
	sc.keepPre(d, f.VNet)
	switch v := p.nat.TranslateAt(&sc.la, i, nat.Inside, d, pr, &f.VNet); v.Kind() {
	case nat.Pass:
		if echo && ours {
			all := p.v4
			if !has(all, pr.DstIP) {
				all = p.up.addrs
			}
			return p.echoReply(pr, d, sc.reply[:], p.mac, all)
		}
		p.unrt.Add(1)
		sc.mir.drop(p.name, true, dropUnroutable, d)
		return 0
	case nat.Drop:
		p.natDrop.Add(1)
		sc.mir.drop(p.name, true, natDropName(v.Reason()), d)
		return 0
	}
	ip := frame.IPv4(d[pr.L3Off:pr.L3End])
	if ip.TTL() > 1 {
		ip.DecTTL()
	}
	if inPrefixes(p.inside, pr.DstIP) {
		// Hairpin: back to an endpoint, through the queue.
		sc.showPre(p.name, true)
		if p.toInside(sc, f, pr, &p.hairpin) {
			p.hairpin.Add(1)
			sc.mir.note(p.name, true, NotePostNAT, f.Data, f.VNet)
			p.queue(*f)
		}
		return 0
	}
	sc.showPre(p.up.port, true)
	if p.toUplink(sc, f, pr.DstIP) {
		p.routedOut.Add(1)
	}
	return 0
}

// toInside addresses f to the endpoint with pr.DstIP from the gateway,
// or asks for its MAC, holds f until the answer and reports false.
func (p *Port) toInside(sc *scratch, f *port.Frame, pr *frame.Parsed, routed *atomic.Uint64) bool {
	mac, ok, _ := p.inNeigh.lookup(pr.DstIP, p.now.Load())
	if !ok {
		p.holdFor(pr.DstIP, false, f, routed)
		if p.inNeigh.shouldAsk(pr.DstIP, p.now.Load()) {
			src := p.gatewayIP(pr.DstIP)
			n := arpRequest(sc.reply[:], p.mac, src, pr.DstIP)
			p.arpReq.Add(1)
			p.queue(port.Frame{Data: sc.reply[:n]})
		}
		return false
	}
	eth := frame.Ethernet(f.Data)
	eth.SetDst(mac)
	eth.SetSrc(p.mac)
	return true
}

// gatewayIP returns the gateway's address on dst's subnet.
func (p *Port) gatewayIP(dst netip.Addr) netip.Addr {
	for _, pf := range p.inside {
		if pf.Contains(dst) {
			for _, a := range p.v4 {
				if pf.Contains(a) {
					return a
				}
			}
		}
	}
	if len(p.v4) > 0 {
		return p.v4[0]
	}
	return netip.Addr{}
}

// toUplink stages f for the uplink to dst's next hop.
func (p *Port) toUplink(sc *scratch, f *port.Frame, dst netip.Addr) bool {
	u := p.up
	hop := dst
	if !inPrefixes(u.onlink, dst) {
		if !u.gw.IsValid() {
			p.noRoute.Add(1)
			sc.mir.drop(u.port, true, dropNoRoute, f.Data)
			return false
		}
		hop = u.gw
	}
	if !u.offloads && !f.VNet.IsZero() {
		if f.VNet.GSO() || !frame.FinishChecksum(f.Data, &f.VNet) {
			p.offDrop.Add(1)
			sc.mir.drop(u.port, true, dropOffload, f.Data)
			return false
		}
	}
	now := p.now.Load()
	mac, ok, stale := u.neigh.lookup(hop, now)
	if (!ok || stale) && u.neigh.shouldAsk(hop, now) {
		if b := sc.buf(); b != nil {
			n := arpRequest(b, u.mac, u.srcFor(hop), hop)
			sc.up = append(sc.up, port.Frame{Data: b[:n]})
			sc.mir.out(u.port, b[:n])
			p.arpReq.Add(1)
		}
	}
	if !ok {
		sc.mir.note(u.port, true, NotePostNAT, f.Data, f.VNet)
		p.holdFor(hop, true, f, &p.routedOut)
		return false
	}
	eth := frame.Ethernet(f.Data)
	eth.SetDst(mac)
	eth.SetSrc(u.mac)
	sc.mir.note(u.port, true, NotePostNAT, f.Data, f.VNet)
	sc.up = append(sc.up, *f)
	return true
}

// flushUp writes the batch's uplink frames.
func (p *Port) flushUp(sc *scratch) {
	if len(sc.up) > 0 {
		_, _ = p.up.p.Write(sc.up)
		sc.reset()
	}
}

// timeExceeded makes the ICMP time exceeded for a packet from an endpoint
// whose TTL ran out, in sc.reply.
func (p *Port) timeExceeded(sc *scratch, pr *frame.Parsed, d []byte) int {
	p.ttl.Add(1)
	return icmpError(sc.reply[:], pr, d, p.mac, p.gatewayIP(pr.SrcIP), icmpTimeExceeded, 0)
}

// Uplink is the bridge port through which frames from the uplink reach the
// endpoints. Its Read reads the uplink interface, answers ARP and pings
// for the external addresses, translates the rest through the NAT and
// returns what goes to endpoints, rewritten in place. Its Write drops
// everything: the bridge should never send to it (no learning, no floods).
type Uplink struct {
	r        *Port
	p        port.Port
	name     string // the interface's
	port     string // the bridge port's, for mirrors
	mac      frame.MAC
	addrs    []netip.Addr
	onlink   []netip.Prefix
	gw       netip.Addr
	offloads bool
	neigh    *neighTable
	frames   []port.Frame
	sc       scratch // Read's; Read has one caller at a time
	ctr      port.Counters
	ignored  atomic.Uint64
}

var (
	_ port.Port      = (*Uplink)(nil)
	_ port.Offloader = (*Uplink)(nil)
	_ port.Statser   = (*Uplink)(nil)
	_ port.Namer     = (*Uplink)(nil)
)

// Name is the uplink interface's name.
func (u *Uplink) Name() string   { return u.name }
func (u *Uplink) BatchSize() int { return len(u.frames) }
func (u *Uplink) MTU() int       { return u.p.MTU() }
func (u *Uplink) Offloads() bool { return true }

// Stats are the frames the uplink handed the bridge, with the uplink
// interface's own losses and errors (its ring's drops, failed sends) added.
func (u *Uplink) Stats() port.Stats {
	s := u.ctr.Snapshot()
	if st, ok := u.p.(port.Statser); ok {
		w := st.Stats()
		s.RxDropped += w.RxDropped
		s.TxDropped += w.TxDropped
		s.RxErrors += w.RxErrors
		s.TxErrors += w.TxErrors
	}
	return s
}

// Close closes the uplink interface's port.
func (u *Uplink) Close() error { return u.r.Close() }

// Write drops frames: nothing is for the uplink side of the bridge.
func (u *Uplink) Write(frames []port.Frame) (int, error) {
	u.ignored.Add(uint64(len(frames)))
	return len(frames), nil
}

func (u *Uplink) srcFor(hop netip.Addr) netip.Addr {
	for i, pf := range u.onlink {
		if pf.Contains(hop) {
			return u.addrs[i]
		}
	}
	return u.addrs[0]
}

// Read returns frames from the uplink for endpoints.
func (u *Uplink) Read(frames []port.Frame) (int, error) {
	sc := &u.sc
	for {
		n, err := u.p.Read(frames)
		if err != nil {
			return 0, err
		}
		sc.mir = u.r.mirror.Load()
		k := 0
		var bytes uint64
		for lo := 0; lo < n; lo += nat.BatchMax {
			hi := min(n, lo+nat.BatchMax)
			u.look(frames[lo:hi])
			for i := lo; i < hi; i++ {
				u.r.nat.Step(&sc.la, i-lo)
				if u.inbound(&frames[i], &sc.prs[i-lo], i-lo) {
					frames[k] = frames[i]
					bytes += uint64(len(frames[k].Data))
					k++
				}
			}
		}
		if len(sc.up) > 0 {
			_, _ = u.p.Write(sc.up)
			sc.reset()
		}
		if k > 0 {
			u.ctr.RxFrames.Add(uint64(k))
			u.ctr.RxBytes.Add(bytes)
			return k, nil
		}
	}
}

// look decodes a batch of at most nat.BatchMax frames from the uplink and
// starts the NAT's lookahead for those it will translate.
func (u *Uplink) look(frames []port.Frame) {
	sc := &u.sc
	sc.la.Reset(len(frames))
	for i := range frames {
		pr := &sc.prs[i]
		d := frames[i].Data
		pr.Decode(d)
		if pr.Reason == frame.OK && pr.IPVersion == 4 && pr.DstMAC == u.mac && has(u.addrs, pr.DstIP) {
			u.r.nat.Look(&sc.la, i, nat.Outside, d, pr)
		}
	}
	u.r.nat.TouchFirst(&sc.la, len(frames))
}

// inbound handles one frame from the uplink, frame i of its batch, decoded
// in pr, and reports whether it now goes to an endpoint.
func (u *Uplink) inbound(f *port.Frame, pr *frame.Parsed, i int) bool {
	r := u.r
	sc := &u.sc
	d := f.Data
	if pr.Reason != frame.OK {
		r.bad.Add(1)
		sc.mir.drop(u.port, false, dropMalformed, d)
		return false
	}
	if pr.DstMAC != u.mac && !pr.DstMAC.IsBroadcast() {
		sc.mir.in(u.port, d, f.VNet)
		return false // another host's, on a shared segment
	}
	now := r.now.Load()
	switch {
	case pr.EtherType == frame.EtherTypeARP:
		sc.mir.in(u.port, d, f.VNet)
		u.arp(pr, d)
		return false
	case pr.IPVersion != 4 || pr.DstMAC != u.mac || !has(u.addrs, pr.DstIP):
		sc.mir.in(u.port, d, f.VNet)
		r.other.Add(1)
		return false
	}
	if inPrefixes(u.onlink, pr.SrcIP) {
		u.neigh.learn(pr.SrcIP, pr.SrcMAC, now)
		r.releaseUplink(pr.SrcIP, pr.SrcMAC)
	}
	echo := pr.Proto == frame.ProtoICMPv4 && pr.ICMPType == frame.ICMPv4EchoRequest
	if pr.TTL <= 1 && !echo {
		r.ttl.Add(1)
		sc.mir.drop(u.port, false, dropTTL, d)
		u.send(func(b []byte) int { return icmpError(b, pr, d, u.mac, pr.DstIP, icmpTimeExceeded, 0) })
		return false
	}
	sc.keepPre(d, f.VNet)
	switch v := r.nat.TranslateAt(&sc.la, i, nat.Outside, d, pr, &f.VNet); v.Kind() {
	case nat.Drop:
		r.natDrop.Add(1)
		sc.mir.drop(u.port, false, natDropName(v.Reason()), d)
		return false
	case nat.Pass:
		sc.mir.in(u.port, d, f.VNet)
		u.notMapped(pr, d, echo)
		return false
	}
	sc.showPre(u.port, false)
	if !inPrefixes(r.inside, pr.DstIP) {
		r.noRoute.Add(1)
		sc.mir.drop(u.port, false, dropNoRoute, d)
		return false
	}
	ip := frame.IPv4(d[pr.L3Off:pr.L3End])
	if ip.TTL() > 1 {
		ip.DecTTL()
	}
	if !r.toInside(sc, f, pr, &r.routedIn) {
		sc.mir.note(u.port, false, NotePostNAT, d, f.VNet)
		return false
	}
	sc.mir.note(u.port, false, NotePostNAT, d, f.VNet)
	r.routedIn.Add(1)
	return true
}

// send builds a frame with make into the scratch arena and stages it for
// the uplink.
func (u *Uplink) send(make func(b []byte) int) {
	b := u.sc.buf()
	if b == nil {
		return
	}
	if n := make(b); n > 0 {
		u.sc.up = append(u.sc.up, port.Frame{Data: b[:n]})
		u.sc.mir.out(u.port, b[:n])
	}
}

// notMapped answers a packet to an external address that no flow or
// published port takes: a ping is answered, a TCP segment reset, a UDP
// datagram refused with port unreachable, as the host's own stack would.
func (u *Uplink) notMapped(pr *frame.Parsed, d []byte, echo bool) {
	r := u.r
	switch {
	case echo:
		u.send(func(b []byte) int { return r.echoReply(pr, d, b, u.mac, u.addrs) })
	case pr.Frag == frame.LaterFragment:
		r.unrt.Add(1)
	case pr.Proto == frame.ProtoTCP && pr.TCPFlags&tcpRST == 0:
		r.resets.Add(1)
		u.send(func(b []byte) int { return tcpReset(b, pr, d, u.mac) })
	case pr.Proto == frame.ProtoUDP:
		r.resets.Add(1)
		u.send(func(b []byte) int { return icmpError(b, pr, d, u.mac, pr.DstIP, icmpDestUnreach, icmpPortUnreach) })
	default:
		r.unrt.Add(1)
	}
}

// arp answers requests for the external addresses and learns from what
// is addressed to us.
func (u *Uplink) arp(pr *frame.Parsed, d []byte) {
	r := u.r
	if pr.VLANTags > 0 || !has(u.addrs, pr.DstIP) {
		return
	}
	if inPrefixes(u.onlink, pr.SrcIP) && !pr.ARPSenderMAC.IsMulticast() && !pr.ARPSenderMAC.IsZero() {
		u.neigh.learn(pr.SrcIP, pr.ARPSenderMAC, r.now.Load())
		r.releaseUplink(pr.SrcIP, pr.ARPSenderMAC)
	}
	if pr.ARPOp != 1 {
		return
	}
	u.send(func(b []byte) int {
		r.arp.Add(1)
		return arpReply(pr, d, b, u.mac)
	})
}
