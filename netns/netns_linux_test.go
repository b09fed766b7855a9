package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/internal/nstest"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// newNS creates a namespace for the test and deletes it in cleanup.
func newNS(t *testing.T) string {
	t.Helper()
	name := nstest.Name("syns")
	if err := Create(name); err != nil {
		t.Fatalf("Create(%s): %v", name, err)
	}
	t.Cleanup(func() {
		if err := Delete(name); err != nil {
			t.Errorf("Delete(%s): %v", name, err)
		}
	})
	return name
}

// nsIno returns the inode of the network namespace of the calling thread.
func threadNsIno(t testing.TB) uint64 {
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), &st); err != nil {
		t.Fatalf("stat thread namespace: %v", err)
	}
	return st.Ino
}

func nsIno(t testing.TB, name string) uint64 {
	t.Helper()
	var ino uint64
	if err := Do(name, func() error { ino = threadNsIno(t); return nil }); err != nil {
		t.Fatalf("Do(%q): %v", name, err)
	}
	return ino
}

func originIno(t testing.TB) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(origin.fd, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func ipNetnsList(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

func TestCreateDelete(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	name := nstest.Name("syns")
	if Exists(name) {
		t.Fatalf("Exists(%s) before Create", name)
	}
	if err := Create(name); err != nil {
		t.Fatalf("Create: %v", err)
	}
	deleted := false
	t.Cleanup(func() {
		if !deleted {
			Delete(name)
		}
	})
	if !slices.Contains(ipNetnsList(t), name) {
		t.Errorf("ip netns list does not show %s: %v", name, ipNetnsList(t))
	}
	if !Exists(name) {
		t.Errorf("Exists(%s) = false after Create", name)
	}
	if err := Create(name); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second Create = %v, want fs.ErrExist", err)
	}
	// It is a namespace of its own, which ip netns exec can enter: only lo.
	if got, orig := nsIno(t, name), originIno(t); got == orig {
		t.Errorf("namespace %s has the original namespace's inode %d", name, orig)
	}
	out, err := exec.Command("ip", "netns", "exec", name, "ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns exec: %v: %s", err, out)
	}
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 1 || !strings.Contains(lines[0], " lo:") {
		t.Errorf("links in a new namespace = %q, want lo only", out)
	}

	if err := Delete(name); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	deleted = true
	if slices.Contains(ipNetnsList(t), name) {
		t.Errorf("ip netns list still shows %s", name)
	}
	if Exists(name) {
		t.Errorf("Exists(%s) = true after Delete", name)
	}
	if _, err := os.Stat(path(name)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s still there after Delete: %v", path(name), err)
	}
	if err := Delete(name); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("second Delete = %v, want fs.ErrNotExist", err)
	}
	if err := Do(name, func() error { return nil }); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Do on a deleted namespace = %v, want fs.ErrNotExist", err)
	}
}

func TestCreateInvalid(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	for _, n := range []string{"", ".", "..", "a/b"} {
		if err := Create(n); err == nil {
			t.Errorf("Create(%q) succeeded", n)
			Delete(n)
		}
	}
}

func TestDoRestoresThreads(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	names := []string{newNS(t), newNS(t), ""}
	want := map[string]uint64{}
	for _, n := range names {
		want[n] = nsIno(t, n)
	}
	if want[names[0]] == want[names[1]] || want[names[0]] == want[""] {
		t.Fatalf("namespaces share inodes: %v", want)
	}

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := threadNsIno(t)

	const workers, rounds = 16, 25
	var wg sync.WaitGroup
	errc := make(chan error, workers*rounds)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				n := names[(w+r)%len(names)]
				err := Do(n, func() error {
					// Yield inside so that the scheduler gets every
					// chance to move things around.
					runtime.Gosched()
					if got := threadNsIno(t); got != want[n] {
						return fmt.Errorf("inside Do(%q): namespace inode %d, want %d", n, got, want[n])
					}
					return nil
				})
				if err != nil {
					errc <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if after := threadNsIno(t); after != before {
		t.Errorf("caller's thread moved from namespace %d to %d", before, after)
	}
	// No thread of the process may be left anywhere but the original
	// namespace.
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		var st unix.Stat_t
		if err := unix.Stat("/proc/self/task/"+e.Name()+"/ns/net", &st); err != nil {
			continue // the thread exited
		}
		if st.Ino != want[""] {
			t.Errorf("thread %s is in namespace %d after Do, want the original %d", e.Name(), st.Ino, want[""])
		}
	}
}

