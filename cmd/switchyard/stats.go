package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/switchyard-net/switchyard/cmd/internal/api"
)

func init() {
	extraCommands = append(extraCommands, newStatsCmd, newTraceCmd)
}

func socketClient(cmd *cobra.Command) *api.Client {
	s, _ := cmd.Flags().GetString("socket")
	return api.NewClient(s)
}

func newStatsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "stats NAME",
		Short: "Show a network's per-port counters, drops by reason and table sizes",
		Long: `stats shows what a network's switch has counted: per port the frames and bytes
received and sent, the flood copies among them, and the frames dropped by
reason (on the ingress port for decisions, on the egress port for transmit
failures); then the size of each table (the MAC table; NAT's connection
table once it exists) and the running captures. The same figures are
exported for Prometheus by 'switchyard daemon --metrics ADDR'.`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := socketClient(cmd).Stats(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(out, st)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PORT\tKIND\tRX\tRX BYTES\tTX\tTX BYTES\tFLOODED\tDROPS")
			for _, p := range st.Ports {
				drops := "0"
				if len(p.Drops) > 0 {
					var ds []string
					for _, r := range slices.Sorted(maps.Keys(p.Drops)) {
						ds = append(ds, fmt.Sprintf("%s=%d", r, p.Drops[r]))
					}
					drops = strings.Join(ds, " ")
				}
				kind := p.Kind
				if kind == "" {
					kind = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", p.Name, kind, p.RxFrames, p.RxBytes, p.TxFrames, p.TxBytes, p.TxFlooded, drops)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			var tables []string
			for _, t := range slices.Sorted(maps.Keys(st.Tables)) {
				tables = append(tables, fmt.Sprintf("%s %d", t, st.Tables[t]))
			}
			fmt.Fprintf(out, "\ntables    %s entries\n", strings.Join(tables, ", "))
			fmt.Fprintf(out, "mac       %d learned, %d moves, %d limit hits, %d aged\n", st.MACLearned, st.MACMoves, st.MACLimitHits, st.MACAged)
			fmt.Fprintf(out, "captures  %d running\n", st.Captures)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newTraceCmd() *cobra.Command {
	var from string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "trace NAME --from NETNS FRAME-SPEC...",
		Short: "Show what the switch would do with a frame, without sending it",
		Long: `trace builds a synthetic frame as the endpoint of namespace NETNS would send
it and runs it through the network's decision path without sending it,
learning from it or counting it. It prints each step: how the sender
addresses it (on-link endpoint, gateway, unanswered ARP), what the parser
sees, what the MAC table learns and finds, the flood set, the output port,
gateway handling or the drop reason. On a network with an uplink, a frame
for the gateway goes on through the NAT: the rule it meets (an existing
flow, masquerade, a published port, hairpin, or the drop and why), the
headers it leaves with, and the next hop or the endpoint it reaches.
--from uplink traces a frame arriving from the uplink's segment instead
(e.g. a client reaching a published port).

Frame specs:
  tcp SRC:PORT > DST:PORT [syn|ack|fin|rst|psh]...
  udp SRC:PORT > DST:PORT
  icmp SRC > DST                 an echo request (IPv4 or IPv6)
  arp who-has DST [tell SRC]`,
		Example: `  switchyard trace lan --from red tcp 198.18.0.2:40000 '>' 198.18.9.9:80
  switchyard trace web --from uplink tcp 203.0.113.7:50000 '>' 192.0.2.10:8080`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usagef(cmd, "%s takes NAME and a frame spec", cmd.CommandPath())
			}
			if from == "" {
				return usagef(cmd, "%s needs --from NETNS, the sending endpoint", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			t, err := socketClient(cmd).Trace(cmd.Context(), args[0], api.TraceRequest{From: from, Spec: strings.Join(args[1:], " ")})
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), t)
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), t.Text())
			return err
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the sending endpoint's namespace `NETNS` (or a port name)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
