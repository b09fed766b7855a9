package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestSpreadOf(t *testing.T) {
	tests := []struct {
		in   []float64
		want Spread
	}{
		{nil, Spread{}},
		{[]float64{3}, Spread{N: 1, Median: 3, Min: 3, Max: 3}},
		{[]float64{4, 1}, Spread{N: 2, Median: 2.5, Min: 1, Max: 4}},
		{[]float64{5, 1, 3}, Spread{N: 3, Median: 3, Min: 1, Max: 5}},
		{[]float64{9, 2, 4, 1}, Spread{N: 4, Median: 3, Min: 1, Max: 9}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, spreadOf(tt.in)); diff != "" {
			t.Errorf("spreadOf(%v) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestRatioPairs(t *testing.T) {
	got := ratioPairs([]string{PeerKernel, PeerSwitchyard, PeerSwitchyardTap, PeerOVS})
	want := [][2]string{
		{PeerSwitchyard, PeerKernel}, {PeerSwitchyardTap, PeerKernel}, {PeerOVS, PeerKernel},
		{PeerSwitchyard, PeerOVS}, {PeerSwitchyardTap, PeerOVS},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ratioPairs (-want +got):\n%s", diff)
	}
	// The NAT peers are compared with each other, never with the bridge.
	got = ratioPairs([]string{PeerKernel, PeerSwitchyard, PeerNATKernel, PeerNATSwitchyard})
	want = [][2]string{{PeerSwitchyard, PeerKernel}, {PeerNATSwitchyard, PeerNATKernel}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ratioPairs with the NAT pair (-want +got):\n%s", diff)
	}
	if got := ratioPairs([]string{PeerKernel, PeerNATSwitchyard}); len(got) != 0 {
		t.Errorf("ratioPairs of the kernel bridge and one NAT peer = %v, want none", got)
	}
	if got := ratioPairs([]string{PeerSwitchyard}); len(got) != 0 {
		t.Errorf("ratioPairs of one peer = %v", got)
	}
}

// sample is a test sample with one metric.
func sample(rep int, peer, test, metric string, v float64) Sample {
	return Sample{Rep: rep, Peer: peer, Test: test, Metrics: map[string]float64{metric: v}}
}

func TestSummarizeSamples(t *testing.T) {
	samples := []Sample{
		sample(0, PeerKernel, TestPPS64, MetricRxPPS, 100),
		sample(0, PeerSwitchyard, TestPPS64, MetricRxPPS, 200),
		sample(1, PeerKernel, TestPPS64, MetricRxPPS, 50),
		sample(1, PeerSwitchyard, TestPPS64, MetricRxPPS, 150),
		sample(2, PeerKernel, TestPPS64, MetricRxPPS, 80),
		// Rep 2 of switchyard failed: no figure, and no ratio for rep 2.
		{Rep: 2, Peer: PeerSwitchyard, Test: TestPPS64, Error: "crashed"},
		sample(0, PeerKernel, TestRR, MetricP50, 10),
		sample(0, PeerSwitchyard, TestRR, MetricP50, 40),
	}
	sums, ratios := summarizeSamples(samples, []string{TestPPS64, TestRR}, []string{PeerKernel, PeerSwitchyard})
	wantSums := []Summary{
		{Test: TestPPS64, Peer: PeerKernel, Metric: MetricRxPPS, Spread: Spread{N: 3, Median: 80, Min: 50, Max: 100}},
		{Test: TestPPS64, Peer: PeerSwitchyard, Metric: MetricRxPPS, Spread: Spread{N: 2, Median: 175, Min: 150, Max: 200}},
		{Test: TestRR, Peer: PeerKernel, Metric: MetricP50, Spread: Spread{N: 1, Median: 10, Min: 10, Max: 10}},
		{Test: TestRR, Peer: PeerSwitchyard, Metric: MetricP50, Spread: Spread{N: 1, Median: 40, Min: 40, Max: 40}},
	}
	if diff := cmp.Diff(wantSums, sums); diff != "" {
		t.Errorf("summaries (-want +got):\n%s", diff)
	}
	// Rep by rep: 200/100 and 150/50, not the ratio of the medians.
	wantRatios := []Ratio{
		{Test: TestPPS64, Metric: MetricRxPPS, Of: PeerSwitchyard, To: PeerKernel, Spread: Spread{N: 2, Median: 2.5, Min: 2, Max: 3}},
		{Test: TestRR, Metric: MetricP50, Of: PeerSwitchyard, To: PeerKernel, Lower: true, Spread: Spread{N: 1, Median: 4, Min: 4, Max: 4}},
	}
	if diff := cmp.Diff(wantRatios, ratios, cmpopts.EquateApprox(1e-9, 0)); diff != "" {
		t.Errorf("ratios (-want +got):\n%s", diff)
	}
}

// testReport is a report of two reps, one peer crashed in the second, one
// skipped.
func testReport() *Report {
	rep := &Report{
		Machine: Machine{CPUs: 2, CPUModel: "Test CPU", Kernel: "6.1.0", GoVersion: "go1.26", CongestionControl: "cubic",
			CPUIdle: "haltpoll/haltpoll", CPULatency: "0s"},
		Settings: Settings{Duration: "1s", TCPDuration: "1s", Reps: 2, Trials: 3, Endpoints: 2, TCPTool: TCPIperf3, BusyPoll: "200µs", TX: "ring", RX: "split",
			CPULatency: "0s", SwitchCPU: 1},
		Tests:    []string{TestTCP, TestPPS64, TestRR},
		Peers:    []string{PeerKernel, PeerSwitchyard, PeerOVS},
		PeerInfo: map[string]PeerInfo{PeerKernel: {Desc: "the kernel bridge", MTU: 1500, Offloads: "tso on", CPU: "softirq"}},
		Failed:   map[string]string{PeerSwitchyard: "crashed during the tcp test"},
		Skipped:  map[string]string{PeerOVS: "ovs-vswitchd is not installed"},
	}
	for r := range 2 {
		rep.Samples = append(rep.Samples,
			Sample{Rep: r, Peer: PeerKernel, Test: TestTCP, Metrics: map[string]float64{MetricGbps: 10 + float64(r), MetricRetrans: 0},
				TCP: &TCPResult{Tool: TCPIperf3, Gbps: 10 + float64(r)}},
			sample(r, PeerKernel, TestPPS64, MetricRxPPS, 800e3),
			sample(r, PeerKernel, TestRR, MetricP50, 6.5),
		)
	}
	rep.Samples = append(rep.Samples,
		Sample{Rep: 0, Peer: PeerSwitchyard, Test: TestTCP, Metrics: map[string]float64{MetricGbps: 8}},
		sample(0, PeerSwitchyard, TestPPS64, MetricRxPPS, 1000e3),
		sample(0, PeerSwitchyard, TestRR, MetricP50, 70),
		Sample{Rep: 1, Peer: PeerSwitchyard, Test: TestTCP, Error: "crashed during the tcp test"},
		Sample{Rep: 1, Peer: PeerSwitchyard, Test: TestPPS64, Error: "crashed during the tcp test"},
		Sample{Rep: 1, Peer: PeerSwitchyard, Test: TestRR, Error: "crashed during the tcp test"},
	)
	rep.Summarize()
	return rep
}

func TestWriteTable(t *testing.T) {
	rep := testReport()
	var sb strings.Builder
	if err := rep.WriteTable(&sb); err != nil {
		t.Fatal(err)
	}
	out := sb.String()
	for _, want := range []string{
		"2 rep(s)", "Test CPU", "kernel 6.1.0", "congestion control cubic",
		"cpuidle haltpoll/haltpoll, CPU wakeup latency bound 0s (held by this run)", "switchyard: rx split, tx ring, busy-poll 200µs",
		"TCP, one stream (iperf3)",
		"10.50 [10.00-11.00]", // kernel TCP: median and range of two reps
		"switchyard/kernel  0.80",
		"kpps at B", "800 [800-800]", "1000",
		"switchyard/kernel  1.25", // pps
		"switchyard/kernel  10.77",
		"note: ovs: skipped: ovs-vswitchd is not installed",
		"note: switchyard: runs ended early: crashed during the tcp test",
		"note: kernel: the kernel bridge; MTU 1500; offloads tso on; CPU figures (s/Mpkt, ms/kconn) count softirq",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "  ovs  ") {
		t.Errorf("table has a row for the skipped peer:\n%s", out)
	}
	// A peer with no figure for a test gets an error row.
	rep.Samples = rep.Samples[:len(rep.Samples)-6]
	rep.Samples = append(rep.Samples, Sample{Rep: 0, Peer: PeerSwitchyard, Test: TestTCP, Error: "setup: no UDP round trip"})
	rep.Summarize()
	sb.Reset()
	if err := rep.WriteTable(&sb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sb.String(), "switchyard  error (see notes)") || !strings.Contains(sb.String(), "note: switchyard: runs ended early") {
		t.Errorf("no error row:\n%s", sb.String())
	}
}

func TestWriteJSONHasEverySample(t *testing.T) {
	rep := testReport()
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if n := strings.Count(out, `"rep": `); n != len(rep.Samples) {
		t.Errorf("JSON has %d samples, want %d", n, len(rep.Samples))
	}
	for _, want := range []string{`"machine"`, `"cpu_model": "Test CPU"`, `"summaries"`, `"ratios"`, `"failed"`, `"skipped"`, `"median"`} {
		if !strings.Contains(out, want) {
			t.Errorf("JSON lacks %s", want)
		}
	}
}

func TestWritePlot(t *testing.T) {
	rep := testReport()
	dir := t.TempDir()
	for _, name := range []string{"bench.svg", "bench.png"} {
		path := filepath.Join(dir, name)
		if err := rep.WritePlot(path); err != nil {
			t.Fatalf("WritePlot(%s): %v", name, err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		switch filepath.Ext(name) {
		case ".svg":
			if !bytes.Contains(b, []byte("<svg")) || !bytes.Contains(b, []byte("switchyard")) {
				t.Errorf("%s is not an SVG naming the peers (%d bytes)", name, len(b))
			}
		case ".png":
			if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
				t.Errorf("%s is not a PNG", name)
			}
		}
	}
	if err := rep.WritePlot(filepath.Join(dir, "bench.pdf")); err == nil || !strings.Contains(err.Error(), ".svg or .png") {
		t.Errorf("WritePlot(.pdf) error = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "bench.pdf")); err == nil {
		t.Errorf("WritePlot(.pdf) left a file")
	}
	empty := &Report{Tests: []string{TestTCP}, Peers: []string{PeerKernel}}
	if err := empty.WritePlot(filepath.Join(dir, "empty.svg")); err == nil {
		t.Errorf("WritePlot with no figures: nil error")
	}
}

func TestProgressBar(t *testing.T) {
	var buf bytes.Buffer
	bar := ProgressBar(&buf)
	bar(Progress{Done: 0, Total: 4, Rep: 1, Reps: 2, Peer: PeerKernel, Test: TestTCP})
	bar(Progress{Done: 0, Total: 4, Rep: 1, Reps: 2, Peer: PeerKernel, Test: TestTCP}) // same line: not redrawn
	bar(Progress{Done: 2, Total: 4, Rep: 2, Reps: 2, Peer: PeerSwitchyard, Test: TestRR})
	bar(Progress{Done: 4, Total: 4, Rep: 2, Reps: 2})
	want := "\r[..............................] 0/4  rep 1/2  kernel tcp" +
		"\r[###############...............] 2/4  rep 2/2  switchyard rr" +
		"\r[##############################] 4/4" + strings.Repeat(" ", len("  rep 2/2  switchyard rr")) + "\n"
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("progress bar (-want +got):\n%s", diff)
	}
}

// TestSearch runs the ndr search against a model switch that loses
// nothing up to capacity and the excess beyond it.
func TestSearch(t *testing.T) {
	model := func(capacity, genMax float64) func(rate float64) (Trial, bool) {
		return func(rate float64) (Trial, bool) {
			offered := rate
			if rate == 0 || rate > genMax {
				offered = genMax
			}
			sent := uint64(offered)
			recv := uint64(min(offered, capacity))
			tr := Trial{TargetPPS: rate, OfferedPPS: offered, Sent: sent, Received: recv, Loss: lossOf(sent, recv)}
			tr.Pass = tr.Loss < LossThreshold
			return tr, true
		}
	}
	best := func(ts []Trial) float64 {
		b := 0.0
		for _, tr := range ts {
			if tr.Pass {
				b = max(b, tr.OfferedPPS)
			}
		}
		return b
	}
	// The generator is the limit: one trial.
	if ts := search(5, model(2e6, 1e6)); len(ts) != 1 || best(ts) != 1e6 {
		t.Errorf("generator-limited search: %+v", ts)
	}
	// The switch is the limit: the second trial, at what got through the
	// first, loses a hair under the threshold and so passes.
	ts := search(5, model(400e3, 1e6))
	if len(ts) != 6 {
		t.Errorf("search ran %d trials, want 1+5", len(ts))
	}
	if b := best(ts); b < 399e3 || b > 400e3 {
		t.Errorf("search found %v, want about 400e3: %+v", b, ts)
	}
	// A switch that always loses: nothing passes, the rates halve.
	lossy := func(rate float64) (Trial, bool) {
		if rate == 0 {
			rate = 1e6
		}
		return Trial{TargetPPS: rate, OfferedPPS: rate, Sent: 1000, Received: 900, Loss: 0.1}, true
	}
	ts = search(3, lossy)
	if len(ts) != 4 || best(ts) != 0 || ts[3].TargetPPS >= ts[2].TargetPPS {
		t.Errorf("lossy search: %+v", ts)
	}
	// A failing trial stops the search.
	calls := 0
	ts = search(5, func(rate float64) (Trial, bool) {
		calls++
		if calls == 2 {
			return Trial{}, false
		}
		return lossy(rate)
	})
	if len(ts) != 2 || calls != 2 {
		t.Errorf("search went on after a failed trial: %d calls, %+v", calls, ts)
	}
}

func TestLossOf(t *testing.T) {
	for _, tt := range []struct {
		sent, recv uint64
		want       float64
	}{
		{0, 0, 1}, {100, 100, 0}, {100, 101, 0}, {1000, 999, 0.001}, {4, 1, 0.75},
	} {
		if got := lossOf(tt.sent, tt.recv); got != tt.want {
			t.Errorf("lossOf(%d, %d) = %v, want %v", tt.sent, tt.recv, got, tt.want)
		}
	}
}

func TestTestMetricsComplete(t *testing.T) {
	for _, test := range AllTests {
		ms, ok := TestMetrics[test]
		if !ok || TestTitles[test] == "" || plotTitles[test] == "" {
			t.Errorf("test %s lacks metrics, a title or a plot title", test)
			continue
		}
		heads := 0
		for _, m := range ms {
			if m.Headline {
				heads++
				if plotUnits[m.Name] == "" {
					t.Errorf("test %s: headline %s has no plot unit", test, m.Name)
				}
			}
		}
		if heads != 1 {
			t.Errorf("test %s has %d headline metrics, want 1", test, heads)
		}
	}
}

func TestDefaultPeers(t *testing.T) {
	want := []string{PeerKernel, PeerSwitchyard, PeerSwitchyardTap}
	if err := OVSInstalled(); err == nil {
		want = append(want, PeerOVS, PeerOVSAFXDP)
	} else {
		t.Logf("Open vSwitch not installed, so not a default peer: %v", err)
	}
	want = append(want, PeerNATKernel, PeerNATSwitchyard)
	if diff := cmp.Diff(want, DefaultPeers); diff != "" {
		t.Errorf("DefaultPeers (-want +got):\n%s", diff)
	}
}

// TestTableSkipsUnplanned: a quick run's NAT peers run only some tests;
// the others' tables have no row for them, not an error row.
func TestTableSkipsUnplanned(t *testing.T) {
	rep := &Report{
		Tests: []string{TestTCP, TestPPS64}, Peers: []string{PeerKernel, PeerNATKernel, PeerNATSwitchyard},
		Samples: []Sample{
			sample(0, PeerKernel, TestTCP, MetricGbps, 10),
			sample(0, PeerKernel, TestPPS64, MetricRxPPS, 1e6),
			sample(0, PeerNATKernel, TestTCP, MetricGbps, 8),
			sample(0, PeerNATSwitchyard, TestTCP, MetricGbps, 6),
		},
		Settings: Settings{Reps: 1},
	}
	rep.Summarize()
	var sb strings.Builder
	if err := rep.WriteTable(&sb); err != nil {
		t.Fatal(err)
	}
	out := sb.String()
	_, pps, _ := strings.Cut(out, TestTitles[TestPPS64])
	if strings.Contains(out, "error (see notes)") || strings.Contains(pps, PeerNATKernel) {
		t.Errorf("unplanned tests got rows:\n%s", out)
	}
	if !strings.Contains(out, "nat-switchyard/nat-kernel  0.75") || strings.Contains(out, "nat-kernel/kernel") ||
		strings.Contains(out, "nat-switchyard/kernel") {
		t.Errorf("want the NAT pair's ratio, and no NAT peer against the kernel bridge:\n%s", out)
	}
}

// TestPlotRatios: a panel's subtitle gives each ratio against its own
// baseline, the NAT pair's against the kernel's NAT.
func TestPlotRatios(t *testing.T) {
	rep := &Report{
		Tests: []string{TestConn}, Peers: []string{PeerKernel, PeerSwitchyard, PeerNATKernel, PeerNATSwitchyard},
		Samples: []Sample{
			sample(0, PeerKernel, TestConn, MetricConnPS, 1000),
			sample(0, PeerSwitchyard, TestConn, MetricConnPS, 500),
			sample(0, PeerNATKernel, TestConn, MetricConnPS, 800),
			sample(0, PeerNATSwitchyard, TestConn, MetricConnPS, 1000),
		},
	}
	rep.Summarize()
	if got, want := rep.plotRatios(TestConn, MetricConnPS), "switchyard/kernel 0.50, nat-switchyard/nat-kernel 1.25"; got != want {
		t.Errorf("plotRatios = %q, want %q", got, want)
	}
	if err := rep.WritePlot(filepath.Join(t.TempDir(), "nat.svg")); err != nil {
		t.Errorf("WritePlot: %v", err)
	}
}
