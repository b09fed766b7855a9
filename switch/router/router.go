// Package router is a network's gateway as the bridge sees it: a port with
// the gateway's MAC that answers ARP and IPv6 neighbour solicitations for the
// gateway addresses and replies to pings sent to them. Endpoints point their
// default route at it, so `ping <gateway>` works from every namespace.
//
// The bridge writes to it like to any port (floods and frames for its MAC);
// replies are queued and read back by the bridge.
//
// With an uplink and a NAT (package nat) it also routes IPv4: frames for the
// gateway's MAC from the endpoints are translated and sent out of the uplink
// port to their next hop, resolved with ARP on the uplink; frames arriving
// on the uplink for the uplink's MAC are translated and handed to the bridge
// by a second bridge port (Uplink), addressed to the endpoint's MAC. Both
// directions rewrite the frames in place (the TTL too) and copy nothing
// but into the egress port; ARP requests, replies, ICMP errors and TCP
// resets the gateway makes itself are small frames of its own.
package router

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/nat"
	"github.com/switchyard-net/switchyard/switch/frame"
	"github.com/switchyard-net/switchyard/switch/port"
)

// Config sets up a gateway port.
type Config struct {
	Name   string         // port name, for logs and Namer; default "gateway"
	MAC    frame.MAC      // the gateway's MAC
	Addrs  []netip.Prefix // the gateway's addresses, IPv4 and/or IPv6
	MTU    int            // default 1500
	Logger *zap.Logger
	// NAT translates what the gateway routes. Without one (or without an
	// uplink) the gateway routes nothing.
	NAT *nat.NAT
	// Uplink is the way out; nil for an internal network.
	Uplink *UplinkConfig
	// Neighbours bounds each ARP table (default DefaultNeighbours).
	Neighbours int
}

// UplinkConfig is the gateway's side on the uplink segment.
type UplinkConfig struct {
	Port port.Port // the uplink interface's port; the gateway owns it
	Name string    // the uplink interface's name, for logs and listings
	// PortName is the uplink's port on the bridge (Uplink), for what a
	// capture shows; default Name.
	PortName string
	MAC      frame.MAC // the gateway's own MAC on the uplink
	// Addrs are the external addresses, each with its on-link prefix.
	Addrs []netip.Prefix
	// Gateway is the next hop for destinations off the uplink's prefixes;
	// unset, only on-link destinations are reachable.
	Gateway netip.Addr
}

// Counters are a gateway's own counters.
type Counters struct {
	ARPReplies   uint64 `json:"arp_replies"`
	NDPAdverts   uint64 `json:"ndp_adverts"`
	EchoReplies  uint64 `json:"echo_replies"`
	NotForUs     uint64 `json:"not_for_us"`    // floods and frames for other hosts
	Unroutable   uint64 `json:"unroutable"`    // IP to our MAC for another address: no uplink to route to, or nothing published there
	Malformed    uint64 `json:"malformed"`     // failed to decode
	QueueDropped uint64 `json:"queue_dropped"` // replies lost to a full queue
	// Routing, with an uplink.
	RoutedOut    uint64 `json:"routed_out,omitempty"`    // endpoints to the uplink
	RoutedIn     uint64 `json:"routed_in,omitempty"`     // uplink to endpoints
	Hairpinned   uint64 `json:"hairpinned,omitempty"`    // endpoint to endpoint through the NAT
	NATDropped   uint64 `json:"nat_dropped,omitempty"`   // dropped by the NAT (see its stats)
	NeighQueued  uint64 `json:"neigh_queued,omitempty"`  // held while the next hop's MAC was being resolved, sent when it came
	NeighMiss    uint64 `json:"neigh_miss,omitempty"`    // dropped: the next hop's MAC did not come in time, or too many waited
	NoRoute      uint64 `json:"no_route,omitempty"`      // off-link destination and no uplink gateway
	TTLExceeded  uint64 `json:"ttl_exceeded,omitempty"`  // TTL ran out: ICMP time exceeded sent
	Resets       uint64 `json:"resets,omitempty"`        // TCP resets and port unreachables for unpublished ports
	ARPRequests  uint64 `json:"arp_requests,omitempty"`  // sent to resolve next hops
	OffloadDrops uint64 `json:"offload_drops,omitempty"` // GSO frames for an uplink that takes no offloads
}

