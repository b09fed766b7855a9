package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/switchyard-net/switchyard/bench"
)

// newBenchCmd is `switchyard bench`: the kernel bridge, switchyard (ring
// ports and TAP endpoints) and Open vSwitch where installed, each on a
// namespace topology of its own, measured interleaved in one run.
func newBenchCmd() *cobra.Command {
	var (
		duration   time.Duration
		reps       int
		trials     int
		endpoints  int
		quick      bool
		tests      []string
		peers      []string
		tcpTool    string
		tpacket    string
		busyPoll   time.Duration
		rxSteer    bool
		tx, rx     string
		cpuLatency optDuration
		jsonFile   string
		plotFile   string
		verbose    bool
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure switchyard against the kernel bridge and Open vSwitch on namespace topologies",
		Long: `bench measures, in one run, each peer forwarding between endpoint namespaces
A, B (and more with --endpoints), each with a link to a switch namespace S:

  kernel          the kernel bridge over veths
  switchyard      switchyard's learning bridge over AF_PACKET rings on veths
  switchyard-tap  switchyard's learning bridge with TAP endpoints
  ovs             Open vSwitch's userspace datapath, ports over AF_PACKET
  ovs-afxdp       Open vSwitch's userspace datapath, ports over AF_XDP
  nat-kernel      the kernel as a Docker bridge network: bridge, ip_forward,
                  nftables DNAT of published ports and masquerade
  nat-switchyard  switchyard's bridge, gateway and NAT, uplink over a ring

The NAT peers put A outside and B behind a gateway in S that publishes B's
ports on its outside address, where A reaches them: every test runs through
the translation. They are compared with each other, not with the kernel
bridge; nat-kernel is skipped with a note when nft is not installed
(apt-get install nftables).

The ovs peers run a private ovsdb-server and ovs-vswitchd in S with their own
database and sockets in a temporary directory (the system's Open vSwitch is
not used or touched); they are skipped with a note when Open vSwitch is not
installed (apt-get install openvswitch-switch).

Tests: tcp and tcp4 (one and four TCP streams: iperf3 when installed, a
built-in bulk sender otherwise); pps64 and pps1518 (frames arriving at B from
a generator in A at full speed, and the switch's CPU seconds per million);
ndr64 and ndr1518 (an RFC 2544-style binary search for the highest offered
rate with loss under 0.1%); rr (UDP request/response latency, one in flight:
p50, p99, p99.9); conn and conn-out (new TCP connections per second: short
HTTP/1.0 connections, 8 in flight, the client's source rotating over 64
addresses, from A to B and from B to A: through a NAT peer, DNAT and
masquerade). Endpoint tools run on CPU 0, the switch on CPU 1.

Peers are measured in turn, rep after rep (A B C, A B C, ...), each on fresh
namespaces removed after it; the table shows medians and the range over the
reps, and ratios computed rep by rep. A peer that crashes or hangs gets an
error row, its namespaces are removed, and the others finish.

Round-trip times depend on how fast a sleeping CPU wakes: a switch on another
CPU than the endpoints pays for waking theirs twice per round trip. The header
shows the cpuidle driver and the CPU wakeup latency bound in force;
--cpu-latency 0s holds one for the whole run (every peer measured under it),
as a latency-tuned host would (tuned's latency profiles, the daemon's own
--cpu-latency).

Needs root, iproute2 and taskset. Everything it creates is removed at the
end, also on error and on SIGINT/SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			if busyPoll == 0 {
				busyPoll = -1
			}
			if plotFile != "" && !strings.HasSuffix(plotFile, ".svg") && !strings.HasSuffix(plotFile, ".png") {
				return fmt.Errorf("--plot %s: want a .svg or .png file", plotFile)
			}
			cfg := &bench.Config{
				Duration:   duration,
				Reps:       reps,
				Trials:     trials,
				Endpoints:  endpoints,
				Quick:      quick,
				Tests:      benchSplitList(tests),
				Peers:      benchSplitList(peers),
				TCPTool:    tcpTool,
				TPacket:    tpacket,
				BusyPoll:   busyPoll,
				RxSteering: rxSteer,
				TX:         tx,
				RX:         rx,
				CPULatency: cpuLatency.ptr(),
			}
			if !cmd.Flags().Changed("peers") {
				cfg.Peers = nil
			}
			if !cmd.Flags().Changed("tests") {
				cfg.Tests = nil
			}
			stderr := cmd.ErrOrStderr()
			if verbose {
				cfg.Logf = func(format string, args ...any) {
					fmt.Fprintf(stderr, "bench: "+format+"\n", args...)
				}
			} else if f, ok := stderr.(*os.File); ok && bench.IsTerminal(f) {
				cfg.Progress = bench.ProgressBar(f)
			}
			cmd.SilenceUsage = true
			rep, err := bench.Run(ctx, cfg)
			if rep == nil {
				return err
			}
			var errs []error
			if err != nil {
				errs = append(errs, err)
			}
			if jsonFile == "-" {
				errs = append(errs, rep.WriteJSON(cmd.OutOrStdout()))
			} else {
				errs = append(errs, rep.WriteTable(cmd.OutOrStdout()))
			}
			if jsonFile != "" && jsonFile != "-" {
				errs = append(errs, writeJSONFile(rep, jsonFile))
			}
			if plotFile != "" {
				errs = append(errs, rep.WritePlot(plotFile))
			}
			return errors.Join(errs...)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&duration, "duration", 0, "how long each test (and each ndr trial) runs against each peer (default 5s, 300ms with --quick)")
	f.IntVar(&reps, "reps", 0, "how many times every peer is measured, interleaved (default 3, 1 with --quick)")
	f.IntVar(&trials, "trials", 0, "most trials of an ndr search after the first (default 7, 3 with --quick)")
	f.IntVar(&endpoints, "endpoints", bench.DefaultEndpoints, "endpoint namespaces on the switch (2-16); the generator in the first sends to all others")
	f.BoolVar(&quick, "quick", false, "a small run: short tests, one rep, few trials, the NAT peers only tcp, conn and conn-out (under a minute)")
	f.StringSliceVar(&tests, "tests", bench.AllTests, "tests to run: "+strings.Join(bench.AllTests, ","))
	f.StringSliceVar(&peers, "peers", bench.DefaultPeers, "peers to measure: "+strings.Join(bench.AllPeers, ",")+"; the ovs peers are defaults only when installed, nat-kernel needs nft")
	f.StringVar(&tcpTool, "tcp", bench.TCPAuto, "what measures TCP: auto (iperf3 when installed), iperf3 or builtin")
	f.StringVar(&tpacket, "tpacket", "", "RX ring version for switchyard's ports: v2 or v3 (default: v2)")
	f.BoolVar(&rxSteer, "rx-steering", false, "have switchyard's ring ports steer each flow's frames to the switch's CPU (rps_cpus): TCP without reordering, at a cost in small-frame rate")
	f.DurationVar(&busyPoll, "busy-poll", bench.DefaultBusyPoll, "how long switchyard's ports poll their rings before sleeping (0: never poll)")
	f.StringVar(&tx, "tx", "mmsg", "switchyard's transmit path: mmsg (sendmmsg from the RX views) or ring (TX ring: one more copy on veths)")
	f.StringVar(&rx, "rx", "split", "switchyard's receive path: split (frames up to the MTU into the RX ring, longer ones by recvmmsg: no copy on the sender's CPU), ring (all into the RX ring) or mmsg (all by recvmmsg)")
	f.Var(&cpuLatency, "cpu-latency", cpuLatencyUsage+" (every peer is measured under it)")
	f.StringVar(&jsonFile, "json", "", "write the report with every sample as JSON to this file (- for stdout, instead of the table)")
	f.StringVar(&plotFile, "plot", "", "draw the figures to this .svg or .png file")
	f.BoolVarP(&verbose, "verbose", "v", false, "print each step on stderr (instead of the progress bar)")
	return cmd
}

// writeJSONFile writes the report to path.
func writeJSONFile(rep *bench.Report, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--json: %w", err)
	}
	werr := rep.WriteJSON(f)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("--json %s: %w", path, werr)
	}
	return nil
}

// newBenchWorkerCmd is the hidden `switchyard bench-worker`: the generator,
// UDP echo pair, TCP bulk pair and switch that `bench` runs as pinned
// child processes.
func newBenchWorkerCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "bench-worker WORKER [flags]",
		Short:              "A child process of switchyard bench (internal)",
		Hidden:             true,
		DisableFlagParsing: true,
		SilenceUsage:       true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return bench.Worker(args, cmd.OutOrStdout())
		},
	}
}

// benchSplitList trims the entries of a flag list and drops empty ones.
func benchSplitList(in []string) []string {
	var out []string
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
