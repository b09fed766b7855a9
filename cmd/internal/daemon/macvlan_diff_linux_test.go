package daemon

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/cmd/internal/api"
	"github.com/switchyard-net/switchyard/internal/nstest"
	"github.com/switchyard-net/switchyard/internal/testns"
	"github.com/switchyard-net/switchyard/netns"
)

// The differential test builds the same macvlan scenario twice, once with
// the kernel's macvlan devices and once with a switchyard macvlan network,
// and compares who reaches whom.
//
//	child1, child2 --- parent "up0" (in the parent namespace, with an
//	address of its own: the parent side) --- veth --- kernel bridge in the
//	external switch namespace (hairpin on that port, or not) --- external host
//
// Reachability is one-way and measured with UDP datagrams between sockets
// in each namespace: every host has permanent neighbour entries for every
// other host, so unicast needs no ARP and a datagram from i arriving at j
// means exactly "unicast from i reaches j"; broadcast is a datagram to the
// subnet's broadcast address.

const (
	mvPort   = 4789
	mvSubnet = "198.18.61."
)

type mvHost struct {
	role   string // child1, child2, parent, external
	ns     string
	ifname string
	addr   netip.Addr
	mac    net.HardwareAddr
}

type mvScenario struct {
	mode    string
	hairpin bool
}

func (s mvScenario) String() string {
	if s.hairpin {
		return s.mode + "+hairpin"
	}
	return s.mode
}

var childMACs = []net.HardwareAddr{{0x02, 0x5a, 0, 0, 0, 0x11}, {0x02, 0x5a, 0, 0, 0, 0x12}}

// buildMacvlan builds a scenario; kernel picks kernel macvlan devices,
// otherwise a switchyard daemon (embedded) runs the macvlan network, and
// is returned.
func buildMacvlan(t *testing.T, sc mvScenario, kernel bool) ([]mvHost, *Daemon) {
	t.Helper()
	sw, par, ext := testns.New(t, "symw"), testns.New(t, "symp"), testns.New(t, "symx")
	h, err := netns.NetlinkHandle(sw)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
	if err := h.LinkAdd(br); err != nil {
		t.Fatalf("bridge: %v", err)
	}
	hosts := []mvHost{
		{role: "parent", ns: par, ifname: "up0", addr: netip.MustParseAddr(mvSubnet + "2")},
		{role: "external", ns: ext, ifname: "eth0", addr: netip.MustParseAddr(mvSubnet + "3")},
	}
	for i, peer := range []string{"p0", "x0"} {
		ep := netns.Endpoint{Netns: hosts[i].ns, IfName: hosts[i].ifname, HostName: peer, HostNetns: sw,
			Addrs: []netip.Prefix{netip.PrefixFrom(hosts[i].addr, 24)}}
		if err := netns.AddVeth(ep); err != nil {
			t.Fatal(err)
		}
		l, err := h.LinkByName(peer)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetMaster(l, br); err != nil {
			t.Fatal(err)
		}
		if peer == "p0" && sc.hairpin {
			if err := h.LinkSetHairpin(l, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := h.LinkSetUp(br); err != nil {
		t.Fatal(err)
	}
	children := 2
	if sc.mode == "passthru" {
		children = 1
	}
	for i := range children {
		hosts = append(hosts, mvHost{role: fmt.Sprintf("child%d", i+1), ns: testns.New(t, "symc"), ifname: "eth0",
			addr: netip.MustParseAddr(fmt.Sprintf("%s%d", mvSubnet, 11+i)), mac: childMACs[i]})
	}
	var d *Daemon
	if kernel {
		kernelChildren(t, sc.mode, par, hosts[2:])
	} else {
		d = switchyardChildren(t, sc.mode, par, hosts[2:])
	}
	for i := range hosts {
		m, err := linkMAC(hosts[i].ns, hosts[i].ifname)
		if err != nil {
			t.Fatal(err)
		}
		hosts[i].mac, _ = net.ParseMAC(m)
	}
	// Permanent neighbour entries everywhere: unicast needs no ARP.
	for _, a := range hosts {
		ha, err := netns.NetlinkHandle(a.ns)
		if err != nil {
			t.Fatal(err)
		}
		l, err := ha.LinkByName(a.ifname)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range hosts {
			if a.ns == b.ns {
				continue
			}
			n := &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: unix.AF_INET, State: netlink.NUD_PERMANENT,
				IP: b.addr.AsSlice(), HardwareAddr: b.mac}
			if err := ha.NeighSet(n); err != nil {
				t.Fatalf("neighbour %s in %s: %v", b.addr, a.role, err)
			}
		}
		ha.Close()
	}
	return hosts, d
}

var kernelModes = map[string]netlink.MacvlanMode{
	"bridge": netlink.MACVLAN_MODE_BRIDGE, "private": netlink.MACVLAN_MODE_PRIVATE,
	"vepa": netlink.MACVLAN_MODE_VEPA, "passthru": netlink.MACVLAN_MODE_PASSTHRU,
}

func kernelChildren(t *testing.T, mode, par string, children []mvHost) {
	t.Helper()
	h, err := netns.NetlinkHandle(par)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	up, err := h.LinkByName("up0")
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range children {
		mv := &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("mv%d", i), ParentIndex: up.Attrs().Index}, Mode: kernelModes[mode]}
		if mode != "passthru" {
			mv.HardwareAddr = c.mac
		}
		if err := h.LinkAdd(mv); err != nil {
			t.Fatalf("kernel macvlan %s: %v", mode, err)
		}
		fd, err := unix.Open(filepath.Join(netns.Dir, c.ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = h.LinkSetNsFd(mv, fd)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		hc, err := netns.NetlinkHandle(c.ns)
		if err != nil {
			t.Fatal(err)
		}
		l, err := hc.LinkByName(mv.Name)
		if err == nil {
			err = hc.LinkSetName(l, c.ifname)
		}
		if err == nil {
			err = hc.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: c.addr.AsSlice(), Mask: net.CIDRMask(24, 32)}})
		}
		if err == nil {
			err = hc.LinkSetUp(l)
		}
		hc.Close()
		if err != nil {
			t.Fatalf("configure %s: %v", c.role, err)
		}
	}
}

