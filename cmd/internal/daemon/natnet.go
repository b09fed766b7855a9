package daemon

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/cmd/internal/api"
	"github.com/switchyard-net/switchyard/nat"
	"github.com/switchyard-net/switchyard/netns"
	"github.com/switchyard-net/switchyard/switch/bridge"
	"github.com/switchyard-net/switchyard/switch/frame"
	"github.com/switchyard-net/switchyard/switch/router"
)

// uplinkRecord is a network's uplink as persisted.
type uplinkRecord struct {
	Iface   string         `json:"iface"`
	Netns   string         `json:"netns,omitempty"`
	Addrs   []netip.Prefix `json:"addrs"`
	Gateway netip.Addr     `json:"gateway,omitzero"`
	MAC     string         `json:"mac"`
	// SetUp and SetPromisc record what opening the uplink changed on the
	// link, to be undone when the network goes.
	SetUp      bool `json:"set_up,omitempty"`
	SetPromisc bool `json:"set_promisc,omitempty"`
}

// publishRecord is one published port range of an endpoint.
type publishRecord struct {
	Spec    string     `json:"spec"`
	Proto   uint8      `json:"proto"`
	ExtIP   netip.Addr `json:"ext_ip,omitzero"`
	ExtPort uint16     `json:"ext_port"`
	ExtEnd  uint16     `json:"ext_end"`
	CtrPort uint16     `json:"ctr_port"`
}

// uplinkInterval is how often a network's NAT and gateway clocks tick.
const uplinkInterval = time.Second

