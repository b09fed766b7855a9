package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/switchyard-net/switchyard/netns"
)

// The NAT pair's MACs in switchyard's gateway: its inside port and its
// own MAC on the uplink (not the uplink veth's, as in the daemon, so that
// S's kernel drops what the ring takes early, as another host's).
var (
	natGatewayMAC = net.HardwareAddr{0x02, 0x53, 0x59, 0x00, 0xfe, 0x01}
	natUplinkMAC  = net.HardwareAddr{0x02, 0x53, 0x59, 0x00, 0xfe, 0x02}
)

// newNATTopology creates the NAT peers' namespaces: S, the gateway; A
// (Eps[0]) outside at natClient, its veth's S end natUplinkIf; and n-1
// inside endpoints at epAddr(i) with a default route via natGateway, each
// with a veth to S. On failure it removes what it made.
func newNATTopology(tag string, n int) (*topology, error) {
	base, err := topoBase(tag)
	if err != nil {
		return nil, err
	}
	t := &topology{S: base + "-s", outside: true}
	t.Eps = append(t.Eps, endpoint{Netns: base + "-o", HostIf: natUplinkIf, MAC: epMAC(0), Addr: natClient})
	for i := 1; i < n; i++ {
		t.Eps = append(t.Eps, endpoint{Netns: base + "-" + strconv.Itoa(i), HostIf: hostPort(i), MAC: epMAC(i),
			Addr: epAddr(i), Gateway: natGateway.Addr()})
	}
	return t, t.create(true)
}

// inside are the endpoints behind the gateway.
func (t *topology) inside() []endpoint { return t.Eps[1:] }

// insidePorts are the inside endpoints' veth ends in S.
func (t *topology) insidePorts() []string {
	var out []string
	for _, ep := range t.inside() {
		out = append(out, ep.HostIf)
	}
	return out
}

// natTargets are the inside endpoints as A reaches them: at their
// published address on S's outside segment, through mac.
func natTargets(t *topology, mac net.HardwareAddr) []target {
	var out []target
	for i, ep := range t.inside() {
		out = append(out, target{Netns: ep.Netns, Listen: ep.Addr.Addr(), Dst: natExtAddr(i + 1).Addr(), DstMAC: mac})
	}
	return out
}

// natTopoRules are the published ports of t's inside endpoints.
func natTopoRules(t *topology) []natRule {
	var ctrs []netip.Addr
	for _, ep := range t.inside() {
		ctrs = append(ctrs, ep.Addr.Addr())
	}
	return natRules(ctrs)
}

// withNATTopology builds a NAT topology and runs start on it; if start
// fails, the topology is removed. start sets the targets.
func withNATTopology(b *bencher, tag string, start func(*instance) error) (*instance, error) {
	t, err := newNATTopology(tag, b.r.eps)
	if err != nil {
		return nil, err
	}
	in := &instance{topo: t}
	if err := start(in); err != nil {
		return nil, errors.Join(err, in.close())
	}
	return in, nil
}

// natKernelPeer is the kernel as Docker's bridge network uses it: the
// inside on a kernel bridge with the gateway address, ip_forward on, and
// nftables DNAT for the published ports and masquerade for the inside.
type natKernelPeer struct{}

func (natKernelPeer) name() string   { return PeerNATKernel }
func (natKernelPeer) missing() error { return NFTInstalled() }

func (natKernelPeer) up(ctx context.Context, b *bencher) (*instance, error) {
	return withNATTopology(b, "nk", func(in *instance) error {
		t := in.topo
		if err := t.kernelBridgeUp(t.insidePorts()); err != nil {
			return err
		}
		h, err := netns.NetlinkHandle(t.S)
		if err != nil {
			return err
		}
		defer h.Close()
		if err := addrAdd(h, bridgeName, natGateway); err != nil {
			return err
		}
		for i := range t.inside() {
			if err := addrAdd(h, natUplinkIf, natExtAddr(i+1)); err != nil {
				return err
			}
		}
		up, err := h.LinkByName(natUplinkIf)
		if err != nil {
			return fmt.Errorf("bench: %s in %s: %w", natUplinkIf, t.S, err)
		}
		err = netns.Do(t.S, func() error {
			return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644)
		})
		if err != nil {
			return fmt.Errorf("bench: ip_forward in %s: %w", t.S, err)
		}
		script, err := nftScript(natTopoRules(t), natInside, natUplinkIf)
		if err != nil {
			return err
		}
		if err := nftLoad(ctx, t.S, script); err != nil {
			return err
		}
		in.targets = natTargets(t, up.Attrs().HardwareAddr)
		in.cpu = softirqSeconds
		in.info = PeerInfo{Desc: "the kernel as a Docker bridge network: inside endpoints on a kernel bridge with the gateway address, " +
			"ip_forward, nftables DNAT of the published ports on S's outside addresses and masquerade, conntrack; A outside",
			CPU: "softirq time of all CPUs from /proc/stat: netfilter and forwarding run in the sender's softirq, so this also " +
				"holds the endpoints' own receive work and anything else the machine does"}
		return nil
	})
}

