package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/switchyard-net/switchyard/netns"
)

// The direct link for the floor measurement: A and B, no switch.
var (
	floorA = netip.MustParsePrefix("198.18.1.1/24")
	floorB = netip.MustParsePrefix("198.18.1.2/24")
)

const floorIf = "direct"

// rrFloor measures the request/response test over a veth straight from A
// to B, in namespaces of its own, with B's server on the switch's CPU. On
// a machine where waking an idle CPU is slow (a VM without guest
// halt-polling), this is the least any switch on a CPU of its own can
// reach, and tells its own cost apart from the machine's.
func (b *bencher) rrFloor(ctx context.Context) (_ *RRResult, err error) {
	t, err := newTopology("floor", 2, false)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, t.Close()) }()
	a, bb := t.Eps[0].Netns, t.Eps[1].Netns
	ep := netns.Endpoint{Netns: bb, IfName: floorIf, HostName: floorIf, HostNetns: a, Addrs: []netip.Prefix{floorB}}
	if err := netns.AddVeth(ep); err != nil {
		return nil, err
	}
	h, err := netns.NetlinkHandle(a)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	if err := addAddr(h, floorIf, floorA); err != nil {
		return nil, fmt.Errorf("floor link: %w", err)
	}
	return b.rrTo(ctx, a, bb, floorB.Addr(), floorB.Addr(), b.r.swCPU)
}

// addAddr puts p on the named link of h's namespace.
func addAddr(h *netlink.Handle, name string, p netip.Prefix) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return err
	}
	ipn := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
	return h.AddrAdd(l, &netlink.Addr{IPNet: ipn})
}
