package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/internal/nstest"
)

var (
	benchRun      = flag.Bool("bench.run", false, "run the whole harness (TestHarness) and print its table")
	benchDuration = flag.Duration("bench.duration", 5*time.Second, "with -bench.run: duration per test")
	benchTests    = flag.String("bench.tests", "", "with -bench.run: tests (default all)")
	benchPeers    = flag.String("bench.peers", "", "with -bench.run: peers (default: DefaultPeers)")
	benchTPacket  = flag.String("bench.tpacket", "", "with -bench.run: v2 or v3")
	benchReps     = flag.Int("bench.reps", 0, "with -bench.run: reps (default DefaultReps)")
)

// TestMain lets the test binary stand in for `switchyard bench-worker`:
// the harness runs its own executable with that argument.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "bench-worker" {
		if err := Worker(os.Args[2:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func list(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// TestHarness is the manual entry point while the binary is not wired:
//
//	go test ./bench -run TestHarness -v -args -bench.run -bench.duration 5s
func TestHarness(t *testing.T) {
	if !*benchRun {
		t.Skip("manual: pass -args -bench.run to run the whole harness")
	}
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	rep, err := Run(context.Background(), &Config{
		Duration: *benchDuration, Tests: list(*benchTests), Peers: list(*benchPeers),
		TPacket: *benchTPacket, Reps: *benchReps, Logf: t.Logf,
	})
	if rep != nil {
		var sb strings.Builder
		rep.WriteTable(&sb)
		t.Log("\n" + sb.String())
	}
	if err != nil {
		t.Fatal(err)
	}
}

// ovsWatch records, through testHookOVS, the private directories and
// daemons of the ovs peers, to check that none outlives the run.
type ovsWatch struct {
	mu   sync.Mutex
	dirs map[string]bool
	ids  []procID
}

func watchOVS(t *testing.T) *ovsWatch {
	w := &ovsWatch{dirs: map[string]bool{}}
	testHookOVS = func(dir string, pid int) {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.dirs[dir] = true
		w.ids = append(w.ids, procIdentity(t, pid))
	}
	t.Cleanup(func() { testHookOVS = nil })
	return w
}

// check fails t for every ovs daemon still running and every private
// directory left behind.
func (w *ovsWatch) check(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, p := range w.ids {
		if p.alive() {
			t.Errorf("ovs daemon PID %d (%s) still running after Run", p.pid, p.comm)
		}
	}
	for dir := range w.dirs {
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ovs private directory %s left behind (stat: %v)", dir, err)
		}
	}
}

// TestQuick runs what `switchyard bench --quick` runs: every test against
// every default L2 peer (the kernel bridge, both switchyard peers and, when
// installed, both Open vSwitch peers) and quickNATTests against the NAT
// pair (nat-kernel skipped with a note when nft is missing), and checks
// that every peer has a positive headline figure for every test it ran,
// the ratios are there, each against its own kind, and nothing is left
// behind.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the harness's quick run in -short mode")
	}
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	before := children(t)
	ovs := watchOVS(t)
	var progress []Progress
	rep, err := Run(context.Background(), &Config{Quick: true, Logf: t.Logf,
		Progress: func(p Progress) { progress = append(progress, p) }})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var sb strings.Builder
	if err := rep.WriteTable(&sb); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + sb.String())
	measured := 0
	for _, peer := range rep.Peers {
		if why, ok := rep.Skipped[peer]; ok {
			t.Logf("%s skipped: %s", peer, why)
			continue
		}
		measured++
		if why, ok := rep.Failed[peer]; ok {
			t.Errorf("%s failed: %s", peer, why)
			continue
		}
		for _, test := range rep.Tests {
			if isNATPeer(peer) && !slices.Contains(quickNATTests, test) {
				if rep.ran(test, peer) {
					t.Errorf("%s ran %s in a quick run: want only %v", peer, test, quickNATTests)
				}
				continue
			}
			if test == TestNDR64 || test == TestNDR1518 {
				// On a busy machine no trial of a short search may
				// pass: 0 is a result. Check the search ran.
				for _, s := range rep.Samples {
					if s.Peer == peer && s.Test == test && (s.NDR == nil || len(s.NDR.Trials) == 0 || s.NDR.Trials[0].Sent == 0) {
						t.Errorf("%s %s: no trials: %+v, error %q", peer, test, s.NDR, s.Error)
					}
				}
				continue
			}
			for _, m := range TestMetrics[test] {
				if !m.Headline {
					continue
				}
				if sp, ok := rep.Summary(test, peer, m.Name); !ok || sp.Median <= 0 {
					t.Errorf("%s %s: %s = %+v, want a positive figure (sample error: %s)", peer, test, m.Name, sp, rep.sampleError(test, peer))
				}
			}
		}
		if _, ok := rep.PeerInfo[peer]; !ok {
			t.Errorf("%s: no peer info", peer)
		}
	}
	if measured < 3 {
		t.Errorf("measured %d peers, want at least kernel, switchyard and switchyard-tap", measured)
	}
	for _, p := range []string{PeerSwitchyard, PeerSwitchyardTap} {
		if _, ok := rep.Ratio(TestPPS64, MetricRxPPS, p, PeerKernel); !ok {
			t.Errorf("no %s/kernel ratio for pps64", p)
		}
	}
	if _, ok := rep.Skipped[PeerNATSwitchyard]; ok {
		t.Errorf("nat-switchyard skipped: %s", rep.Skipped[PeerNATSwitchyard])
	}
	if why, ok := rep.Skipped[PeerNATKernel]; ok {
		t.Logf("nat-kernel skipped (%s): no NAT ratio to check", why)
	} else if _, ok := rep.Ratio(TestConn, MetricConnPS, PeerNATSwitchyard, PeerNATKernel); !ok {
		t.Errorf("no nat-switchyard/nat-kernel ratio for conn")
	}
	for _, x := range rep.Ratios {
		if isNATPeer(x.Of) != isNATPeer(x.To) {
			t.Errorf("ratio %s/%s mixes a NAT peer with an L2 one", x.Of, x.To)
		}
	}
	for _, s := range rep.Samples {
		if s.Peer == PeerSwitchyard && s.Test == TestPPS64 && (s.PPS == nil || s.PPS.CPUPerMpkt <= 0) {
			t.Errorf("switchyard pps64: no CPU per million frames: %+v", s.PPS)
		}
	}
	if rep.Machine.CPUs == 0 || rep.Machine.Kernel == "" || rep.Settings.Reps != 1 {
		t.Errorf("machine %+v settings %+v", rep.Machine, rep.Settings)
	}
	if n := len(progress); n == 0 || progress[n-1].Done != progress[n-1].Total || progress[n-1].Peer != "" {
		t.Errorf("progress did not end at done: %+v", progress[max(0, n-2):])
	}
	if after := children(t); after > before {
		t.Errorf("%d child processes left running (had %d before)", after, before)
	}
	ovs.check(t)
}

