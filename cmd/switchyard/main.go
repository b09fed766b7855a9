// Command switchyard is the switchyard daemon and its command line client:
// `switchyard daemon` owns networks and endpoints, the other subcommands
// talk to it over its unix socket, as `docker network` does with dockerd.
//
// Errors are one line on stderr, "switchyard: <message>"; the exit status
// is 1 for errors and 2 for usage errors (a bad flag or argument).
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/switchyard-net/switchyard/cmd/internal/api"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// usageError is a mistake in how a command was called.
type usageError struct {
	msg  string
	cmd  *cobra.Command
	hint bool
}

func (e *usageError) Error() string { return e.msg }

func usagef(cmd *cobra.Command, format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...), cmd: cmd, hint: true}
}

// run executes the command line args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		msg := ue.msg
		c := ue.cmd
		if c == nil {
			c = cmd
		}
		if ue.hint && c != nil {
			msg += fmt.Sprintf("; see '%s --help'", c.CommandPath())
		}
		fmt.Fprintf(stderr, "switchyard: %s\n", oneLine(msg))
		return exitUsage
	}
	if cmd != nil && isCobraUsage(err) {
		fmt.Fprintf(stderr, "switchyard: %s; see '%s --help'\n", oneLine(err.Error()), cmd.CommandPath())
		return exitUsage
	}
	fmt.Fprintf(stderr, "switchyard: %s\n", oneLine(err.Error()))
	return exitError
}

// isCobraUsage recognises the usage errors cobra makes itself.
func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires at least", "invalid argument", "flag needs an argument", "required flag"} {
		if strings.HasPrefix(s, p) || strings.Contains(s, " "+p) {
			return true
		}
	}
	return false
}

// oneLine folds a message onto one line.
// writeJSON writes v to w as indented JSON and a newline.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, "\r", " ")
	return strings.ReplaceAll(s, "\n", "; ")
}

// extraCommands are added to the root command by other files of the
// package (demo, nat, capture, ...) from their init functions.
var extraCommands []func() *cobra.Command

func newRootCmd() *cobra.Command {
	var socket string
	root := &cobra.Command{
		Use:   "switchyard",
		Short: "A userspace virtual switch for Linux: daemon and CLI",
		Long: `switchyard is a userspace virtual switch. 'switchyard daemon' owns networks
(learning bridges with a gateway and an IPAM) and endpoints (veth pairs or TAP
devices wired into network namespaces); the other commands talk to it over its
unix socket, the way 'docker network' talks to dockerd.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			return unknownCommand(cmd, args[0])
		},
	}
	def := api.DefaultSocket
	if s := os.Getenv("SWITCHYARD_SOCKET"); s != "" {
		def = s
	}
	root.PersistentFlags().StringVar(&socket, "socket", def, "the daemon's unix socket (env SWITCHYARD_SOCKET)")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &usageError{msg: err.Error(), cmd: cmd, hint: true}
	})
	client := func() *api.Client { return api.NewClient(socket) }
	root.AddCommand(
		newDaemonCmd(&socket),
		newNetworkCmd(client),
		newPortCmd(client),
		newFDBCmd(client),
		newNATCmd(client),
		newCaptureCmd(),
		newBenchCmd(),
		newBenchWorkerCmd(),
	)
	for _, f := range extraCommands {
		root.AddCommand(f())
	}
	setSilent(root)
	return root
}

// setSilent makes every command leave errors and usage to run.
func setSilent(c *cobra.Command) {
	c.SilenceErrors = true
	c.SilenceUsage = true
	for _, s := range c.Commands() {
		setSilent(s)
	}
}

func unknownCommand(cmd *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, cmd.CommandPath())
	if s := cmd.SuggestionsFor(name); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", s[0])
	}
	return usagef(cmd, "%s", msg)
}

// groupCmd is a command that only holds subcommands.
func groupCmd(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef(cmd, "%s needs a subcommand", cmd.CommandPath())
			}
			return unknownCommand(cmd, args[0])
		},
	}
	c.AddCommand(subs...)
	return c
}

// exactArgs checks the number of positional arguments, naming them.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return usagef(cmd, "%s takes %d argument(s) (%s), got %d", cmd.CommandPath(), len(names), strings.Join(names, " "), len(args))
		}
		for i, a := range args {
			if a == "" {
				return usagef(cmd, "%s is empty", names[i])
			}
		}
		return nil
	}
}

// minArgs checks there is at least one positional argument.
func minArgs(name string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return usagef(cmd, "%s needs at least one %s", cmd.CommandPath(), name)
		}
		return nil
	}
}
