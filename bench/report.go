package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// Report is the outcome of a run: every sample of every test against every
// peer in every rep, their medians and spreads, the ratios between peers
// rep by rep, and what was known about the machine. Every figure in it
// comes from the run that wrote it.
type Report struct {
	Machine  Machine  `json:"machine"`
	Settings Settings `json:"settings"`
	Tests    []string `json:"tests"`
	Peers    []string `json:"peers"`
	// PeerInfo says how each measured peer was set up: what it is, the
	// endpoints' MTU and offloads.
	PeerInfo map[string]PeerInfo `json:"peer_info,omitempty"`
	Samples  []Sample            `json:"samples"`
	// Summaries and Ratios are computed from Samples (see Summarize).
	Summaries []Summary `json:"summaries,omitempty"`
	Ratios    []Ratio   `json:"ratios,omitempty"`
	// Failed maps a peer whose runs were ended early (a crash, a hang, a
	// setup that failed) to why.
	Failed map[string]string `json:"failed,omitempty"`
	// Skipped maps a peer that was not measured (a program missing) to
	// why.
	Skipped map[string]string `json:"skipped,omitempty"`
	// RRFloor is the request/response test over a direct veth between A
	// and B with the server on the switch's CPU: what crossing CPUs costs
	// with no switch at all.
	RRFloor *RRResult `json:"rr_floor,omitempty"`
	Notes   []string  `json:"notes,omitempty"`
}

// Machine is what the run knew about where it ran.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model,omitempty"`
	Kernel    string `json:"kernel,omitempty"`
	GoVersion string `json:"go_version,omitempty"`
	// CongestionControl is the TCP congestion control of the endpoint
	// namespaces.
	CongestionControl string `json:"tcp_congestion_control,omitempty"`
	// CPUIdle is the cpuidle driver and governor ("haltpoll/haltpoll").
	CPUIdle string `json:"cpuidle,omitempty"`
	// CPULatency is the PM QoS CPU latency bound in force while the run
	// measured (every process's requests, the run's own included), or
	// "none".
	CPULatency string `json:"cpu_latency,omitempty"`
}

// Settings are the run's parameters, every default filled in.
type Settings struct {
	Duration      string  `json:"duration"`
	TCPDuration   string  `json:"tcp_duration"`
	Reps          int     `json:"reps"`
	Trials        int     `json:"ndr_trials"`
	LossThreshold float64 `json:"ndr_loss_threshold"`
	Endpoints     int     `json:"endpoints"`
	Quick         bool    `json:"quick,omitempty"`
	TCPTool       string  `json:"tcp_tool"`
	TPacket       string  `json:"tpacket,omitempty"`
	BusyPoll      string  `json:"busy_poll"`
	RxSteering    bool    `json:"rx_steering,omitempty"`
	TX            string  `json:"tx"`
	RX            string  `json:"rx,omitempty"`
	CPULatency    string  `json:"cpu_latency,omitempty"` // the run's own request (Config.CPULatency)
	EndpointCPU   int     `json:"endpoint_cpu"`
	SwitchCPU     int     `json:"switch_cpu"`
}

// PeerInfo describes one peer as it was measured.
type PeerInfo struct {
	Desc string `json:"desc"`
	MTU  int    `json:"mtu"`
	// Offloads of the endpoints' interface and of the switch's ports, as
	// ethtool names them.
	Offloads string `json:"offloads,omitempty"`
	// CPU says what the CPU s/Mpkt figure counts for this peer.
	CPU string `json:"cpu,omitempty"`
}

// Sample is one test against one peer in one rep: its figures by metric
// name (see TestMetrics), the detail behind them, or what went wrong.
type Sample struct {
	Rep     int                `json:"rep"`
	Peer    string             `json:"peer"`
	Test    string             `json:"test"`
	Metrics map[string]float64 `json:"metrics,omitempty"`
	TCP     *TCPResult         `json:"tcp,omitempty"`
	PPS     *PPSResult         `json:"pps,omitempty"`
	NDR     *NDRResult         `json:"ndr,omitempty"`
	RR      *RRResult          `json:"rr,omitempty"`
	Conn    *ConnResult        `json:"conn,omitempty"`
	Error   string             `json:"error,omitempty"`
	// SwitchPorts is the switchyard worker's per-port counters at exit,
	// on the last sample of a peer's rep.
	SwitchPorts json.RawMessage `json:"switch_ports,omitempty"`
}

