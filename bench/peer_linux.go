package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"
)

// A peer is one implementation under test. Each rep, the run asks it for
// an instance: a topology of fresh namespaces with the peer forwarding
// between its endpoints. The tests only see the instance: where the
// endpoints are and how A reaches the others (targets), the processes that
// are the switch, and how to read its CPU time.
//
// A peer that is not a plain L2 switch fits the same mould. The NAT pair
// (nat_linux.go: switchyard's NAT against nftables DNAT and masquerade)
// builds a topology with A outside and the others inside, starts the
// translator in S, and gives each inside endpoint a target whose Dst is
// its published address on S's outside segment and whose DstMAC is the
// gateway's there: the generator, TCP and request/response tests run
// unchanged through the translation, and the conn tests read the same
// targets.
type peer interface {
	name() string
	// missing reports, as a non-nil error naming what to install, a
	// program the peer needs and does not find: the peer is skipped with
	// that note.
	missing() error
	// up builds the peer's topology and starts it forwarding. On failure
	// it removes what it made.
	up(ctx context.Context, b *bencher) (*instance, error)
}

// target is one receiving endpoint as the tests address it from A.
type target struct {
	Netns  string           // the endpoint's namespace
	Listen netip.Addr       // the address its servers bind to, in Netns
	Dst    netip.Addr       // the address A sends to
	DstMAC net.HardwareAddr // the next hop from A for Dst (the generator writes it)
}

// instance is a peer forwarding between the endpoints of its topology.
type instance struct {
	peer    string
	topo    *topology
	targets []target // Eps[1:] as A reaches them
	// procs are the processes that make up the switch: one exiting is a
	// crash. Empty for the kernel bridge.
	procs []*proc
	// cpu returns the CPU seconds the switch has used so far; see
	// PeerInfo.CPU for what it counts.
	cpu  func() (float64, error)
	info PeerInfo
	// stop stops forwarding (the switch's processes, OVS's database); the
	// namespaces are removed after it by close.
	stop func() error
	// ports, when set, returns the switch's per-port counters after stop.
	ports func() json.RawMessage
	// pools are the conn tests' source pools put on endpoints so far
	// (see addPool).
	pools map[string]bool
}

// client is A, the endpoint every test sends from.
func (in *instance) client() endpoint { return in.topo.Eps[0] }

// server is B's target.
func (in *instance) server() target { return in.targets[0] }

// close stops the peer and removes its namespaces.
func (in *instance) close() error {
	var errs []error
	if in.stop != nil {
		errs = append(errs, in.stop())
	}
	if in.topo != nil {
		errs = append(errs, in.topo.Close())
	}
	return errors.Join(errs...)
}

// crashed reports a process of the switch that has exited.
func (in *instance) crashed() error {
	for _, p := range in.procs {
		if !p.running() {
			return p.failure(fmt.Errorf("exited (%v)", p.err))
		}
	}
	return nil
}

// l2Targets are the endpoints after A, each reached at its own address and
// MAC: what every L2 switch gives.
func l2Targets(t *topology) []target {
	var out []target
	for _, ep := range t.Eps[1:] {
		out = append(out, target{Netns: ep.Netns, Listen: ep.Addr.Addr(), Dst: ep.Addr.Addr(), DstMAC: ep.MAC})
	}
	return out
}

// newPeer returns the implementation of the named peer.
func newPeer(name string) peer {
	switch name {
	case PeerKernel:
		return kernelPeer{}
	case PeerSwitchyard:
		return switchyardPeer{tap: false}
	case PeerSwitchyardTap:
		return switchyardPeer{tap: true}
	case PeerOVS:
		return ovsPeerKind{afxdp: false}
	case PeerOVSAFXDP:
		return ovsPeerKind{afxdp: true}
	case PeerNATKernel:
		return natKernelPeer{}
	case PeerNATSwitchyard:
		return natSwitchyardPeer{}
	}
	return nil
}

// withTopology builds a topology for peer and runs start on it; if start
// fails, the topology is removed.
func withTopology(b *bencher, tag string, veths bool, start func(*instance) error) (*instance, error) {
	t, err := newTopology(tag, b.r.eps, veths)
	if err != nil {
		return nil, err
	}
	in := &instance{topo: t, targets: l2Targets(t)}
	if err := start(in); err != nil {
		return nil, errors.Join(err, in.close())
	}
	return in, nil
}

// kernelPeer is the kernel bridge in S.
type kernelPeer struct{}

func (kernelPeer) name() string   { return PeerKernel }
func (kernelPeer) missing() error { return nil }

func (kernelPeer) up(ctx context.Context, b *bencher) (*instance, error) {
	return withTopology(b, "kern", true, func(in *instance) error {
		if err := in.topo.kernelBridgeUp(in.topo.hostPorts()); err != nil {
			return err
		}
		in.cpu = softirqSeconds
		in.info = PeerInfo{Desc: "the kernel bridge (STP off) over veths",
			CPU: "softirq time of all CPUs from /proc/stat: the kernel bridge has no process and forwards in the " +
				"sender's softirq, so this also holds the endpoints' own receive work and anything else the machine does"}
		return nil
	})
}