// validateUplinkLocked checks the uplink and NAT part of a create request
// and fills rec. The network's subnets are in cfg already.
func (d *Daemon) validateUplinkLocked(req api.NetworkCreate, spec *netSpec) error {
	rec := spec.rec
	if req.Uplink == "" {
		if req.UplinkIP != "" || req.UplinkGateway != "" || req.UplinkNetns != "" || len(req.PublishAllow) > 0 ||
			req.NATMaxFlows != 0 || len(req.NATTimeouts) > 0 {
			return invalid("uplink-ip, uplink-gateway, uplink-netns, publish-allow and nat settings need --uplink")
		}
		return nil
	}
	if req.Internal {
		return invalid("an internal network has no uplink: drop --internal or --uplink")
	}
	if rec.IPAM != api.IPAMDefault {
		return invalid("an uplink needs a gateway: create the network with ipam default")
	}
	has4 := false
	for _, s := range spec.cfg.Subnets {
		if s.Subnet.Addr().Is4() {
			has4 = true
		}
	}
	if !has4 {
		return invalid("an uplink needs an IPv4 subnet on the network (NAT is IPv4)")
	}
	if err := checkIfName(req.Uplink); err != nil {
		return invalidErr(fmt.Errorf("uplink: %w", err))
	}
	if req.Uplink == "lo" {
		return invalid("the loopback interface cannot be an uplink")
	}
	if req.UplinkNetns != "" {
		if err := checkNetnsName(req.UplinkNetns); err != nil {
			return invalidErr(err)
		}
	}
	up := &uplinkRecord{Iface: req.Uplink, Netns: req.UplinkNetns, MAC: derivedMAC("switchyard-uplink", rec.Name).String()}
	if req.UplinkIP == "" {
		return invalid("--uplink needs --uplink-ip: the gateway's own address on the uplink, in CIDR form")
	}
	for _, s := range strings.Split(req.UplinkIP, ",") {
		p, err := parsePrefix("uplink-ip", strings.TrimSpace(s))
		if err != nil {
			return err
		}
		if !p.Addr().Is4() {
			return invalid("uplink-ip %s: NAT is IPv4; give an IPv4 address", p)
		}
		if p.Bits() < 32 && (p.Addr() == p.Masked().Addr() || p.Addr() == lastAddr(p)) {
			return invalid("uplink-ip %s is the network or broadcast address of its prefix", p)
		}
		for _, s := range spec.cfg.Subnets {
			if s.Subnet.Overlaps(p) {
				return invalid("uplink-ip %s overlaps the network's subnet %s", p, s.Subnet)
			}
		}
		for _, a := range up.Addrs {
			if a.Addr() == p.Addr() {
				return invalid("uplink-ip %s given twice", p.Addr())
			}
		}
		up.Addrs = append(up.Addrs, p)
	}
	if req.UplinkGateway != "" {
		gw, err := parseAddr("uplink-gateway", req.UplinkGateway)
		if err != nil {
			return err
		}
		onlink := false
		for _, p := range up.Addrs {
			if p.Contains(gw) && p.Addr() != gw {
				onlink = true
			}
		}
		if !onlink {
			return invalid("uplink-gateway %s is not on the uplink's prefixes %v", gw, up.Addrs)
		}
		up.Gateway = gw
	}
	for _, on := range d.st.Networks {
		if on.Uplink != nil {
			if on.Uplink.Iface == up.Iface && on.Uplink.Netns == up.Netns {
				return api.Errorf(api.CodeConflict, "interface %s in %s is already the uplink of network %q", up.Iface, where(up.Netns), on.Name)
			}
			for _, a := range on.Uplink.Addrs {
				for _, b := range up.Addrs {
					if a.Addr() == b.Addr() {
						return api.Errorf(api.CodeConflict, "uplink address %s is network %q's already", b.Addr(), on.Name)
					}
				}
			}
		}
		for _, o := range on.Attachments {
			if o.Iface == up.Iface && o.Netns == up.Netns {
				return api.Errorf(api.CodeConflict, "interface %s in %s is attached to network %q", up.Iface, where(up.Netns), on.Name)
			}
		}
		for _, o := range on.Endpoints {
			if (o.Kind == api.KindVeth && up.Netns == "" && o.HostLink == up.Iface) || (o.Netns == up.Netns && o.IfName == up.Iface) {
				return api.Errorf(api.CodeConflict, "interface %s in %s belongs to endpoint %q of network %q", up.Iface, where(up.Netns), o.Netns, on.Name)
			}
		}
	}
	if up.Netns != "" && !netns.Exists(up.Netns) {
		return api.Errorf(api.CodeNotFound, "namespace %q not found", up.Netns)
	}
	exists, _, _, _, err := linkInfo(up.Netns, up.Iface)
	if err != nil {
		return asAPI(err)
	}
	if !exists {
		return api.Errorf(api.CodeNotFound, "uplink interface %s not found in %s", up.Iface, where(up.Netns))
	}
	for _, s := range req.PublishAllow {
		p, err := parsePrefix("publish-allow", s)
		if err != nil {
			return err
		}
		rec.PublishAllow = append(rec.PublishAllow, p)
	}
	if req.NATMaxFlows < 0 || req.NATMaxFlows > nat.MaxMaxFlows {
		return invalid("nat-max-flows %d out of range; want 1 to %d (0: %d)", req.NATMaxFlows, nat.MaxMaxFlows, nat.DefaultMaxFlows)
	}
	rec.NATMaxFlows = req.NATMaxFlows
	var to nat.Timeouts
	for _, k := range slices.Sorted(maps.Keys(req.NATTimeouts)) {
		dur, err := time.ParseDuration(req.NATTimeouts[k])
		if err != nil {
			return invalid("nat timeout %s: %q is not a duration", k, req.NATTimeouts[k])
		}
		if err := to.Set(k, dur); err != nil {
			return invalidErr(err)
		}
	}
	rec.NATTimeouts = to
	rec.Uplink = up
	return nil
}

