package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// stepHook, when set by a test, runs after each step of AddVeth and AddTap
// and can fail it, to check that a failure at any step cleans up.
var stepHook func(step string) error

func step(name string) error {
	if stepHook == nil {
		return nil
	}
	return stepHook(name)
}

// AddVeth creates a veth pair: the host end, called ep.HostName, in
// ep.HostNetns, up and without addresses; the inner end in ep.Netns, called
// ep.IfName, with ep.MAC, ep.MTU and ep.Addrs, up, with lo up and a default
// route via each of ep.Gateways. On any failure it removes what it made.
func AddVeth(ep Endpoint) (err error) {
	ep, err = ep.normalize()
	if err != nil {
		return fmt.Errorf("netns add veth: %w", err)
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("netns add veth %s/%s: %w", ep.Netns, ep.IfName, err)
		}
	}()
	nsFd, closeNs, err := openNs(ep.Netns)
	if err != nil {
		return err
	}
	defer closeNs()
	host, err := NetlinkHandle(ep.HostNetns)
	if err != nil {
		return err
	}
	defer host.Close()
	inner, err := NetlinkHandle(ep.Netns)
	if err != nil {
		return err
	}
	defer inner.Close()

	// The peer is created directly in the target namespace under its final
	// name, so a failed create leaves nothing and a name clash inside the
	// namespace fails here rather than half way.
	v := netlink.NewVeth(netlink.LinkAttrs{Name: ep.HostName, MTU: ep.MTU, TxQLen: -1})
	v.PeerName = ep.IfName
	v.PeerHardwareAddr = ep.MAC
	v.PeerNamespace = netlink.NsFd(nsFd)
	if err := host.LinkAdd(v); err != nil {
		return fmt.Errorf("create veth %s: %w", ep.HostName, err)
	}
	defer func() {
		if err != nil {
			// Deleting the host end takes the peer with it. Delete by
			// index: only what we made.
			if derr := host.LinkDel(v); derr != nil {
				if l, lerr := inner.LinkByName(ep.IfName); lerr == nil {
					derr = inner.LinkDel(l)
				}
				if derr != nil {
					err = errors.Join(err, fmt.Errorf("clean up veth %s: %w", ep.HostName, derr))
				}
			}
		}
	}()
	if v.Index == 0 {
		return fmt.Errorf("veth %s created without an index", ep.HostName)
	}
	if err := step("created"); err != nil {
		return err
	}
	// The host end carries no address, IPv6 link-local included: with
	// IPv6 off on it, bringing it up sends no DAD, router solicitation or
	// MLD report from the host's namespace.
	if err := Do(ep.HostNetns, func() error { return disableIPv6(ep.HostName) }); err != nil {
		return err
	}
	if err := host.LinkSetUp(v); err != nil {
		return fmt.Errorf("set %s up: %w", ep.HostName, err)
	}
	if err := step("host-up"); err != nil {
		return err
	}
	link, err := inner.LinkByName(ep.IfName)
	if err != nil {
		return fmt.Errorf("find inner end: %w", err)
	}
	return configureInner(inner, link, ep)
}

