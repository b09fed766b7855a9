package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/cmd/internal/api"
	"github.com/switchyard-net/switchyard/netns"
	"github.com/switchyard-net/switchyard/switch/bridge"
	"github.com/switchyard-net/switchyard/switch/fdb"
	"github.com/switchyard-net/switchyard/switch/frame"
	"github.com/switchyard-net/switchyard/switch/macvlan"
	"github.com/switchyard-net/switchyard/switch/port"
)

// A macvlan network is a set of children of a macvlan engine
// (switch/macvlan) over its parent interface. Networks on the same parent
// share one engine, as macvlan devices on one lower device share the
// kernel's macvlan_port: bridge, private and VEPA networks may share a
// parent (their children follow each their own mode), a passthru network
// needs it alone.

// mvRecord is a macvlan network's part of its record.
type mvRecord struct {
	Mode        string `json:"mode"`
	Parent      string `json:"parent"`
	ParentNetns string `json:"parent_netns,omitempty"`
	HostAccess  bool   `json:"host_access,omitempty"`
	// ParentMAC is the parent's MAC before the network was made; it is
	// put back when the last network on the parent goes (a passthru
	// endpoint's MAC is applied to the parent).
	ParentMAC string `json:"parent_mac"`
	// SetPromisc and Qdisc record what the daemon changed on the parent:
	// promiscuous mode on, an ingress qdisc added. Undone when the last
	// network on the parent goes.
	SetPromisc bool `json:"set_promisc,omitempty"`
	Qdisc      bool `json:"qdisc,omitempty"`
}

func (m *mvRecord) key() string { return m.ParentNetns + "\x00" + m.Parent }

func (m *mvRecord) mode() macvlan.Mode {
	md, _ := macvlan.ParseMode(m.Mode)
	return md
}

// mvParent is a parent interface in use: its engine and the networks on it.
type mvParent struct {
	ns, iface string
	sw        *macvlan.Switch
	users     map[string]*netRecord
}

// engine is what the daemon needs of a network's switch: the bridge, or
// the macvlan adapter below.
type engine interface {
	AddPort(name string, p port.Port, f bridge.Flags) error
	RemovePort(name string) error
	Port(name string) (bridge.PortInfo, error)
	Ports() []bridge.PortInfo
	SetFlags(name string, f bridge.Flags) error
	FDB() []bridge.FDBEntry
	FlushFDB() int
	SetAgeing(time.Duration)
	SetMACLimits(limit, perPort int)
	FDBStats() fdb.Stats
	Close() error
}

var (
	_ engine = (*bridge.Bridge)(nil)
	_ engine = (*mvEngine)(nil)
)