func TestDoErrorAndPanic(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	ns := newNS(t)
	sentinel := errors.New("sentinel")
	if err := Do(ns, func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the panic from fn", r)
			}
		}()
		Do(ns, func() error { panic("boom") })
		t.Error("Do did not re-raise fn's panic")
	}()
	// runtime.Goexit in fn (what t.FailNow does) ends the caller too,
	// rather than leaving it waiting.
	reached := make(chan bool, 1)
	go func() {
		defer close(reached)
		Do(ns, func() error { runtime.Goexit(); return nil })
		reached <- true
	}()
	select {
	case r := <-reached:
		if r {
			t.Error("the caller of Do went on after fn called runtime.Goexit")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Do hung after fn called runtime.Goexit")
	}
	if err := Do("no-such-ns-"+nstest.Name(""), func() error { return nil }); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Do on a missing namespace = %v, want fs.ErrNotExist", err)
	}
	// A regular file in Dir is not a namespace.
	bogus := nstest.Name("sybog")
	if err := os.WriteFile(path(bogus), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(path(bogus))
	if Exists(bogus) {
		t.Error("Exists reports a plain file as a namespace")
	}
	if err := Do(bogus, func() error { return nil }); err == nil {
		t.Error("Do entered a plain file")
	}
}

func TestNetlinkHandle(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	ns := newNS(t)
	h, err := NetlinkHandle(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// A bridge made through the handle shows in the namespace only.
	name := nstest.Name("sydum")
	if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
		t.Fatal(err)
	}
	if ok, err := LinkExists(ns, name); err != nil || !ok {
		t.Errorf("LinkExists(%s, %s) = %v, %v; want true", ns, name, ok, err)
	}
	if ok, err := LinkExists("", name); err != nil || ok {
		t.Errorf("LinkExists(original, %s) = %v, %v; want false", name, ok, err)
	}
	if _, err := LinkExists("no-such-"+nstest.Name(""), name); err == nil {
		t.Error("LinkExists in a missing namespace gave no error")
	}
	if err := DelLink(ns, name); err != nil {
		t.Fatal(err)
	}
	if ok, _ := LinkExists(ns, name); ok {
		t.Error("link still there after DelLink")
	}
	if err := DelLink(ns, name); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("DelLink of a missing link = %v, want fs.ErrNotExist", err)
	}
}

// inspect is what a namespace looks like from netlink, for comparison.
type inspect struct {
	link   netlink.Link
	addrs  []netip.Prefix
	routes map[string]string // default route family -> gateway
	loUp   bool
}

func inspectLink(t *testing.T, ns, name string) inspect {
	t.Helper()
	h, err := NetlinkHandle(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("%s in %q: %v", name, ns, err)
	}
	in := inspect{link: l, routes: map[string]string{}}
	addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		ip, _ := netip.AddrFromSlice(a.IP)
		ones, _ := a.Mask.Size()
		if ip.IsLinkLocalUnicast() {
			continue
		}
		in.addrs = append(in.addrs, netip.PrefixFrom(ip.Unmap(), ones))
	}
	routes, err := h.RouteList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() {
			if ones, _ := maskOnes(r.Dst); ones == 0 && r.Gw != nil {
				fam := "v4"
				if r.Gw.To4() == nil {
					fam = "v6"
				}
				in.routes[fam] = r.Gw.String()
			}
		}
	}
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	in.loUp = lo.Attrs().Flags&net.FlagUp != 0
	return in
}

func maskOnes(n *net.IPNet) (int, int) {
	if n == nil {
		return 0, 0
	}
	return n.Mask.Size()
}

