package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/cmd/internal/api"
	"github.com/switchyard-net/switchyard/ipam"
	"github.com/switchyard-net/switchyard/netns"
	"github.com/switchyard-net/switchyard/switch/bridge"
	"github.com/switchyard-net/switchyard/switch/port"
)

// Connect connects a network namespace to a network: a veth pair (or a TAP
// device) whose inner end gets an address from the network's IPAM and a
// default route via its gateway, and whose host end becomes a port named
// after the namespace.
func (d *Daemon) Connect(network string, req api.EndpointCreate) (api.Port, error) {
	if err := d.lockOpen(); err != nil {
		return api.Port{}, err
	}
	defer d.mu.Unlock()
	n, rn, err := d.netLocked(network)
	if err != nil {
		return api.Port{}, err
	}
	ep, err := d.connectLocked(n, rn, req)
	if err != nil {
		return api.Port{}, err
	}
	return d.portInfoLocked(n, rn, ep.Netns), nil
}

// connectPlan is a validated EndpointCreate.
type connectPlan struct {
	rec      *epRecord
	want     []netip.Addr
	allocate bool
	tmpName  string // the TAP's name before it moves
}

func (d *Daemon) validateConnectLocked(n *netRecord, req api.EndpointCreate) (*connectPlan, error) {
	if err := checkNetnsName(req.Netns); err != nil {
		return nil, invalidErr(err)
	}
	if req.Netns == api.GatewayPort && n.hasGateway() {
		return nil, api.Errorf(api.CodeConflict, "port name %q is the gateway's in network %q", req.Netns, n.Name)
	}
	if _, ok := n.Endpoints[req.Netns]; ok {
		return nil, api.Errorf(api.CodeConflict, "namespace %q is already connected to network %q", req.Netns, n.Name)
	}
	if _, ok := n.Attachments[req.Netns]; ok {
		return nil, api.Errorf(api.CodeConflict, "network %q already has a port %q (an attached interface)", n.Name, req.Netns)
	}
	kind := req.Kind
	switch kind {
	case "":
		kind = api.KindVeth
	case api.KindVeth, api.KindTap:
	default:
		return nil, invalid("unknown endpoint kind %q; want veth or tap", req.Kind)
	}
	ifname := req.IfName
	if ifname == "" {
		ifname = netns.DefaultIfName
	}
	if err := checkIfName(ifname); err != nil {
		return nil, invalidErr(err)
	}
	var mac net.HardwareAddr
	if req.MAC != "" {
		m, err := parseMAC(req.MAC)
		if err != nil {
			return nil, err
		}
		mac = m
	} else {
		mac = derivedMAC("switchyard-endpoint", n.Name, req.Netns)
	}
	plan := &connectPlan{rec: &epRecord{Netns: req.Netns, Kind: kind, IfName: ifname, MAC: mac.String(),
		Flags: apiFlags(bridge.DefaultFlags())}}
	l2only := false
	for _, s := range req.IPs {
		if s == api.IPNone {
			if len(req.IPs) > 1 {
				return nil, invalid("ip none cannot be combined with addresses")
			}
			l2only = true
			continue
		}
		a, err := parseAddr("ip", s)
		if err != nil {
			return nil, err
		}
		plan.want = append(plan.want, a)
	}
	if n.IPAM == api.IPAMNone && len(plan.want) > 0 {
		return nil, invalid("network %q has no IPAM (ipam none); it cannot give addresses", n.Name)
	}
	plan.allocate = n.IPAM == api.IPAMDefault && !l2only
	if !netns.Exists(req.Netns) {
		return nil, api.Errorf(api.CodeNotFound, "namespace %q not found (create it with `ip netns add %s`)", req.Netns, req.Netns)
	}
	for _, on := range d.st.Networks {
		if o, ok := on.Endpoints[req.Netns]; ok && o.IfName == ifname {
			return nil, api.Errorf(api.CodeConflict, "namespace %q already has %s from network %q; choose another ifname", req.Netns, ifname, on.Name)
		}
	}
	exists, _, _, _, err := linkInfo(req.Netns, ifname)
	if err != nil {
		return nil, asAPI(err)
	}
	if exists {
		return nil, api.Errorf(api.CodeConflict, "namespace %q already has an interface %s; choose another ifname", req.Netns, ifname)
	}
	host := hostLinkName(n.Name, req.Netns)
	exists, _, _, _, err = linkInfo("", host)
	if err != nil {
		return nil, asAPI(err)
	}
	if exists {
		return nil, api.Errorf(api.CodeConflict, "link %s already exists in the daemon's namespace (left over? remove it with `ip link del %s`)", host, host)
	}
	if kind == api.KindVeth {
		plan.rec.HostLink = host
	} else {
		plan.tmpName = host
	}
	if err := d.validateMacvlanConnectLocked(n, req, plan); err != nil {
		return nil, err
	}
	return plan, nil
}