// validateMacvlanCreateLocked checks the macvlan part of a network create
// and fills rec.Macvlan; nothing is changed.
func (d *Daemon) validateMacvlanCreateLocked(req api.NetworkCreate, rec *netRecord) error {
	mode := macvlan.Bridge
	if req.Mode != "" {
		m, err := macvlan.ParseMode(req.Mode)
		if err != nil {
			return invalidErr(err)
		}
		mode = m
	}
	if req.Parent == "" {
		return invalid("macvlan needs a parent interface (--parent IFACE)")
	}
	if req.Uplink != "" || req.UplinkIP != "" || req.UplinkGateway != "" || len(req.PublishAllow) > 0 {
		return invalid("a macvlan network has no gateway: uplink, uplink-ip and publishing belong to bridge networks")
	}
	if err := checkIfName(req.Parent); err != nil {
		return invalid("parent: %v", err)
	}
	if req.Parent == "lo" {
		return invalid("the loopback interface cannot be a macvlan parent")
	}
	if req.ParentNetns != "" {
		if err := checkNetnsName(req.ParentNetns); err != nil {
			return invalidErr(err)
		}
		if !netns.Exists(req.ParentNetns) {
			return api.Errorf(api.CodeNotFound, "parent namespace %q not found", req.ParentNetns)
		}
	}
	if req.Ageing != "" || req.MACLimit != 0 {
		return invalid("macvlan networks learn no MACs: ageing and mac-limit do not apply")
	}
	if req.HostAccess && mode == macvlan.Passthru {
		return invalid("host-access is not available in passthru mode: the endpoint owns the parent")
	}
	where := where(req.ParentNetns)
	exists, _, up, _, err := linkInfo(req.ParentNetns, req.Parent)
	if err != nil {
		return asAPI(err)
	}
	if !exists {
		return api.Errorf(api.CodeNotFound, "parent interface %s not found in %s", req.Parent, where)
	}
	if !up {
		return invalid("parent interface %s in %s is down; bring it up first", req.Parent, where)
	}
	mac, err := linkMAC(req.ParentNetns, req.Parent)
	if err != nil {
		return asAPI(err)
	}
	hw, err := net.ParseMAC(mac)
	if err != nil || len(hw) != 6 {
		return invalid("parent interface %s in %s is not an Ethernet interface (MAC %q)", req.Parent, where, mac)
	}
	m := &mvRecord{Mode: mode.String(), Parent: req.Parent, ParentNetns: req.ParentNetns, HostAccess: req.HostAccess, ParentMAC: hw.String()}
	for _, name := range slices.Sorted(maps.Keys(d.st.Networks)) {
		on := d.st.Networks[name]
		if on.Macvlan != nil && on.Macvlan.key() == m.key() && (on.Macvlan.Mode == "passthru" || mode == macvlan.Passthru) {
			return api.Errorf(api.CodeConflict, "parent %s in %s is used by network %q in %s mode; a passthru network needs its parent alone",
				req.Parent, where, name, on.Macvlan.Mode)
		}
		for _, at := range on.Attachments {
			if at.Iface == req.Parent && at.Netns == req.ParentNetns {
				return api.Errorf(api.CodeConflict, "interface %s in %s is attached to network %q; it cannot be a macvlan parent too", req.Parent, where, name)
			}
		}
		for _, ep := range on.Endpoints {
			if (ep.Kind == api.KindVeth && req.ParentNetns == "" && ep.HostLink == req.Parent) || (ep.Netns == req.ParentNetns && ep.IfName == req.Parent) {
				return api.Errorf(api.CodeConflict, "interface %s in %s belongs to endpoint %q of network %q; it cannot be a macvlan parent", req.Parent, where, ep.Netns, name)
			}
		}
	}
	rec.Driver = api.DriverMacvlan
	rec.Macvlan = m
	return nil
}

// checkMacvlanRecord checks the names in a macvlan record as a create
// would have.
func checkMacvlanRecord(n *netRecord) error {
	m := n.Macvlan
	if (n.Driver == api.DriverMacvlan) != (m != nil) {
		return fmt.Errorf("driver %q does not match the macvlan record", n.Driver)
	}
	if m == nil {
		return nil
	}
	if _, err := macvlan.ParseMode(m.Mode); err != nil {
		return err
	}
	if err := checkIfName(m.Parent); err != nil {
		return fmt.Errorf("parent: %v", err)
	}
	if m.ParentNetns != "" {
		if err := checkNetnsName(m.ParentNetns); err != nil {
			return fmt.Errorf("parent namespace: %v", err)
		}
	}
	return nil
}

// startMacvlan starts a macvlan network: its parent's engine (shared with
// the other networks on the parent) and its adapter.
func (d *Daemon) startMacvlan(rec *netRecord) (*runNet, error) {
	m := rec.Macvlan
	if d.mvParents == nil {
		d.mvParents = map[string]*mvParent{}
	}
	par := d.mvParents[m.key()]
	if par == nil {
		exists, _, up, promisc, err := linkInfo(m.ParentNetns, m.Parent)
		if err == nil && !exists {
			err = fmt.Errorf("parent interface %s not found in %s", m.Parent, where(m.ParentNetns))
		}
		if err != nil {
			return nil, err
		}
		if !up {
			return nil, fmt.Errorf("parent interface %s in %s is down", m.Parent, where(m.ParentNetns))
		}
		mac, err := linkMAC(m.ParentNetns, m.Parent)
		if err != nil {
			return nil, err
		}
		hw, err := net.ParseMAC(mac)
		if err != nil || len(hw) != 6 {
			return nil, fmt.Errorf("parent interface %s: MAC %q", m.Parent, mac)
		}
		// The engine must see the frames for the children's MACs: the
		// kernel adds them to the parent's unicast filter, we make it
		// promiscuous (passthru does so in the kernel too).
		if !promisc {
			yes := true
			if err := setLink(m.ParentNetns, m.Parent, nil, &yes); err != nil {
				return nil, err
			}
			m.SetPromisc = true
		}
		p, err := d.openRing(m.ParentNetns, m.Parent)
		if err != nil {
			return nil, fmt.Errorf("open parent %s: %w", m.Parent, err)
		}
		par = &mvParent{ns: m.ParentNetns, iface: m.Parent, users: map[string]*netRecord{}}
		key := m.key()
		par.sw = macvlan.New(p, [6]byte(hw), &macvlan.Config{
			Logger:     d.log.With(zap.String("parent", m.Parent), zap.String("parent_netns", m.ParentNetns)),
			OnPortGone: func(name string, err error) { d.macvlanPortGone(key, name, err) },
		})
		d.mvParents[key] = par
	}
	par.users[rec.Name] = rec
	e := &mvEngine{d: d, n: rec, par: par, mode: m.mode(), watches: map[string]*childWatch{}}
	if m.HostAccess {
		if err := e.startHostAccess(); err != nil {
			_ = e.Close()
			return nil, fmt.Errorf("host access: %w", err)
		}
	}
	return &runNet{name: rec.Name, br: e}, nil
}

