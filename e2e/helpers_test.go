//go:build linux

package e2e

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/internal/testns"
	"github.com/switchyard-net/switchyard/netns"
)

// newNS creates a namespace removed at cleanup.
func newNS(t *testing.T, prefix string) string { return testns.New(t, prefix) }

// inNS runs a command inside namespace ns, bounded by timeout.
func inNS(t *testing.T, timeout time.Duration, ns string, args ...string) (string, error) {
	return testns.Exec(ns, timeout, args...)
}

// ping runs a bounded ping from ns and reports whether every reply came.
func ping(t *testing.T, ns string, dst netip.Addr, count int) bool {
	t.Helper()
	return testns.Ping(t, ns, dst.String(), count)
}

// linkStats returns an interface's kernel counters inside ns.
func linkStats(t *testing.T, ns, ifname string) *netlink.LinkStatistics {
	t.Helper()
	h, err := netns.NetlinkHandle(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Statistics
}

// linkMAC returns an interface's MAC inside ns.
func linkMAC(t *testing.T, ns, ifname string) net.HardwareAddr {
	t.Helper()
	h, err := netns.NetlinkHandle(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().HardwareAddr
}

// rawSocket opens an AF_PACKET socket bound to ifname inside ns for
// EtherType proto, with a receive timeout.
func rawSocket(t *testing.T, ns, ifname string, proto uint16) int {
	t.Helper()
	var fd int
	err := netns.Do(ns, func() error {
		l, err := netlink.LinkByName(ifname)
		if err != nil {
			return err
		}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(proto)))
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: l.Attrs().Index}); err != nil {
			unix.Close(fd)
			return err
		}
		tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	if err != nil {
		t.Fatalf("raw socket on %s in %s: %v", ifname, ns, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// recvMatching reads from a raw socket until match accepts a frame or the
// deadline passes.
func recvMatching(fd int, within time.Duration, match func([]byte) bool) bool {
	buf := make([]byte, 65536)
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			continue
		}
		if match(buf[:n]) {
			return true
		}
	}
	return false
}