func TestAddVeth(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	inner, hostNs := newNS(t), newNS(t)
	mac := net.HardwareAddr{0x02, 0x53, 0x59, 0, 0, 0x02}
	ep := Endpoint{
		Netns:     inner,
		HostName:  nstest.Name("syvh"),
		HostNetns: hostNs,
		MAC:       mac,
		Addrs:     []netip.Prefix{netip.MustParsePrefix("198.18.1.2/24"), netip.MustParsePrefix("fd00:198:18:1::2/64")},
		Gateways:  []netip.Addr{netip.MustParseAddr("198.18.1.1"), netip.MustParseAddr("fd00:198:18:1::1")},
		MTU:       1400,
	}
	if err := AddVeth(ep); err != nil {
		t.Fatalf("AddVeth: %v", err)
	}
	got := inspectLink(t, inner, "eth0")
	if got.link.Type() != "veth" {
		t.Errorf("inner link type %q, want veth", got.link.Type())
	}
	if a := got.link.Attrs(); a.HardwareAddr.String() != mac.String() || a.MTU != 1400 || a.Flags&net.FlagUp == 0 {
		t.Errorf("inner link MAC %s MTU %d flags %v; want %s, 1400, up", a.HardwareAddr, a.MTU, a.Flags, mac)
	}
	if !slices.Equal(sortedPrefixes(got.addrs), sortedPrefixes(ep.Addrs)) {
		t.Errorf("inner addresses %v, want %v", got.addrs, ep.Addrs)
	}
	if want := map[string]string{"v4": "198.18.1.1", "v6": "fd00:198:18:1::1"}; !mapsEqual(got.routes, want) {
		t.Errorf("default routes %v, want %v", got.routes, want)
	}
	if !got.loUp {
		t.Error("lo is down inside the namespace")
	}
	host := inspectLink(t, hostNs, ep.HostName)
	if a := host.link.Attrs(); a.Flags&net.FlagUp == 0 || a.MTU != 1400 {
		t.Errorf("host end flags %v MTU %d, want up, 1400", a.Flags, a.MTU)
	}
	if len(host.addrs) != 0 {
		t.Errorf("host end has addresses %v, want none", host.addrs)
	}
	if ok, _ := LinkExists("", ep.HostName); ok {
		t.Errorf("host end %s showed up in the original namespace", ep.HostName)
	}

	// The pair carries traffic: give the host end (in a namespace of ours)
	// the gateway address and ping it from inside.
	hh, err := NetlinkHandle(hostNs)
	if err != nil {
		t.Fatal(err)
	}
	defer hh.Close()
	addr, _ := netlink.ParseAddr("198.18.1.1/24")
	if err := hh.AddrAdd(host.link, addr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", inner, "ping", "-c", "1", "-W", "3", "198.18.1.1").CombinedOutput(); err != nil {
		t.Errorf("ping through the veth pair: %v\n%s", err, out)
	}

	// DelLink on the inner end takes both ends.
	if err := DelLink(inner, "eth0"); err != nil {
		t.Fatal(err)
	}
	if ok, err := LinkExists(hostNs, ep.HostName); ok || err != nil {
		t.Errorf("host end after DelLink of the inner end: exists=%v err=%v", ok, err)
	}
}