// hostPort is the engine name suffix of a network's host-access port; a
// namespace name cannot contain '/', so no endpoint's name clashes.
const hostPort = "/host-access"

// hostLinks returns the names of a network's host-access veth pair in the
// parent's namespace: the one left to the host's stack, and the one the
// engine opens.
func hostLinks(network string) (stack, engine string) {
	h := hostLinkName(network, "\x00host-access")
	return "syh" + h[3:], "syk" + h[3:]
}

// startHostAccess gives the parent's namespace its path to the children:
// a veth pair there whose one end (syh...) the host addresses and routes
// as it likes, and whose other end is the engine's host port, which every
// child reaches directly and which reaches every child. The pair is made
// once and kept over restarts; network rm deletes it.
func (e *mvEngine) startHostAccess() error {
	m := e.n.Macvlan
	stack, eng := hostLinks(e.n.Name)
	mac := derivedMAC("switchyard-host-access", e.n.Name)
	exists, _, _, _, err := linkInfo(m.ParentNetns, eng)
	if err != nil {
		return err
	}
	if !exists {
		if err := addHostPair(m.ParentNetns, stack, eng, mac, e.n.MTU); err != nil {
			return err
		}
	}
	p, err := e.d.openRing(m.ParentNetns, eng)
	if err != nil {
		return err
	}
	if err := e.par.sw.AddChild(e.n.Name+hostPort, p, macvlan.ChildConfig{MAC: [6]byte(mac), Mode: macvlan.Bridge, Host: true}); err != nil {
		p.Close()
		return err
	}
	return nil
}

// macvlanPortGone is the engines' OnPortGone: a child's link went away
// (handled as for a bridge port), or the parent's (logged; the network
// stays, frames to the wire are dropped until it is recreated).
func (d *Daemon) macvlanPortGone(key, name string, cause error) {
	if name == macvlan.ParentPort {
		d.log.Error("macvlan parent link gone; its networks cannot reach the wire", zap.String("parent", strings.ReplaceAll(key, "\x00", "/")), zap.Error(cause))
		return
	}
	network, ep, ok := strings.Cut(name, "/")
	if !ok {
		return
	}
	d.mu.Lock()
	rn := d.nets[network]
	d.mu.Unlock()
	if rn != nil {
		d.portGone(rn, ep, cause)
	}
}

// macvlanRemovedLocked undoes what the daemon changed on a removed macvlan
// network's parent, once no network uses it any more; until then the
// record of what to undo passes to a network that still does.
func (d *Daemon) macvlanRemovedLocked(n *netRecord) {
	m := n.Macvlan
	if m == nil {
		return
	}
	if m.HostAccess {
		_, eng := hostLinks(n.Name)
		if err := delLinkOfType(m.ParentNetns, eng, "veth"); err != nil {
			d.log.Warn("removing the host-access link", zap.String("network", n.Name), zap.String("link", eng), zap.Error(err))
		}
	}
	if par := d.mvParents[m.key()]; par != nil {
		for _, o := range par.users {
			om := o.Macvlan
			om.SetPromisc = om.SetPromisc || m.SetPromisc
			om.Qdisc = om.Qdisc || m.Qdisc
			if om.ParentMAC == "" {
				om.ParentMAC = m.ParentMAC
			}
			return
		}
	}
	d.restoreParent(m)
}