// TestBuiltinTCP measures TCP with the built-in bulk sender, as a run does
// when iperf3 is not installed.
func TestBuiltinTCP(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping a harness run in -short mode")
	}
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	rep, err := Run(context.Background(), &Config{Quick: true, TCPTool: TCPBuiltin,
		Peers: []string{PeerKernel, PeerSwitchyard}, Tests: []string{TestTCP, TestTCP4}, Logf: t.Logf})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, s := range rep.Samples {
		if s.Error != "" || s.TCP == nil || s.TCP.Tool != TCPBuiltin || s.TCP.Gbps <= 0 {
			t.Errorf("%s %s: %+v, error %q; want a built-in TCP figure", s.Peer, s.Test, s.TCP, s.Error)
			continue
		}
		if want := map[string]int{TestTCP: 1, TestTCP4: 4}[s.Test]; s.TCP.Streams != want {
			t.Errorf("%s %s: %d streams, want %d", s.Peer, s.Test, s.TCP.Streams, want)
		}
	}
	if len(rep.Samples) != 4 {
		t.Errorf("got %d samples, want 4", len(rep.Samples))
	}
}

// TestEndpoints runs the generator from A to three other endpoints.
func TestEndpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping a harness run in -short mode")
	}
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	rep, err := Run(context.Background(), &Config{Quick: true, Endpoints: 4,
		Peers: []string{PeerKernel, PeerSwitchyard, PeerSwitchyardTap}, Tests: []string{TestPPS64, TestRR}, Logf: t.Logf})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(rep.Samples) != 6 {
		t.Errorf("got %d samples, want 6", len(rep.Samples))
	}
	for _, s := range rep.Samples {
		if s.Error != "" || len(s.Metrics) == 0 {
			t.Errorf("%s %s: error %q, metrics %v", s.Peer, s.Test, s.Error, s.Metrics)
		}
	}
	if rep.Settings.Endpoints != 4 {
		t.Errorf("settings say %d endpoints", rep.Settings.Endpoints)
	}
}

