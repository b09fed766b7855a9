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

	"github.com/switchyard-net/switchyard/internal/pmqos"
	"github.com/switchyard-net/switchyard/switch/port/afpacket"
)

// Test names. The pps and ndr tests come in two frame sizes: 64 and 1518
// bytes on the wire (60 and 1514 without the FCS).
const (
	TestTCP     = "tcp"     // single-stream TCP throughput
	TestTCP4    = "tcp4"    // four-stream TCP throughput
	TestPPS64   = "pps64"   // frames per second arriving at B, generator at full speed
	TestPPS1518 = "pps1518" // the same with 1518-byte frames
	TestNDR64   = "ndr64"   // highest offered rate with loss under LossThreshold (RFC 2544-style search)
	TestNDR1518 = "ndr1518" // the same with 1518-byte frames
	TestRR      = "rr"      // UDP request/response latency, one in flight
	// TestConn is new TCP connections per second from A to B: short
	// HTTP/1.0 requests, connConcurrency in flight, A's source address
	// rotating over a pool, so that each is a fresh flow in a NAT's table.
	TestConn = "conn"
	// TestConnOut is the same from B to a server in A: through a NAT
	// peer, the masquerade direction.
	TestConnOut = "conn-out"
)

// testAliases are older test names still accepted.
var testAliases = map[string]string{"pps": TestPPS64, "ndr": TestNDR64}

// Peer names: the implementations a run measures.
const (
	PeerKernel        = "kernel"         // the kernel bridge
	PeerSwitchyard    = "switchyard"     // switchyard's bridge over AF_PACKET rings on veths
	PeerSwitchyardTap = "switchyard-tap" // switchyard's bridge with TAP endpoints
	PeerOVS           = "ovs"            // Open vSwitch's userspace datapath, AF_PACKET (system) ports
	PeerOVSAFXDP      = "ovs-afxdp"      // Open vSwitch's userspace datapath, AF_XDP ports
	// The NAT pair: A outside, the other endpoints behind a gateway in S
	// that masquerades them and publishes their ports on its outside
	// address. They are compared with each other, not with the bridges.
	PeerNATKernel     = "nat-kernel"     // the kernel: bridge, ip_forward, nftables DNAT and masquerade
	PeerNATSwitchyard = "nat-switchyard" // switchyard's bridge, gateway and NAT, uplink over an AF_PACKET ring
)

// isNATPeer reports whether peer is one of the NAT pair.
func isNATPeer(peer string) bool { return peer == PeerNATKernel || peer == PeerNATSwitchyard }

// quickNATTests are the tests the NAT peers run in a quick run: the
// others run on the L2 peers only, to keep it under a minute.
var quickNATTests = []string{TestTCP, TestConn, TestConnOut}

// Ports the tests use (the NAT peers publish them, see publishedPorts).
const (
	iperfPort = 5201
	tcpPort   = 5202
	rrPort    = 7777
	genSrc    = 9999
	genDst    = 9 // discard: nothing reads it in B (see sinks)
	echoPort  = 7
	httpPort  = 8080 // the conn tests' HTTP server
)

// The conn tests: connections in flight, and the most one run makes.
const (
	connConcurrency = 8
	connMaxCount    = 1_000_000
)

// LossThreshold is the loss the ndr tests accept: a trial passes when less
// than this fraction of the offered frames is missing at the receivers.
const LossThreshold = 0.001

// AllTests and DefaultPeers are what a run measures when Config leaves the
// lists empty. DefaultPeers is set when the program starts: the kernel
// bridge and both switchyard peers, and the Open vSwitch peers when
// OVSInstalled.
var (
	AllTests     = []string{TestTCP, TestTCP4, TestPPS64, TestPPS1518, TestNDR64, TestNDR1518, TestRR, TestConn, TestConnOut}
	AllPeers     = []string{PeerKernel, PeerSwitchyard, PeerSwitchyardTap, PeerOVS, PeerOVSAFXDP, PeerNATKernel, PeerNATSwitchyard}
	DefaultPeers = defaultPeers()
)