// restoreParent puts a parent back as it was before the daemon used it
// (best effort: each failure is logged).
func (d *Daemon) restoreParent(m *mvRecord) {
	log := d.log.With(zap.String("parent", m.Parent), zap.String("parent_netns", m.ParentNetns))
	if m.ParentNetns != "" && !netns.Exists(m.ParentNetns) {
		return
	}
	if exists, _, _, _, err := linkInfo(m.ParentNetns, m.Parent); err != nil || !exists {
		return
	}
	if m.Qdisc {
		if err := delIngressQdisc(m.ParentNetns, m.Parent); err != nil {
			log.Warn("removing the parent's ingress qdisc", zap.Error(err))
		}
	}
	if m.SetPromisc {
		no := false
		if err := setLink(m.ParentNetns, m.Parent, nil, &no); err != nil {
			log.Warn("promiscuous mode off on the parent", zap.Error(err))
		}
	}
	if cur, err := linkMAC(m.ParentNetns, m.Parent); err == nil && m.ParentMAC != "" && cur != m.ParentMAC {
		hw, _ := net.ParseMAC(m.ParentMAC)
		if err := setLinkMAC(m.ParentNetns, m.Parent, hw); err != nil {
			log.Warn("restoring the parent's MAC", zap.String("mac", m.ParentMAC), zap.Error(err))
		} else {
			log.Info("parent's MAC restored", zap.String("mac", m.ParentMAC))
		}
	}
}

// validateMacvlanConnectLocked checks an endpoint for a macvlan network
// and settles its MAC: a passthru endpoint takes the parent's (or gives
// the parent its own, with --mac, as a MAC change on a passthru macvlan
// does); the others must differ from the parent's and from every other
// endpoint's on the parent.
func (d *Daemon) validateMacvlanConnectLocked(n *netRecord, req api.EndpointCreate, plan *connectPlan) error {
	m := n.Macvlan
	if m == nil {
		return nil
	}
	cur, err := linkMAC(m.ParentNetns, m.Parent)
	if err != nil {
		return api.Errorf(api.CodeNotFound, "parent interface %s of network %q: %v", m.Parent, n.Name, err)
	}
	if m.Mode == "passthru" {
		for k := range n.Endpoints {
			return api.Errorf(api.CodeConflict, "network %q is in passthru mode and has its endpoint (%q) already; passthru takes one", n.Name, k)
		}
		if req.MAC == "" {
			plan.rec.MAC = cur
		}
		return nil
	}
	if plan.rec.MAC == cur {
		return api.Errorf(api.CodeConflict, "MAC %s is the parent %s's own; an endpoint needs one of its own", cur, m.Parent)
	}
	for _, name := range slices.Sorted(maps.Keys(d.st.Networks)) {
		on := d.st.Networks[name]
		if on.Macvlan == nil || on.Macvlan.key() != m.key() {
			continue
		}
		for _, ep := range on.Endpoints {
			if strings.EqualFold(ep.MAC, plan.rec.MAC) {
				return api.Errorf(api.CodeConflict, "MAC %s is taken by endpoint %q of network %q on parent %s", plan.rec.MAC, ep.Netns, name, m.Parent)
			}
		}
	}
	return nil
}

// macvlanInfoLocked adds a macvlan network's parent and mode to out.
func (d *Daemon) macvlanInfoLocked(n *netRecord, out *api.Network) {
	m := n.Macvlan
	if m == nil {
		return
	}
	mi := &api.Macvlan{Mode: m.Mode, Parent: m.Parent, ParentNetns: m.ParentNetns}
	if rn := d.nets[n.Name]; rn != nil {
		if e, ok := rn.br.(*mvEngine); ok {
			pi := e.par.sw.Parent()
			mi.ParentMAC = pi.MAC
			pp := api.Port{Name: macvlan.ParentPort, Kind: api.KindParent, Netns: m.ParentNetns, IfName: m.Parent, MAC: pi.MAC, Up: true, Offloads: pi.Offloads}
			pp.Counters = apiCounters(bridge.Counters(pi.Counters), pi.IO)
			mi.ParentPort = &pp
			if m.HostAccess {
				stack, _ := hostLinks(n.Name)
				hp := api.Port{Name: "host-access", Kind: api.KindHost, Netns: m.ParentNetns, IfName: stack,
					MAC: derivedMAC("switchyard-host-access", n.Name).String()}
				if ci, err := e.par.sw.Child(n.Name + hostPort); err == nil {
					hp.Up, hp.Offloads = true, ci.Offloads
					hp.Counters = apiCounters(bridge.Counters(ci.Counters), ci.IO)
				}
				mi.HostAccess = &hp
			}
		}
	}
	out.Macvlan = mi
}