// Port is a gateway port. It implements port.Port.
type Port struct {
	name  string
	mac   frame.MAC
	v4    []netip.Addr
	v6    []netip.Addr
	mtu   int
	log   *zap.Logger
	q     *port.Queue
	ctr   port.Counters
	arp   atomic.Uint64
	ndp   atomic.Uint64
	echo  atomic.Uint64
	other atomic.Uint64
	unrt  atomic.Uint64
	bad   atomic.Uint64
	qdrop atomic.Uint64

	routing // with an uplink
}

var (
	_ port.Port    = (*Port)(nil)
	_ port.Statser = (*Port)(nil)
	_ port.Namer   = (*Port)(nil)

	_ port.InPlaceWriter = (*Port)(nil)
)

// New returns a gateway port.
func New(cfg *Config) *Port {
	p := &Port{name: cfg.Name, mac: cfg.MAC, mtu: cfg.MTU, log: cfg.Logger}
	if p.name == "" {
		p.name = "gateway"
	}
	if p.mtu == 0 {
		p.mtu = 1500
	}
	if p.log == nil {
		p.log = zap.NewNop()
	}
	for _, a := range cfg.Addrs {
		if a.Addr().Is4() {
			p.v4 = append(p.v4, a.Addr())
		} else {
			p.v6 = append(p.v6, a.Addr())
		}
	}
	slot := 9216
	if cfg.NAT != nil && cfg.Uplink != nil {
		// Hairpinned GSO super-frames pass through the queue.
		slot = 65536 + 32
	}
	p.q = port.NewQueue(128, slot)
	p.initRouting(cfg)
	return p
}

func (p *Port) Name() string      { return p.name }
func (p *Port) BatchSize() int    { return 32 }
func (p *Port) MTU() int          { return p.mtu }
func (p *Port) Stats() port.Stats { return p.ctr.Snapshot() }

// Counters returns the gateway's own counters.
func (p *Port) Counters() Counters {
	c := Counters{
		ARPReplies: p.arp.Load(), NDPAdverts: p.ndp.Load(), EchoReplies: p.echo.Load(),
		NotForUs: p.other.Load(), Unroutable: p.unrt.Load(), Malformed: p.bad.Load(), QueueDropped: p.qdrop.Load(),
	}
	p.routingCounters(&c)
	return c
}

// Read returns queued replies.
func (p *Port) Read(frames []port.Frame) (int, error) {
	n, ok := p.q.Get(frames)
	if !ok {
		return 0, port.ErrClosed
	}
	var b uint64
	for _, f := range frames[:n] {
		b += uint64(len(f.Data))
	}
	p.ctr.RxFrames.Add(uint64(n))
	p.ctr.RxBytes.Add(b)
	return n, nil
}

// Close implements port.Port. It closes the uplink port too.
func (p *Port) Close() error {
	p.q.Close()
	if p.up != nil {
		return p.up.p.Close()
	}
	return nil
}

// WritesInPlace implements port.InPlaceWriter: with an uplink, Write
// translates and readdresses the frames it routes in place.
func (p *Port) WritesInPlace() bool { return p.up != nil }

// Offloads implements port.Offloader: with an uplink the gateway takes
// GSO super-frames and partial checksums as they come, and passes them on.
func (p *Port) Offloads() bool { return p.up != nil }

func has(list []netip.Addr, a netip.Addr) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}

// Write takes frames from the bridge: it queues the replies they call for,
// and with an uplink routes IPv4 through the NAT. It is safe for
// concurrent use.
func (p *Port) Write(frames []port.Frame) (int, error) {
	sc := p.scratch.Get().(*scratch)
	defer p.scratch.Put(sc)
	sc.reset()
	sc.mir = p.mirror.Load()
	for lo := 0; lo < len(frames); lo += nat.BatchMax {
		hi := min(len(frames), lo+nat.BatchMax)
		p.look(sc, frames[lo:hi])
		for i := lo; i < hi; i++ {
			if p.up != nil {
				p.nat.Step(&sc.la, i-lo)
			}
			p.handle(sc, &frames[i], &sc.prs[i-lo], i-lo)
		}
	}
	p.flushUp(sc)
	return len(frames), nil
}

