package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/cmd/internal/api"
	"github.com/switchyard-net/switchyard/ipam"
	"github.com/switchyard-net/switchyard/switch/bridge"
	"github.com/switchyard-net/switchyard/switch/router"
)

// netSpec is a validated NetworkCreate.
type netSpec struct {
	rec *netRecord
	cfg ipam.Config // with IPAM default
}

// validateCreate checks req completely without changing anything.
func (d *Daemon) validateCreateLocked(req api.NetworkCreate) (*netSpec, error) {
	if err := checkNetworkName(req.Name); err != nil {
		return nil, invalidErr(err)
	}
	if _, ok := d.st.Networks[req.Name]; ok {
		return nil, api.Errorf(api.CodeConflict, "network %q already exists", req.Name)
	}
	switch req.Driver {
	case "", api.DriverBridge:
	case api.DriverMacvlan:
	default:
		return nil, invalid("unknown driver %q; want bridge or macvlan", req.Driver)
	}
	if req.Driver != api.DriverMacvlan && (req.Mode != "" || req.Parent != "" || req.ParentNetns != "" || req.HostAccess) {
		return nil, invalid("mode, parent, parent-netns and host-access belong to the macvlan driver, not bridge")
	}
	mode := req.IPAM
	switch mode {
	case "":
		mode = api.IPAMDefault
	case api.IPAMDefault, api.IPAMNone:
	default:
		return nil, invalid("unknown ipam %q; want default or none", req.IPAM)
	}
	if err := checkMTU(req.MTU); err != nil {
		return nil, err
	}
	ageing, err := parseAgeing(req.Ageing)
	if err != nil {
		return nil, err
	}
	if err := checkMACLimit(req.MACLimit); err != nil {
		return nil, err
	}
	mtu := req.MTU
	if mtu == 0 {
		mtu = 1500
	}
	rec := &netRecord{
		Name: req.Name, Driver: api.DriverBridge, IPAM: mode, Internal: req.Internal, MTU: mtu,
		Ageing: ageing, MACLimit: req.MACLimit,
		Endpoints: map[string]*epRecord{}, Attachments: map[string]*attRecord{},
	}
	if req.Driver == api.DriverMacvlan {
		if err := d.validateMacvlanCreateLocked(req, rec); err != nil {
			return nil, err
		}
	}
	spec := &netSpec{rec: rec}
	if mode == api.IPAMNone {
		if len(req.Subnets) > 0 || len(req.AuxAddresses) > 0 {
			return nil, invalid("ipam none takes no subnet, ip-range, gateway or aux-address")
		}
		if err := d.validateUplinkLocked(req, spec); err != nil {
			return nil, err
		}
		return spec, nil
	}
	for i, s := range req.Subnets {
		var sc ipam.SubnetConfig
		if s.Subnet == "" {
			return nil, invalid("subnet %d: no subnet given (ip-range and gateway need one)", i+1)
		}
		if sc.Subnet, err = parsePrefix("subnet", s.Subnet); err != nil {
			return nil, err
		}
		if s.IPRange != "" {
			if sc.IPRange, err = parsePrefix("ip-range", s.IPRange); err != nil {
				return nil, err
			}
		}
		if s.Gateway != "" {
			if sc.Gateway, err = parseAddr("gateway", s.Gateway); err != nil {
				return nil, err
			}
		}
		spec.cfg.Subnets = append(spec.cfg.Subnets, sc)
	}
	for _, n := range slices.Sorted(maps.Keys(req.AuxAddresses)) {
		a, err := parseAddr("aux address "+n, req.AuxAddresses[n])
		if err != nil {
			return nil, err
		}
		if spec.cfg.Aux == nil {
			spec.cfg.Aux = map[string]netip.Addr{}
		}
		spec.cfg.Aux[n] = a
	}
	if err := spec.cfg.Validate(); err != nil {
		return nil, ipamError(err)
	}
	if err := d.validateUplinkLocked(req, spec); err != nil {
		return nil, err
	}
	return spec, nil
}