// TCPResult is one TCP throughput run.
type TCPResult struct {
	Tool        string  `json:"tool"`
	Streams     int     `json:"streams"`
	Gbps        float64 `json:"gbps"`        // as the receiver counted it
	SenderGbps  float64 `json:"sender_gbps"` // as the sender counted it
	Retransmits int64   `json:"retransmits"`
	Seconds     float64 `json:"seconds"`
}

// ConnResult is one run of a conn test: short HTTP/1.0 connections
// (connect, GET, read the whole response, close), Concurrency in flight,
// each from the next address of the client's source pool.
type ConnResult struct {
	// From and To are the client's and the server's endpoint ("A", "B").
	From string `json:"from"`
	To   string `json:"to"`
	// Pool is the client's source pool; Server the address it dialled.
	Pool        string `json:"source_pool"`
	Server      string `json:"server"`
	Concurrency int    `json:"concurrency"`
	// Conns completed (the whole response read); Failed did not (refused,
	// timed out, reset, a short response). FirstError is one of the
	// failures.
	Conns      uint64  `json:"conns"`
	Failed     uint64  `json:"failed"`
	FirstError string  `json:"first_error,omitempty"`
	Seconds    float64 `json:"seconds"`
	PerSec     float64 `json:"conn_per_s"`
	// P50 and P99 are the time of one whole connection, in microseconds.
	P50 float64 `json:"p50_us"`
	P99 float64 `json:"p99_us"`
	// CPUSeconds is the switch's CPU time over the run (see
	// PeerInfo.CPU).
	CPUSeconds float64 `json:"cpu_seconds"`
	// ServerRequests is what the server answered; ServerSources the
	// distinct client addresses it saw, and ServerSourcesInPool how many
	// of those are in Pool: through DNAT, all of the pool (the source is
	// kept); through masquerade, none (the gateway's address).
	ServerRequests      uint64 `json:"server_requests"`
	ServerSources       int    `json:"server_sources"`
	ServerSourcesInPool int    `json:"server_sources_in_pool"`
}

// PPSResult is one run of the frame generator at full speed.
type PPSResult struct {
	Size int `json:"frame_size"` // on the wire, with the FCS
	// RxPPS is the rate of frames arriving at the receivers' eth0
	// (rx_packets), measured over the middle of the run.
	RxPPS float64 `json:"rx_pps"`
	// OfferedPPS is the rate the generator handed to its interface.
	OfferedPPS float64 `json:"offered_pps"`
	Sent       uint64  `json:"sent"`
	Received   uint64  `json:"received_in_window"`
	Window     float64 `json:"window_seconds"`
	// CPUSeconds is the CPU time the switch used in the window (see
	// PeerInfo.CPU), CPUPerMpkt that per million frames received.
	CPUSeconds float64 `json:"cpu_seconds"`
	CPUPerMpkt float64 `json:"cpu_s_per_mpkt"`
}

// NDRResult is one RFC 2544-style search: the trials, in order, and the
// highest offered rate whose loss stayed under the threshold.
type NDRResult struct {
	Size   int     `json:"frame_size"`
	PPS    float64 `json:"pps"`  // 0 when no trial passed
	Loss   float64 `json:"loss"` // of the passing trial
	Trials []Trial `json:"trials"`
}

// Trial is one fixed-rate run of an ndr search.
type Trial struct {
	TargetPPS  float64 `json:"target_pps"`  // 0: as fast as the generator can
	OfferedPPS float64 `json:"offered_pps"` // what it achieved
	Sent       uint64  `json:"sent"`
	Received   uint64  `json:"received"`
	Loss       float64 `json:"loss"`
	Pass       bool    `json:"pass"`
}

