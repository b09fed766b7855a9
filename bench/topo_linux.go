package bench

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"

	"github.com/switchyard-net/switchyard/netns"
)

// topology is three namespaces: endpoints A and B, and the switch
// namespace S holding the other ends of their veths, pa and pb.
type topology struct {
	A, B, S string
}

// newTopology creates the namespaces and veths under fresh names. On
// failure it removes what it made.
func newTopology() (_ *topology, err error) {
	var sfx [4]byte
	if _, err := rand.Read(sfx[:]); err != nil {
		return nil, fmt.Errorf("bench: random suffix: %w", err)
	}
	s := hex.EncodeToString(sfx[:])
	t := &topology{A: "sybench-a-" + s, B: "sybench-b-" + s, S: "sybench-s-" + s}
	var made []string
	defer func() {
		if err != nil {
			for _, n := range made {
				_ = netns.Delete(n)
			}
		}
	}()
	for _, n := range []string{t.S, t.A, t.B} {
		if err := netns.Create(n); err != nil {
			return nil, fmt.Errorf("bench: topology: %w", err)
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
	for _, ep := range []netns.Endpoint{
		{Netns: t.A, IfName: epIfName, HostName: portA, HostNetns: t.S, MAC: macA, Addrs: []netip.Prefix{addrA}},
		{Netns: t.B, IfName: epIfName, HostName: portB, HostNetns: t.S, MAC: macB, Addrs: []netip.Prefix{addrB}},
	} {
		if err := netns.AddVeth(ep); err != nil {
			return nil, fmt.Errorf("bench: topology: %w", err)
		}
	}
	return t, nil
}

// Close deletes the namespaces and with them the veths.
func (t *topology) Close() error {
	var errs []error
	for _, n := range []string{t.A, t.B, t.S} {
		if err := netns.Delete(n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// kernelBridgeUp creates a kernel bridge in S with pa and pb as ports.
// STP stays off, so the ports forward at once.
func (t *topology) kernelBridgeUp() (err error) {
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
	for _, name := range []string{portA, portB} {
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

// kernelBridgeDown deletes the kernel bridge; its ports stay.
func (t *topology) kernelBridgeDown() error {
	if err := netns.DelLink(t.S, bridgeName); err != nil {
		return fmt.Errorf("bench: delete kernel bridge: %w", err)
	}
	return nil
}

// rxPackets reads the rx_packets counter of link name through h.
func rxPackets(h *netlink.Handle, name string) (uint64, error) {
	l, err := h.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("bench: read stats of %s: %w", name, err)
	}
	st := l.Attrs().Statistics
	if st == nil {
		return 0, fmt.Errorf("bench: %s has no statistics", name)
	}
	return st.RxPackets, nil
}