// CreateNetwork creates a network: a bridge and, with IPAM, its subnet and
// a gateway.
func (d *Daemon) CreateNetwork(req api.NetworkCreate) (api.Network, error) {
	if err := d.lockOpen(); err != nil {
		return api.Network{}, err
	}
	defer d.mu.Unlock()
	n, err := d.createNetworkLocked(req)
	if err != nil {
		return api.Network{}, err
	}
	return d.networkInfoLocked(n), nil
}

func (d *Daemon) createNetworkLocked(req api.NetworkCreate) (_ *netRecord, err error) {
	spec, err := d.validateCreateLocked(req)
	if err != nil {
		return nil, err
	}
	rec := spec.rec
	rec.Created = time.Now().UTC().Truncate(time.Second)
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	if rec.IPAM == api.IPAMDefault {
		eff, err := d.ipam.AddNetwork(rec.Name, spec.cfg)
		if err != nil {
			return nil, ipamError(err)
		}
		undo = append(undo, func() { _ = d.ipam.RemoveNetwork(rec.Name) })
		rec.Subnets, rec.Aux = eff.Subnets, eff.Aux
		if rec.Macvlan == nil { // a macvlan network's gateway is out on the wire
			rec.GatewayMAC = derivedMAC("switchyard-gateway", rec.Name).String()
			rec.GatewayFlags = apiFlags(bridge.DefaultFlags())
		}
	}
	rn, err := d.startNetwork(rec, true)
	if err != nil {
		return nil, asAPI(err)
	}
	undo = append(undo, func() {
		rn.close()
		if rec.Uplink != nil {
			d.restoreUplink(rec.Uplink)
		}
	})
	d.st.Networks[rec.Name] = rec
	d.nets[rec.Name] = rn
	undo = append(undo, func() { delete(d.st.Networks, rec.Name); delete(d.nets, rec.Name); d.updateDenyLocked() })
	d.updateDenyLocked()
	if err := d.saveLocked(); err != nil {
		return nil, err
	}
	d.log.Info("network created", zap.String("network", rec.Name), zap.String("ipam", rec.IPAM),
		zap.Any("subnets", rec.Subnets))
	return rec, nil
}

// startNetwork builds a network's bridge and its gateway port, with its
// uplink and NAT when it has one. An uplink that cannot be opened fails
// the start when strict (create); otherwise (restart) the network runs
// without it, and says so in the log and in inspect.
func (d *Daemon) startNetwork(rec *netRecord, strict bool) (*runNet, error) {
	if rec.Macvlan != nil {
		return d.startMacvlan(rec)
	}
	rn := &runNet{name: rec.Name}
	br := bridge.New(&bridge.Config{
		Logger:     d.log.With(zap.String("network", rec.Name)),
		Ageing:     rec.Ageing,
		MACLimit:   rec.MACLimit,
		OnPortGone: func(name string, err error) { d.portGone(rn, name, err) },
	})
	rn.br = br
	rn.mir = newMirror(br, func() *router.Port { return rn.gw })
	if !rec.hasGateway() {
		return rn, nil
	}
	mac, err := net.ParseMAC(rec.GatewayMAC)
	if err != nil {
		rn.br.Close()
		return nil, fmt.Errorf("network %s: gateway MAC %q: %w", rec.Name, rec.GatewayMAC, err)
	}
	var addrs []netip.Prefix
	for _, sc := range rec.Subnets {
		if sc.Gateway.IsValid() {
			addrs = append(addrs, netip.PrefixFrom(sc.Gateway, sc.Subnet.Bits()))
		}
	}
	gcfg := &router.Config{Name: api.GatewayPort, MAC: [6]byte(mac), Addrs: addrs, MTU: rec.MTU,
		Logger: d.log.With(zap.String("network", rec.Name), zap.String("port", api.GatewayPort))}
	if rec.Uplink != nil {
		up, n, err := d.startUplink(rec, rn, addrs)
		switch {
		case err != nil && strict:
			rn.br.Close()
			return nil, asAPI(err)
		case err != nil:
			d.log.Error("uplink cannot be opened; the network runs without it", zap.String("network", rec.Name),
				zap.String("uplink", rec.Uplink.Iface), zap.Error(err))
		default:
			gcfg.Uplink, gcfg.NAT, rn.nat = up, n, n
		}
	}
	gw := router.New(gcfg)
	err = rn.br.AddPort(api.GatewayPort, gw, bridgeFlags(rec.GatewayFlags))
	if err != nil {
		gw.Close()
	}
	if err == nil {
		err = br.AddStaticMAC(api.GatewayPort, [6]byte(mac))
	}
	if err == nil {
		rn.gw = gw
		err = d.addUplinkPort(rn, gw)
	}
	if err != nil {
		rn.close()
		if rec.Uplink != nil {
			d.restoreUplink(rec.Uplink)
		}
		return nil, fmt.Errorf("network %s: gateway: %w", rec.Name, err)
	}
	return rn, nil
}

