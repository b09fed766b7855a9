package daemon

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/cmd/internal/api"
	"github.com/switchyard-net/switchyard/ipam"
	"github.com/switchyard-net/switchyard/netns"
)

// restoreLocked brings the loaded state back to life: every network gets
// its bridge; every endpoint and attachment whose links still exist is
// re-adopted, the others are cleaned up and dropped; the IPAM is made to
// agree with the state (networks and leases the state does not know are
// released).
func (d *Daemon) restoreLocked() {
	for _, name := range slices.Sorted(maps.Keys(d.st.Networks)) {
		n := d.st.Networks[name]
		log := d.log.With(zap.String("network", name))
		if n.IPAM == api.IPAMDefault {
			if _, _, err := d.ipam.Network(name); errors.Is(err, ipam.ErrUnknownNetwork) {
				if _, err := d.ipam.AddNetwork(name, ipam.Config{Subnets: n.Subnets, Aux: n.Aux}); err != nil {
					log.Error("network missing from the IPAM state and cannot be re-added; dropping it", zap.Error(err))
					d.dropNetworkLocked(n)
					continue
				}
				log.Warn("network was missing from the IPAM state; re-added")
			}
		}
		rn, err := d.startNetwork(n, false)
		if err != nil {
			log.Error("cannot start network; dropping it", zap.Error(err))
			d.dropNetworkLocked(n)
			continue
		}
		d.nets[name] = rn
		for _, k := range slices.Sorted(maps.Keys(n.Endpoints)) {
			ep := n.Endpoints[k]
			elog := log.With(zap.String("netns", ep.Netns), zap.String("kind", ep.Kind))
			reason := d.endpointMissing(ep)
			if ep.Pending {
				reason = "left half made by a crash during connect"
			}
			if reason == "" {
				p, err := d.openEndpointPort(n, ep)
				if err == nil {
					if err = rn.br.AddPort(ep.Netns, p, bridgeFlags(ep.Flags)); err != nil {
						p.Close()
					}
				}
				if err == nil {
					d.ensureLeaseLocked(n, ep, elog)
					if err := d.publishLocked(rn, ep); err != nil {
						elog.Error("published ports not restored", zap.Error(err))
					}
					elog.Info("endpoint re-adopted", zap.String("ifname", ep.IfName), zap.String("host_link", ep.HostLink))
					continue
				}
				reason = "cannot reopen its port: " + err.Error()
			}
			terr := d.teardownEndpointLocked(n, rn, ep)
			delete(n.Endpoints, k)
			elog.Warn("endpoint cleaned up", zap.String("reason", reason), zap.NamedError("cleanup_error", terr))
		}
		for _, k := range slices.Sorted(maps.Keys(n.Attachments)) {
			at := n.Attachments[k]
			alog := log.With(zap.String("iface", at.Iface), zap.String("netns", at.Netns))
			reason := ""
			if at.Netns != "" && !netns.Exists(at.Netns) {
				reason = "namespace gone"
			} else if exists, _, _, _, err := linkInfo(at.Netns, at.Iface); err != nil || !exists {
				reason = "interface gone"
			}
			if reason == "" {
				p, err := d.openRing(at.Netns, at.Iface)
				if err == nil {
					if err = rn.br.AddPort(at.Iface, p, bridgeFlags(at.Flags)); err != nil {
						p.Close()
					}
				}
				if err == nil {
					alog.Info("attached interface re-adopted")
					continue
				}
				reason = "cannot reopen its port: " + err.Error()
			}
			d.teardownAttachmentLocked(n, rn, at)
			delete(n.Attachments, k)
			alog.Warn("attachment dropped", zap.String("reason", reason))
		}
	}
	d.reconcileIPAMLocked()
	d.updateDenyLocked()
}

// endpointMissing says why an endpoint cannot be re-adopted, or "".
func (d *Daemon) endpointMissing(ep *epRecord) string {
	if !netns.Exists(ep.Netns) {
		return "namespace gone"
	}
	switch ep.Kind {
	case api.KindVeth:
		exists, typ, _, _, err := linkInfo("", ep.HostLink)
		switch {
		case err != nil:
			return fmt.Sprintf("cannot look up host link %s: %v", ep.HostLink, err)
		case !exists:
			return fmt.Sprintf("host link %s gone", ep.HostLink)
		case typ != "veth":
			return fmt.Sprintf("host link %s is a %s, not a veth", ep.HostLink, typ)
		}
	case api.KindTap:
		exists, typ, _, _, err := linkInfo(ep.Netns, ep.IfName)
		switch {
		case err != nil:
			return fmt.Sprintf("cannot look up tap %s: %v", ep.IfName, err)
		case !exists:
			return fmt.Sprintf("tap %s gone", ep.IfName)
		case typ != "tuntap":
			return fmt.Sprintf("%s is a %s, not a tap", ep.IfName, typ)
		}
	}
	return ""
}

// ensureLeaseLocked makes the IPAM hold a re-adopted endpoint's addresses.
func (d *Daemon) ensureLeaseLocked(n *netRecord, ep *epRecord, log *zap.Logger) {
	if n.IPAM != api.IPAMDefault || len(ep.Addrs) == 0 || slices.Contains(d.ipam.Owners(n.Name), ep.Netns) {
		return
	}
	want := make([]netip.Addr, len(ep.Addrs))
	for i, p := range ep.Addrs {
		want[i] = p.Addr()
	}
	if _, err := d.ipam.Allocate(n.Name, ep.Netns, want); err != nil {
		log.Error("endpoint's lease was missing and cannot be restored", zap.Error(err))
		return
	}
	log.Warn("endpoint's lease was missing; restored")
}

// reconcileIPAMLocked releases what the IPAM holds that the state does not
// know: networks, and leases of endpoints that are gone.
func (d *Daemon) reconcileIPAMLocked() {
	for _, name := range d.ipam.Networks() {
		n := d.st.Networks[name]
		if n == nil || n.IPAM != api.IPAMDefault {
			for _, o := range d.ipam.Owners(name) {
				_ = d.ipam.Release(name, o)
			}
			err := d.ipam.RemoveNetwork(name)
			d.log.Warn("IPAM network unknown to the state; removed", zap.String("network", name), zap.Error(err))
			continue
		}
		for _, o := range d.ipam.Owners(name) {
			if ep, ok := n.Endpoints[o]; ok && len(ep.Addrs) > 0 {
				continue
			}
			err := d.ipam.Release(name, o)
			d.log.Warn("lease without an endpoint; released", zap.String("network", name), zap.String("owner", o), zap.Error(err))
		}
	}
}

// dropNetworkLocked removes a network that cannot be restored: the links of
// its endpoints are deleted, its record dropped.
func (d *Daemon) dropNetworkLocked(n *netRecord) {
	for _, ep := range n.Endpoints {
		_ = d.teardownEndpointLocked(n, nil, ep)
	}
	for _, at := range n.Attachments {
		d.teardownAttachmentLocked(n, nil, at)
	}
	delete(d.st.Networks, n.Name)
}
