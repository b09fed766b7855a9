package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard-net/switchyard/internal/nstest"
)

var (
	benchRun      = flag.Bool("bench.run", false, "run the whole harness (TestHarness) and print its table")
	benchDuration = flag.Duration("bench.duration", 5*time.Second, "with -bench.run: duration per test")
	benchTests    = flag.String("bench.tests", "", "with -bench.run: tests (default all)")
	benchPeers    = flag.String("bench.peers", "", "with -bench.run: peers (default: DefaultPeers)")
	benchTPacket  = flag.String("bench.tpacket", "", "with -bench.run: v2 or v3")
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
		TPacket: *benchTPacket, Logf: t.Logf,
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

// TestSmoke runs the whole harness for a second per test against the
// default peers — the kernel bridge, switchyard and, when it is installed,
// Open vSwitch — and checks that every figure is there and positive and
// that nothing is left behind.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the harness smoke test in -short mode")
	}
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	before := children(t)
	ovsErr := OVSInstalled()
	wantPeers := []string{PeerKernel, PeerSwitchyard}
	if ovsErr == nil {
		wantPeers = append(wantPeers, PeerOVS)
	}
	var (
		mu      sync.Mutex
		ovsDirs = map[string]bool{}
		ovsProc []procID
	)
	testHookOVS = func(dir string, pid int) {
		mu.Lock()
		defer mu.Unlock()
		ovsDirs[dir] = true
		ovsProc = append(ovsProc, procIdentity(t, pid))
	}
	t.Cleanup(func() { testHookOVS = nil })
	rep, err := Run(context.Background(), &Config{Duration: time.Second, Logf: t.Logf})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var sb strings.Builder
	if err := rep.WriteTable(&sb); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + sb.String())
	var got []string
	for _, p := range rep.Results {
		got = append(got, p.Peer)
	}
	if diff := cmp.Diff(wantPeers, got); diff != "" {
		t.Fatalf("peers measured (-want +got):\n%s", diff)
	}
	for _, p := range rep.Results {
		if len(p.Errors) > 0 {
			t.Errorf("%s: errors %v", p.Peer, p.Errors)
			continue
		}
		if p.TCP == nil || p.TCP.Gbps <= 0 {
			t.Errorf("%s: TCP result %+v, want a positive rate", p.Peer, p.TCP)
		}
		if p.PPS == nil || p.PPS.RxPPS <= 0 || p.PPS.OfferedPPS <= 0 {
			t.Errorf("%s: PPS result %+v, want positive rates", p.Peer, p.PPS)
		}
		if p.RR == nil || p.RR.Count == 0 || p.RR.P50 <= 0 || p.RR.P50 > p.RR.P99 {
			t.Errorf("%s: RR result %+v, want round trips with 0 < p50 <= p99", p.Peer, p.RR)
		}
	}
	if sw := rep.result(PeerSwitchyard); sw != nil && len(sw.SwitchPorts) == 0 {
		t.Errorf("switchyard: no port counters from the worker")
	}
	if len(rep.Ratios) == 0 {
		t.Errorf("no ratios computed")
	}
	if after := children(t); after > before {
		t.Errorf("%d child processes left running (had %d before)", after, before)
	}
	t.Run("ovs", func(t *testing.T) {
		if ovsErr != nil {
			t.Skipf("Open vSwitch peer not measured: %v", ovsErr)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(ovsProc) != 2 {
			t.Errorf("the ovs peer started %d daemons, want 2 (ovsdb-server, ovs-vswitchd)", len(ovsProc))
		}
		for _, p := range ovsProc {
			if p.alive() {
				t.Errorf("ovs daemon PID %d (%s) still running after Run", p.pid, p.comm)
			}
		}
		for dir := range ovsDirs {
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("ovs private directory %s left behind (stat: %v)", dir, err)
			}
		}
		for _, m := range []string{MetricTCPGbps, MetricRxPPS, MetricRRP50} {
			found := false
			for _, r := range rep.Ratios {
				if r.Metric == m && r.Of == PeerSwitchyard && r.To == PeerOVS && r.Value > 0 {
					found = true
				}
			}
			if !found {
				t.Errorf("no positive switchyard/ovs ratio for %s in %+v", m, rep.Ratios)
			}
		}
		if !strings.Contains(sb.String(), "switchyard/ovs") {
			t.Errorf("table has no switchyard/ovs row")
		}
	})
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
		if msg := fmt.Sprintf(format, args...); msg == "switchyard: pps" {
			time.AfterFunc(500*time.Millisecond, cancel)
		}
	}
	start := time.Now()
	rep, err := Run(ctx, &Config{Duration: 2 * time.Second, Tests: []string{TestRR, TestPPS}, Logf: logf})
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("Run() error = %v, want interrupted", err)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("Run took %v to stop after the cancel", took)
	}
	if rep == nil || len(rep.Results) != 2 || rep.Results[0].RR == nil {
		t.Fatalf("partial report %+v, want the kernel's RR result and a switchyard entry", rep)
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
	var (
		mu   sync.Mutex
		dirs = map[string]bool{}
		ids  []procID
	)
	testHookOVS = func(dir string, pid int) {
		mu.Lock()
		defer mu.Unlock()
		dirs[dir] = true
		ids = append(ids, procIdentity(t, pid))
	}
	t.Cleanup(func() { testHookOVS = nil })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logf := func(format string, args ...any) {
		if msg := fmt.Sprintf(format, args...); msg == "ovs: pps" {
			time.AfterFunc(500*time.Millisecond, cancel)
		}
	}
	start := time.Now()
	rep, err := Run(ctx, &Config{Duration: 2 * time.Second, Peers: []string{PeerOVS}, Tests: []string{TestRR, TestPPS}, Logf: logf})
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("Run() error = %v, want interrupted", err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("Run took %v to stop after the cancel", took)
	}
	if rep == nil || len(rep.Results) != 1 || rep.Results[0].RR == nil {
		t.Fatalf("partial report %+v, want ovs's RR result", rep)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ids) != 2 {
		t.Errorf("the ovs peer started %d daemons, want 2", len(ids))
	}
	for _, p := range ids {
		if p.alive() {
			t.Errorf("ovs daemon PID %d (%s) still running after Run", p.pid, p.comm)
		}
	}
	for dir := range dirs {
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ovs private directory %s left behind (stat: %v)", dir, err)
		}
	}
	if after := children(t); after > before {
		t.Errorf("%d child processes left running (had %d before)", after, before)
	}
}

// TestOVSThenKernel measures Open vSwitch before the kernel bridge: the
// ovs peer must leave S as it found it (its bridge's tap, of the same name
// as the kernel bridge, removed), so the kernel bridge can be built after
// it.
func TestOVSThenKernel(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping a harness run in -short mode")
	}
	nstest.RequirePriv(t)
	if err := OVSInstalled(); err != nil {
		t.Skipf("Open vSwitch peer not testable: %v", err)
	}
	nstest.CheckLeaks(t)
	rep, err := Run(context.Background(), &Config{Duration: 500 * time.Millisecond,
		Peers: []string{PeerOVS, PeerKernel}, Tests: []string{TestRR}, Logf: t.Logf})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(rep.Results) != 2 {
		t.Fatalf("got %d results, want 2", len(rep.Results))
	}
	for _, p := range rep.Results {
		if len(p.Errors) > 0 || p.RR == nil || p.RR.Count == 0 {
			t.Errorf("%s: RR %+v, errors %v; want round trips and no error", p.Peer, p.RR, p.Errors)
		}
	}
}