// configureInner puts ep's addresses on link, sets it and lo up and adds
// the default routes.
func configureInner(h *netlink.Handle, link netlink.Link, ep Endpoint) error {
	for _, p := range ep.Addrs {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if p.Addr().Is6() {
			// Addresses come from our IPAM and are unique on the segment;
			// skipping DAD makes them usable at once.
			a.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(link, a); err != nil {
			return fmt.Errorf("add address %s to %s: %w", p, ep.IfName, err)
		}
		if err := step("addr"); err != nil {
			return err
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", ep.IfName, err)
	}
	if err := step("inner-up"); err != nil {
		return err
	}
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	if err := step("lo-up"); err != nil {
		return err
	}
	for _, gw := range ep.Gateways {
		dst := &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
		if gw.Is6() {
			dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
		}
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst, Gw: gw.AsSlice()}
		if err := h.RouteAdd(r); err != nil {
			return fmt.Errorf("add default route via %s: %w", gw, err)
		}
		if err := step("route"); err != nil {
			return err
		}
	}
	return nil
}

// AddTap creates a TAP device (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, and
// IFF_MULTI_QUEUE when queues > 1) called ep.HostName in ep.HostNetns with
// queues queue file descriptors, moves it into ep.Netns, renames it to
// ep.IfName and configures it like the inner end of a veth (MAC, MTU,
// addresses, up, lo up, default routes). It returns the queue files, opened
// non-blocking; the device lives as long as one of them is open (or until
// it is deleted). queues 0 means 1. On any failure it removes what it made.
func AddTap(ep Endpoint, queues int) (files []*os.File, err error) {
	ep, err = ep.normalize()
	if err != nil {
		return nil, fmt.Errorf("netns add tap: %w", err)
	}
	if queues == 0 {
		queues = 1
	}
	if queues < 0 || queues > maxQueues {
		return nil, fmt.Errorf("netns add tap: %d queues, want 1 to %d", queues, maxQueues)
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("netns add tap %s/%s: %w", ep.Netns, ep.IfName, err)
		}
	}()
	nsFd, closeNs, err := openNs(ep.Netns)
	if err != nil {
		return nil, err
	}
	defer closeNs()
	host, err := NetlinkHandle(ep.HostNetns)
	if err != nil {
		return nil, err
	}
	defer host.Close()
	inner, err := NetlinkHandle(ep.Netns)
	if err != nil {
		return nil, err
	}
	defer inner.Close()

	fds := make([]int, 0, queues)
	defer func() {
		if err != nil {
			// The device is not persistent: closing its last queue
			// unregisters it, wherever it is by then.
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
	}()
	err = Do(ep.HostNetns, func() error {
		// /dev/net/tun creates the device in the namespace of the thread
		// that opens it.
		for i := 0; i < queues; i++ {
			fd, err := openTap(ep.HostName, queues > 1, i == 0)
			if err != nil {
				return err
			}
			fds = append(fds, fd)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := step("created"); err != nil {
		return nil, err
	}
	link, err := host.LinkByName(ep.HostName)
	if err != nil {
		return nil, fmt.Errorf("find tap %s: %w", ep.HostName, err)
	}
	if err := host.LinkSetNsFd(link, nsFd); err != nil {
		return nil, fmt.Errorf("move tap %s into %s: %w", ep.HostName, ep.Netns, err)
	}
	if err := step("moved"); err != nil {
		return nil, err
	}
	link, err = inner.LinkByName(ep.HostName)
	if err != nil {
		return nil, fmt.Errorf("find tap %s after the move: %w", ep.HostName, err)
	}
	if ep.IfName != ep.HostName {
		if err := inner.LinkSetName(link, ep.IfName); err != nil {
			return nil, fmt.Errorf("rename tap %s to %s: %w", ep.HostName, ep.IfName, err)
		}
	}
	if err := inner.LinkSetHardwareAddr(link, ep.MAC); err != nil {
		return nil, fmt.Errorf("set MAC of %s: %w", ep.IfName, err)
	}
	if err := inner.LinkSetMTU(link, ep.MTU); err != nil {
		return nil, fmt.Errorf("set MTU of %s: %w", ep.IfName, err)
	}
	if err := step("renamed"); err != nil {
		return nil, err
	}
	if err := configureInner(inner, link, ep); err != nil {
		return nil, err
	}
	files = make([]*os.File, len(fds))
	for i, fd := range fds {
		files[i] = os.NewFile(uintptr(fd), "/dev/net/tun:"+ep.IfName)
	}
	return files, nil
}

// openTap opens one queue of TAP device name in the calling thread's
// namespace. first asks for a new device (IFF_TUN_EXCL), so that an
// existing link of that name is an error rather than a device we attach to.
func openTap(name string, multi, first bool) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return -1, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("tap name %q: %w", name, err)
	}
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if multi {
		flags |= unix.IFF_MULTI_QUEUE
	}
	if first {
		flags |= unix.IFF_TUN_EXCL
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		if first && errors.Is(err, unix.EBUSY) {
			return -1, fmt.Errorf("create tap %s: a link of that name exists: %w", name, err)
		}
		return -1, fmt.Errorf("create tap %s (TUNSETIFF): %w", name, err)
	}
	return fd, nil
}

// disableIPv6 turns IPv6 off on the named link of the calling thread's
// namespace (/proc/sys/net follows the thread's network namespace). A
// kernel without IPv6 has nothing to turn off.
func disableIPv6(name string) error {
	err := os.WriteFile("/proc/sys/net/ipv6/conf/"+name+"/disable_ipv6", []byte("1"), 0o644)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("disable IPv6 on %s: %w", name, err)
	}
	return nil
}