// TestInjectedFailures crashes one peer's switch (SIGKILL) and hangs
// another's (SIGSTOP) after their first test: each gets an error row and
// its runs end, its namespaces (and, for the TAP peer, its TAP devices)
// are removed, and the kernel bridge still finishes both reps.
func TestInjectedFailures(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping a harness run in -short mode")
	}
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	before := children(t)
	var mu sync.Mutex
	injected := map[string]int{}
	testHookAfterTest = func(peer, test string, rep int, pids []int) {
		mu.Lock()
		defer mu.Unlock()
		if rep != 0 || test != TestRR || len(pids) == 0 {
			return
		}
		switch peer {
		case PeerSwitchyard:
			injected[peer] = pids[0]
			syscall.Kill(pids[0], syscall.SIGKILL)
		case PeerSwitchyardTap:
			injected[peer] = pids[0]
			syscall.Kill(pids[0], syscall.SIGSTOP)
		}
	}
	t.Cleanup(func() { testHookAfterTest = nil })
	rep, err := Run(context.Background(), &Config{Quick: true, Reps: 2,
		Peers: []string{PeerKernel, PeerSwitchyard, PeerSwitchyardTap}, Tests: []string{TestRR, TestPPS64}, Logf: t.Logf})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var sb strings.Builder
	rep.WriteTable(&sb)
	t.Log("\n" + sb.String())
	if len(injected) != 2 {
		t.Fatalf("failures injected into %v, want both switchyard peers", injected)
	}
	for peer, want := range map[string]string{PeerSwitchyard: "crashed during the rr test", PeerSwitchyardTap: "hung after the rr test"} {
		if got := rep.Failed[peer]; !strings.Contains(got, want) {
			t.Errorf("Failed[%s] = %q, want %q", peer, got, want)
		}
		if !strings.Contains(sb.String(), "  "+peer) || !strings.Contains(sb.String(), "error (see notes)") || !strings.Contains(sb.String(), want) {
			t.Errorf("table has no error row for %s", peer)
		}
		for _, s := range rep.Samples {
			if s.Peer == peer && s.Rep > 0 {
				t.Errorf("%s ran again after failing: %+v", peer, s)
			}
			if s.Peer == peer && s.Error == "" {
				t.Errorf("%s: sample without error after the failure: %+v", peer, s)
			}
		}
	}
	n := 0
	for _, s := range rep.Samples {
		if s.Peer == PeerKernel {
			n++
			if s.Error != "" {
				t.Errorf("kernel %s rep %d: %s", s.Test, s.Rep, s.Error)
			}
		}
	}
	if n != 4 {
		t.Errorf("kernel has %d samples, want 2 tests x 2 reps", n)
	}
	for peer, pid := range injected {
		if _, start := procStat(pid); start != "" {
			t.Errorf("%s worker PID %d still there after Run", peer, pid)
		}
	}
	if after := children(t); after > before {
		t.Errorf("%d child processes left running (had %d before)", after, before)
	}
}

