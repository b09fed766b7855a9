package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/switchyard-net/switchyard/bench"
)

// newBenchCmd is `switchyard bench`: the kernel bridge and switchyard (and
// Open vSwitch where installed) on the same namespace topology, measured
// side by side in one run.
func newBenchCmd() *cobra.Command {
	var (
		duration time.Duration
		tests    []string
		peers    []string
		tpacket  string
		busyPoll time.Duration
		tx       string
		asJSON   bool
		verbose  bool
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure switchyard against the kernel bridge on a namespace topology",
		Long: `bench builds namespaces A and B, each with a veth to a switch namespace S,
and measures every peer forwarding between them in one run: single-stream TCP
(iperf3), 64-byte frames per second arriving at B from a generator in A, and
UDP request/response latency. Endpoint tools run on CPU 0, the switch
(switchyard, or ovs-vswitchd) on CPU 1. Figures are reported side by side and
as ratios to the kernel bridge, and switchyard's to Open vSwitch's.

The peers are kernel (the kernel bridge), switchyard, and ovs: Open vSwitch's
userspace datapath with its ports over AF_PACKET, run as a private
ovsdb-server and ovs-vswitchd in the switch namespace with their own database
and sockets in a temporary directory (the system's Open vSwitch service is not
used or touched). ovs is a default peer only when ovs-vswitchd is installed
(apt-get install openvswitch-switch).

Needs root, iproute2, taskset and (for the tcp test) iperf3. Everything it
creates is removed at the end, also on error and on SIGINT/SIGTERM.`,
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
			cfg := &bench.Config{
				Duration: duration,
				Tests:    benchSplitList(tests),
				Peers:    benchSplitList(peers),
				TPacket:  tpacket,
				BusyPoll: busyPoll,
				TX:       tx,
			}
			if verbose {
				cfg.Logf = func(format string, args ...any) {
					fmt.Fprintf(cmd.ErrOrStderr(), "bench: "+format+"\n", args...)
				}
			}
			cmd.SilenceUsage = true
			rep, err := bench.Run(ctx, cfg)
			if rep != nil {
				var werr error
				if asJSON {
					werr = rep.WriteJSON(cmd.OutOrStdout())
				} else {
					werr = rep.WriteTable(cmd.OutOrStdout())
				}
				if err == nil {
					err = werr
				}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.DurationVar(&duration, "duration", bench.DefaultDuration, "how long each test runs against each peer")
	f.StringSliceVar(&tests, "tests", bench.AllTests, "tests to run: "+strings.Join(bench.AllTests, ","))
	f.StringSliceVar(&peers, "peers", bench.DefaultPeers, "peers to measure: "+strings.Join(bench.AllPeers, ",")+"; ovs is a default only when installed")
	f.StringVar(&tpacket, "tpacket", "", "RX ring version for switchyard's ports: v2 or v3 (default: v2)")
	f.DurationVar(&busyPoll, "busy-poll", bench.DefaultBusyPoll, "how long switchyard's ports poll their rings before sleeping (0: never poll)")
	f.StringVar(&tx, "tx", "ring", "switchyard's transmit path: ring (TX ring) or mmsg (sendmmsg from the RX views)")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	f.BoolVarP(&verbose, "verbose", "v", false, "print each step on stderr")
	return cmd
}

// newBenchWorkerCmd is the hidden `switchyard bench-worker`: the generator,
// UDP echo pair and switch that `bench` runs as pinned child processes.
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
