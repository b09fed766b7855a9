//go:build linux

package e2e

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/internal/nstest"
	"github.com/switchyard-net/switchyard/netns"
	"github.com/switchyard-net/switchyard/switch/bridge"
	"github.com/switchyard-net/switchyard/switch/port"
	"github.com/switchyard-net/switchyard/switch/port/afpacket"
	"github.com/switchyard-net/switchyard/switch/port/tap"
)

type host struct {
	ns   string
	addr netip.Addr
	mac  net.HardwareAddr
	link string // host-side link name in the switch namespace
}

type topo struct {
	sw    string
	br    *bridge.Bridge
	hosts []host
	gone  chan string
}

// newTopo builds three namespaces on a switchyard bridge whose ports are of
// the given kind ("ring": veth pairs with AF_PACKET ring ports on the host
// ends; "tap": TAP devices whose fds the bridge keeps). The host ends live in
// a switch namespace of their own, so nothing touches the root namespace.
func newTopo(t *testing.T, kind string) *topo {
	t.Helper()
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	tp := &topo{sw: newNS(t, "sysw"), gone: make(chan string, 4)}
	tp.br = bridge.New(&bridge.Config{OnPortGone: func(name string, err error) { tp.gone <- name }})
	t.Cleanup(func() { tp.br.Close() })
	for i := 1; i <= 3; i++ {
		h := host{
			ns:   newNS(t, "syh"),
			addr: netip.AddrFrom4([4]byte{198, 18, 0, byte(i)}),
			mac:  net.HardwareAddr{0x02, 0x53, 0x59, 0, 0, byte(i)},
			link: fmt.Sprintf("h%d", i),
		}
		ep := netns.Endpoint{
			Netns:     h.ns,
			HostName:  h.link,
			HostNetns: tp.sw,
			MAC:       h.mac,
			Addrs:     []netip.Prefix{netip.PrefixFrom(h.addr, 24)},
		}
		var p port.Port
		switch kind {
		case "ring":
			if err := netns.AddVeth(ep); err != nil {
				t.Fatalf("veth for %s: %v", h.ns, err)
			}
			err := netns.Do(tp.sw, func() error {
				rp, err := afpacket.Open(h.link, nil)
				p = rp
				return err
			})
			if err != nil {
				t.Fatalf("ring port on %s: %v", h.link, err)
			}
		case "tap":
			files, err := netns.AddTap(ep, 1)
			if err != nil {
				t.Fatalf("tap for %s: %v", h.ns, err)
			}
			qs, err := tap.New(h.link, files, nil)
			if err != nil {
				t.Fatalf("tap port %s: %v", h.link, err)
			}
			p = qs[0]
		}
		if err := tp.br.AddPort(h.ns, p, bridge.DefaultFlags()); err != nil {
			t.Fatal(err)
		}
		tp.hosts = append(tp.hosts, h)
	}
	return tp
}

func (tp *topo) counters(t *testing.T, i int) bridge.Counters {
	t.Helper()
	pi, err := tp.br.Port(tp.hosts[i].ns)
	if err != nil {
		t.Fatal(err)
	}
	return pi.Counters
}

func (tp *topo) setFlags(t *testing.T, i int, mod func(*bridge.Flags)) {
	t.Helper()
	f := bridge.DefaultFlags()
	mod(&f)
	if err := tp.br.SetFlags(tp.hosts[i].ns, f); err != nil {
		t.Fatal(err)
	}
}