func switchyardChildren(t *testing.T, mode, par string, children []mvHost) *Daemon {
	t.Helper()
	d, err := New(&Config{StateDir: filepath.Join(t.TempDir(), "state")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	name := mvNetName(mode)
	if _, err := d.CreateNetwork(api.NetworkCreate{Name: name, Driver: api.DriverMacvlan, Mode: mode, Parent: "up0", ParentNetns: par,
		Subnets: []api.Subnet{{Subnet: mvSubnet + "0/24", Gateway: mvSubnet + "1"}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.RemoveNetwork(name); err != nil {
			t.Errorf("rm %s: %v", name, err)
		}
	})
	for _, c := range children {
		req := api.EndpointCreate{Netns: c.ns, IPs: []string{c.addr.String()}}
		if mode != "passthru" {
			req.MAC = c.mac.String()
		}
		if _, err := d.Connect(name, req); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// mvNetName is the network switchyardChildren makes for mode.
func mvNetName(mode string) string { return "mv" + strings.ReplaceAll(mode, "passthru", "pt") }

// reach sends, from every host, one unicast datagram to every other host
// and one to the subnet's broadcast address, and returns who got what:
// "u:child1>parent" and "b:child1>parent" entries.
func reach(t *testing.T, hosts []mvHost) map[string]bool {
	t.Helper()
	conns := make([]*net.UDPConn, len(hosts))
	for i, h := range hosts {
		err := netns.Do(h.ns, func() error {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: mvPort})
			conns[i] = c
			return err
		})
		if err != nil {
			t.Fatalf("socket in %s: %v", h.role, err)
		}
		defer conns[i].Close()
	}
	return gather(hosts, func(i int) deadliner { return conns[i] }, func(i int, buf []byte) (string, error) {
		n, _, err := conns[i].ReadFromUDP(buf)
		return string(buf[:n]), err
	}, func() {
		bcast := &net.UDPAddr{IP: net.ParseIP(mvSubnet + "255"), Port: mvPort}
		for i, a := range hosts {
			for _, b := range hosts {
				if a.role != b.role {
					if _, err := conns[i].WriteToUDP([]byte("u:"+a.role), &net.UDPAddr{IP: b.addr.AsSlice(), Port: mvPort}); err != nil {
						t.Errorf("send %s to %s: %v", a.role, b.role, err)
					}
				}
			}
			if _, err := conns[i].WriteToUDP([]byte("b:"+a.role), bcast); err != nil {
				t.Errorf("broadcast from %s: %v", a.role, err)
			}
		}
	})
}

type deadliner interface{ SetReadDeadline(time.Time) error }

// gather reads every host's socket (sock) in parallel for a moment while
// send sends, and returns "TAG>ROLE" for every tag read yields on a host
// ("" skips a read; an error, the deadline included, ends that host's).
func gather(hosts []mvHost, sock func(i int) deadliner, read func(i int, buf []byte) (string, error), send func()) map[string]bool {
	got := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	deadline := time.Now().Add(700 * time.Millisecond)
	for i := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 2048)
			sock(i).SetReadDeadline(deadline)
			for {
				tag, err := read(i, buf)
				if err != nil {
					return
				}
				if tag == "" {
					continue
				}
				mu.Lock()
				got[tag+">"+hosts[i].role] = true
				mu.Unlock()
			}
		}()
	}
	send()
	wg.Wait()
	return got
}

