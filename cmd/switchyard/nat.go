package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// nat is in the CLI contract; its engine is not built yet. The command
// exists, with the contract's arguments, and fails with one line saying so.
// (capture is in capture.go.)

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
