package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/netns"
	"github.com/switchyard-net/switchyard/switch/port"
	"github.com/switchyard-net/switchyard/switch/port/afpacket"
	"github.com/switchyard-net/switchyard/switch/port/tap"
)

// hostRoutes returns the destinations of the daemon namespace's routes, for
// the IPAM to keep default pools clear of.
func hostRoutes() []netip.Prefix {
	var out []netip.Prefix
	_ = netns.Do("", func() error {
		rs, err := netlink.RouteList(nil, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r.Dst == nil {
				continue
			}
			if p, ok := prefixOf(r.Dst); ok && p.Bits() > 0 {
				out = append(out, p)
			}
		}
		return nil
	})
	return out
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), bits).Masked(), true
}

// quietHostEnd turns IPv6 off on a host-side link, so that it carries no
// address (not even link-local) and sends nothing of its own (DAD, router
// solicitations, MLD). Best effort: without IPv6 there is nothing to do.
func quietHostEnd(name string) {
	_ = netns.Do("", func() error {
		p := "/proc/sys/net/ipv6/conf/" + name + "/disable_ipv6"
		if _, err := os.Stat(p); err != nil {
			return nil
		}
		return os.WriteFile(p, []byte("1"), 0)
	})
}

// linkInfo says whether namespace ns ("" = the daemon's) has a link called
// name, and of which type.
func linkInfo(ns, name string) (exists bool, typ string, up, promisc bool, err error) {
	h, err := netns.NetlinkHandle(ns)
	if err != nil {
		return false, "", false, false, err
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		if linkNotFound(err) {
			return false, "", false, false, nil
		}
		return false, "", false, false, err
	}
	a := l.Attrs()
	return true, l.Type(), a.Flags&net.FlagUp != 0, a.Promisc != 0, nil
}

// linkNotFound reports whether a LinkByName error says there is no such
// link.
func linkNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// delLinkOfType deletes link name in namespace ns when it exists and is of
// type typ; a missing link or namespace is not an error. A link of another
// type is left alone, with an error wrapping errLinkReplaced.
func delLinkOfType(ns, name, typ string) error {
	if ns != "" && !netns.Exists(ns) {
		return nil
	}
	h, err := netns.NetlinkHandle(ns)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		if linkNotFound(err) {
			return nil
		}
		return fmt.Errorf("find link %s: %w", name, err)
	}
	if l.Type() != typ {
		return fmt.Errorf("%w: link %s is a %s, not the %s we made; left alone", errLinkReplaced, name, l.Type(), typ)
	}
	if err := h.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

// setLink sets link name in ns up and/or promiscuous.
func setLink(ns, name string, up, promisc *bool) error {
	h, err := netns.NetlinkHandle(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	if promisc != nil {
		if *promisc {
			err = h.SetPromiscOn(l)
		} else {
			err = h.SetPromiscOff(l)
		}
		if err != nil {
			return fmt.Errorf("set promiscuous mode on %s: %w", name, err)
		}
	}
	if up != nil {
		if *up {
			err = h.LinkSetUp(l)
		} else {
			err = h.LinkSetDown(l)
		}
		if err != nil {
			return fmt.Errorf("set %s up/down: %w", name, err)
		}
	}
	return nil
}

// openRing opens an AF_PACKET ring port on link name in namespace ns.
func (d *Daemon) openRing(ns, name string) (port.Port, error) {
	var p *afpacket.Port
	err := netns.Do(ns, func() error {
		var err error
		p, err = afpacket.Open(name, &afpacket.Config{BusyPoll: d.busyPoll, RxSteering: d.rxSteer})
		return err
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// setTapPersist sets or clears a TAP device's persistence through one of its
// queue files.
func setTapPersist(f *os.File, on bool) error {
	v := 0
	if on {
		v = 1
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) { ierr = unix.IoctlSetInt(int(fd), unix.TUNSETPERSIST, v) }); err != nil {
		return err
	}
	if ierr != nil {
		return fmt.Errorf("TUNSETPERSIST: %w", ierr)
	}
	return nil
}

// errTapGone: the persistent TAP device an endpoint was made with is no
// longer there.
var errTapGone = errors.New("persistent tap gone")

// reopenTap opens a queue of the existing TAP device ifname inside
// namespace ns (TUNSETIFF finds a device by name in the calling thread's
// namespace). TUNSETIFF creates a device when there is none by that name
// (and IFF_TUN_EXCL would refuse the existing one), so a device that has
// vanished since the caller looked would come back new: not persistent and
// unconfigured. Such a device is recognised by its missing IFF_PERSIST and
// removed again by closing its only file; the result is errTapGone.
func reopenTap(ns, ifname string) (*os.File, error) {
	var f *os.File
	err := netns.Do(ns, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(ifname)
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("attach to tap %s (TUNSETIFF): %w", ifname, err)
		}
		got, err := unix.NewIfreq("")
		if err != nil {
			unix.Close(fd)
			return err
		}
		if err := unix.IoctlIfreq(fd, unix.TUNGETIFF, got); err != nil {
			unix.Close(fd)
			return fmt.Errorf("tap %s (TUNGETIFF): %w", ifname, err)
		}
		if got.Uint16()&unix.IFF_PERSIST == 0 {
			unix.Close(fd) // the last file of a non-persistent device: it goes
			return fmt.Errorf("tap %s: %w (TUNSETIFF made a new device; removed)", ifname, errTapGone)
		}
		f = os.NewFile(uintptr(fd), "/dev/net/tun:"+ifname)
		return nil
	})
	return f, err
}

// tapPort wraps one TAP queue file into a port.
func tapPort(ifname string, f *os.File, mtu int) (port.Port, error) {
	qs, err := tap.New(ifname, []*os.File{f}, &tap.Config{MTU: mtu})
	if err != nil {
		return nil, err
	}
	if len(qs) != 1 {
		for _, q := range qs {
			q.Close()
		}
		return nil, fmt.Errorf("tap %s: %d queues, want 1", ifname, len(qs))
	}
	return qs[0], nil
}

// linkMAC returns the MAC of link name in namespace ns.
func linkMAC(ns, name string) (string, error) {
	h, err := netns.NetlinkHandle(ns)
	if err != nil {
		return "", err
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		return "", err
	}
	return l.Attrs().HardwareAddr.String(), nil
}

// defaultRoutes reports whether namespace ns has an IPv4 and an IPv6
// default route.
func defaultRoutes(ns string) (v4, v6 bool, err error) {
	h, err := netns.NetlinkHandle(ns)
	if err != nil {
		return false, false, err
	}
	defer h.Close()
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rs, err := h.RouteList(nil, fam)
		if err != nil {
			return false, false, err
		}
		for _, r := range rs {
			if r.Dst == nil || r.Dst.IP.IsUnspecified() && isZeroMask(r.Dst.Mask) {
				if fam == netlink.FAMILY_V4 {
					v4 = true
				} else {
					v6 = true
				}
			}
		}
	}
	return v4, v6, nil
}

func isZeroMask(m net.IPMask) bool {
	ones, _ := m.Size()
	return ones == 0
}