func (d *Daemon) connectLocked(n *netRecord, rn *runNet, req api.EndpointCreate) (_ *epRecord, err error) {
	plan, err := d.validateConnectLocked(n, req)
	if err != nil {
		return nil, err
	}
	ep := plan.rec
	if ep.Publish, ep.PublishAllow, err = d.validatePublishLocked(n, rn, req); err != nil {
		return nil, err
	}
	if len(ep.Publish) > 0 && !plan.allocate {
		return nil, invalid("an endpoint without an address cannot publish ports")
	}
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	if plan.allocate {
		// A namespace has one default route per family: the first
		// network that gives one keeps it (as with Docker).
		has4, has6, err := defaultRoutes(ep.Netns)
		if err != nil {
			return nil, asAPI(err)
		}
		got, err := d.ipam.Allocate(n.Name, ep.Netns, plan.want)
		if err != nil {
			return nil, ipamError(err)
		}
		undo = append(undo, func() { _ = d.ipam.Release(n.Name, ep.Netns) })
		for _, a := range got {
			for _, sc := range n.Subnets {
				if sc.Subnet.Contains(a) {
					ep.Addrs = append(ep.Addrs, netip.PrefixFrom(a, sc.Subnet.Bits()))
					if sc.Gateway.IsValid() && (n.hasGateway() || n.Macvlan != nil) {
						if a.Is4() && has4 || a.Is6() && has6 {
							d.log.Info("namespace has a default route already; none added", zap.String("netns", ep.Netns),
								zap.String("network", n.Name), zap.Stringer("gateway", sc.Gateway))
							continue
						}
						ep.Gateways = append(ep.Gateways, sc.Gateway)
					}
				}
			}
		}
	}
	// Write the endpoint down as pending before making links, so that a
	// crash from here on leaves a record the next start cleans up.
	ep.Pending = true
	n.Endpoints[ep.Netns] = ep
	undo = append(undo, func() {
		delete(n.Endpoints, ep.Netns)
		_ = d.saveLocked()
	})
	if err := d.saveLocked(); err != nil {
		return nil, err
	}
	mac, _ := net.ParseMAC(ep.MAC)
	nep := netns.Endpoint{Netns: ep.Netns, IfName: ep.IfName, HostName: ep.HostLink, MAC: mac,
		Addrs: ep.Addrs, Gateways: ep.Gateways, MTU: n.MTU}
	var p port.Port
	switch ep.Kind {
	case api.KindVeth:
		if err := netns.AddVeth(nep); err != nil {
			return nil, api.Errorf(api.CodeInternal, "connect %s: %v", ep.Netns, err)
		}
		undo = append(undo, func() { _ = delLinkOfType("", ep.HostLink, "veth") })
		quietHostEnd(ep.HostLink)
		if p, err = d.openRing("", ep.HostLink); err != nil {
			return nil, api.Errorf(api.CodeInternal, "connect %s: %v", ep.Netns, err)
		}
	case api.KindTap:
		nep.HostName = plan.tmpName
		files, err := netns.AddTap(nep, 1)
		if err != nil {
			return nil, api.Errorf(api.CodeInternal, "connect %s: %v", ep.Netns, err)
		}
		undo = append(undo, func() { _ = delLinkOfType(ep.Netns, ep.IfName, "tuntap") })
		if err := setTapPersist(files[0], true); err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, api.Errorf(api.CodeInternal, "connect %s: tap %s: %v", ep.Netns, ep.IfName, err)
		}
		for _, f := range files[1:] {
			f.Close()
		}
		if p, err = tapPort(ep.IfName, files[0], n.MTU); err != nil {
			files[0].Close()
			return nil, api.Errorf(api.CodeInternal, "connect %s: %v", ep.Netns, err)
		}
	}
	if err := rn.br.AddPort(ep.Netns, p, bridgeFlags(ep.Flags)); err != nil {
		p.Close()
		return nil, api.Errorf(api.CodeInternal, "connect %s: %v", ep.Netns, err)
	}
	undo = append(undo, func() { _ = rn.br.RemovePort(ep.Netns) })
	if err := d.publishLocked(rn, ep); err != nil {
		d.unpublishLocked(rn, ep)
		return nil, api.Errorf(api.CodeConflict, "connect %s: publish: %v", ep.Netns, err)
	}
	undo = append(undo, func() { d.unpublishLocked(rn, ep) })
	ep.Pending = false
	if err := d.saveLocked(); err != nil {
		ep.Pending = true
		return nil, err
	}
	d.log.Info("endpoint connected", zap.String("network", n.Name), zap.String("netns", ep.Netns),
		zap.String("kind", ep.Kind), zap.String("ifname", ep.IfName), zap.String("host_link", ep.HostLink),
		zap.String("mac", ep.MAC), zap.Any("addrs", ep.Addrs))
	return ep, nil
}