func TestAddVethDefaults(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	inner := newNS(t)
	// Host end in the original namespace, no addresses: nothing that
	// carries traffic there. Delete takes the pair with it, which the leak
	// check confirms.
	ep := Endpoint{Netns: inner, HostName: nstest.Name("syvh")}
	if err := AddVeth(ep); err != nil {
		t.Fatalf("AddVeth: %v", err)
	}
	got := inspectLink(t, inner, "eth0")
	a := got.link.Attrs()
	if a.MTU != 1500 || a.HardwareAddr[0]&3 != 2 || a.Flags&net.FlagUp == 0 || !got.loUp {
		t.Errorf("defaults: MTU %d MAC %s flags %v lo up %v; want 1500, local unicast MAC, up, lo up", a.MTU, a.HardwareAddr, a.Flags, got.loUp)
	}
	host := inspectLink(t, "", ep.HostName)
	if host.link.Attrs().Flags&net.FlagUp == 0 || len(host.addrs) != 0 {
		t.Errorf("host end: flags %v addrs %v; want up, no addresses", host.link.Attrs().Flags, host.addrs)
	}
	// Same host name again: refused, and the first pair stays.
	ep2 := Endpoint{Netns: newNS(t), HostName: ep.HostName}
	if err := AddVeth(ep2); err == nil {
		t.Fatal("AddVeth with a taken host name succeeded")
	}
	if ok, _ := LinkExists("", ep.HostName); !ok {
		t.Error("a failed AddVeth removed an existing link of the same name")
	}
	if ok, _ := LinkExists(ep2.Netns, "eth0"); ok {
		t.Error("a failed AddVeth left eth0 behind")
	}
}

func sortedPrefixes(p []netip.Prefix) []string {
	var s []string
	for _, x := range p {
		s = append(s, x.String())
	}
	slices.Sort(s)
	return s
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// linkNames lists the links in namespace ns.
func linkNames(t *testing.T, ns string) []string {
	t.Helper()
	h, err := NetlinkHandle(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	slices.Sort(names)
	return names
}

var allSteps = []string{"created", "host-up", "moved", "renamed", "addr", "inner-up", "lo-up", "route"}

func TestAddFailureCleansUp(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	inner, hostNs := newNS(t), newNS(t)
	hh, err := NetlinkHandle(hostNs)
	if err != nil {
		t.Fatal(err)
	}
	defer hh.Close()
	ih, err := NetlinkHandle(inner)
	if err != nil {
		t.Fatal(err)
	}
	defer ih.Close()
	// Taken names on both sides.
	taken := "sytaken0"
	if err := hh.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: taken}}); err != nil {
		t.Fatal(err)
	}
	if err := ih.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "busy0"}}); err != nil {
		t.Fatal(err)
	}
	hostBefore, innerBefore := linkNames(t, hostNs), linkNames(t, inner)

	good := Endpoint{
		Netns: inner, HostNetns: hostNs, HostName: "syfail0",
		Addrs:    []netip.Prefix{netip.MustParsePrefix("198.18.2.2/24"), netip.MustParsePrefix("fd00:198:18:2::2/64")},
		Gateways: []netip.Addr{netip.MustParseAddr("198.18.2.1"), netip.MustParseAddr("fd00:198:18:2::1")},
	}
	type tc struct {
		name   string
		ep     Endpoint
		failAt string
		only   string // run for this kind only
	}
	var cases []tc
	for _, s := range allSteps {
		cases = append(cases, tc{name: "step " + s, ep: good, failAt: s})
	}
	mod := func(f func(*Endpoint)) Endpoint {
		ep := good
		f(&ep)
		return ep
	}
	cases = append(cases,
		tc{name: "taken host name", ep: mod(func(ep *Endpoint) { ep.HostName = taken })},
		tc{name: "taken inner name", ep: mod(func(ep *Endpoint) { ep.IfName = "busy0" })},
		// A TAP passes through the inner namespace under its host name.
		tc{name: "host name taken inside", ep: mod(func(ep *Endpoint) { ep.HostName = "busy0" }), only: "tap"},
		tc{name: "unreachable gateway", ep: mod(func(ep *Endpoint) {
			ep.Gateways = []netip.Addr{netip.MustParseAddr("198.18.99.1")}
		})},
		tc{name: "gateway of a family without address", ep: mod(func(ep *Endpoint) {
			ep.Addrs = ep.Addrs[:1]
			ep.Gateways = []netip.Addr{netip.MustParseAddr("fd00:198:18:2::1")}
		})},
		tc{name: "duplicate address", ep: mod(func(ep *Endpoint) {
			ep.Addrs = []netip.Prefix{ep.Addrs[0], ep.Addrs[0]}
		})},
		tc{name: "mapped address", ep: mod(func(ep *Endpoint) {
			ep.Addrs = []netip.Prefix{netip.MustParsePrefix("::ffff:198.18.2.2/120")}
		})},
		tc{name: "missing namespace", ep: mod(func(ep *Endpoint) { ep.Netns = "sy-missing-" + nstest.Name("") })},
	)
	for _, kind := range []string{"veth", "tap"} {
		for _, c := range cases {
			if c.only != "" && c.only != kind {
				continue
			}
			t.Run(kind+"/"+c.name, func(t *testing.T) {
				hit := false
				if c.failAt != "" {
					stepHook = func(s string) error {
						if s == c.failAt {
							hit = true
							return errors.New("injected failure at " + s)
						}
						return nil
					}
					defer func() { stepHook = nil }()
				}
				var err error
				if kind == "veth" {
					err = AddVeth(c.ep)
				} else {
					var files []*os.File
					files, err = AddTap(c.ep, 2)
					for _, f := range files {
						f.Close()
					}
				}
				if c.failAt != "" && !hit {
					// This step does not exist for this kind.
					if err != nil {
						t.Fatalf("no failure injected, but Add failed: %v", err)
					}
					DelLink(inner, c.ep.ifName())
					return
				}
				if err == nil {
					t.Fatal("Add succeeded, want a failure")
				}
				t.Logf("error (as wanted): %v", err)
				if got := linkNames(t, hostNs); !slices.Equal(got, hostBefore) {
					t.Errorf("host namespace links %v, want %v", got, hostBefore)
				}
				if got := linkNames(t, inner); !slices.Equal(got, innerBefore) {
					t.Errorf("inner namespace links %v, want %v", got, innerBefore)
				}
			})
		}
	}
}