// procID identifies a process by its PID and start time, so that a PID
// reused by another process is not taken for it.
type procID struct {
	pid   int
	comm  string
	start string
}

// procIdentity reads pid's identity from /proc.
func procIdentity(t *testing.T, pid int) procID {
	id := procID{pid: pid}
	id.comm, id.start = procStat(pid)
	if id.start == "" {
		t.Errorf("PID %d: no /proc entry right after it was started", pid)
	}
	return id
}

// procStat returns the command name and start time of pid, empty when it
// does not exist.
func procStat(pid int) (comm, start string) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", ""
	}
	s := string(b)
	i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if i < 0 || j < i {
		return "", ""
	}
	// After "(comm)": state ppid pgrp session tty tpgid flags minflt
	// cminflt majflt cmajflt utime stime cutime cstime priority nice
	// num_threads itrealvalue starttime.
	f := strings.Fields(s[j+1:])
	if len(f) < 20 {
		return "", ""
	}
	return s[i+1 : j], f[19]
}

// alive reports whether the process is still there (a zombie counts).
func (p procID) alive() bool {
	_, start := procStat(p.pid)
	return start != "" && start == p.start
}

// children counts the processes whose parent is this one.
func children(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	self := fmt.Sprint(os.Getpid())
	n := 0
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == self {
			n++
		}
	}
	return n
}

// TestInterrupted cancels a run in the middle of a test, as SIGINT does
// through the command, and checks that it stops, keeps what it measured and
// leaves no namespace, link or process behind.
func TestInterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the harness interrupt test in -short mode")
	}
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	before := children(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Cancel during switchyard's pps run: the worker and the generator
	// are both running then.
	logf := func(format string, args ...any) {
		if msg := fmt.Sprintf(format, args...); msg == "switchyard: rep 1: pps64" {
			time.AfterFunc(500*time.Millisecond, cancel)
		}
	}
	start := time.Now()
	rep, err := Run(ctx, &Config{Duration: 2 * time.Second, Reps: 1, Peers: []string{PeerKernel, PeerSwitchyard},
		Tests: []string{TestRR, TestPPS64}, Logf: logf})
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("Run() error = %v, want interrupted", err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("Run took %v to stop after the cancel", took)
	}
	if rep == nil {
		t.Fatal("no partial report")
	}
	if _, ok := rep.Summary(TestRR, PeerKernel, MetricP50); !ok {
		t.Errorf("partial report lacks the kernel's RR figure: %+v", rep.Samples)
	}
	if _, ok := rep.Summary(TestPPS64, PeerSwitchyard, MetricRxPPS); ok {
		t.Errorf("partial report has a figure for the interrupted test")
	}
	if after := children(t); after > before {
		t.Errorf("%d child processes left running (had %d before)", after, before)
	}
}

// TestInterruptedOVS cancels a run while Open vSwitch forwards the pps
// test, and checks that both of its daemons are gone, by PID, and their
// directory removed.
func TestInterruptedOVS(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the harness interrupt test in -short mode")
	}
	nstest.RequirePriv(t)
	if err := OVSInstalled(); err != nil {
		t.Skipf("Open vSwitch peer not testable: %v", err)
	}
	nstest.CheckLeaks(t)
	before := children(t)
	ovs := watchOVS(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logf := func(format string, args ...any) {
		if msg := fmt.Sprintf(format, args...); msg == "ovs: rep 1: pps64" {
			time.AfterFunc(500*time.Millisecond, cancel)
		}
	}
	start := time.Now()
	rep, err := Run(ctx, &Config{Duration: 2 * time.Second, Reps: 1, Peers: []string{PeerOVS},
		Tests: []string{TestRR, TestPPS64}, Logf: logf})
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("Run() error = %v, want interrupted", err)
	}
	if took := time.Since(start); took > 25*time.Second {
		t.Errorf("Run took %v to stop after the cancel", took)
	}
	if rep == nil {
		t.Fatal("no partial report")
	}
	if _, ok := rep.Summary(TestRR, PeerOVS, MetricP50); !ok {
		t.Errorf("partial report lacks ovs's RR figure: %+v", rep.Samples)
	}
	ovs.mu.Lock()
	if len(ovs.ids) != 2 {
		t.Errorf("the ovs peer started %d daemons, want 2", len(ovs.ids))
	}
	ovs.mu.Unlock()
	ovs.check(t)
	if after := children(t); after > before {
		t.Errorf("%d child processes left running (had %d before)", after, before)
	}
}

