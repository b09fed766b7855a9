package main

import (
	"context"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/switchyard-net/switchyard/cmd/internal/demo"
)

func init() { extraCommands = append(extraCommands, newDemoCmd) }

func newDemoCmd() *cobra.Command {
	var (
		keep, verbose bool
		subnet        string
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the embedded default topology end to end (needs root)",
		Long: `demo runs a switchyard daemon inside this process and shows it at work:
it creates three network namespaces (sydemo-web-XXXX, sydemo-client-XXXX,
sydemo-peer-XXXX) and a bridge network "demo" with a gateway, connects them
(two veth endpoints and one TAP endpoint), serves HTTP in the web namespace
and fetches it from the client namespace through the userspace switch, pings
the gateway and the peer, and prints the addresses, the MAC table and the
per-port counters. Then it removes everything: namespaces, links, the
daemon's temporary state dir. Ctrl-C at any moment cleans up too.

Nothing touches the namespace you run it from: no address is added to its
interfaces and no traffic leaves from it.

--keep leaves the topology up until Ctrl-C or SIGTERM, with the daemon
answering on a socket in its state dir (printed), so you can look around with
'ip netns exec' and 'switchyard --socket SOCKET fdb demo'.`,
		Example: `  sudo switchyard demo
  sudo switchyard demo --keep`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := netip.ParsePrefix(subnet)
			if err != nil || !p.Addr().Is4() || p != p.Masked() {
				return usagef(cmd, "invalid --subnet %q: want an IPv4 subnet such as %s", subnet, demo.DefaultSubnet)
			}
			if err := demo.CheckSubnet(p); err != nil {
				return usagef(cmd, "invalid --subnet: %v", err)
			}
			cfg := &demo.Config{Subnet: p, Keep: keep, Self: selfName()}
			if verbose {
				zc := zap.NewDevelopmentConfig()
				zc.Level = zap.NewAtomicLevelAt(zapcore.DebugLevel)
				zc.OutputPaths = []string{"stderr"}
				log, err := zc.Build()
				if err != nil {
					return err
				}
				defer log.Sync()
				cfg.Logger = log
			}
			// A reader that goes away (`switchyard demo | head`) must not
			// kill the process before it cleans up: with SIGPIPE ignored,
			// writes fail with EPIPE instead.
			signal.Ignore(syscall.SIGPIPE)
			// The context ends on the first SIGINT or SIGTERM; the
			// handler stays installed until cleanup is over, so a second
			// Ctrl-C does not cut it short.
			parent := cmd.Context()
			if parent == nil {
				parent = context.Background()
			}
			ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
			defer stop()
			_, err = demo.Run(ctx, cmd.OutOrStdout(), cfg)
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVar(&keep, "keep", false, "leave everything up until Ctrl-C/SIGTERM, with the daemon on a socket")
	f.StringVar(&subnet, "subnet", demo.DefaultSubnet.String(), "the demo network's IPv4 subnet")
	f.BoolVarP(&verbose, "verbose", "v", false, "log the daemon's work to stderr")
	return cmd
}

// selfName is how the --keep hints call this binary: "switchyard", or
// "go run ./cmd/switchyard" when it runs from go run's build cache.
func selfName() string {
	exe := os.Args[0]
	if strings.Contains(exe, "go-build") {
		return "go run ./cmd/switchyard"
	}
	if b := filepath.Base(exe); b != "" && b != "." {
		return b
	}
	return "switchyard"
}