// childState is what an endpoint's watcher reads off its interface.
type childState struct {
	mac    net.HardwareAddr
	up     bool        // administratively up: the kernel's IFF_UP test
	all    bool        // promiscuous or allmulti: every group passes
	groups []frame.MAC // the multicast list, sorted
}

func (s childState) equal(o childState) bool {
	return bytes.Equal(s.mac, o.mac) && s.up == o.up && s.all == o.all && slices.Equal(s.groups, o.groups)
}

func apiCounters(c bridge.Counters, s *port.Stats) api.Counters {
	out := api.Counters{RxFrames: c.RxFrames, RxBytes: c.RxBytes, TxFrames: c.TxFrames, TxBytes: c.TxBytes,
		TxFlooded: c.TxFlooded, TxUnicast: c.TxUnicast, Drops: c.Drops}
	if s != nil {
		out.IO = &api.IOCounters{RxFrames: s.RxFrames, RxBytes: s.RxBytes, TxFrames: s.TxFrames, TxBytes: s.TxBytes,
			RxDropped: s.RxDropped, TxDropped: s.TxDropped, RxErrors: s.RxErrors, TxErrors: s.TxErrors}
	}
	return out
}

// mvEngine is a macvlan network as the daemon drives a network's switch:
// its endpoints are children of the parent's engine, named
// "network/netns" there. Each endpoint's interface is watched
// (macvlan_watch_linux.go) for what the kernel's macvlan reads off its
// device: MAC, up or down, multicast list.
type mvEngine struct {
	d       *Daemon
	n       *netRecord
	par     *mvParent
	mode    macvlan.Mode
	watches map[string]*childWatch // by endpoint; under d.mu
}

func (e *mvEngine) child(name string) string { return e.n.Name + "/" + name }

var errNoFlags = errors.New("macvlan ports have no forwarding flags")

// AddPort makes the endpoint name (in the network's record) a child.
func (e *mvEngine) AddPort(name string, p port.Port, _ bridge.Flags) error {
	ep := e.n.Endpoints[name]
	if ep == nil {
		return fmt.Errorf("macvlan network %q: %q is not an endpoint", e.n.Name, name)
	}
	hw, err := net.ParseMAC(ep.MAC)
	if err != nil || len(hw) != 6 {
		return fmt.Errorf("endpoint %q: MAC %q", name, ep.MAC)
	}
	log := e.d.log.With(zap.String("network", e.n.Name), zap.String("netns", name))
	// The interface's own MAC is the truth: it may have changed while
	// the daemon was away.
	st, idx, werr := readChildState(ep.Netns, ep.IfName)
	if werr == nil && len(st.mac) == 6 && !bytes.Equal(st.mac, hw) {
		log.Info("endpoint's MAC changed since it was recorded", zap.String("recorded", ep.MAC), zap.Stringer("mac", st.mac))
		hw = st.mac
		ep.MAC = hw.String()
	}
	m := e.n.Macvlan
	if e.mode == macvlan.Passthru {
		// The endpoint's MAC is the parent's: a MAC set on a passthru
		// macvlan is applied to its lower device.
		if cur, err := linkMAC(m.ParentNetns, m.Parent); err == nil && cur != hw.String() {
			if err := setLinkMAC(m.ParentNetns, m.Parent, hw); err != nil {
				return err
			}
		}
		e.par.sw.SetParentMAC([6]byte(hw))
	}
	if err := e.par.sw.AddChild(e.child(name), p, macvlan.ChildConfig{MAC: [6]byte(hw), Mode: e.mode}); err != nil {
		return err
	}
	if err := e.consume(hw, true); err != nil {
		_ = e.par.sw.RemoveChild(e.child(name))
		return err
	}
	if werr == nil {
		_ = e.par.sw.SetChildUp(e.child(name), st.up)
		_ = e.par.sw.SetChildMulticast(e.child(name), st.all, st.groups)
		var w *childWatch
		w, werr = startChildWatch(ep.Netns, idx, st, log, func(prev, cur childState) { e.childChanged(name, prev, cur) })
		if werr == nil {
			e.watches[name] = w
		}
	}
	if werr != nil {
		log.Warn("endpoint's interface not watched: MAC changes, link state and multicast list are not followed", zap.Error(werr))
	}
	return nil
}

