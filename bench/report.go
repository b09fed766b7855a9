package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Report is the outcome of a run: every peer's figures for every test, and
// the ratios of each peer to the kernel bridge.
type Report struct {
	Duration    string       `json:"duration"`
	TPacket     string       `json:"tpacket,omitempty"`
	BusyPoll    string       `json:"busy_poll"`
	TX          string       `json:"tx"`
	EndpointCPU int          `json:"endpoint_cpu"`
	SwitchCPU   int          `json:"switch_cpu"`
	Tests       []string     `json:"tests"`
	Peers       []string     `json:"peers"`
	Results     []PeerResult `json:"results"`
	Ratios      []Ratio      `json:"ratios,omitempty"`
	// RRFloor is the request/response test over a direct veth between A
	// and B with the server on the switch's CPU: what crossing CPUs costs
	// with no switch at all.
	RRFloor *RRResult `json:"rr_floor,omitempty"`
	Notes   []string  `json:"notes,omitempty"`
}

// PeerResult holds one peer's figures. A test that could not run has no
// figures and an entry in Errors.
type PeerResult struct {
	Peer string     `json:"peer"`
	TCP  *TCPResult `json:"tcp,omitempty"`
	PPS  *PPSResult `json:"pps,omitempty"`
	RR   *RRResult  `json:"rr,omitempty"`
	// Errors maps a test name (or "setup") to what went wrong.
	Errors map[string]string `json:"errors,omitempty"`
	// SwitchPorts is the switchyard worker's per-port counters at exit.
	SwitchPorts json.RawMessage `json:"switch_ports,omitempty"`
}

// TCPResult is one iperf3 single-stream run.
type TCPResult struct {
	Gbps        float64 `json:"gbps"`        // as the receiver counted it
	SenderGbps  float64 `json:"sender_gbps"` // as the sender counted it
	Retransmits int64   `json:"retransmits"`
	Seconds     float64 `json:"seconds"`
}

// PPSResult is one run of the 64-byte frame generator.
type PPSResult struct {
	// RxPPS is the rate of frames arriving at B's eth0 (rx_packets),
	// measured over the middle of the run.
	RxPPS float64 `json:"rx_pps"`
	// OfferedPPS is the rate the generator in A handed to its interface.
	OfferedPPS float64 `json:"offered_pps"`
	Sent       uint64  `json:"sent"`
	Received   uint64  `json:"received_in_window"`
	Window     float64 `json:"window_seconds"`
}

// RRResult is one UDP request/response run: round-trip times in
// microseconds.
type RRResult struct {
	Count int     `json:"count"`
	Lost  int     `json:"lost"`
	P50   float64 `json:"p50_us"`
	P90   float64 `json:"p90_us"`
	P99   float64 `json:"p99_us"`
	Min   float64 `json:"min_us"`
	Max   float64 `json:"max_us"`
	Mean  float64 `json:"mean_us"`
}

// Ratio compares one metric of peer Of to peer To: Value = Of / To. For
// throughput higher is better, for latency lower.
type Ratio struct {
	Metric string  `json:"metric"`
	Of     string  `json:"of"`
	To     string  `json:"to"`
	Value  float64 `json:"value"`
}

// Metric names used in Ratios.
const (
	MetricTCPGbps = "tcp_gbps"
	MetricRxPPS   = "rx_pps"
	MetricRRP50   = "rr_p50_us"
	MetricRRP90   = "rr_p90_us"
	MetricRRP99   = "rr_p99_us"
)

func (r *Report) result(peer string) *PeerResult {
	for i := range r.Results {
		if r.Results[i].Peer == peer {
			return &r.Results[i]
		}
	}
	return nil
}

func metric(p *PeerResult, m string) (float64, bool) {
	switch {
	case p == nil:
	case m == MetricTCPGbps && p.TCP != nil:
		return p.TCP.Gbps, true
	case m == MetricRxPPS && p.PPS != nil:
		return p.PPS.RxPPS, true
	case m == MetricRRP50 && p.RR != nil && p.RR.Count > 0:
		return p.RR.P50, true
	case m == MetricRRP90 && p.RR != nil && p.RR.Count > 0:
		return p.RR.P90, true
	case m == MetricRRP99 && p.RR != nil && p.RR.Count > 0:
		return p.RR.P99, true
	}
	return 0, false
}

