package bench

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Test names.
const (
	TestTCP = "tcp" // single-stream TCP throughput with iperf3
	TestPPS = "pps" // 64-byte frames per second arriving at B
	TestRR  = "rr"  // UDP request/response latency
)

// Peer names.
const (
	PeerKernel     = "kernel"     // the kernel bridge
	PeerSwitchyard = "switchyard" // switchyard's bridge over AF_PACKET rings
	PeerOVS        = "ovs"        // Open vSwitch's userspace datapath (afpacket netdevs)
)

// AllTests and DefaultPeers are what a run measures when Config leaves the
// lists empty. DefaultPeers is set when the program starts: the kernel
// bridge and switchyard, and Open vSwitch when OVSInstalled.
var (
	AllTests     = []string{TestTCP, TestPPS, TestRR}
	AllPeers     = []string{PeerKernel, PeerSwitchyard, PeerOVS}
	DefaultPeers = defaultPeers()
)

// defaultPeers is kernel and switchyard, and ovs when it is installed.
func defaultPeers() []string {
	peers := []string{PeerKernel, PeerSwitchyard}
	if OVSInstalled() == nil {
		peers = append(peers, PeerOVS)
	}
	return peers
}

// ovsTools are the Open vSwitch programs the ovs peer runs.
var ovsTools = []string{"ovs-vswitchd", "ovsdb-server", "ovsdb-tool", "ovs-vsctl"}

// OVSInstalled reports, as a nil error, whether the Open vSwitch programs
// and database schema the ovs peer needs are installed; otherwise the error
// says what is missing.
func OVSInstalled() error {
	for _, t := range ovsTools {
		if _, err := ovsFind(t); err != nil {
			return err
		}
	}
	_, err := ovsSchema()
	return err
}

// ovsFind looks name up in PATH and then in the sbin and bin directories
// Debian and a source build install Open vSwitch in, which a non-root PATH
// may lack.
func ovsFind(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed (apt-get install openvswitch-switch)", name)
}

// ovsSchema finds the Open_vSwitch database schema, vswitch.ovsschema.
func ovsSchema() (string, error) {
	var dirs []string
	if d := os.Getenv("OVS_PKGDATADIR"); d != "" {
		dirs = append(dirs, d)
	}
	dirs = append(dirs, "/usr/share/openvswitch", "/usr/local/share/openvswitch")
	for _, d := range dirs {
		p := filepath.Join(d, "vswitch.ovsschema")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("the Open vSwitch schema vswitch.ovsschema is not in %s (apt-get install openvswitch-common)", strings.Join(dirs, " or "))
}

// WorkerNames are the workers Worker runs.
var WorkerNames = []string{"switch", "gen", "udp-server", "udp-client"}

// DefaultDuration is how long each test runs against each peer.
const DefaultDuration = 5 * time.Second

// DefaultBusyPoll is how long the switchyard worker's ports poll their
// rings before sleeping. The switch has CPU 1 to itself here, and every
// sleep costs a cross-CPU wakeup (about 30 us on this kind of VM, where
// guest halt-polling is off) per frame of a request/response exchange.
const DefaultBusyPoll = 200 * time.Microsecond

// ErrUnsupported is returned on systems without network namespaces.
var ErrUnsupported = errors.New("bench: the harness needs Linux network namespaces")

// Config describes one run. A nil *Config means all defaults.
type Config struct {
	// Duration of each test against each peer; default DefaultDuration.
	// Whole seconds for TCP (iperf3 takes seconds), at least 1.
	Duration time.Duration
	// Tests to run, in this order; default AllTests.
	Tests []string
	// Peers to measure, in this order; default DefaultPeers.
	Peers []string
	// TPacket is the ring version the switchyard worker opens its ports
	// with: "v2", "v3" or "" for the afpacket default.
	TPacket string
	// BusyPoll is how long the switchyard worker's ports keep polling
	// their rings before sleeping (afpacket.Config.BusyPoll); 0 means
	// DefaultBusyPoll, negative means none.
	BusyPoll time.Duration
	// TX is the switchyard worker's transmit path: "ring" (default) or
	// "mmsg" (afpacket.TxSendmmsg).
	TX string
	// Worker is the command line that runs this binary's bench-worker
	// subcommand; default the running executable followed by
	// "bench-worker".
	Worker []string
	// EndpointCPU and SwitchCPU are the CPUs the endpoint tools and the
	// switchyard process are pinned to; defaults 0 and 1 (0 and 0 on a
	// one-CPU machine).
	EndpointCPU, SwitchCPU *int
	// Logf, when set, gets a line per step (progress, not results).
	Logf func(format string, args ...any)
}

// resolved is a Config with every default filled in.
type resolved struct {
	duration     time.Duration
	tests, peers []string
	tpacket      string
	busyPoll     time.Duration
	tx           string
	worker       []string
	epCPU, swCPU int
	logf         func(string, ...any)
}

func (c *Config) resolve(numCPU int) (resolved, error) {
	var cfg Config
	if c != nil {
		cfg = *c
	}
	r := resolved{duration: cfg.Duration, tpacket: cfg.TPacket, busyPoll: cfg.BusyPoll, tx: cfg.TX, logf: cfg.Logf}
	switch {
	case r.busyPoll == 0:
		r.busyPoll = DefaultBusyPoll
	case r.busyPoll < 0:
		r.busyPoll = 0
	case r.busyPoll > time.Second:
		return r, fmt.Errorf("busy-poll %v out of range 0-1s", r.busyPoll)
	}
	switch r.tx {
	case "":
		r.tx = "ring"
	case "ring", "mmsg":
	default:
		return r, fmt.Errorf("tx %q: want ring or mmsg", r.tx)
	}
	if r.duration == 0 {
		r.duration = DefaultDuration
	}
	if r.duration < 100*time.Millisecond || r.duration > time.Hour {
		return r, fmt.Errorf("duration %v out of range 100ms-1h", r.duration)
	}
	var err error
	if r.tests, err = pick("test", cfg.Tests, AllTests, AllTests); err != nil {
		return r, err
	}
	if r.peers, err = pick("peer", cfg.Peers, DefaultPeers, AllPeers); err != nil {
		return r, err
	}
	switch r.tpacket {
	case "", "v2", "v3":
	default:
		return r, fmt.Errorf("tpacket %q: want v2 or v3", r.tpacket)
	}
	r.worker = cfg.Worker
	if len(r.worker) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return r, fmt.Errorf("find own executable for the workers: %w", err)
		}
		r.worker = []string{exe, "bench-worker"}
	}
	r.epCPU, r.swCPU = 0, 1
	if numCPU < 2 {
		r.swCPU = 0
	}
	if cfg.EndpointCPU != nil {
		r.epCPU = *cfg.EndpointCPU
	}
	if cfg.SwitchCPU != nil {
		r.swCPU = *cfg.SwitchCPU
	}
	for _, cpu := range []int{r.epCPU, r.swCPU} {
		if cpu < 0 || cpu >= numCPU {
			return r, fmt.Errorf("CPU %d: this machine has CPUs 0-%d", cpu, numCPU-1)
		}
	}
	if r.logf == nil {
		r.logf = func(string, ...any) {}
	}
	return r, nil
}

// pick validates a list of names against known, removing duplicates; an
// empty list means def.
func pick(what string, list, def, known []string) ([]string, error) {
	if len(list) == 0 {
		return slices.Clone(def), nil
	}
	var out []string
	for _, n := range list {
		n = strings.TrimSpace(n)
		if !slices.Contains(known, n) {
			return nil, fmt.Errorf("unknown %s %q: want one of %s", what, n, strings.Join(known, ", "))
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}