// look decodes a batch of at most nat.BatchMax frames from the bridge and,
// with an uplink, starts the NAT's lookahead for those it may route.
func (p *Port) look(sc *scratch, frames []port.Frame) {
	route := p.up != nil
	if route {
		sc.la.Reset(len(frames))
	}
	for i := range frames {
		pr := &sc.prs[i]
		d := frames[i].Data
		pr.Decode(d)
		if route && pr.Reason == frame.OK && pr.IPVersion == 4 && pr.DstMAC == p.mac {
			p.nat.Look(&sc.la, i, nat.Inside, d, pr)
		}
	}
	if route {
		p.nat.TouchFirst(&sc.la, len(frames))
	}
}

// handle takes one frame from the bridge, frame i of its batch, decoded in
// pr.
func (p *Port) handle(sc *scratch, f *port.Frame, pr *frame.Parsed, i int) {
	d := f.Data
	p.ctr.TxFrames.Add(1)
	p.ctr.TxBytes.Add(uint64(len(d)))
	if pr.Reason != frame.OK {
		p.bad.Add(1)
		sc.mir.drop(p.name, true, dropMalformed, d)
		return
	}
	if pr.DstMAC != p.mac && !pr.DstMAC.IsMulticast() {
		p.other.Add(1)
		return
	}
	var n int
	switch {
	case pr.EtherType == frame.EtherTypeARP:
		p.learnInside(pr)
		n = p.arpReply(pr, d, sc.reply[:])
	case pr.IPVersion == 4 && pr.DstMAC == p.mac:
		p.learnInside(pr)
		n = p.route(sc, f, pr, i)
	case pr.IPVersion == 6 && pr.Proto == frame.ProtoICMPv6 && pr.ICMPType == frame.ICMPv6EchoRequest:
		n = p.echoReply(pr, d, sc.reply[:], p.mac, p.v6)
	case pr.IPVersion == 6 && pr.Proto == frame.ProtoICMPv6 && pr.ICMPType == icmpv6NeighborSolicit:
		n = p.neighborAdvert(pr, d, sc.reply[:])
	case pr.IsIP() && pr.DstMAC == p.mac && !has(p.v4, pr.DstIP) && !has(p.v6, pr.DstIP):
		p.unrt.Add(1)
		sc.mir.drop(p.name, true, dropUnroutable, d)
	default:
		p.other.Add(1)
	}
	if n > 0 {
		p.queue(port.Frame{Data: sc.reply[:n]})
	}
}

// queue hands a frame to the bridge through the gateway port's Read.
func (p *Port) queue(f port.Frame) {
	if k, _ := p.q.Put([]port.Frame{f}); k == 0 {
		p.qdrop.Add(1)
	}
}

func (p *Port) arpReply(pr *frame.Parsed, d, out []byte) int {
	if pr.ARPOp != 1 || !has(p.v4, pr.DstIP) || pr.VLANTags > 0 {
		p.other.Add(1)
		return 0
	}
	p.arp.Add(1)
	return arpReply(pr, d, out, p.mac)
}

// arpReply writes into out the reply, from mac, to the ARP request d
// (parsed as pr) and returns its length.
func arpReply(pr *frame.Parsed, d, out []byte, mac frame.MAC) int {
	const n = frame.EthernetLen + frame.ARPLen
	copy(out, d[:n])
	eth := frame.Ethernet(out[:n])
	eth.SetDst(pr.SrcMAC)
	eth.SetSrc(mac)
	a := frame.ARP(out[frame.EthernetLen:n])
	a.SetOp(2)
	a.SetSender(mac, pr.DstIP)
	a.SetTarget(pr.ARPSenderMAC, pr.SrcIP)
	return pad(out, n)
}

// pad extends a frame to the Ethernet minimum of 60 bytes.
func pad(out []byte, n int) int {
	for ; n < 60; n++ {
		out[n] = 0
	}
	return n
}