// TestNAT runs the conn tests and a request/response through both NAT
// peers: connections complete, none fails, the server behind DNAT sees
// every address of A's rotating pool (the source is kept), the server
// behind masquerade sees one address (the gateway's), and the NAT pair
// is compared with each other.
func TestNAT(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping a harness run in -short mode")
	}
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	before := children(t)
	rep, err := Run(context.Background(), &Config{Quick: true, Peers: []string{PeerNATKernel, PeerNATSwitchyard},
		Tests: []string{TestConn, TestConnOut, TestRR}, Logf: t.Logf})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var sb strings.Builder
	rep.WriteTable(&sb)
	t.Log("\n" + sb.String())
	if why, ok := rep.Skipped[PeerNATKernel]; ok {
		t.Logf("nat-kernel skipped: %s", why)
	}
	measured := 0
	for _, s := range rep.Samples {
		measured++
		if s.Error != "" {
			t.Errorf("%s %s: %s", s.Peer, s.Test, s.Error)
			continue
		}
		if s.Test == TestRR {
			if s.RR == nil || s.RR.Count == 0 {
				t.Errorf("%s rr: no round trip: %+v", s.Peer, s.RR)
			}
			continue
		}
		c := s.Conn
		if c == nil || c.Conns == 0 || c.PerSec <= 0 {
			t.Errorf("%s %s: no connections: %+v", s.Peer, s.Test, c)
			continue
		}
		if c.Failed != 0 {
			t.Errorf("%s %s: %d of %d connections failed, first: %s", s.Peer, s.Test, c.Failed, c.Conns+c.Failed, c.FirstError)
		}
		if c.ServerRequests < c.Conns {
			t.Errorf("%s %s: server answered %d requests, client completed %d", s.Peer, s.Test, c.ServerRequests, c.Conns)
		}
		switch s.Test {
		case TestConn:
			if c.Conns >= connPoolSize && (c.ServerSourcesInPool != connPoolSize || c.ServerSources != connPoolSize) {
				t.Errorf("%s conn: the server saw %d sources, %d of them in A's pool %s; want all %d: DNAT keeps the source",
					s.Peer, c.ServerSources, c.ServerSourcesInPool, c.Pool, connPoolSize)
			}
		case TestConnOut:
			if c.ServerSources != 1 || c.ServerSourcesInPool != 0 {
				t.Errorf("%s conn-out: the server saw %d sources, %d in B's pool; want one, the gateway's: masquerade",
					s.Peer, c.ServerSources, c.ServerSourcesInPool)
			}
		}
	}
	if measured == 0 {
		t.Fatal("no samples")
	}
	if _, skipped := rep.Skipped[PeerNATKernel]; !skipped {
		if _, ok := rep.Ratio(TestConn, MetricConnPS, PeerNATSwitchyard, PeerNATKernel); !ok {
			t.Errorf("no nat-switchyard/nat-kernel ratio for conn: %+v", rep.Ratios)
		}
	}
	if after := children(t); after > before {
		t.Errorf("%d child processes left running (had %d before)", after, before)
	}
}