// openEndpointPort reopens the port of an endpoint whose links exist.
func (d *Daemon) openEndpointPort(n *netRecord, ep *epRecord) (port.Port, error) {
	switch ep.Kind {
	case api.KindVeth:
		return d.openRing("", ep.HostLink)
	case api.KindTap:
		f, err := reopenTap(ep.Netns, ep.IfName)
		if err != nil {
			return nil, err
		}
		p, err := tapPort(ep.IfName, f, n.MTU)
		if err != nil {
			f.Close()
			return nil, err
		}
		return p, nil
	}
	return nil, fmt.Errorf("unknown endpoint kind %q", ep.Kind)
}

// Disconnect removes a namespace's endpoint: its port, its links and its
// lease.
func (d *Daemon) Disconnect(network, ns string) error {
	if err := d.lockOpen(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	n, rn, err := d.netLocked(network)
	if err != nil {
		return err
	}
	ep, ok := n.Endpoints[ns]
	if !ok {
		return api.Errorf(api.CodeNotFound, "namespace %q is not connected to network %q", ns, network)
	}
	if err := d.removeEndpointLocked(n, rn, ep); err != nil {
		d.log.Warn("endpoint not disconnected", zap.String("network", network), zap.String("netns", ns), zap.Error(err))
		return api.Errorf(api.CodeInternal, "disconnect %s from network %q: %v; the endpoint is kept, retry to finish", ns, network, err)
	}
	delete(n.Endpoints, ns)
	if err := d.saveLocked(); err != nil {
		// Its links and lease are gone; a retry finds nothing to undo
		// and drops the record.
		n.Endpoints[ns] = ep
		return err
	}
	d.log.Info("endpoint disconnected", zap.String("network", network), zap.String("netns", ns))
	return nil
}

// errLinkReplaced: a link by the name we gave ours is of another type, so
// ours is gone and the one there is someone else's (left alone).
var errLinkReplaced = errors.New("link replaced")

// removeEndpointLocked takes an endpoint down for a request that may fail:
// its port, its links, then its lease. When a link cannot be deleted (for a
// reason other than its being gone already) the lease is kept, the port is
// put back on the switch if it can be, and the error returned, so that the
// caller keeps the record and a retry can finish. What is already gone is
// skipped.
func (d *Daemon) removeEndpointLocked(n *netRecord, rn *runNet, ep *epRecord) error {
	d.unpublishLocked(rn, ep)
	if err := d.endpointLinksDownLocked(rn, ep); err != nil {
		if errors.Is(err, errLinkReplaced) {
			d.log.Warn("endpoint's link replaced by another; left alone", zap.String("network", n.Name),
				zap.String("netns", ep.Netns), zap.Error(err))
		} else {
			d.readoptLocked(n, rn, ep)
			if perr := d.publishLocked(rn, ep); perr != nil {
				d.log.Warn("endpoint's published ports not restored", zap.String("network", n.Name),
					zap.String("netns", ep.Netns), zap.Error(perr))
			}
			return err
		}
	}
	return d.releaseLeaseLocked(n, ep)
}

// readoptLocked puts an endpoint whose links are still there back on the
// switch (best effort).
func (d *Daemon) readoptLocked(n *netRecord, rn *runNet, ep *epRecord) {
	if rn == nil || d.endpointMissing(ep) != "" {
		return
	}
	if _, err := rn.br.Port(ep.Netns); err == nil {
		return
	}
	p, err := d.openEndpointPort(n, ep)
	if err == nil {
		if err = rn.br.AddPort(ep.Netns, p, bridgeFlags(ep.Flags)); err != nil {
			p.Close()
		}
	}
	if err != nil {
		d.log.Warn("endpoint's port cannot be put back on the switch", zap.String("network", n.Name),
			zap.String("netns", ep.Netns), zap.Error(err))
	}
}

// teardownEndpointLocked removes an endpoint's port, links and lease, all
// it can, for a caller that drops the record whatever happens (the link is
// gone, or the state is being restored); what is already gone is skipped.
// rn may be nil.
func (d *Daemon) teardownEndpointLocked(n *netRecord, rn *runNet, ep *epRecord) error {
	d.unpublishLocked(rn, ep)
	return errors.Join(d.endpointLinksDownLocked(rn, ep), d.releaseLeaseLocked(n, ep))
}

// endpointLinksDownLocked removes an endpoint's port from the switch (rn
// may be nil) and deletes its links.
func (d *Daemon) endpointLinksDownLocked(rn *runNet, ep *epRecord) error {
	if rn != nil {
		if err := rn.br.RemovePort(ep.Netns); err != nil && !errors.Is(err, bridge.ErrNoPort) && !errors.Is(err, port.ErrClosed) {
			d.log.Debug("closing port", zap.String("port", ep.Netns), zap.Error(err))
		}
	}
	switch ep.Kind {
	case api.KindVeth:
		return delLink("", ep.HostLink, "veth")
	case api.KindTap:
		return delLink(ep.Netns, ep.IfName, "tuntap")
	}
	return nil
}

// delLink is delLinkOfType; tests replace it to make deletion fail.
var delLink = delLinkOfType

// releaseLeaseLocked releases an endpoint's addresses; none held is not an
// error.
func (d *Daemon) releaseLeaseLocked(n *netRecord, ep *epRecord) error {
	if n.IPAM != api.IPAMDefault {
		return nil
	}
	if err := d.ipam.Release(n.Name, ep.Netns); err != nil && !errors.Is(err, ipam.ErrNotAllocated) && !errors.Is(err, ipam.ErrUnknownNetwork) {
		return err
	}
	return nil
}

// Attach makes an existing interface (in the daemon's namespace or a named
// one) a port of a network, as `ip link set IFACE master BR` does for a
// kernel bridge. The interface is set up and promiscuous if it was not
// (undone on detach).
func (d *Daemon) Attach(network string, req api.AttachmentCreate) (api.Port, error) {
	if err := d.lockOpen(); err != nil {
		return api.Port{}, err
	}
	defer d.mu.Unlock()
	n, rn, err := d.netLocked(network)
	if err != nil {
		return api.Port{}, err
	}
	at, err := d.attachLocked(n, rn, req)
	if err != nil {
		return api.Port{}, err
	}
	return d.portInfoLocked(n, rn, at.Iface), nil
}

func where(ns string) string {
	if ns == "" {
		return "the daemon's namespace"
	}
	return fmt.Sprintf("namespace %q", ns)
}

func (d *Daemon) attachLocked(n *netRecord, rn *runNet, req api.AttachmentCreate) (_ *attRecord, err error) {
	if err := checkIfName(req.Iface); err != nil {
		return nil, invalidErr(err)
	}
	if n.Macvlan != nil {
		return nil, invalid("network %q is a macvlan network: connect namespaces to it; interfaces cannot be attached", n.Name)
	}
	if req.Iface == "lo" {
		return nil, invalid("the loopback interface cannot be a port")
	}
	if req.Netns != "" {
		if err := checkNetnsName(req.Netns); err != nil {
			return nil, invalidErr(err)
		}
	}
	if req.Iface == api.GatewayPort && n.hasGateway() {
		return nil, api.Errorf(api.CodeConflict, "port name %q is the gateway's in network %q", req.Iface, n.Name)
	}
	if _, ok := n.Endpoints[req.Iface]; ok {
		return nil, api.Errorf(api.CodeConflict, "network %q already has a port %q (an endpoint)", n.Name, req.Iface)
	}
	if _, ok := n.Attachments[req.Iface]; ok {
		return nil, api.Errorf(api.CodeConflict, "network %q already has a port %q", n.Name, req.Iface)
	}
	for _, on := range d.st.Networks {
		for _, o := range on.Attachments {
			if o.Iface == req.Iface && o.Netns == req.Netns {
				return nil, api.Errorf(api.CodeConflict, "interface %s in %s is already attached to network %q", req.Iface, where(req.Netns), on.Name)
			}
		}
		for _, o := range on.Endpoints {
			if (o.Kind == api.KindVeth && req.Netns == "" && o.HostLink == req.Iface) || (o.Netns == req.Netns && o.IfName == req.Iface) {
				return nil, api.Errorf(api.CodeConflict, "interface %s in %s belongs to endpoint %q of network %q", req.Iface, where(req.Netns), o.Netns, on.Name)
			}
		}
	}
	if req.Netns != "" && !netns.Exists(req.Netns) {
		return nil, api.Errorf(api.CodeNotFound, "namespace %q not found", req.Netns)
	}
	exists, _, up, promisc, err := linkInfo(req.Netns, req.Iface)
	if err != nil {
		return nil, asAPI(err)
	}
	if !exists {
		return nil, api.Errorf(api.CodeNotFound, "interface %s not found in %s", req.Iface, where(req.Netns))
	}

	at := &attRecord{Iface: req.Iface, Netns: req.Netns, Flags: apiFlags(bridge.DefaultFlags())}
	defer func() {
		if err != nil {
			d.restoreLink(at)
		}
	}()
	yes := true
	if !promisc {
		if err := setLink(at.Netns, at.Iface, nil, &yes); err != nil {
			return nil, asAPI(err)
		}
		at.SetPromisc = true
	}
	if !up {
		if err := setLink(at.Netns, at.Iface, &yes, nil); err != nil {
			return nil, asAPI(err)
		}
		at.SetUp = true
	}
	p, err := d.openRing(at.Netns, at.Iface)
	if err != nil {
		return nil, api.Errorf(api.CodeInternal, "attach %s: %v", at.Iface, err)
	}
	if err := rn.br.AddPort(at.Iface, p, bridgeFlags(at.Flags)); err != nil {
		p.Close()
		return nil, api.Errorf(api.CodeInternal, "attach %s: %v", at.Iface, err)
	}
	n.Attachments[at.Iface] = at
	if err := d.saveLocked(); err != nil {
		delete(n.Attachments, at.Iface)
		_ = rn.br.RemovePort(at.Iface)
		return nil, err
	}
	d.log.Info("interface attached", zap.String("network", n.Name), zap.String("iface", at.Iface),
		zap.String("netns", at.Netns), zap.Bool("set_up", at.SetUp), zap.Bool("set_promisc", at.SetPromisc))
	return at, nil
}

// restoreLink undoes what attaching changed on a link (best effort).
func (d *Daemon) restoreLink(at *attRecord) {
	no := false
	if at.SetPromisc {
		if err := setLink(at.Netns, at.Iface, nil, &no); err != nil {
			d.log.Debug("promiscuous mode off", zap.String("iface", at.Iface), zap.Error(err))
		}
	}
	if at.SetUp {
		if err := setLink(at.Netns, at.Iface, &no, nil); err != nil {
			d.log.Debug("link down", zap.String("iface", at.Iface), zap.Error(err))
		}
	}
}

// Detach removes an attached interface from a network. netns, when not
// empty, must be the namespace it was attached from.
func (d *Daemon) Detach(network, iface, ns string) error {
	if err := d.lockOpen(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	n, rn, err := d.netLocked(network)
	if err != nil {
		return err
	}
	at, ok := n.Attachments[iface]
	if !ok {
		return api.Errorf(api.CodeNotFound, "interface %s is not attached to network %q", iface, network)
	}
	if ns != "" && ns != at.Netns {
		return api.Errorf(api.CodeNotFound, "interface %s of network %q is attached from %s, not namespace %q", iface, network, where(at.Netns), ns)
	}
	d.teardownAttachmentLocked(n, rn, at)
	delete(n.Attachments, iface)
	if err := d.saveLocked(); err != nil {
		return err
	}
	d.log.Info("interface detached", zap.String("network", network), zap.String("iface", iface), zap.String("netns", at.Netns))
	return nil
}

func (d *Daemon) teardownAttachmentLocked(n *netRecord, rn *runNet, at *attRecord) {
	if rn != nil {
		_ = rn.br.RemovePort(at.Iface)
	}
	if at.Netns != "" && !netns.Exists(at.Netns) {
		return
	}
	if exists, _, _, _, err := linkInfo(at.Netns, at.Iface); err == nil && exists {
		d.restoreLink(at)
	}
}

// SetPort changes a port's forwarding flags.
func (d *Daemon) SetPort(network, name string, req api.PortUpdate) (api.Port, error) {
	if err := d.lockOpen(); err != nil {
		return api.Port{}, err
	}
	defer d.mu.Unlock()
	n, rn, err := d.netLocked(network)
	if err != nil {
		return api.Port{}, err
	}
	if n.Macvlan != nil {
		return api.Port{}, invalid("network %q is a macvlan network: %v", network, errNoFlags)
	}
	var flags *api.PortFlags
	switch {
	case name == api.GatewayPort && n.hasGateway():
		flags = &n.GatewayFlags
	case n.Endpoints[name] != nil:
		flags = &n.Endpoints[name].Flags
	case n.Attachments[name] != nil:
		flags = &n.Attachments[name].Flags
	default:
		return api.Port{}, api.Errorf(api.CodeNotFound, "port %q not found in network %q", name, network)
	}
	if req == (api.PortUpdate{}) {
		return api.Port{}, invalid("nothing to change: give hairpin, isolated, flood, mcast_flood or bcast_flood")
	}
	old := *flags
	nf := old
	for _, x := range []struct {
		v   *bool
		dst *bool
	}{{req.Hairpin, &nf.Hairpin}, {req.Isolated, &nf.Isolated}, {req.Flood, &nf.Flood}, {req.McastFlood, &nf.McastFlood}, {req.BcastFlood, &nf.BcastFlood}} {
		if x.v != nil {
			*x.dst = *x.v
		}
	}
	*flags = nf
	if err := d.saveLocked(); err != nil {
		*flags = old
		return api.Port{}, err
	}
	if err := rn.br.SetFlags(name, bridgeFlags(nf)); err != nil {
		d.log.Warn("port not on the switch; flags kept for when it is", zap.String("network", network), zap.String("port", name), zap.Error(err))
	}
	d.log.Info("port flags set", zap.String("network", network), zap.String("port", name), zap.Any("flags", nf))
	return d.portInfoLocked(n, rn, name), nil
}

// portInfoLocked describes one port (which must exist in the record).
func (d *Daemon) portInfoLocked(n *netRecord, rn *runNet, name string) api.Port {
	for _, p := range d.networkInfoLocked(n).Ports {
		if p.Name == name {
			return p
		}
	}
	return api.Port{Name: name}
}

// FDB returns a network's MAC table.
func (d *Daemon) FDB(network string) ([]api.FDBEntry, error) {
	if err := d.lockOpen(); err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	_, rn, err := d.netLocked(network)
	if err != nil {
		return nil, err
	}
	out := []api.FDBEntry{}
	for _, e := range rn.br.FDB() {
		fe := api.FDBEntry{MAC: e.MAC, Port: e.Port, Type: "learned", AgeSeconds: e.Age.Seconds()}
		if e.Static {
			fe.Type, fe.AgeSeconds = "static", 0
		}
		out = append(out, fe)
	}
	return out, nil
}

// FlushFDB removes a network's learned MAC entries and returns how many.
func (d *Daemon) FlushFDB(network string) (int, error) {
	if err := d.lockOpen(); err != nil {
		return 0, err
	}
	defer d.mu.Unlock()
	_, rn, err := d.netLocked(network)
	if err != nil {
		return 0, err
	}
	k := rn.br.FlushFDB()
	d.log.Info("fdb flushed", zap.String("network", network), zap.Int("entries", k))
	return k, nil
}

// portGone is the bridges' OnPortGone: the link under a port went away
// (its namespace was deleted, say). The endpoint or attachment is cleaned
// up and dropped from the state.
func (d *Daemon) portGone(rn *runNet, name string, cause error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.nets[rn.name] != rn {
		return
	}
	n := d.st.Networks[rn.name]
	if n == nil {
		return
	}
	if _, err := rn.br.Port(name); err == nil {
		return // added again since
	}
	if ep, ok := n.Endpoints[name]; ok {
		terr := d.teardownEndpointLocked(n, rn, ep)
		delete(n.Endpoints, name)
		d.log.Warn("endpoint link gone; cleaned up", zap.String("network", n.Name), zap.String("netns", name),
			zap.NamedError("cause", cause), zap.Error(terr))
	} else if at, ok := n.Attachments[name]; ok {
		d.teardownAttachmentLocked(n, rn, at)
		delete(n.Attachments, name)
		d.log.Warn("attached interface gone; detached", zap.String("network", n.Name), zap.String("iface", name),
			zap.NamedError("cause", cause))
	} else {
		return
	}
	_ = d.saveLocked()
}