// RRResult is one UDP request/response run: round-trip times in
// microseconds.
type RRResult struct {
	Count int     `json:"count"`
	Lost  int     `json:"lost"`
	P50   float64 `json:"p50_us"`
	P90   float64 `json:"p90_us"`
	P99   float64 `json:"p99_us"`
	P999  float64 `json:"p999_us"`
	Min   float64 `json:"min_us"`
	Max   float64 `json:"max_us"`
	Mean  float64 `json:"mean_us"`
}

// Summarize (re)computes Summaries and Ratios from Samples.
func (r *Report) Summarize() {
	r.Summaries, r.Ratios = summarizeSamples(r.Samples, r.Tests, r.Peers)
}

// Summary returns the spread of one metric of one test for peer.
func (r *Report) Summary(test, peer, metric string) (Spread, bool) {
	for _, s := range r.Summaries {
		if s.Test == test && s.Peer == peer && s.Metric == metric {
			return s.Spread, true
		}
	}
	return Spread{}, false
}

// Ratio returns the ratio of peer of to peer to on one metric of a test.
func (r *Report) Ratio(test, metric, of, to string) (Spread, bool) {
	for _, x := range r.Ratios {
		if x.Test == test && x.Metric == metric && x.Of == of && x.To == to {
			return x.Spread, true
		}
	}
	return Spread{}, false
}

// WriteJSON writes the report, every sample included, as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report as one table per test: each peer's medians
// (with the range over the reps when there are several), then the ratios
// between peers, then the notes.
func (r *Report) WriteTable(w io.Writer) error {
	s := r.Settings
	fmt.Fprintf(w, "switchyard bench: %d rep(s), %s per test (TCP %s), %d endpoints; endpoints on CPU %d, switch on CPU %d\n",
		s.Reps, s.Duration, s.TCPDuration, s.Endpoints, s.EndpointCPU, s.SwitchCPU)
	m := r.Machine
	fmt.Fprintf(w, "machine: %d CPUs (%s), kernel %s, %s, TCP congestion control %s",
		m.CPUs, orUnknown(m.CPUModel), orUnknown(m.Kernel), orUnknown(m.GoVersion), orUnknown(m.CongestionControl))
	if m.CPUIdle != "" {
		fmt.Fprintf(w, ", cpuidle %s", m.CPUIdle)
	}
	if m.CPULatency != "" {
		fmt.Fprintf(w, ", CPU wakeup latency bound %s", m.CPULatency)
		if s.CPULatency != "" {
			fmt.Fprint(w, " (held by this run)")
		}
	}
	fmt.Fprintln(w)
	fmt.Fprint(w, "switchyard: ")
	if s.RX != "" { // reports from before the receive paths have none
		fmt.Fprintf(w, "rx %s, ", s.RX)
	}
	fmt.Fprintf(w, "tx %s, busy-poll %s", s.TX, s.BusyPoll)
	if s.RxSteering {
		fmt.Fprint(w, ", rx steering")
	}
	if s.TPacket != "" {
		fmt.Fprintf(w, ", TPACKET_%s", strings.ToUpper(s.TPacket))
	}
	fmt.Fprintln(w)
	if r.Settings.Reps > 1 {
		fmt.Fprintln(w, "figures: median [min-max] over the reps; ratios: median [min-max] of the rep-by-rep ratios")
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	var errNotes []string
	for _, test := range r.Tests {
		fmt.Fprintln(w)
		title := TestTitles[test]
		if (test == TestTCP || test == TestTCP4) && s.TCPTool != "" {
			title += " (" + r.tcpToolUsed() + ")"
		}
		fmt.Fprintln(w, title)
		metrics := TestMetrics[test]
		hdr := []string{""}
		for _, m := range metrics {
			hdr = append(hdr, m.Label)
		}
		fmt.Fprintln(tw, strings.Join(hdr, "\t")+"\t")
		for _, peer := range r.Peers {
			if _, skipped := r.Skipped[peer]; skipped {
				continue
			}
			cols := []string{"  " + peer}
			any := false
			for _, m := range metrics {
				sp, ok := r.Summary(test, peer, m.Name)
				if !ok {
					cols = append(cols, "-")
					continue
				}
				any = true
				cols = append(cols, formatSpread(sp, m))
			}
			if !any && !r.ran(test, peer) {
				continue // not planned for this peer (a quick run's NAT peers)
			}
			if !any {
				cols = []string{"  " + peer, "error (see notes)"}
				errNotes = append(errNotes, fmt.Sprintf("%s: %s: %s", peer, test, r.sampleError(test, peer)))
			}
			fmt.Fprintln(tw, strings.Join(cols, "\t")+"\t")
		}
		r.writeRatios(tw, test, metrics)
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	var notes []string
	for _, p := range r.Peers {
		if why, ok := r.Skipped[p]; ok {
			notes = append(notes, p+": skipped: "+why)
		}
	}
	for _, p := range r.Peers {
		if why, ok := r.Failed[p]; ok {
			notes = append(notes, p+": runs ended early: "+why)
		}
	}
	for _, n := range errNotes {
		if p, _, _ := strings.Cut(n, ":"); r.Failed[p] == "" {
			notes = append(notes, n)
		}
	}
	for _, p := range r.Peers {
		if pi, ok := r.PeerInfo[p]; ok {
			line := fmt.Sprintf("%s: %s; MTU %d", p, pi.Desc, pi.MTU)
			if pi.Offloads != "" {
				line += "; offloads " + pi.Offloads
			}
			if pi.CPU != "" {
				line += "; CPU figures (s/Mpkt, ms/kconn) count " + pi.CPU
			}
			notes = append(notes, line)
		}
	}
	notes = append(notes, r.Notes...)
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, "note: "+n)
		}
	}
	return nil
}