// stopWatch stops the watcher of endpoint name, if it has one.
func (e *mvEngine) stopWatch(name string) {
	if w := e.watches[name]; w != nil {
		w.Close()
		delete(e.watches, name)
	}
}

// childChanged applies what an endpoint's watcher saw change (from the
// watcher's goroutine; it takes no daemon lock).
func (e *mvEngine) childChanged(name string, prev, cur childState) {
	child := e.child(name)
	log := e.d.log.With(zap.String("network", e.n.Name), zap.String("netns", name))
	if cur.up != prev.up {
		if err := e.par.sw.SetChildUp(child, cur.up); err == nil {
			log.Info("endpoint link state", zap.Bool("up", cur.up))
		}
	}
	if cur.all != prev.all || !slices.Equal(cur.groups, prev.groups) {
		if err := e.par.sw.SetChildMulticast(child, cur.all, cur.groups); err == nil {
			log.Debug("endpoint multicast filter", zap.Bool("all", cur.all), zap.Int("groups", len(cur.groups)))
		}
	}
	if len(cur.mac) == 6 && len(prev.mac) == 6 && !bytes.Equal(cur.mac, prev.mac) {
		e.macChanged(log, name, prev.mac, cur.mac)
	}
}

// macChanged follows an endpoint's MAC change as the kernel's
// macvlan_set_mac_address does: in passthru the parent takes it;
// otherwise the child is re-keyed, unless the MAC is taken (the kernel
// refuses that change with EADDRINUSE; here it has happened already, so
// the switch keeps the old MAC and says so).
func (e *mvEngine) macChanged(log *zap.Logger, name string, old, mac net.HardwareAddr) {
	m := e.n.Macvlan
	if e.mode == macvlan.Passthru {
		if err := setLinkMAC(m.ParentNetns, m.Parent, mac); err != nil {
			log.Error("passthru endpoint's new MAC not applied to the parent", zap.Stringer("mac", mac), zap.Error(err))
		} else {
			log.Info("passthru endpoint's new MAC applied to the parent", zap.Stringer("mac", mac), zap.String("parent", m.Parent))
		}
		e.par.sw.SetParentMAC([6]byte(mac))
	}
	if err := e.par.sw.SetChildMAC(e.child(name), [6]byte(mac)); err != nil {
		log.Warn("endpoint's new MAC not taken; the switch keeps the old one", zap.Stringer("mac", mac), zap.Stringer("old", old), zap.Error(err))
		return
	}
	if e.mode == macvlan.Private || e.mode == macvlan.Passthru {
		// The parent's tc drop for the child's hairpinned multicast
		// follows its MAC: the new one first, so none slips through.
		if _, err := setConsume(m.ParentNetns, m.Parent, mac, true); err != nil {
			log.Warn("the parent's tc drop for the new MAC", zap.Error(err))
		}
		if _, err := setConsume(m.ParentNetns, m.Parent, old, false); err != nil {
			log.Warn("removing the parent's tc drop for the old MAC", zap.Error(err))
		}
	}
	log.Info("endpoint's MAC changed", zap.Stringer("mac", mac), zap.Stringer("old", old))
	go e.d.macvlanMACChanged(e.n.Name, name)
}

// macvlanMACChanged records the MAC an endpoint has on the switch now,
// after its watcher saw it change.
func (d *Daemon) macvlanMACChanged(network, name string) {
	if d.lockOpen() != nil {
		return
	}
	defer d.mu.Unlock()
	n, rn := d.st.Networks[network], d.nets[network]
	if n == nil || rn == nil {
		return
	}
	e, ok := rn.br.(*mvEngine)
	ep := n.Endpoints[name]
	if !ok || ep == nil {
		return
	}
	ci, err := e.par.sw.Child(e.child(name))
	if err != nil || ci.MAC == "" || ci.MAC == ep.MAC {
		return
	}
	ep.MAC = ci.MAC
	if err := d.saveLocked(); err != nil {
		d.log.Warn("saving an endpoint's new MAC", zap.String("network", network), zap.String("netns", name), zap.Error(err))
	}
}

