package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func newNATCmd(client clientFunc) *cobra.Command {
	var (
		max    int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "nat NAME",
		Short: "Show a network's connection table",
		Long: `nat lists the flows a network's NAT tracks: protocol, kind (masquerade,
published, hairpin), the first packet as it arrived and as it left, state,
time left, packets and bytes; then the published ports and the counters,
drops by reason among them.`,
		Example: `  switchyard nat web
  switchyard nat web --json --max 100000`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if max < 1 {
				return usagef(cmd, "--max %d: want a positive number", max)
			}
			t, err := client().NAT(cmd.Context(), args[0], max)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(w, t)
			}
			tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "PROTO\tKIND\tORIGINAL\tTRANSLATED\tSTATE\tTIMEOUT\tPACKETS\tBYTES")
			for _, e := range t.Entries {
				fmt.Fprintf(tw, "%s\t%s\t%s -> %s\t%s -> %s\t%s\t%s\t%d\t%d\n", e.Proto, e.Kind, e.OrigSrc, e.OrigDst,
					e.NewSrc, e.NewDst, e.State, time.Duration(e.TimeoutSec*float64(time.Second)), e.Packets, e.Bytes)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			more := ""
			if t.Truncated {
				more = fmt.Sprintf(" (first %d listed)", len(t.Entries))
			}
			fmt.Fprintf(w, "flows %d of %d max%s; created %d, expired %d, evicted %d\n", t.Flows, t.MaxFlows, more, t.Created, t.Expired, t.Evicted)
			for _, m := range t.Mappings {
				fmt.Fprintf(w, "published %s\n", m)
			}
			if len(t.Drops) > 0 {
				keys := slices.Sorted(maps.Keys(t.Drops))
				parts := make([]string, 0, len(keys))
				for _, k := range keys {
					parts = append(parts, fmt.Sprintf("%s %d", k, t.Drops[k]))
				}
				fmt.Fprintf(w, "drops: %s\n", strings.Join(parts, ", "))
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&max, "max", 1000, "list at most this many flows")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the table as JSON")
	return cmd
}
