package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/internal/nstest"
)

var (
	benchRun      = flag.Bool("bench.run", false, "run the whole harness (TestHarness) and print its table")
	benchDuration = flag.Duration("bench.duration", 5*time.Second, "with -bench.run: duration per test")
	benchTests    = flag.String("bench.tests", "", "with -bench.run: tests (default all)")
	benchPeers    = flag.String("bench.peers", "", "with -bench.run: peers (default kernel,switchyard)")
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
// kernel bridge and switchyard, and checks that every figure is there and
// positive and that nothing is left behind.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the harness smoke test in -short mode")
	}
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	before := children(t)
	rep, err := Run(context.Background(), &Config{Duration: time.Second, Logf: t.Logf})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var sb strings.Builder
	if err := rep.WriteTable(&sb); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + sb.String())
	if len(rep.Results) != 2 {
		t.Fatalf("got results for %d peers, want 2 (kernel, switchyard)", len(rep.Results))
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