// defaultPeers is every peer whose programs are installed, and
// switchyard's NAT (whose kernel counterpart is skipped with a note when
// nft is missing, so that the report says why it has no ratio).
func defaultPeers() []string {
	peers := []string{PeerKernel, PeerSwitchyard, PeerSwitchyardTap}
	if OVSInstalled() == nil {
		peers = append(peers, PeerOVS, PeerOVSAFXDP)
	}
	return append(peers, PeerNATKernel, PeerNATSwitchyard)
}

// NFTInstalled reports, as a nil error, whether nft, which the nat-kernel
// peer needs, is installed; otherwise the error says what to install.
func NFTInstalled() error {
	_, err := nftPath()
	return err
}

// nftDirs are where nftPath looks for nft after PATH.
var nftDirs = []string{"/usr/sbin", "/sbin", "/usr/local/sbin"}

// nftPath finds nft in PATH or in the sbin directories a non-root PATH
// may lack.
func nftPath() (string, error) {
	if p, err := exec.LookPath("nft"); err == nil {
		return p, nil
	}
	for _, dir := range nftDirs {
		p := filepath.Join(dir, "nft")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("nft is not installed (apt-get install nftables)")
}

// ovsTools are the Open vSwitch programs the ovs peers run.
var ovsTools = []string{"ovs-vswitchd", "ovsdb-server", "ovsdb-tool", "ovs-vsctl"}

// OVSInstalled reports, as a nil error, whether the Open vSwitch programs
// and database schema the ovs peers need are installed; otherwise the
// error says what is missing.
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
var WorkerNames = []string{"switch", "nat", "gen", "udp-server", "udp-client", "tcp-sink", "tcp-send", "http-server", "conn-client"}

// Defaults.
const (
	// DefaultDuration is how long each test runs against each peer, and
	// each trial of an ndr search.
	DefaultDuration = 5 * time.Second
	// DefaultReps is how many times every peer is measured.
	DefaultReps = 3
	// DefaultTrials bounds the trials of one ndr search after its first
	// (at the generator's full rate).
	DefaultTrials = 7
	// DefaultEndpoints is the number of endpoint namespaces.
	DefaultEndpoints = 2
	// MaxEndpoints bounds Config.Endpoints.
	MaxEndpoints = 16
)

// Quick settings (Config.Quick): a run of every test against every peer in
// well under a minute on two CPUs.
const (
	quickDuration = 300 * time.Millisecond
	quickTrials   = 3
	quickTCP      = time.Second // iperf3 counts whole seconds
)

// DefaultBusyPoll is how long the switchyard worker's ports poll their
// rings before sleeping. The switch has CPU 1 to itself here, and every
// sleep costs a cross-CPU wakeup (about 30 us on this kind of VM, where
// guest halt-polling is off) per frame of a request/response exchange.
const DefaultBusyPoll = 200 * time.Microsecond

// ErrUnsupported is returned on systems without network namespaces.
var ErrUnsupported = errors.New("bench: the harness needs Linux network namespaces")

// TCP tools (Config.TCPTool).
const (
	TCPAuto    = "auto"    // iperf3 when installed, else builtin
	TCPIperf3  = "iperf3"  // iperf3, an error when missing
	TCPBuiltin = "builtin" // the harness's own bulk sender (tcp-send/tcp-sink workers)
)

// Config describes one run. A nil *Config means all defaults.
type Config struct {
	// Duration of each test against each peer, and of each ndr trial;
	// default DefaultDuration (quickDuration with Quick). TCP runs whole
	// seconds, at least 1.
	Duration time.Duration
	// Reps is how many times every peer is measured, interleaved: every
	// peer once (A B C), then again (A B C), ...; default DefaultReps (1
	// with Quick).
	Reps int
	// Trials bounds an ndr search: the trials after the first, at the
	// generator's full rate; default DefaultTrials (quickTrials with
	// Quick).
	Trials int
	// Endpoints is the number of endpoint namespaces on the switch, 2 to
	// MaxEndpoints; default 2. With more than two, the pps and ndr
	// generator in the first spreads its frames over all the others.
	Endpoints int
	// Quick runs a small version: short tests, one rep, few trials.
	Quick bool
	// Tests to run, in this order; default AllTests.
	Tests []string
	// Peers to measure, in this order; default DefaultPeers.
	Peers []string
	// TCPTool picks what measures TCP: TCPAuto (default), TCPIperf3 or
	// TCPBuiltin.
	TCPTool string
	// TPacket is the ring version the switchyard worker opens its ports
	// with: "v2", "v3" or "" for the afpacket default.
	TPacket string
	// BusyPoll is how long the switchyard worker's ports keep polling
	// their rings before sleeping (afpacket.Config.BusyPoll); 0 means
	// DefaultBusyPoll, negative means none.
	BusyPoll time.Duration
	// RxSteering has the switchyard workers' ring ports steer each
	// flow's frames to the switch's CPU (afpacket.Config.RxSteering).
	RxSteering bool
	// TX is the switchyard worker's transmit path: "mmsg" (default,
	// afpacket.TxSendmmsg) or "ring" (afpacket.TxRing).
	TX string
	// RX is the switchyard worker's receive path: "split" (default,
	// afpacket.RxSplit), "ring" (afpacket.RxRing) or "mmsg"
	// (afpacket.RxRecvmmsg).
	RX string
	// CPULatency, when set, has the run hold a PM QoS CPU latency request
	// of that bound from start to end (internal/pmqos), so that every
	// peer is measured with CPUs that wake within it; zero keeps idle
	// CPUs polling instead of halting. Nil leaves the machine as it is.
	CPULatency *time.Duration
	// Worker is the command line that runs this binary's bench-worker
	// subcommand; default the running executable followed by
	// "bench-worker".
	Worker []string
	// EndpointCPU and SwitchCPU are the CPUs the endpoint tools and the
	// switch process are pinned to; defaults 0 and 1 (0 and 0 on a
	// one-CPU machine).
	EndpointCPU, SwitchCPU *int
	// Logf, when set, gets a line per step (progress, not results).
	Logf func(format string, args ...any)
	// Progress, when set, is called before and after every test of every
	// peer and rep.
	Progress func(Progress)
}

// Progress is where a run is.
type Progress struct {
	Done, Total int    // tests finished (or given up) and planned
	Rep, Reps   int    // 1-based
	Peer, Test  string // what runs now; empty when done
}

// resolved is a Config with every default filled in.
type resolved struct {
	duration, tcpDuration time.Duration
	reps, trials, eps     int
	quick                 bool
	tests, peers          []string
	testsGiven            bool // Config.Tests was set: every peer runs them all
	tcpTool               string
	tpacket               string
	busyPoll              time.Duration
	rxSteer               bool
	tx, rx                string
	cpuLatency            *time.Duration
	worker                []string
	epCPU, swCPU          int
	logf                  func(string, ...any)
	progress              func(Progress)
}

func (c *Config) resolve(numCPU int) (resolved, error) {
	var cfg Config
	if c != nil {
		cfg = *c
	}
	r := resolved{duration: cfg.Duration, reps: cfg.Reps, trials: cfg.Trials, eps: cfg.Endpoints,
		quick: cfg.Quick, tcpTool: cfg.TCPTool, tpacket: cfg.TPacket, busyPoll: cfg.BusyPoll, rxSteer: cfg.RxSteering,
		tx: cfg.TX, rx: cfg.RX, cpuLatency: cfg.CPULatency, logf: cfg.Logf, progress: cfg.Progress}
	switch {
	case r.busyPoll == 0:
		r.busyPoll = DefaultBusyPoll
	case r.busyPoll < 0:
		r.busyPoll = 0
	case r.busyPoll > time.Second:
		return r, fmt.Errorf("busy-poll %v out of range 0-1s", r.busyPoll)
	}
	if d := r.cpuLatency; d != nil && (*d < 0 || *d > pmqos.Max) {
		return r, fmt.Errorf("cpu-latency %v out of range: want 0 to %v", *d, pmqos.Max)
	}
	if r.tx == "" {
		r.tx = "mmsg"
	}
	if _, ok := txPaths[r.tx]; !ok {
		return r, fmt.Errorf("tx %q: want ring or mmsg", r.tx)
	}
	if r.rx == "" {
		r.rx = "split"
	}
	if _, ok := rxPaths[r.rx]; !ok {
		return r, fmt.Errorf("rx %q: want split, ring or mmsg", r.rx)
	}
	switch r.tcpTool {
	case "":
		r.tcpTool = TCPAuto
	case TCPAuto, TCPIperf3, TCPBuiltin:
	default:
		return r, fmt.Errorf("tcp tool %q: want %s, %s or %s", r.tcpTool, TCPAuto, TCPIperf3, TCPBuiltin)
	}
	if r.duration == 0 {
		r.duration = DefaultDuration
		if r.quick {
			r.duration = quickDuration
		}
	}
	if r.duration < 100*time.Millisecond || r.duration > time.Hour {
		return r, fmt.Errorf("duration %v out of range 100ms-1h", r.duration)
	}
	r.tcpDuration = r.duration.Round(time.Second)
	if r.quick {
		r.tcpDuration = quickTCP
	}
	r.tcpDuration = max(r.tcpDuration, time.Second)
	if r.reps == 0 {
		r.reps = DefaultReps
		if r.quick {
			r.reps = 1
		}
	}
	if r.reps < 1 || r.reps > 100 {
		return r, fmt.Errorf("reps %d out of range 1-100", r.reps)
	}
	if r.trials == 0 {
		r.trials = DefaultTrials
		if r.quick {
			r.trials = quickTrials
		}
	}
	if r.trials < 1 || r.trials > 30 {
		return r, fmt.Errorf("trials %d out of range 1-30", r.trials)
	}
	if r.eps == 0 {
		r.eps = DefaultEndpoints
	}
	if r.eps < 2 || r.eps > MaxEndpoints {
		return r, fmt.Errorf("endpoints %d out of range 2-%d", r.eps, MaxEndpoints)
	}
	var err error
	if r.tests, err = pick("test", cfg.Tests, AllTests, AllTests, testAliases); err != nil {
		return r, err
	}
	r.testsGiven = len(cfg.Tests) > 0
	if r.peers, err = pick("peer", cfg.Peers, DefaultPeers, AllPeers, nil); err != nil {
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
	if r.progress == nil {
		r.progress = func(Progress) {}
	}
	return r, nil
}

// testsFor are the tests peer runs: all of them, but in a quick run
// whose tests were not chosen, the NAT peers run only quickNATTests.
func (r resolved) testsFor(peer string) []string {
	if !r.quick || r.testsGiven || !isNATPeer(peer) {
		return r.tests
	}
	var out []string
	for _, t := range r.tests {
		if slices.Contains(quickNATTests, t) {
			out = append(out, t)
		}
	}
	return out
}

// pick validates a list of names against known (after aliases), removing
// duplicates; an empty list means def.
func pick(what string, list, def, known []string, aliases map[string]string) ([]string, error) {
	if len(list) == 0 {
		return slices.Clone(def), nil
	}
	var out []string
	for _, n := range list {
		n = strings.TrimSpace(n)
		if a, ok := aliases[n]; ok {
			n = a
		}
		if !slices.Contains(known, n) {
			return nil, fmt.Errorf("unknown %s %q: want one of %s", what, n, strings.Join(known, ", "))
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// txPaths and rxPaths name the switchyard workers' transmit and receive
// paths (Config.TX, Config.RX; the workers' -tx and -rx).
var (
	txPaths = map[string]afpacket.TxMode{"mmsg": afpacket.TxSendmmsg, "ring": afpacket.TxRing}
	rxPaths = map[string]afpacket.RxMode{"split": afpacket.RxSplit, "ring": afpacket.RxRing, "mmsg": afpacket.RxRecvmmsg}
)