// RemoveNetwork removes a network: its endpoints (and their links and
// leases), its attachments, its bridge and its subnet. When an endpoint's
// link cannot be deleted, the network stays, with that endpoint and its
// lease (the endpoints already removed stay removed), and the error says
// so: a retry can finish.
func (d *Daemon) RemoveNetwork(name string) error {
	if err := d.lockOpen(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	n, rn, err := d.netLocked(name)
	if err != nil {
		return err
	}
	var errs []string
	for _, k := range slices.Sorted(maps.Keys(n.Endpoints)) {
		if err := d.removeEndpointLocked(n, rn, n.Endpoints[k]); err != nil {
			errs = append(errs, fmt.Sprintf("endpoint %q: %v", k, err))
			continue
		}
		delete(n.Endpoints, k)
	}
	if len(errs) == 0 && n.IPAM == api.IPAMDefault {
		for _, o := range d.ipam.Owners(name) { // leases of no endpoint (none, normally)
			_ = d.ipam.Release(name, o)
		}
		if err := d.ipam.RemoveNetwork(name); err != nil && !errors.Is(err, ipam.ErrUnknownNetwork) {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		if err := d.saveLocked(); err != nil {
			d.log.Error("saving the state after a failed network removal", zap.String("network", name), zap.Error(err))
		}
		d.log.Warn("network not removed", zap.String("network", name), zap.Strings("errors", errs))
		return api.Errorf(api.CodeInternal, "network %q not removed: %s; retry to finish", name, strings.Join(errs, "; "))
	}
	for _, k := range slices.Sorted(maps.Keys(n.Attachments)) {
		d.teardownAttachmentLocked(n, rn, n.Attachments[k])
		delete(n.Attachments, k)
	}
	rn.endCaptures(fmt.Sprintf("network %q was removed", name))
	rn.close()
	if n.Uplink != nil {
		d.restoreUplink(n.Uplink)
	}
	d.macvlanRemovedLocked(n)
	delete(d.nets, name)
	delete(d.st.Networks, name)
	d.updateDenyLocked()
	if err := d.saveLocked(); err != nil {
		return err
	}
	d.log.Info("network removed", zap.String("network", name))
	return nil
}

// UpdateNetwork changes a network's MAC ageing and learning limit.
func (d *Daemon) UpdateNetwork(name string, req api.NetworkUpdate) (api.Network, error) {
	if err := d.lockOpen(); err != nil {
		return api.Network{}, err
	}
	defer d.mu.Unlock()
	n, rn, err := d.netLocked(name)
	if err != nil {
		return api.Network{}, err
	}
	if n.Macvlan != nil {
		return api.Network{}, invalid("network %q is a macvlan network: it learns no MACs, ageing and mac-limit do not apply", name)
	}
	if req.Ageing == nil && req.MACLimit == nil {
		return api.Network{}, invalid("nothing to change: give ageing or mac_limit")
	}
	ageing, limit := n.Ageing, n.MACLimit
	if req.Ageing != nil {
		if *req.Ageing == "" {
			return api.Network{}, invalid("ageing is empty; give a duration (like 300s) or \"never\"")
		}
		if ageing, err = parseAgeing(*req.Ageing); err != nil {
			return api.Network{}, err
		}
	}
	if req.MACLimit != nil {
		if err := checkMACLimit(*req.MACLimit); err != nil {
			return api.Network{}, err
		}
		limit = *req.MACLimit
	}
	oldAgeing, oldLimit := n.Ageing, n.MACLimit
	n.Ageing, n.MACLimit = ageing, limit
	if err := d.saveLocked(); err != nil {
		n.Ageing, n.MACLimit = oldAgeing, oldLimit
		return api.Network{}, err
	}
	rn.br.SetAgeing(ageing)
	rn.br.SetMACLimits(limit, 0)
	d.log.Info("network updated", zap.String("network", name), zap.Duration("ageing", ageing), zap.Int("mac_limit", limit))
	return d.networkInfoLocked(n), nil
}

// Networks returns every network, sorted by name.
func (d *Daemon) Networks() ([]api.Network, error) {
	if err := d.lockOpen(); err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	out := make([]api.Network, 0, len(d.st.Networks))
	for _, name := range slices.Sorted(maps.Keys(d.st.Networks)) {
		out = append(out, d.networkInfoLocked(d.st.Networks[name]))
	}
	return out, nil
}

// Network returns one network.
func (d *Daemon) Network(name string) (api.Network, error) {
	if err := d.lockOpen(); err != nil {
		return api.Network{}, err
	}
	defer d.mu.Unlock()
	n, _, err := d.netLocked(name)
	if err != nil {
		return api.Network{}, err
	}
	return d.networkInfoLocked(n), nil
}

// Bridge returns a network's bridge, for callers embedding the daemon
// (capture, statistics). Ports must be changed through the daemon.
func (d *Daemon) Bridge(name string) (*bridge.Bridge, error) {
	if err := d.lockOpen(); err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	_, rn, err := d.netLocked(name)
	if err != nil {
		return nil, err
	}
	br, ok := rn.br.(*bridge.Bridge)
	if !ok {
		return nil, invalid("network %q is a macvlan network, not a bridge", name)
	}
	return br, nil
}

func (d *Daemon) netLocked(name string) (*netRecord, *runNet, error) {
	n, ok := d.st.Networks[name]
	rn := d.nets[name]
	if !ok || rn == nil {
		return nil, nil, api.Errorf(api.CodeNotFound, "network %q not found", name)
	}
	return n, rn, nil
}

// networkInfoLocked describes a network with its ports.
func (d *Daemon) networkInfoLocked(n *netRecord) api.Network {
	out := api.Network{
		Name: n.Name, Driver: n.Driver, IPAM: n.IPAM, Internal: n.Internal, MTU: n.MTU,
		Ageing: formatAgeing(n.Ageing), MACLimit: n.MACLimit, GatewayMAC: n.GatewayMAC, Created: n.Created,
		Ports: []api.Port{},
	}
	d.macvlanInfoLocked(n, &out)
	for _, sc := range n.Subnets {
		s := api.Subnet{Subnet: sc.Subnet.String()}
		if sc.IPRange.IsValid() {
			s.IPRange = sc.IPRange.String()
		}
		if sc.Gateway.IsValid() {
			s.Gateway = sc.Gateway.String()
		}
		out.Subnets = append(out.Subnets, s)
	}
	if len(n.Aux) > 0 {
		out.AuxAddresses = map[string]string{}
		for k, v := range n.Aux {
			out.AuxAddresses[k] = v.String()
		}
	}
	live := map[string]bridge.PortInfo{}
	rn := d.nets[n.Name]
	if rn != nil {
		for _, pi := range rn.br.Ports() {
			live[pi.Name] = pi
		}
	}
	out.Uplink = uplinkInfo(n, rn)
	for _, p := range n.PublishAllow {
		out.PublishAllow = append(out.PublishAllow, p.String())
	}
	out.NATMaxFlows = n.NATMaxFlows
	if n.Uplink != nil {
		out.NATTimeouts = timeoutStrings(n.NATTimeouts)
	}
	if n.hasGateway() {
		p := api.Port{Name: api.GatewayPort, Kind: api.KindGateway, MAC: n.GatewayMAC, Flags: n.GatewayFlags}
		for _, sc := range n.Subnets {
			if sc.Gateway.IsValid() {
				setAddr(&p, netip.PrefixFrom(sc.Gateway, sc.Subnet.Bits()))
			}
		}
		p = withLive(p, live)
		if rn != nil && rn.gw != nil {
			p.Gateway = gatewayCounters(rn.gw.Counters())
		}
		out.Ports = append(out.Ports, p)
	}
	for _, k := range slices.Sorted(maps.Keys(n.Endpoints)) {
		out.Ports = append(out.Ports, withLive(endpointPort(n.Endpoints[k]), live))
	}
	for _, k := range slices.Sorted(maps.Keys(n.Attachments)) {
		out.Ports = append(out.Ports, withLive(attachmentPort(n.Attachments[k]), live))
	}
	return out
}

func endpointPort(ep *epRecord) api.Port {
	p := api.Port{Name: ep.Netns, Kind: ep.Kind, Netns: ep.Netns, IfName: ep.IfName, HostLink: ep.HostLink,
		MAC: ep.MAC, Flags: ep.Flags}
	for _, a := range ep.Addrs {
		setAddr(&p, a)
	}
	for _, r := range ep.Publish {
		p.Publish = append(p.Publish, r.Spec)
	}
	for _, a := range ep.PublishAllow {
		p.PublishAllow = append(p.PublishAllow, a.String())
	}
	return p
}

// gatewayCounters flattens the gateway's counters for inspect.
func gatewayCounters(c router.Counters) map[string]uint64 {
	b, _ := json.Marshal(c)
	var m map[string]uint64
	_ = json.Unmarshal(b, &m)
	return m
}

func attachmentPort(at *attRecord) api.Port {
	p := api.Port{Name: at.Iface, Kind: api.KindAttached, Netns: at.Netns, IfName: at.Iface, Flags: at.Flags}
	if h, err := linkMAC(at.Netns, at.Iface); err == nil {
		p.MAC = h
	}
	return p
}

func setAddr(p *api.Port, a netip.Prefix) {
	if a.Addr().Is4() {
		p.IPv4 = a.String()
	} else {
		p.IPv6 = a.String()
	}
}

// withLive fills in what the bridge knows of the port.
func withLive(p api.Port, live map[string]bridge.PortInfo) api.Port {
	pi, ok := live[p.Name]
	if !ok {
		return p
	}
	p.Up = true
	p.Flags = apiFlags(pi.Flags)
	p.Offloads = pi.Offloads
	c := pi.Counters
	p.Counters = api.Counters{RxFrames: c.RxFrames, RxBytes: c.RxBytes, TxFrames: c.TxFrames, TxBytes: c.TxBytes,
		TxFlooded: c.TxFlooded, TxUnicast: c.TxUnicast, Drops: c.Drops}
	if s := pi.IO; s != nil {
		p.Counters.IO = &api.IOCounters{RxFrames: s.RxFrames, RxBytes: s.RxBytes, TxFrames: s.TxFrames, TxBytes: s.TxBytes,
			RxDropped: s.RxDropped, TxDropped: s.TxDropped, RxErrors: s.RxErrors, TxErrors: s.TxErrors}
	}
	return p
}

func apiFlags(f bridge.Flags) api.PortFlags {
	return api.PortFlags{Hairpin: f.Hairpin, Isolated: f.Isolated, Flood: f.Flood, McastFlood: f.McastFlood, BcastFlood: f.BcastFlood}
}

func bridgeFlags(f api.PortFlags) bridge.Flags {
	return bridge.Flags{Hairpin: f.Hairpin, Isolated: f.Isolated, Flood: f.Flood, McastFlood: f.McastFlood, BcastFlood: f.BcastFlood}
}