// addrAdd puts p on link name.
func addrAdd(h *netlink.Handle, name string, p netip.Prefix) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("bench: find %s: %w", name, err)
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if err := h.AddrAdd(l, a); err != nil {
		return fmt.Errorf("bench: add %s to %s: %w", p, name, err)
	}
	return nil
}

// nftLoad loads script into namespace ns's nftables.
func nftLoad(ctx context.Context, ns, script string) error {
	nft, err := nftPath()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, nft, "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("bench: nft in %s: %w: %s", ns, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// natSwitchyardPeer is switchyard's gateway as the daemon runs a network
// with an uplink: its bridge with the inside endpoints' ring ports and the
// gateway port, the gateway routing through the NAT to a ring port on
// S's outside veth, in the nat worker.
type natSwitchyardPeer struct{}

func (natSwitchyardPeer) name() string   { return PeerNATSwitchyard }
func (natSwitchyardPeer) missing() error { return nil }

func (p natSwitchyardPeer) up(ctx context.Context, b *bencher) (*instance, error) {
	return withNATTopology(b, "ns", func(in *instance) error {
		t := in.topo
		// The gateway owns a MAC of its own on the uplink: the veth
		// must take frames for it.
		h, err := netns.NetlinkHandle(t.S)
		if err != nil {
			return err
		}
		up, err := h.LinkByName(natUplinkIf)
		if err == nil {
			err = h.SetPromiscOn(up)
		}
		h.Close()
		if err != nil {
			return fmt.Errorf("bench: promiscuous %s in %s: %w", natUplinkIf, t.S, err)
		}
		var ext, publish, neigh []string
		for i, ep := range t.inside() {
			ext = append(ext, natExtAddr(i+1).String())
			neigh = append(neigh, ep.Addr.Addr().String()+"="+ep.MAC.String())
		}
		for _, r := range natTopoRules(t) {
			publish = append(publish, r.String())
		}
		args := []string{"nat", "-netns", t.S, "-timeout", b.workerTimeout().String(),
			"-busy-poll", b.r.busyPoll.String(), "-tx", b.r.tx, "-rx", b.r.rx,
			"-ports", strings.Join(t.insidePorts(), ","), "-uplink", natUplinkIf,
			"-gw", natGateway.String(), "-gw-mac", natGatewayMAC.String(), "-uplink-mac", natUplinkMAC.String(),
			"-ext", strings.Join(ext, ","), "-publish", strings.Join(publish, ","), "-neigh", strings.Join(neigh, ",")}
		if b.r.tpacket != "" {
			args = append(args, "-tpacket", b.r.tpacket)
		}
		if b.r.rxSteer {
			args = append(args, "-rx-steering")
		}
		if err := startWorker(ctx, b, in, p.name(), "switchyard nat worker", args); err != nil {
			return err
		}
		in.targets = natTargets(t, natUplinkMAC)
		in.info = PeerInfo{Desc: "switchyard's bridge, gateway and NAT as the daemon runs a network with an uplink: inside endpoints " +
			"over AF_PACKET rings (TPACKET_" + tpacketName(b.r.tpacket) + "), the uplink a ring on S's outside veth with the " +
			"published ports on its external addresses and masquerade; A outside",
			CPU: "the nat worker's CPU time, all threads (/proc/PID/task/*/schedstat), with the softirq work its sends run inline"}
		return nil
	})
}