// lastAddr is the highest address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := 32 - p.Bits()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= 1<<host - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// startUplink opens a network's uplink and builds its NAT; it returns the
// gateway config part. On failure nothing stays open.
func (d *Daemon) startUplink(rec *netRecord, rn *runNet, gwAddrs []netip.Prefix) (*router.UplinkConfig, *nat.NAT, error) {
	up := rec.Uplink
	var inside []netip.Prefix
	var gw4 netip.Addr
	for _, p := range gwAddrs {
		if p.Addr().Is4() {
			inside = append(inside, p.Masked())
			if !gw4.IsValid() {
				gw4 = p.Addr()
			}
		}
	}
	var ext []netip.Addr
	for _, p := range up.Addrs {
		ext = append(ext, p.Addr())
	}
	n, err := nat.New(&nat.Config{
		Inside: inside, Gateway: gw4, External: ext, Masquerade: true,
		Deny: d.otherSubnetsLocked(rec.Name), AllowFrom: rec.PublishAllow,
		MaxFlows: rec.NATMaxFlows, Timeouts: rec.NATTimeouts,
	})
	if err != nil {
		return nil, nil, err
	}
	_, _, up0, promisc, err := linkInfo(up.Netns, up.Iface)
	if err != nil {
		return nil, nil, err
	}
	yes := true
	if !promisc {
		if err := setLink(up.Netns, up.Iface, nil, &yes); err != nil {
			return nil, nil, err
		}
		up.SetPromisc = true
	}
	if !up0 {
		if err := setLink(up.Netns, up.Iface, &yes, nil); err != nil {
			d.restoreUplink(up)
			return nil, nil, err
		}
		up.SetUp = true
	}
	p, err := d.openRing(up.Netns, up.Iface)
	if err != nil {
		d.restoreUplink(up)
		return nil, nil, fmt.Errorf("uplink %s: %w", up.Iface, err)
	}
	mac, _ := net.ParseMAC(up.MAC)
	return &router.UplinkConfig{Port: p, Name: up.Iface, PortName: uplinkPortName, MAC: frame.MAC(mac), Addrs: up.Addrs, Gateway: up.Gateway}, n, nil
}

// restoreUplink undoes what opening the uplink changed on its link.
func (d *Daemon) restoreUplink(up *uplinkRecord) {
	d.restoreLink(&attRecord{Iface: up.Iface, Netns: up.Netns, SetUp: up.SetUp, SetPromisc: up.SetPromisc})
}

// addUplinkPort puts the gateway's uplink side on the bridge and starts
// the clocks.
func (d *Daemon) addUplinkPort(rn *runNet, gw *router.Port) error {
	u := gw.Uplink()
	if u == nil {
		return nil
	}
	if err := rn.br.AddPort(uplinkPortName, u, bridge.Flags{NoLearning: true, OwnMirror: true}); err != nil {
		return err
	}
	rn.gw = gw
	rn.stop = make(chan struct{})
	stop := rn.stop
	go func() {
		t := time.NewTicker(uplinkInterval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				rn.nat.Tick(now)
				gw.Tick(now)
			}
		}
	}()
	return nil
}

// uplinkPortName is the bridge port of a network's uplink side. It has a
// character no namespace or interface name may have, so it clashes with
// no endpoint or attachment.
const uplinkPortName = "uplink:"

// otherSubnetsLocked returns the subnets of every network but name.
func (d *Daemon) otherSubnetsLocked(name string) []netip.Prefix {
	var out []netip.Prefix
	for _, n := range d.st.Networks {
		if n.Name == name {
			continue
		}
		for _, s := range n.Subnets {
			out = append(out, s.Subnet)
		}
	}
	return out
}

// updateDenyLocked tells every NAT the subnets of the other networks, which
// its endpoints must not reach through it.
func (d *Daemon) updateDenyLocked() {
	for name, rn := range d.nets {
		if rn.nat != nil {
			rn.nat.SetDeny(d.otherSubnetsLocked(name))
		}
	}
}

// parsePublish parses [IP:]HOSTPORT[-END]:CTRPORT[-END][/tcp|udp].
func parsePublish(spec string) (publishRecord, error) {
	r := publishRecord{Spec: spec, Proto: frame.ProtoTCP}
	s := spec
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		switch strings.ToLower(s[i+1:]) {
		case "tcp":
		case "udp":
			r.Proto = frame.ProtoUDP
		default:
			return r, fmt.Errorf("publish %q: protocol %q: want tcp or udp", spec, s[i+1:])
		}
		s = s[:i]
	}
	parts := strings.Split(s, ":")
	switch len(parts) {
	case 2:
	case 3:
		a, err := netip.ParseAddr(parts[0])
		if err != nil || !a.Is4() {
			return r, fmt.Errorf("publish %q: host address %q is not an IPv4 address", spec, parts[0])
		}
		r.ExtIP = a
		parts = parts[1:]
	default:
		return r, fmt.Errorf("publish %q: want [IP:]HOSTPORT[-END]:CTRPORT[-END][/tcp|udp]", spec)
	}
	hlo, hhi, err := portRange(parts[0])
	if err != nil {
		return r, fmt.Errorf("publish %q: host port: %w", spec, err)
	}
	clo, chi, err := portRange(parts[1])
	if err != nil {
		return r, fmt.Errorf("publish %q: container port: %w", spec, err)
	}
	if chi-clo != hhi-hlo {
		return r, fmt.Errorf("publish %q: host range %d-%d and container range %d-%d differ in length", spec, hlo, hhi, clo, chi)
	}
	r.ExtPort, r.ExtEnd, r.CtrPort = hlo, hhi, clo
	return r, nil
}

