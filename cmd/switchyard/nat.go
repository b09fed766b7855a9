package main

import (
	"errors"
	"time"

	"github.com/spf13/cobra"
)

// nat and capture are in the CLI contract; their engines are not built yet.
// The commands exist, with the contract's arguments and flags, and fail
// with one line saying so.

func newNATCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "nat NAME",
		Short: "Show a network's connection table (not supported yet)",
		Long: `nat lists the connections a network's NAT is tracking: protocol, the inside
and outside addresses and ports, state and age.

Not supported yet: connection tracking arrives with uplinks and published
ports (network create --uplink, network connect --publish).`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("nat: not supported yet (connection tracking arrives with uplinks and published ports)")
		},
	}
}

func newCaptureCmd() *cobra.Command {
	var (
		endpoint, file, filter string
		count                  int
		duration               time.Duration
	)
	cmd := &cobra.Command{
		Use:   "capture NAME",
		Short: "Capture a network's frames to pcapng (not supported yet)",
		Long: `capture mirrors the frames a network's switch forwards (or only those of one
endpoint's port) to a pcapng file or stdout, optionally filtered, until
-c frames or --duration have passed or it is interrupted.

Not supported yet: capture arrives with the switch's mirror port.`,
		Example: `  switchyard capture lan --endpoint ns1 -w lan.pcapng -c 100`,
		Args:    exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("capture: not supported yet (capture arrives with the switch's mirror port)")
		},
	}
	f := cmd.Flags()
	f.StringVar(&endpoint, "endpoint", "", "capture only the port of the endpoint of namespace `NETNS`")
	f.StringVarP(&file, "write", "w", "", "write pcapng to `FILE` (default: stdout)")
	f.StringVarP(&filter, "filter", "f", "", "capture only frames matching the BPF filter expression `FILTER`")
	f.IntVarP(&count, "count", "c", 0, "stop after `N` frames (default: no limit)")
	f.DurationVar(&duration, "duration", 0, "stop after `D`, a duration like 10s (default: no limit)")
	return cmd
}