// echoReply answers an echo request to one of ours (from mac): the request
// copied into out, addresses and MACs swapped, TTL/hop limit 64, type set to reply
// and the checksum filled. It returns the reply's length, 0 for none.
func (p *Port) echoReply(pr *frame.Parsed, d, out []byte, mac frame.MAC, ours []netip.Addr) int {
	if !has(ours, pr.DstIP) {
		if !pr.DstIP.IsMulticast() {
			p.unrt.Add(1)
		}
		return 0
	}
	if pr.Frag != frame.NotFragment || pr.L3End > len(out) || pr.VLANTags > 0 {
		return 0
	}
	n := pr.L3End
	copy(out, d[:n])
	eth := frame.Ethernet(out[:n])
	eth.SetDst(pr.SrcMAC)
	eth.SetSrc(mac)
	if pr.IPVersion == 4 {
		ip := frame.IPv4(out[pr.L3Off:n])
		ip.SetSrc(pr.DstIP)
		ip.SetDst(pr.SrcIP)
		ip.SetTTL(64)
		icmp := frame.ICMPv4(out[pr.L4Off:n])
		icmp[0] = frame.ICMPv4EchoReply
		icmp.FillChecksum()
	} else {
		ip := frame.IPv6(out[pr.L3Off:n])
		ip.SetSrc(pr.DstIP)
		ip.SetDst(pr.SrcIP)
		ip.SetHopLimit(64)
		icmp := frame.ICMPv6(out[pr.L4Off:n])
		icmp[0] = frame.ICMPv6EchoReply
		icmp.FillChecksum(pr.DstIP, pr.SrcIP)
	}
	p.echo.Add(1)
	return pad(out, n)
}

const (
	icmpv6NeighborSolicit uint8 = 135
	icmpv6NeighborAdvert  uint8 = 136
	ndpOptSourceLL              = 1
	ndpOptTargetLL              = 2
	ndpFlagSolicited            = 0x40
	ndpFlagOverride             = 0x20
	ndpFlagRouter               = 0x80
)

// neighborAdvert answers a neighbour solicitation for one of our IPv6
// addresses: a solicited, overriding router advertisement of our MAC.
func (p *Port) neighborAdvert(pr *frame.Parsed, d, out []byte) int {
	// ICMPv6 header (4) + reserved (4) + target (16).
	if pr.L4Off+24 > pr.L3End || pr.VLANTags > 0 {
		p.bad.Add(1)
		return 0
	}
	target := netip.AddrFrom16([16]byte(d[pr.L4Off+8 : pr.L4Off+24]))
	if !has(p.v6, target) {
		p.other.Add(1)
		return 0
	}
	// To the soliciting host; to all-nodes for a DAD probe (unspecified source).
	dstIP, dstMAC := pr.SrcIP, pr.SrcMAC
	flags := byte(ndpFlagSolicited | ndpFlagOverride | ndpFlagRouter)
	if !pr.SrcIP.IsValid() || pr.SrcIP.IsUnspecified() {
		dstIP = netip.AddrFrom16([16]byte{0xff, 0x02, 15: 1})
		dstMAC = frame.MAC{0x33, 0x33, 0, 0, 0, 1}
		flags &^= ndpFlagSolicited
	}
	const icmpLen = 4 + 4 + 16 + 8 // header, flags, target, target link-layer option
	l3 := frame.EthernetLen
	l4 := l3 + frame.IPv6Len
	n := l4 + icmpLen
	clear(out[:n])
	eth := frame.Ethernet(out[:n])
	eth.SetDst(dstMAC)
	eth.SetSrc(p.mac)
	binary.BigEndian.PutUint16(out[12:], frame.EtherTypeIPv6)
	ip := frame.IPv6(out[l3:n])
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], icmpLen)
	ip[6] = frame.ProtoICMPv6
	ip.SetHopLimit(255)
	ip.SetSrc(target)
	ip.SetDst(dstIP)
	m := out[l4:n]
	m[0] = icmpv6NeighborAdvert
	m[4] = flags
	copy(m[8:24], d[pr.L4Off+8:pr.L4Off+24])
	m[24], m[25] = ndpOptTargetLL, 1
	copy(m[26:32], p.mac[:])
	frame.ICMPv6(m).FillChecksum(target, dstIP)
	p.ndp.Add(1)
	return pad(out, n)
}
