package bench

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Metric describes one figure a test produces.
type Metric struct {
	Name  string  // key in Sample.Metrics and in the JSON
	Label string  // column header in the table
	Scale float64 // the table shows value*Scale
	Prec  int     // decimals in the table
	// Lower is true when lower is better (latency, CPU cost).
	Lower bool
	// Ratio is true when the report compares peers on this metric.
	Ratio bool
	// Headline marks the metric the plot shows for its test.
	Headline bool
}

// Metric names.
const (
	MetricGbps       = "gbps"
	MetricRetrans    = "retransmits"
	MetricRxPPS      = "rx_pps"
	MetricOfferedPPS = "offered_pps"
	MetricCPUPerMpkt = "cpu_s_per_mpkt"
	MetricNDRPPS     = "ndr_pps"
	MetricNDRGbps    = "ndr_gbps"
	MetricNDRLoss    = "ndr_loss"
	MetricNDRTrials  = "ndr_trials"
	MetricP50        = "p50_us"
	MetricP99        = "p99_us"
	MetricP999       = "p999_us"
	MetricRRCount    = "count"
	MetricRRLost     = "lost"
	MetricPPSGbps    = "rx_gbps"
	MetricConnPS     = "conn_per_s"
	MetricConnErrors = "conn_errors"
	MetricConnP50    = "conn_p50_us"
	MetricConnP99    = "conn_p99_us"
	MetricConnCPU    = "cpu_ms_per_kconn"
)

var (
	tcpMetrics = []Metric{
		{Name: MetricGbps, Label: "Gbit/s", Scale: 1, Prec: 2, Ratio: true, Headline: true},
		{Name: MetricRetrans, Label: "retransmits", Scale: 1, Prec: 0},
	}
	ppsMetrics = []Metric{
		{Name: MetricRxPPS, Label: "kpps at B", Scale: 1e-3, Prec: 0, Ratio: true, Headline: true},
		{Name: MetricPPSGbps, Label: "Gbit/s", Scale: 1, Prec: 2},
		{Name: MetricOfferedPPS, Label: "offered kpps", Scale: 1e-3, Prec: 0},
		{Name: MetricCPUPerMpkt, Label: "CPU s/Mpkt", Scale: 1, Prec: 3, Lower: true, Ratio: true},
	}
	ndrMetrics = []Metric{
		{Name: MetricNDRPPS, Label: "kpps", Scale: 1e-3, Prec: 0, Ratio: true, Headline: true},
		{Name: MetricNDRGbps, Label: "Gbit/s", Scale: 1, Prec: 2},
		{Name: MetricNDRLoss, Label: "loss %", Scale: 100, Prec: 3},
		{Name: MetricNDRTrials, Label: "trials", Scale: 1, Prec: 0},
	}
	rrMetrics = []Metric{
		{Name: MetricP50, Label: "p50 us", Scale: 1, Prec: 1, Lower: true, Ratio: true, Headline: true},
		{Name: MetricP99, Label: "p99 us", Scale: 1, Prec: 1, Lower: true, Ratio: true},
		{Name: MetricP999, Label: "p99.9 us", Scale: 1, Prec: 1, Lower: true, Ratio: true},
		{Name: MetricRRCount, Label: "count", Scale: 1, Prec: 0},
		{Name: MetricRRLost, Label: "lost", Scale: 1, Prec: 0},
	}
)

var connMetrics = []Metric{
	{Name: MetricConnPS, Label: "conn/s", Scale: 1, Prec: 0, Ratio: true, Headline: true},
	{Name: MetricConnErrors, Label: "failed", Scale: 1, Prec: 0},
	{Name: MetricConnP50, Label: "p50 us", Scale: 1, Prec: 0, Lower: true, Ratio: true},
	{Name: MetricConnP99, Label: "p99 us", Scale: 1, Prec: 0, Lower: true},
	{Name: MetricConnCPU, Label: "CPU ms/kconn", Scale: 1, Prec: 1, Lower: true, Ratio: true},
}

// TestMetrics lists the metrics of each test, in table order.
var TestMetrics = map[string][]Metric{
	TestTCP: tcpMetrics, TestTCP4: tcpMetrics,
	TestPPS64: ppsMetrics, TestPPS1518: ppsMetrics,
	TestNDR64: ndrMetrics, TestNDR1518: ndrMetrics,
	TestRR:   rrMetrics,
	TestConn: connMetrics, TestConnOut: connMetrics,
}