// consume sets or clears the parent's tc drops for a child (see
// macvlan_linux.go); only private and passthru children have them.
func (e *mvEngine) consume(hw net.HardwareAddr, on bool) error {
	if e.mode != macvlan.Private && e.mode != macvlan.Passthru {
		return nil
	}
	m := e.n.Macvlan
	srcs := []net.HardwareAddr{hw}
	if e.mode == macvlan.Passthru {
		srcs = append(srcs, nil)
	}
	for _, src := range srcs {
		created, err := setConsume(m.ParentNetns, m.Parent, src, on)
		if created {
			m.Qdisc = true
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// RemovePort removes the endpoint name's child.
func (e *mvEngine) RemovePort(name string) error {
	e.stopWatch(name)
	ci, err := e.par.sw.Child(e.child(name))
	if err != nil {
		return fmt.Errorf("macvlan network %q: port %q: %w", e.n.Name, name, bridge.ErrNoPort)
	}
	err = e.par.sw.RemoveChild(e.child(name))
	if hw, perr := net.ParseMAC(ci.MAC); perr == nil {
		if cerr := e.consume(hw, false); cerr != nil {
			e.d.log.Warn("removing the parent's tc drop", zap.String("network", e.n.Name), zap.String("port", name), zap.Error(cerr))
		}
	}
	return err
}

func (e *mvEngine) portInfo(ci macvlan.PortInfo) bridge.PortInfo {
	return bridge.PortInfo{Name: strings.TrimPrefix(ci.Name, e.n.Name+"/"), Offloads: ci.Offloads, Counters: bridge.Counters(ci.Counters), IO: ci.IO}
}

func (e *mvEngine) Port(name string) (bridge.PortInfo, error) {
	ci, err := e.par.sw.Child(e.child(name))
	if err != nil {
		return bridge.PortInfo{}, fmt.Errorf("macvlan network %q: port %q: %w", e.n.Name, name, bridge.ErrNoPort)
	}
	return e.portInfo(ci), nil
}

func (e *mvEngine) mine() []macvlan.PortInfo {
	var out []macvlan.PortInfo
	for _, ci := range e.par.sw.Children() {
		if strings.HasPrefix(ci.Name, e.n.Name+"/") {
			out = append(out, ci)
		}
	}
	return out
}

func (e *mvEngine) Ports() []bridge.PortInfo {
	var out []bridge.PortInfo
	for _, ci := range e.mine() {
		out = append(out, e.portInfo(ci))
	}
	return out
}

func (e *mvEngine) SetFlags(string, bridge.Flags) error { return errNoFlags }

// FDB lists the children's MACs: every one is known, none learned.
func (e *mvEngine) FDB() []bridge.FDBEntry {
	var out []bridge.FDBEntry
	for _, ci := range e.mine() {
		name := strings.TrimPrefix(ci.Name, e.n.Name+"/")
		if ci.Host {
			name = "host-access"
		}
		out = append(out, bridge.FDBEntry{MAC: ci.MAC, Port: name, Static: true})
	}
	return out
}

func (e *mvEngine) FlushFDB() int             { return 0 }
func (e *mvEngine) FDBStats() fdb.Stats       { return fdb.Stats{Entries: len(e.FDB())} }
func (e *mvEngine) SetAgeing(time.Duration)   {}
func (e *mvEngine) SetMACLimits(limit, n int) {}

// Close takes the network's children off the engine, and closes the engine
// when no other network uses the parent. What the daemon changed on the
// parent stays (a restarted daemon re-adopts it); RemoveNetwork undoes it.
func (e *mvEngine) Close() error {
	for _, ci := range e.mine() {
		_ = e.RemovePort(strings.TrimPrefix(ci.Name, e.n.Name+"/"))
	}
	for name := range e.watches { // of children the engine dropped itself
		e.stopWatch(name)
	}
	delete(e.par.users, e.n.Name)
	if len(e.par.users) == 0 {
		delete(e.d.mvParents, e.n.Macvlan.key())
		return e.par.sw.Close()
	}
	return nil
}