func TestBridgeEndToEnd(t *testing.T) {
	for _, kind := range []string{"ring", "tap"} {
		t.Run(kind, func(t *testing.T) {
			tp := newTopo(t, kind)
			h := tp.hosts

			t.Run("ping both ways", func(t *testing.T) {
				for _, p := range [][2]int{{0, 1}, {1, 0}, {0, 2}, {2, 1}} {
					if !ping(t, h[p[0]].ns, h[p[1]].addr, 3) {
						t.Errorf("ping %s -> %s failed", h[p[0]].addr, h[p[1]].addr)
					}
				}
			})

			t.Run("ARP broadcast reaches every namespace", func(t *testing.T) {
				if _, err := inNS(t, 5*time.Second, h[0].ns, "ip", "neigh", "flush", "all"); err != nil {
					t.Fatal(err)
				}
				fd := rawSocket(t, h[2].ns, "eth0", unix.ETH_P_ARP)
				go ping(t, h[0].ns, h[1].addr, 1)
				want := h[1].addr.As4()
				ok := recvMatching(fd, 3*time.Second, func(f []byte) bool {
					// An ARP request (op 1) from host 1 asking for host 2.
					return len(f) >= 42 && bytes.Equal(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) &&
						bytes.Equal(f[6:12], h[0].mac) && binary.BigEndian.Uint16(f[20:22]) == 1 &&
						bytes.Equal(f[38:42], want[:])
				})
				if !ok {
					t.Error("host 3 did not see host 1's ARP request for host 2")
				}
			})

			t.Run("unknown unicast flooded, then only to its port", func(t *testing.T) {
				// Permanent neighbours: no ARP, so the first echo request
				// goes to a MAC the switch has forgotten.
				for _, p := range [][2]int{{0, 1}, {1, 0}} {
					if out, err := inNS(t, 5*time.Second, h[p[0]].ns, "ip", "neigh", "replace", h[p[1]].addr.String(),
						"lladdr", h[p[1]].mac.String(), "nud", "permanent", "dev", "eth0"); err != nil {
						t.Fatalf("ip neigh: %v %s", err, out)
					}
				}
				fd := rawSocket(t, h[2].ns, "eth0", unix.ETH_P_IP)
				echoToHost2 := func(f []byte) bool {
					return len(f) >= 34 && bytes.Equal(f[0:6], h[1].mac) && f[23] == 1 // ICMP
				}
				tp.br.FlushFDB()
				before := tp.counters(t, 2)
				if !ping(t, h[0].ns, h[1].addr, 1) {
					t.Fatal("ping after FDB flush failed")
				}
				if !recvMatching(fd, 2*time.Second, echoToHost2) {
					t.Error("host 3 did not get the flooded echo request for host 2")
				}
				mid := tp.counters(t, 2)
				if mid.TxFlooded <= before.TxFlooded {
					t.Errorf("port 3 flooded count %d -> %d, want an increase", before.TxFlooded, mid.TxFlooded)
				}
				if !ping(t, h[0].ns, h[1].addr, 5) {
					t.Fatal("ping after learning failed")
				}
				if recvMatching(fd, 500*time.Millisecond, echoToHost2) {
					t.Error("host 3 still sees host 2's unicast after learning")
				}
				after := tp.counters(t, 2)
				if after.TxUnicast != mid.TxUnicast {
					t.Errorf("port 3 unicast tx %d -> %d while 1 and 2 talk; want unchanged", mid.TxUnicast, after.TxUnicast)
				}
			})

			t.Run("hairpin", func(t *testing.T) {
				fd := rawSocket(t, h[0].ns, "eth0", 0x88b5)
				src := net.HardwareAddr{0x02, 0x53, 0x59, 0, 0, 0x99}
				frame := make([]byte, 60)
				copy(frame[0:6], h[0].mac)
				copy(frame[6:12], src)
				frame[12], frame[13] = 0x88, 0xb5
				copy(frame[14:], "hairpin test")
				idx := ifindex(t, h[0].ns, "eth0")
				send := func() {
					if err := unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: idx, Halen: 6}); err != nil {
						t.Fatalf("send: %v", err)
					}
				}
				back := func(f []byte) bool { return bytes.Equal(f[6:12], src) && bytes.Contains(f, []byte("hairpin test")) }
				// Learn src on port 1 first, then send to own MAC.
				before := tp.counters(t, 0).Dropped(bridge.DropSamePort)
				send()
				send()
				if recvIncoming(fd, 500*time.Millisecond, back) {
					t.Error("frame came back with hairpin off")
				}
				if d := tp.counters(t, 0).Dropped(bridge.DropSamePort) - before; d < 1 {
					t.Errorf("same_port drops +%d, want at least 1", d)
				}
				tp.setFlags(t, 0, func(f *bridge.Flags) { f.Hairpin = true })
				defer tp.setFlags(t, 0, func(*bridge.Flags) {})
				send()
				if !recvIncoming(fd, 2*time.Second, back) {
					t.Error("frame did not come back with hairpin on")
				}
			})

			t.Run("isolation", func(t *testing.T) {
				tp.setFlags(t, 0, func(f *bridge.Flags) { f.Isolated = true })
				tp.setFlags(t, 1, func(f *bridge.Flags) { f.Isolated = true })
				defer tp.setFlags(t, 0, func(*bridge.Flags) {})
				defer tp.setFlags(t, 1, func(*bridge.Flags) {})
				if ping(t, h[0].ns, h[1].addr, 1) {
					t.Error("isolated ports reached each other")
				}
				if !ping(t, h[0].ns, h[2].addr, 2) || !ping(t, h[1].ns, h[2].addr, 2) {
					t.Error("isolated port could not reach the non-isolated one")
				}
			})

			t.Run("200 MB TCP verified", func(t *testing.T) {
				before := tp.counters(t, 0)
				tcpTransfer(t, h[0], h[1], 200<<20)
				after := tp.counters(t, 0)
				frames, bytes := after.RxFrames-before.RxFrames, after.RxBytes-before.RxBytes
				t.Logf("port 1 received %d frames, %d bytes: %.0f bytes/frame", frames, bytes, float64(bytes)/float64(frames))
				if frames == 0 || bytes/frames <= 1514 {
					t.Errorf("mean frame %d bytes: offloads did not pass GSO super-frames whole", bytes/max(frames, 1))
				}
			})

			t.Run("port whose link disappears is removed", func(t *testing.T) {
				// A veth goes with either end; the TAP itself lives in host
				// 3's namespace under its inner name.
				ns, link := tp.sw, h[2].link
				if kind == "tap" {
					ns, link = h[2].ns, "eth0"
				}
				if err := netns.DelLink(ns, link); err != nil {
					t.Fatal(err)
				}
				select {
				case n := <-tp.gone:
					if n != h[2].ns {
						t.Errorf("removed %s, want %s", n, h[2].ns)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("port not removed 5 s after its link went away")
				}
				if !ping(t, h[0].ns, h[1].addr, 2) {
					t.Error("the other ports stopped forwarding")
				}
			})
		})
	}
}

func ifindex(t *testing.T, ns, name string) int {
	t.Helper()
	var idx int
	err := netns.Do(ns, func() error {
		i, err := net.InterfaceByName(name)
		if err == nil {
			idx = i.Index
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// recvIncoming is recvMatching for frames the interface received (not the
// socket's own transmissions).
func recvIncoming(fd int, within time.Duration, match func([]byte) bool) bool {
	buf := make([]byte, 65536)
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			continue
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if match(buf[:n]) {
			return true
		}
	}
	return false
}

// tcpTransfer sends n pseudo-random bytes from a to b over TCP and checks
// they arrive intact.
func tcpTransfer(t *testing.T, a, b host, n int64) {
	t.Helper()
	in := func(ns string) func(func() error) error {
		return func(fn func() error) error { return netns.Do(ns, fn) }
	}
	el := nstest.TCPTransfer(t, in(b.ns), in(a.ns), netip.AddrPortFrom(b.addr, 0).String(), n)
	t.Logf("%d MB in %v: %.2f Gbit/s", n>>20, el.Round(time.Millisecond), float64(n)*8/el.Seconds()/1e9)
}
