package tap_test

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/switchyard-net/switchyard/internal/nstest"
	"github.com/switchyard-net/switchyard/internal/testns"
	"github.com/switchyard-net/switchyard/netns"
	"github.com/switchyard-net/switchyard/switch/port"
	"github.com/switchyard-net/switchyard/switch/port/tap"
	"github.com/vishvananda/netlink"
)

// ourMAC is the MAC the Go side of a test answers with.
var ourMAC = net.HardwareAddr{0x02, 0x53, 0x59, 0xee, 0, 1}

// newNS creates a namespace that the test's cleanup deletes.
func newNS(t *testing.T) string { return testns.New(t, "sytap") }

// tapIn creates a TAP with queues queues in a new namespace, addressed addr
// (e.g. 198.18.1.2/24), and returns the namespace and the queues, closed in
// cleanup. The namespace has IPv6 off so that it sends nothing unasked.
func tapIn(t *testing.T, addr string, queues int, cfg *tap.Config) (string, []*tap.Queue) {
	t.Helper()
	ns := newNS(t)
	if err := netns.Do(ns, func() error {
		for _, p := range []string{"all", "default"} {
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+p+"/disable_ipv6", []byte("1"), 0o644); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("disable IPv6: %v", err)
	}
	ep := netns.Endpoint{
		Netns:    ns,
		HostName: nstest.Name("sytq"),
		Addrs:    []netip.Prefix{netip.MustParsePrefix(addr)},
	}
	files, err := netns.AddTap(ep, queues)
	if err != nil {
		t.Fatalf("AddTap: %v", err)
	}
	qs, err := tap.New("eth0", files, cfg)
	if err != nil {
		t.Fatalf("tap.New: %v", err)
	}
	t.Cleanup(func() {
		for _, q := range qs {
			if err := q.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		}
	})
	return ns, qs
}

// staticNeigh makes ip resolve to ourMAC on eth0 in ns, so that the
// namespace sends to it without asking ARP.
func staticNeigh(t *testing.T, ns, ip string) {
	t.Helper()
	h, err := netns.NetlinkHandle(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.NeighAdd(&netlink.Neigh{
		LinkIndex:    l.Attrs().Index,
		State:        netlink.NUD_PERMANENT,
		IP:           net.ParseIP(ip),
		HardwareAddr: ourMAC,
	}); err != nil {
		t.Fatal(err)
	}
}

func linkMAC(t *testing.T, ns string) net.HardwareAddr {
	t.Helper()
	h, err := netns.NetlinkHandle(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().HardwareAddr
}

// Frame helpers. Offsets for untagged Ethernet + IPv4 without options.
const (
	ethLen  = 14
	ipv4Len = 20
)

func csum(b []byte, initial uint32) uint16 {
	s := initial
	for len(b) >= 2 {
		s += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

func etherType(f []byte) uint16 { return binary.BigEndian.Uint16(f[12:14]) }

// arpReply answers an ARP request in req for ip with ourMAC, into out.
// It returns the reply length, or 0 if req is not such a request.
func arpReply(req []byte, ip netip.Addr, out []byte) int {
	if len(req) < ethLen+28 || etherType(req) != 0x0806 {
		return 0
	}
	a := req[ethLen:]
	if binary.BigEndian.Uint16(a[6:8]) != 1 || netip.AddrFrom4([4]byte(a[24:28])) != ip {
		return 0
	}
	n := ethLen + 28
	copy(out[0:6], req[6:12])
	copy(out[6:12], ourMAC)
	binary.BigEndian.PutUint16(out[12:14], 0x0806)
	r := out[ethLen:n]
	copy(r[0:6], a[0:6]) // htype, ptype, hlen, plen
	binary.BigEndian.PutUint16(r[6:8], 2)
	copy(r[8:14], ourMAC)
	copy(r[14:18], a[24:28])
	copy(r[18:24], a[8:14])
	copy(r[24:28], a[14:18])
	return n
}

// isEcho reports whether f is an ICMP echo (typ 8) or echo reply (typ 0)
// to dst.
func isEcho(f []byte, typ byte, dst netip.Addr) bool {
	if len(f) < ethLen+ipv4Len+8 || etherType(f) != 0x0800 {
		return false
	}
	ip := f[ethLen:]
	return ip[0] == 0x45 && ip[9] == 1 && netip.AddrFrom4([4]byte(ip[16:20])) == dst && ip[ipv4Len] == typ
}

// echoReply turns the ICMP echo request req into its reply in out.
func echoReply(req, out []byte) int {
	n := copy(out, req)
	f := out[:n]
	copy(f[0:6], req[6:12])
	copy(f[6:12], ourMAC)
	ip := f[ethLen:]
	copy(ip[12:16], req[ethLen+16:ethLen+20])
	copy(ip[16:20], req[ethLen+12:ethLen+16])
	ip[8] = 64
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:12], csum(ip[:ipv4Len], 0))
	icmp := ip[ipv4Len:binary.BigEndian.Uint16(ip[2:4])]
	icmp[0] = 0
	icmp[2], icmp[3] = 0, 0
	binary.BigEndian.PutUint16(icmp[2:4], csum(icmp, 0))
	return n
}

// echoRequest builds an ICMP echo request from ourMAC/src to dstMAC/dst
// into out and returns its length.
func echoRequest(out []byte, dstMAC net.HardwareAddr, src, dst netip.Addr, id, seq uint16) int {
	const payload = 32
	n := ethLen + ipv4Len + 8 + payload
	f := out[:n]
	clear(f)
	copy(f[0:6], dstMAC)
	copy(f[6:12], ourMAC)
	binary.BigEndian.PutUint16(f[12:14], 0x0800)
	ip := f[ethLen:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(ipv4Len+8+payload))
	ip[8] = 64
	ip[9] = 1
	s4, d4 := src.As4(), dst.As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	binary.BigEndian.PutUint16(ip[10:12], csum(ip[:ipv4Len], 0))
	icmp := ip[ipv4Len:]
	icmp[0] = 8
	binary.BigEndian.PutUint16(icmp[4:6], id)
	binary.BigEndian.PutUint16(icmp[6:8], seq)
	binary.BigEndian.PutUint16(icmp[2:4], csum(icmp, 0))
	return n
}

// readLoop reads q until it fails and hands each frame to fn, which must
// not keep it. It returns Read's final error.
func readLoop(q port.Port, fn func(port.Frame)) error {
	frames := make([]port.Frame, q.BatchSize())
	for {
		n, err := q.Read(frames)
		if err != nil {
			return err
		}
		for _, f := range frames[:n] {
			fn(f)
		}
	}
}