// TestTitles are the table headings.
var TestTitles = map[string]string{
	TestTCP:     "TCP, one stream",
	TestTCP4:    "TCP, four streams",
	TestPPS64:   "64-byte frames, generator at full speed",
	TestPPS1518: "1518-byte frames, generator at full speed",
	TestNDR64:   "64-byte frames, highest offered rate with loss < 0.1% (RFC 2544-style search)",
	TestNDR1518: "1518-byte frames, highest offered rate with loss < 0.1% (RFC 2544-style search)",
	TestRR:      "UDP request/response, one in flight (round trip; ratios: lower is better)",
	TestConn: fmt.Sprintf("New TCP connections, A to B: HTTP/1.0, %d in flight, A's source rotating over %d addresses "+
		"(NAT peers: through DNAT; latency and CPU ratios: lower is better)", connConcurrency, connPoolSize),
	TestConnOut: fmt.Sprintf("New TCP connections, B to A: HTTP/1.0, %d in flight, B's source rotating over %d addresses "+
		"(NAT peers: through masquerade; latency and CPU ratios: lower is better)", connConcurrency, connPoolSize),
}

// Spread is the median, extremes and count of a set of values.
type Spread struct {
	N      int     `json:"n"`
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// spreadOf summarizes vs (which it sorts); the median of an even count
// is the mean of the middle two.
func spreadOf(vs []float64) Spread {
	if len(vs) == 0 {
		return Spread{}
	}
	slices.Sort(vs)
	n := len(vs)
	m := vs[n/2]
	if n%2 == 0 {
		m = (vs[n/2-1] + vs[n/2]) / 2
	}
	return Spread{N: n, Median: m, Min: vs[0], Max: vs[n-1]}
}

// Summary is one peer's figures for one metric of one test over the reps.
type Summary struct {
	Test   string `json:"test"`
	Peer   string `json:"peer"`
	Metric string `json:"metric"`
	Spread
}

// Ratio compares peer Of to peer To on one metric of one test, rep by rep:
// each rep in which both have a figure gives Of/To, and the spread is over
// those ratios. For Lower metrics, below 1 means Of is better.
type Ratio struct {
	Test   string `json:"test"`
	Metric string `json:"metric"`
	Of     string `json:"of"`
	To     string `json:"to"`
	Lower  bool   `json:"lower_is_better,omitempty"`
	Spread
}

// ratioPairs lists the pairs of peers compared: every L2 peer against the
// kernel bridge, every switchyard peer against every Open vSwitch peer,
// and switchyard's NAT against the kernel's. The NAT peers forward on
// another topology (routed, translated), so they are compared with each
// other only.
func ratioPairs(peers []string) [][2]string {
	var out [][2]string
	if slices.Contains(peers, PeerKernel) {
		for _, p := range peers {
			if p != PeerKernel && !isNATPeer(p) {
				out = append(out, [2]string{p, PeerKernel})
			}
		}
	}
	for _, s := range peers {
		if !strings.HasPrefix(s, PeerSwitchyard) {
			continue
		}
		for _, o := range peers {
			if strings.HasPrefix(o, PeerOVS) {
				out = append(out, [2]string{s, o})
			}
		}
	}
	if slices.Contains(peers, PeerNATKernel) && slices.Contains(peers, PeerNATSwitchyard) {
		out = append(out, [2]string{PeerNATSwitchyard, PeerNATKernel})
	}
	return out
}

// summarizeSamples computes the per-peer spreads and the pairwise ratios of
// samples for tests and peers, in their order.
func summarizeSamples(samples []Sample, tests, peers []string) ([]Summary, []Ratio) {
	type key struct {
		test, peer, metric string
		rep                int
	}
	val := map[key]float64{}
	for _, s := range samples {
		if s.Error != "" {
			continue
		}
		for m, v := range s.Metrics {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				val[key{s.Test, s.Peer, m, s.Rep}] = v
			}
		}
	}
	reps := 0
	for _, s := range samples {
		reps = max(reps, s.Rep+1)
	}
	var sums []Summary
	var ratios []Ratio
	for _, t := range tests {
		for _, m := range TestMetrics[t] {
			for _, p := range peers {
				var vs []float64
				for r := range reps {
					if v, ok := val[key{t, p, m.Name, r}]; ok {
						vs = append(vs, v)
					}
				}
				if len(vs) > 0 {
					sums = append(sums, Summary{Test: t, Peer: p, Metric: m.Name, Spread: spreadOf(vs)})
				}
			}
			if !m.Ratio {
				continue
			}
			for _, pr := range ratioPairs(peers) {
				var vs []float64
				for r := range reps {
					a, okA := val[key{t, pr[0], m.Name, r}]
					b, okB := val[key{t, pr[1], m.Name, r}]
					if okA && okB && b > 0 {
						vs = append(vs, a/b)
					}
				}
				if len(vs) > 0 {
					ratios = append(ratios, Ratio{Test: t, Metric: m.Name, Of: pr[0], To: pr[1], Lower: m.Lower, Spread: spreadOf(vs)})
				}
			}
		}
	}
	return sums, ratios
}