// switchyardPeer is switchyard's bridge run by the switch worker in S,
// over AF_PACKET rings on veths, or with TAP endpoints it creates itself.
type switchyardPeer struct{ tap bool }

func (p switchyardPeer) name() string {
	if p.tap {
		return PeerSwitchyardTap
	}
	return PeerSwitchyard
}

func (switchyardPeer) missing() error { return nil }

func (p switchyardPeer) up(ctx context.Context, b *bencher) (*instance, error) {
	tag := "sy"
	if p.tap {
		tag = "syt"
	}
	return withTopology(b, tag, !p.tap, func(in *instance) error {
		args := []string{"switch", "-netns", in.topo.S, "-timeout", b.workerTimeout().String(),
			"-busy-poll", b.r.busyPoll.String(), "-tx", b.r.tx, "-rx", b.r.rx}
		if p.tap {
			var taps []string
			for i, ep := range in.topo.Eps {
				taps = append(taps, fmt.Sprintf("t%d=%s=%s=%s", i, ep.Netns, ep.MAC, ep.Addr))
			}
			args = append(args, "-taps", strings.Join(taps, ","))
		} else {
			args = append(args, "-ports", strings.Join(in.topo.hostPorts(), ","))
			if b.r.tpacket != "" {
				args = append(args, "-tpacket", b.r.tpacket)
			}
			if b.r.rxSteer {
				args = append(args, "-rx-steering")
			}
		}
		if err := startWorker(ctx, b, in, p.name(), "switchyard worker", args); err != nil {
			return err
		}
		in.info = PeerInfo{Desc: "switchyard's learning bridge over AF_PACKET rings (TPACKET_" + tpacketName(b.r.tpacket) + ") on veths",
			CPU: "the switch worker's CPU time, all threads (/proc/PID/task/*/schedstat), with the softirq work its sends run inline"}
		if p.tap {
			in.info.Desc = "switchyard's learning bridge with TAP endpoints (IFF_VNET_HDR), one queue each"
		}
		return nil
	})
}

// startWorker starts a switchyard bench worker in S with args, waits for
// it to say it is ready and makes it in's switch: its process, CPU time,
// stop, and the counters it prints when it ends.
func startWorker(ctx context.Context, b *bencher, in *instance, peer, label string, args []string) error {
	// Run in S as a whole (not only its ports' threads), so that sysfs
	// shows S's interfaces and the ports can set their receive steering.
	sw, err := startProc(label, b.workerIn(in.topo.S, b.r.swCPU, args...))
	if err != nil {
		return err
	}
	if err := sw.waitLine(ctx, lineReady, startTimeout); err != nil {
		sw.stop(time.Second)
		return err
	}
	in.procs = []*proc{sw}
	if testHookSwitch != nil {
		testHookSwitch(peer, sw.cmd.Process.Pid)
	}
	in.cpu = func() (float64, error) { return procCPUSeconds(sw.cmd.Process.Pid) }
	var ports json.RawMessage
	in.stop = func() error {
		err := sw.stop(5 * time.Second)
		if l := sw.lastLine(); json.Valid([]byte(l)) && l != lineReady {
			ports = json.RawMessage(l)
		}
		return err
	}
	in.ports = func() json.RawMessage { return ports }
	return nil
}

func tpacketName(v string) string {
	if v == "" {
		return "V2"
	}
	return strings.ToUpper(v)
}

// ovsPeerKind is Open vSwitch's userspace datapath, its ports opened over
// AF_PACKET (type system) or AF_XDP (type afxdp).
type ovsPeerKind struct{ afxdp bool }

func (p ovsPeerKind) name() string {
	if p.afxdp {
		return PeerOVSAFXDP
	}
	return PeerOVS
}

func (ovsPeerKind) missing() error { return OVSInstalled() }

func (p ovsPeerKind) up(ctx context.Context, b *bencher) (*instance, error) {
	tag := "ovs"
	if p.afxdp {
		tag = "ovx"
	}
	return withTopology(b, tag, true, func(in *instance) error {
		o, err := b.ovsUp(ctx, in.topo, p.afxdp)
		if err != nil {
			return err
		}
		in.procs = []*proc{o.db, o.sw}
		in.stop = o.down
		in.cpu = func() (float64, error) { return procCPUSeconds(o.sw.cmd.Process.Pid) }
		in.info = PeerInfo{Desc: o.desc,
			CPU: "ovs-vswitchd's CPU time, all threads (/proc/PID/task/*/schedstat)"}
		return nil
	})
}

// testHookSwitch, when set, is called with the PID of every switch worker
// a switchyard peer starts.
var testHookSwitch func(peer string, pid int)

// readFileString reads a small file, trimmed.
func readFileString(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
