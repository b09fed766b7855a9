//go:build linux

package afpacket

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/switchyard-net/switchyard/internal/nstest"
)

// testNS is an anonymous network namespace a test created; it goes away
// when its handle and every socket in it are closed.
type testNS struct {
	h  netns.NsHandle
	nl *netlink.Handle
}

// newNS creates a namespace without leaving the calling goroutine in it.
func newNS(t testing.TB) *testNS {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("get current netns: %v", err)
	}
	h, nerr := netns.New()
	if serr := netns.Set(orig); serr != nil {
		// The thread is stuck in the wrong namespace: leave it locked so
		// the runtime retires it with the goroutine.
		t.Fatalf("restore netns: %v", serr)
	}
	orig.Close()
	runtime.UnlockOSThread()
	if nerr != nil {
		t.Fatalf("new netns: %v", nerr)
	}
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		h.Close()
		t.Fatalf("netlink handle: %v", err)
	}
	ns := &testNS{h: h, nl: nl}
	t.Cleanup(func() { nl.Close(); h.Close() })
	// Keep IPv6 autoconfiguration chatter off the test links.
	if err := ns.do(func() error {
		for _, f := range []string{"all", "default"} {
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+f+"/disable_ipv6", []byte("1"), 0); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Logf("disable ipv6: %v", err)
	}
	return ns
}

// do runs fn on a locked OS thread inside ns and always goes back.
func (ns *testNS) do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	if err := netns.Set(ns.h); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		return fmt.Errorf("restore netns: %w (thread left locked)", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// open opens a port on ifname inside ns, closed at cleanup.
func (ns *testNS) open(t testing.TB, ifname string, cfg *Config) *Port {
	t.Helper()
	var p *Port
	if err := ns.do(func() (err error) { p, err = Open(ifname, cfg); return err }); err != nil {
		t.Fatalf("open %s: %v", ifname, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// veth creates a veth pair a (in ns) and b (in peer, or ns if nil), both
// up, and returns their names.
func (ns *testNS) veth(t testing.TB, peer *testNS) (a, b string) {
	t.Helper()
	a, b = nstest.Name("va"), nstest.Name("vb")
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a}, PeerName: b}
	pn := ns
	if peer != nil {
		v.PeerNamespace = netlink.NsFd(int(peer.h))
		pn = peer
	}
	if err := ns.nl.LinkAdd(v); err != nil {
		t.Fatalf("add veth %s-%s: %v", a, b, err)
	}
	for _, x := range []struct {
		ns   *testNS
		name string
	}{{ns, a}, {pn, b}} {
		l, err := x.ns.nl.LinkByName(x.name)
		if err != nil {
			t.Fatalf("link %s: %v", x.name, err)
		}
		if err := x.ns.nl.LinkSetUp(l); err != nil {
			t.Fatalf("up %s: %v", x.name, err)
		}
	}
	t.Cleanup(func() {
		if l, err := ns.nl.LinkByName(a); err == nil {
			ns.nl.LinkDel(l)
		}
	})
	return a, b
}

// addr puts cidr on ifname in ns.
func (ns *testNS) addr(t testing.TB, ifname, cidr string) {
	t.Helper()
	l, err := ns.nl.LinkByName(ifname)
	if err != nil {
		t.Fatalf("link %s: %v", ifname, err)
	}
	ip, n, err := net.ParseCIDR(cidr)
	if err != nil {
		t.Fatal(err)
	}
	n.IP = ip
	if err := ns.nl.AddrAdd(l, &netlink.Addr{IPNet: n}); err != nil {
		t.Fatalf("addr %s on %s: %v", cidr, ifname, err)
	}
}