// matrix prints a reachability map as two from/to tables.
func matrix(hosts []mvHost, got map[string]bool) string {
	var b strings.Builder
	for _, kind := range []string{"u", "b"} {
		fmt.Fprintf(&b, "  %-9s", map[string]string{"u": "unicast", "b": "broadcast"}[kind])
		for _, to := range hosts {
			fmt.Fprintf(&b, " %-9s", to.role)
		}
		b.WriteString("\n")
		for _, from := range hosts {
			fmt.Fprintf(&b, "  %-9s", from.role)
			for _, to := range hosts {
				c := "-"
				if from.role == to.role {
					c = " "
				} else if got[kind+":"+from.role+">"+to.role] {
					c = "yes"
				}
				fmt.Fprintf(&b, " %-9s", c)
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

// The multicast part: child1 alone joins mvGroup at the link layer (`ip
// maddr add`, no IP membership), then every host sends one frame to the
// group with an experimental EtherType, and packet sockets bound to that
// EtherType on every host's interface see what arrives (incoming frames
// only: an outgoing copy goes to ETH_P_ALL sockets alone). Kernel macvlan
// delivers a group only to a child whose multicast filter has it.

var mvGroup = net.HardwareAddr{0x01, 0x00, 0x5e, 0x01, 0x02, 0x03}

const mvEtherType = 0x88b5

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// joinGroup adds mvGroup to child1's multicast list and, for switchyard,
// waits until the engine's filter has it.
func joinGroup(t *testing.T, sc mvScenario, hosts []mvHost, d *Daemon) {
	t.Helper()
	c1 := hosts[2]
	if out, err := inNS(c1.ns, "ip", "maddr", "add", mvGroup.String(), "dev", c1.ifname); err != nil {
		t.Fatalf("join %s in child1: %v: %s", mvGroup, err, out)
	}
	if d == nil {
		return
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		d.mu.Lock()
		e := d.nets[mvNetName(sc.mode)].br.(*mvEngine)
		ci, err := e.par.sw.Child(e.child(c1.ns))
		d.mu.Unlock()
		if err == nil && ci.Multicast != nil && slices.Contains(ci.Multicast.Groups, mvGroup.String()) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("switchyard's filter for child1 has not got %s after 5 s: %+v", mvGroup, ci.Multicast)
		}
	}
}

// mreach sends one frame to mvGroup from every host and returns who got
// which: "m:child1>child2" entries, a host's own frame coming back too.
func mreach(t *testing.T, hosts []mvHost) map[string]bool {
	t.Helper()
	socks := make([]*os.File, len(hosts))
	for i, h := range hosts {
		err := netns.Do(h.ns, func() error {
			ifi, err := net.InterfaceByName(h.ifname)
			if err != nil {
				return err
			}
			fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, int(htons(mvEtherType)))
			if err != nil {
				return err
			}
			if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(mvEtherType), Ifindex: ifi.Index}); err != nil {
				unix.Close(fd)
				return err
			}
			socks[i] = os.NewFile(uintptr(fd), "packet")
			return nil
		})
		if err != nil {
			t.Fatalf("packet socket in %s: %v", h.role, err)
		}
		defer socks[i].Close()
	}
	return gather(hosts, func(i int) deadliner { return socks[i] }, func(i int, buf []byte) (string, error) {
		n, err := socks[i].Read(buf)
		if err != nil || n < 20 || !bytes.Equal(buf[:6], mvGroup) {
			return "", err
		}
		tag, _, _ := bytes.Cut(buf[14:n], []byte{0})
		return string(tag), nil
	}, func() {
		for i, h := range hosts {
			f := make([]byte, 60)
			copy(f, mvGroup)
			copy(f[6:], h.mac)
			f[12], f[13] = mvEtherType>>8, mvEtherType&0xff
			copy(f[14:], "m:"+h.role)
			if _, err := socks[i].Write(f); err != nil {
				t.Errorf("multicast from %s: %v", h.role, err)
			}
		}
	})
}

