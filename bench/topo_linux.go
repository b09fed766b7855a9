package bench

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"

	"github.com/vishvananda/netlink"

	"github.com/switchyard-net/switchyard/netns"
)

// endpoint is one endpoint namespace of a topology: its interface epIfName
// has MAC and Addr; HostIf is the other end of its veth in the switch
// namespace ("" when the switch makes the endpoint's link itself, as the
// TAP peer does).
type endpoint struct {
	Netns  string
	HostIf string
	MAC    net.HardwareAddr
	Addr   netip.Prefix
	// Gateway, when valid, is the endpoint's default route (the NAT
	// peers' inside endpoints).
	Gateway netip.Addr
}

// topology is one peer's namespaces: the switch namespace S and the
// endpoints, Eps[0] (A) the client and sender of every test, Eps[1] (B)
// the server, and any others receivers of the pps and ndr generator.
// Every peer instance gets a topology of its own, built for it and removed
// with it, so that a peer that crashes or hangs takes nothing of the
// others down with it.
type topology struct {
	S   string
	Eps []endpoint
	// outside is true for the NAT peers' topology: A on S's outside
	// segment, the others inside (see newNATTopology).
	outside bool
}

// epMAC and epAddr are endpoint i's MAC and address, the same in every
// topology.
func epMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x53, 0x59, 0x00, 0x00, byte(i + 1)}
}

func epAddr(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(i + 1)}), 24)
}

// hostPort is the name of endpoint i's veth end in S.
func hostPort(i int) string { return "p" + strconv.Itoa(i) }

// newTopology creates S and n endpoint namespaces under fresh names with
// tag in them; with veths, each endpoint gets a veth to S. On failure it
// removes what it made.
func newTopology(tag string, n int, veths bool) (*topology, error) {
	base, err := topoBase(tag)
	if err != nil {
		return nil, err
	}
	t := &topology{S: base + "-s"}
	for i := range n {
		ep := endpoint{Netns: base + "-" + strconv.Itoa(i), MAC: epMAC(i), Addr: epAddr(i)}
		if veths {
			ep.HostIf = hostPort(i)
		}
		t.Eps = append(t.Eps, ep)
	}
	return t, t.create(veths)
}

// topoBase is a fresh name prefix for a topology's namespaces.
func topoBase(tag string) (string, error) {
	var sfx [4]byte
	if _, err := rand.Read(sfx[:]); err != nil {
		return "", fmt.Errorf("bench: random suffix: %w", err)
	}
	return "sybench-" + tag + "-" + hex.EncodeToString(sfx[:]), nil
}

// create makes t's namespaces and, with veths, each endpoint's veth to S.
// On failure it removes what it made.
func (t *topology) create(veths bool) (err error) {
	var made []string
	defer func() {
		if err != nil {
			for _, n := range made {
				_ = netns.Delete(n)
			}
		}
	}()
	for _, n := range t.namespaces() {
		if err := netns.Create(n); err != nil {
			return fmt.Errorf("bench: topology: %w", err)
		}
		made = append(made, n)
		// No IPv6: its router solicitations, MLD reports and DAD would
		// be the only other traffic in the topology.
		_ = netns.Do(n, func() error {
			for _, f := range []string{"all", "default"} {
				_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+f+"/disable_ipv6", []byte("1"), 0o644)
			}
			return nil
		})
	}
	if veths {
		for _, ep := range t.Eps {
			var gws []netip.Addr
			if ep.Gateway.IsValid() {
				gws = append(gws, ep.Gateway)
			}
			if err := netns.AddVeth(netns.Endpoint{Netns: ep.Netns, IfName: epIfName, HostName: ep.HostIf,
				HostNetns: t.S, MAC: ep.MAC, Addrs: []netip.Prefix{ep.Addr}, Gateways: gws}); err != nil {
				return fmt.Errorf("bench: topology: %w", err)
			}
		}
	}
	return nil
}

func (t *topology) namespaces() []string {
	out := []string{t.S}
	for _, ep := range t.Eps {
		out = append(out, ep.Netns)
	}
	return out
}

// hostPorts are the veth ends in S.
func (t *topology) hostPorts() []string {
	var out []string
	for _, ep := range t.Eps {
		if ep.HostIf != "" {
			out = append(out, ep.HostIf)
		}
	}
	return out
}

// Close deletes the namespaces and with them the veths.
func (t *topology) Close() error {
	var errs []error
	for _, n := range t.namespaces() {
		if netns.Exists(n) {
			if err := netns.Delete(n); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// kernelBridgeUp creates a kernel bridge in S with ports, links in S, as
// its ports. STP stays off, so the ports forward at once.
func (t *topology) kernelBridgeUp(ports []string) (err error) {
	h, err := netns.NetlinkHandle(t.S)
	if err != nil {
		return err
	}
	defer h.Close()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: bridgeName, TxQLen: -1}}
	if err := h.LinkAdd(br); err != nil {
		return fmt.Errorf("bench: create kernel bridge: %w", err)
	}
	defer func() {
		if err != nil {
			_ = h.LinkDel(br)
		}
	}()
	for _, name := range ports {
		l, err := h.LinkByName(name)
		if err != nil {
			return fmt.Errorf("bench: kernel bridge port %s: %w", name, err)
		}
		if err := h.LinkSetMaster(l, br); err != nil {
			return fmt.Errorf("bench: add %s to the kernel bridge: %w", name, err)
		}
	}
	if err := h.LinkSetUp(br); err != nil {
		return fmt.Errorf("bench: set kernel bridge up: %w", err)
	}
	return nil
}

// rxPackets reads the rx_packets counter of the endpoints' interface in
// each of namespaces and returns their sum.
func rxPackets(namespaces []string) (uint64, error) {
	var sum uint64
	for _, ns := range namespaces {
		h, err := netns.NetlinkHandle(ns)
		if err != nil {
			return 0, err
		}
		l, err := h.LinkByName(epIfName)
		h.Close()
		if err != nil {
			return 0, fmt.Errorf("bench: read stats of %s in %s: %w", epIfName, ns, err)
		}
		st := l.Attrs().Statistics
		if st == nil {
			return 0, fmt.Errorf("bench: %s in %s has no statistics", epIfName, ns)
		}
		sum += st.RxPackets
	}
	return sum, nil
}

// linkMTU is the MTU of link name in namespace ns.
func linkMTU(ns, name string) (int, error) {
	h, err := netns.NetlinkHandle(ns)
	if err != nil {
		return 0, err
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		return 0, err
	}
	return l.Attrs().MTU, nil
}