// ifName is the inner name ep gets.
func (ep Endpoint) ifName() string {
	if ep.IfName == "" {
		return DefaultIfName
	}
	return ep.IfName
}

// packetSocket opens an AF_PACKET socket in namespace ns bound to ifname,
// receiving frames of EtherType proto.
func packetSocket(t *testing.T, ns, ifname string, proto uint16) int {
	t.Helper()
	var fd int
	err := Do(ns, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(proto)))
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatalf("packet socket on %s in %s: %v", ifname, ns, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	tv := unix.NsecToTimeval((3 * time.Second).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return fd
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

const testEtherType = 0x88b5 // IEEE local experimental

func testFrame(dst, src net.HardwareAddr, payload string) []byte {
	f := append(append(append([]byte{}, dst...), src...), testEtherType>>8, testEtherType&0xff)
	f = append(f, payload...)
	for len(f) < 60 {
		f = append(f, 0)
	}
	return f
}

func TestAddTap(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	for _, hostNs := range []string{"", "ns"} {
		t.Run("host="+hostNs, func(t *testing.T) {
			inner := newNS(t)
			if hostNs != "" {
				hostNs = newNS(t)
			}
			mac := net.HardwareAddr{0x02, 0x53, 0x59, 0, 0, 0x12}
			ep := Endpoint{
				Netns: inner, HostNetns: hostNs, HostName: nstest.Name("sytap"), IfName: "tap0", MAC: mac, MTU: 9000,
				Addrs:    []netip.Prefix{netip.MustParsePrefix("198.18.3.2/24"), netip.MustParsePrefix("fd00:198:18:3::2/64")},
				Gateways: []netip.Addr{netip.MustParseAddr("198.18.3.1"), netip.MustParseAddr("fd00:198:18:3::1")},
			}
			files, err := AddTap(ep, 2)
			if err != nil {
				t.Fatalf("AddTap: %v", err)
			}
			defer func() {
				for _, f := range files {
					f.Close()
				}
			}()
			if len(files) != 2 {
				t.Fatalf("AddTap returned %d files, want 2", len(files))
			}
			got := inspectLink(t, inner, "tap0")
			if got.link.Type() != "tuntap" {
				t.Errorf("link type %q, want tuntap", got.link.Type())
			}
			if a := got.link.Attrs(); a.HardwareAddr.String() != mac.String() || a.MTU != 9000 || a.Flags&net.FlagUp == 0 {
				t.Errorf("tap MAC %s MTU %d flags %v; want %s, 9000, up", a.HardwareAddr, a.MTU, a.Flags, mac)
			}
			if tt, ok := got.link.(*netlink.Tuntap); ok && tt.Flags&netlink.TUNTAP_MULTI_QUEUE == 0 {
				t.Errorf("tap flags %v: not multiqueue", tt.Flags)
			}
			if !slices.Equal(sortedPrefixes(got.addrs), sortedPrefixes(ep.Addrs)) {
				t.Errorf("addresses %v, want %v", got.addrs, ep.Addrs)
			}
			if want := map[string]string{"v4": "198.18.3.1", "v6": "fd00:198:18:3::1"}; !mapsEqual(got.routes, want) {
				t.Errorf("default routes %v, want %v", got.routes, want)
			}
			if !got.loUp {
				t.Error("lo is down")
			}
			if ok, _ := LinkExists(hostNs, ep.HostName); ok {
				t.Errorf("%s still in the host namespace", ep.HostName)
			}

			// Both queue fds still drive the device after the move: a
			// frame written to either shows on the namespace side...
			ps := packetSocket(t, inner, "tap0", testEtherType)
			peer := net.HardwareAddr{0x02, 0x53, 0x59, 0, 0, 0x11}
			for i, f := range files {
				want := testFrame(mac, peer, fmt.Sprintf("to-ns via queue %d", i))
				if _, err := f.Write(append(make([]byte, 10), want...)); err != nil {
					t.Fatalf("write queue %d: %v", i, err)
				}
				buf := make([]byte, 2048)
				n, _, err := unix.Recvfrom(ps, buf, 0)
				if err != nil {
					t.Fatalf("frame written to queue %d not seen in the namespace: %v", i, err)
				}
				if !bytes.Equal(buf[:n], want) {
					t.Errorf("namespace got %x, want %x", buf[:n], want)
				}
			}
			// ...and a frame sent in the namespace comes out of a queue.
			want := testFrame(peer, mac, "from-ns")
			if err := unix.Sendto(ps, want, 0, &unix.SockaddrLinklayer{Ifindex: got.link.Attrs().Index, Protocol: htons(testEtherType)}); err != nil {
				t.Fatal(err)
			}
			// A single flow lands on one queue; poll both.
			rd := make(chan []byte, 2)
			for _, f := range files {
				go func() { rd <- readTapFrameQuiet(f) }()
			}
			var seen []byte
			for i := 0; i < 2; i++ {
				if fr := <-rd; fr != nil {
					seen = fr
				}
			}
			if !bytes.Equal(seen, want) {
				t.Errorf("tap got %x, want %x", seen, want)
			}
		})
	}
}

// readTapFrameQuiet is readTapFrame without a testing.T: nil on timeout.
func readTapFrameQuiet(f *os.File) []byte {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil
	}
	var fd int
	rc.Control(func(p uintptr) { fd = int(p) })
	buf := make([]byte, 70000)
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		unix.Poll(pfd, 100)
		n, err := unix.Read(fd, buf)
		if err != nil {
			continue
		}
		fr := buf[10:n]
		if len(fr) >= 14 && fr[12] == testEtherType>>8 && fr[13] == testEtherType&0xff {
			return fr
		}
	}
	return nil
}

func TestDeleteTakesVethPeers(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	inner := nstest.Name("syns")
	if err := Create(inner); err != nil {
		t.Fatal(err)
	}
	ep := Endpoint{Netns: inner, HostName: nstest.Name("syvh")}
	if err := AddVeth(ep); err != nil {
		Delete(inner)
		t.Fatal(err)
	}
	if err := Delete(inner); err != nil {
		t.Fatal(err)
	}
	// At once, not whenever the kernel gets round to the namespace.
	if ok, err := LinkExists("", ep.HostName); ok || err != nil {
		t.Errorf("host end after Delete: exists=%v err=%v", ok, err)
	}
}