// mmatrix prints a multicast reachability map, the diagonal included.
func mmatrix(hosts []mvHost, got map[string]bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  %-9s", "multicast")
	for _, to := range hosts {
		fmt.Fprintf(&b, " %-9s", to.role)
	}
	b.WriteString("\n")
	for _, from := range hosts {
		fmt.Fprintf(&b, "  %-9s", from.role)
		for _, to := range hosts {
			c := "-"
			if got["m:"+from.role+">"+to.role] {
				c = "yes"
			}
			fmt.Fprintf(&b, " %-9s", c)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// kernelHashHit reports whether kernel macvlan let the group through to
// child2, which has not joined it, from another host: a collision in the
// kernel's 256-bit filter hash, which mixes in the device's address, so a
// rebuild draws again.
func kernelHashHit(hosts []mvHost, got map[string]bool) bool {
	for _, h := range hosts {
		if h.role != "child2" && got["m:"+h.role+">child2"] {
			return true
		}
	}
	return false
}

// TestMacvlanMatchesKernel is the differential test: for every mode, with
// and without a hairpinning (VEPA-capable) upstream switch, every pair of
// hosts must reach each other, by unicast and by broadcast, exactly as with
// the kernel's macvlan.
func TestMacvlanMatchesKernel(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	for _, sc := range []mvScenario{
		{"bridge", false}, {"bridge", true},
		{"vepa", false}, {"vepa", true},
		{"private", false}, {"private", true},
		{"passthru", false}, {"passthru", true},
	} {
		t.Run(sc.String(), func(t *testing.T) {
			var results, mresults [2]map[string]bool
			var hosts []mvHost
			for i, kernel := range []bool{true, false} {
				t.Run(map[bool]string{true: "kernel", false: "switchyard"}[kernel], func(t *testing.T) {
					for try := 0; ; try++ {
						var d *Daemon
						hosts, d = buildMacvlan(t, sc, kernel)
						results[i] = reach(t, hosts)
						joinGroup(t, sc, hosts, d)
						mresults[i] = mreach(t, hosts)
						if !kernel || !kernelHashHit(hosts, mresults[i]) || try == 2 {
							break
						}
						t.Logf("kernel's multicast hash let %s through to child2; building again", mvGroup)
					}
				})
			}
			if t.Failed() {
				return
			}
			k, s := matrix(hosts, results[0])+mmatrix(hosts, mresults[0]), matrix(hosts, results[1])+mmatrix(hosts, mresults[1])
			if k != s {
				t.Errorf("%s: switchyard differs from the kernel\nkernel macvlan:\n%sswitchyard:\n%s", sc, k, s)
			} else {
				t.Logf("%s: same as the kernel\n%s", sc, k)
			}
		})
	}
}