func portRange(s string) (lo, hi uint16, err error) {
	a, b, isRange := strings.Cut(s, "-")
	p := func(x string) (uint16, error) {
		v, err := strconv.ParseUint(x, 10, 16)
		if err != nil || v == 0 {
			return 0, fmt.Errorf("%q is not a port (1-65535)", x)
		}
		return uint16(v), nil
	}
	if lo, err = p(a); err != nil {
		return 0, 0, err
	}
	hi = lo
	if isRange {
		if hi, err = p(b); err != nil {
			return 0, 0, err
		}
		if hi < lo {
			return 0, 0, fmt.Errorf("range %s runs backwards", s)
		}
	}
	return lo, hi, nil
}

// mappings returns the NAT mappings of an endpoint's published ports.
func (ep *epRecord) mappings(ctr netip.Addr) []nat.Mapping {
	var out []nat.Mapping
	for _, p := range ep.Publish {
		out = append(out, nat.Mapping{Proto: p.Proto, ExtIP: p.ExtIP, ExtPort: p.ExtPort, ExtEnd: p.ExtEnd,
			CtrIP: ctr, CtrPort: p.CtrPort, AllowFrom: ep.PublishAllow, Owner: ep.Netns})
	}
	return out
}

// ipv4 returns an endpoint's IPv4 address, if it has one.
func (ep *epRecord) ipv4() (netip.Addr, bool) {
	for _, a := range ep.Addrs {
		if a.Addr().Is4() {
			return a.Addr(), true
		}
	}
	return netip.Addr{}, false
}

// validatePublishLocked checks an endpoint's publish request against the
// network and the ports published already, without changing anything.
func (d *Daemon) validatePublishLocked(n *netRecord, rn *runNet, req api.EndpointCreate) ([]publishRecord, []netip.Prefix, error) {
	if len(req.Publish) == 0 {
		if len(req.PublishAllow) > 0 {
			return nil, nil, invalid("publish-allow needs --publish")
		}
		return nil, nil, nil
	}
	if n.Uplink == nil || rn == nil || rn.nat == nil {
		return nil, nil, invalid("network %q has no uplink: publishing ports needs one (network create --uplink)", n.Name)
	}
	if len(req.IPs) == 1 && req.IPs[0] == api.IPNone {
		return nil, nil, invalid("an endpoint without an address (--ip none) cannot publish ports")
	}
	var recs []publishRecord
	var ms []nat.Mapping
	for _, s := range req.Publish {
		r, err := parsePublish(s)
		if err != nil {
			return nil, nil, invalidErr(err)
		}
		if r.ExtIP.IsValid() {
			ok := false
			for _, a := range n.Uplink.Addrs {
				ok = ok || a.Addr() == r.ExtIP
			}
			if !ok {
				return nil, nil, invalid("publish %q: %s is not one of the uplink's addresses", s, r.ExtIP)
			}
		}
		recs = append(recs, r)
		// A placeholder container address: only the host side can clash.
		ms = append(ms, nat.Mapping{Proto: r.Proto, ExtIP: r.ExtIP, ExtPort: r.ExtPort, ExtEnd: r.ExtEnd,
			CtrIP: netip.AddrFrom4([4]byte{0, 0, 0, 1}), CtrPort: r.CtrPort, Owner: req.Netns})
	}
	var allow []netip.Prefix
	for _, s := range req.PublishAllow {
		p, err := parsePrefix("publish-allow", s)
		if err != nil {
			return nil, nil, err
		}
		allow = append(allow, p)
	}
	if err := rn.nat.CheckMappings(ms...); err != nil {
		return nil, nil, api.Errorf(api.CodeConflict, "%v", err)
	}
	return recs, allow, nil
}