// tcpToolUsed names the TCP tool the samples say was used.
func (r *Report) tcpToolUsed() string {
	for _, s := range r.Samples {
		if s.TCP != nil {
			return s.TCP.Tool
		}
	}
	return r.Settings.TCPTool
}

// ran reports whether peer has a sample of test: one for each planned,
// with an error when it failed.
func (r *Report) ran(test, peer string) bool {
	for _, s := range r.Samples {
		if s.Test == test && s.Peer == peer {
			return true
		}
	}
	return false
}

// sampleError is the first error of peer's samples of test, or why the
// peer's runs ended.
func (r *Report) sampleError(test, peer string) string {
	for _, s := range r.Samples {
		if s.Test == test && s.Peer == peer && s.Error != "" {
			return s.Error
		}
	}
	if why, ok := r.Failed[peer]; ok {
		return why
	}
	return "not run"
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// formatSpread is the median, and the range when there are several
// values.
func formatSpread(sp Spread, m Metric) string {
	f := func(v float64) string { return fmt.Sprintf("%.*f", m.Prec, v*m.Scale) }
	if sp.N < 2 {
		return f(sp.Median)
	}
	return fmt.Sprintf("%s [%s-%s]", f(sp.Median), f(sp.Min), f(sp.Max))
}

// writeRatios writes one row per pair of peers, with the ratio of each
// ratio metric of test in its column.
func (r *Report) writeRatios(tw io.Writer, test string, metrics []Metric) {
	type pair struct{ of, to string }
	var order []pair
	cols := map[pair][]string{}
	for i, m := range metrics {
		for _, x := range r.Ratios {
			if x.Test != test || x.Metric != m.Name {
				continue
			}
			k := pair{x.Of, x.To}
			if _, ok := cols[k]; !ok {
				order = append(order, k)
				cols[k] = slices.Repeat([]string{""}, len(metrics))
			}
			cols[k][i] = formatSpread(x.Spread, Metric{Scale: 1, Prec: 2})
		}
	}
	for _, k := range order {
		fmt.Fprintf(tw, "  %s/%s\t%s\t\n", k.of, k.to, strings.Join(cols[k], "\t"))
	}
}