// computeRatios fills r.Ratios: switchyard and OVS to the kernel bridge,
// and switchyard to OVS, for every metric both sides have.
func (r *Report) computeRatios() {
	r.Ratios = nil
	pairs := [][2]string{{PeerSwitchyard, PeerKernel}, {PeerOVS, PeerKernel}, {PeerSwitchyard, PeerOVS}}
	for _, m := range []string{MetricTCPGbps, MetricRxPPS, MetricRRP50, MetricRRP90, MetricRRP99} {
		for _, pr := range pairs {
			a, okA := metric(r.result(pr[0]), m)
			b, okB := metric(r.result(pr[1]), m)
			if okA && okB && b > 0 {
				r.Ratios = append(r.Ratios, Ratio{Metric: m, Of: pr[0], To: pr[1], Value: a / b})
			}
		}
	}
}

func (r *Report) ratios(m string) []Ratio {
	var out []Ratio
	for _, x := range r.Ratios {
		if x.Metric == m {
			out = append(out, x)
		}
	}
	return out
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report as one table per test, each peer's figures
// followed by the ratios.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(w, "switchyard bench: %s per test, endpoints on CPU %d, switchyard on CPU %d",
		r.Duration, r.EndpointCPU, r.SwitchCPU)
	if r.TPacket != "" {
		fmt.Fprintf(w, ", TPACKET_%s", strings.ToUpper(r.TPacket))
	}
	if r.TX != "" {
		fmt.Fprintf(w, ", tx %s, busy-poll %s", r.TX, r.BusyPoll)
	}
	fmt.Fprintln(w)
	failed := func(p *PeerResult, test string) string {
		if e, ok := p.Errors[test]; ok {
			return "failed: " + e
		}
		if e, ok := p.Errors["setup"]; ok {
			return "failed: " + e
		}
		return "not run"
	}
	for _, test := range r.Tests {
		fmt.Fprintln(w)
		switch test {
		case TestTCP:
			fmt.Fprintln(w, "TCP, one stream (iperf3)")
			fmt.Fprintln(tw, "\tGbit/s\tretransmits\t")
			for i := range r.Results {
				p := &r.Results[i]
				if p.TCP == nil {
					fmt.Fprintf(tw, "  %s\t%s\t\t\n", p.Peer, failed(p, test))
					continue
				}
				fmt.Fprintf(tw, "  %s\t%.2f\t%d\t\n", p.Peer, p.TCP.Gbps, p.TCP.Retransmits)
			}
			r.writeRatios(tw, MetricTCPGbps)
		case TestPPS:
			fmt.Fprintln(w, "64-byte frames, generator in A to B")
			fmt.Fprintln(tw, "\tkpps at B\toffered kpps\t")
			for i := range r.Results {
				p := &r.Results[i]
				if p.PPS == nil {
					fmt.Fprintf(tw, "  %s\t%s\t\t\n", p.Peer, failed(p, test))
					continue
				}
				fmt.Fprintf(tw, "  %s\t%.0f\t%.0f\t\n", p.Peer, p.PPS.RxPPS/1e3, p.PPS.OfferedPPS/1e3)
			}
			r.writeRatios(tw, MetricRxPPS)
		case TestRR:
			fmt.Fprintln(w, "UDP request/response, one in flight (round trip in us; ratios: lower is better)")
			fmt.Fprintln(tw, "\tp50\tp90\tp99\tcount\tlost\t")
			for i := range r.Results {
				p := &r.Results[i]
				if p.RR == nil {
					fmt.Fprintf(tw, "  %s\t%s\t\t\t\t\t\n", p.Peer, failed(p, test))
					continue
				}
				fmt.Fprintf(tw, "  %s\t%.1f\t%.1f\t%.1f\t%d\t%d\t\n", p.Peer, p.RR.P50, p.RR.P90, p.RR.P99, p.RR.Count, p.RR.Lost)
			}
			r.writeRatios(tw, MetricRRP50, MetricRRP90, MetricRRP99)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range r.Notes {
			fmt.Fprintln(w, "note: "+n)
		}
	}
	return nil
}

// writeRatios writes one row per pair of peers, with the ratio of each
// metric in its own column.
func (r *Report) writeRatios(tw io.Writer, metrics ...string) {
	type pair struct{ of, to string }
	var order []pair
	cols := map[pair][]string{}
	for i, m := range metrics {
		for _, x := range r.ratios(m) {
			k := pair{x.Of, x.To}
			if _, ok := cols[k]; !ok {
				order = append(order, k)
				cols[k] = make([]string, len(metrics))
			}
			cols[k][i] = fmt.Sprintf("%.2f", x.Value)
		}
	}
	for _, k := range order {
		fmt.Fprintf(tw, "  %s/%s\t%s\t\n", k.of, k.to, strings.Join(cols[k], "\t"))
	}
}