// publishLocked makes an endpoint reachable through the uplink: its
// published ports, and its address pinned in the gateway's ARP table.
func (d *Daemon) publishLocked(rn *runNet, ep *epRecord) error {
	if rn.nat == nil {
		return nil
	}
	a, ok := ep.ipv4()
	if !ok {
		return nil
	}
	if mac, err := net.ParseMAC(ep.MAC); err == nil {
		rn.gw.SetNeighbour(a, frame.MAC(mac), true)
	}
	if len(ep.Publish) == 0 {
		return nil
	}
	return rn.nat.AddMappings(ep.mappings(a)...)
}

// unpublishLocked undoes publishLocked and drops the endpoint's flows.
func (d *Daemon) unpublishLocked(rn *runNet, ep *epRecord) {
	if rn == nil || rn.nat == nil {
		return
	}
	rn.nat.RemoveMappings(ep.Netns)
	if a, ok := ep.ipv4(); ok {
		rn.gw.SetNeighbour(a, frame.MAC{}, false)
		if k := rn.nat.Flush(a); k > 0 {
			d.log.Debug("flows flushed", zap.String("network", rn.name), zap.String("endpoint", ep.Netns), zap.Int("flows", k))
		}
	}
}

// NATTable returns a network's connection table, at most max entries.
func (d *Daemon) NATTable(name string, max int) (api.NATTable, error) {
	if err := d.lockOpen(); err != nil {
		return api.NATTable{}, err
	}
	defer d.mu.Unlock()
	n, rn, err := d.netLocked(name)
	if err != nil {
		return api.NATTable{}, err
	}
	if n.Uplink == nil || rn.nat == nil {
		return api.NATTable{}, api.Errorf(api.CodeNotFound, "network %q has no NAT: it has no uplink", name)
	}
	s := rn.nat.Stats()
	out := api.NATTable{Flows: s.Flows, MaxFlows: s.MaxFlows, Created: s.Created, Expired: s.Expired, Evicted: s.Evicted, Drops: s.Drops,
		Entries: []api.NATFlow{}}
	for _, m := range rn.nat.Mappings() {
		out.Mappings = append(out.Mappings, m.String()+" ("+m.Owner+")")
	}
	fl := rn.nat.Flows(max + 1)
	if len(fl) > max {
		fl, out.Truncated = fl[:max], true
	}
	for _, f := range fl {
		out.Entries = append(out.Entries, api.NATFlow{
			Proto: f.Proto, Kind: f.Kind, OrigSrc: f.OrigSrc.String(), OrigDst: f.OrigDst.String(),
			NewSrc: f.NewSrc.String(), NewDst: f.NewDst.String(), State: f.State,
			TimeoutSec: f.Timeout.Seconds(), Packets: f.Packets, Bytes: f.Bytes,
		})
	}
	return out, nil
}

// uplinkInfo is the inspect view of a network's uplink.
func uplinkInfo(n *netRecord, rn *runNet) *api.Uplink {
	if n.Uplink == nil {
		return nil
	}
	u := &api.Uplink{Iface: n.Uplink.Iface, Netns: n.Uplink.Netns, MAC: n.Uplink.MAC, Up: rn != nil && rn.nat != nil}
	for _, a := range n.Uplink.Addrs {
		u.Addrs = append(u.Addrs, a.String())
	}
	if n.Uplink.Gateway.IsValid() {
		u.Gateway = n.Uplink.Gateway.String()
	}
	return u
}

// timeoutStrings renders the non-default NAT timeouts.
func timeoutStrings(t nat.Timeouts) map[string]string {
	out := map[string]string{}
	for _, name := range nat.TimeoutNames {
		if d := t.Get(name); d != 0 {
			out[name] = d.String()
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
