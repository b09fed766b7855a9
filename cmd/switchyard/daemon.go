package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/switchyard-net/switchyard/cmd/internal/api"
	"github.com/switchyard-net/switchyard/cmd/internal/daemon"
	"github.com/switchyard-net/switchyard/internal/pmqos"
)

func newDaemonCmd(socket *string) *cobra.Command {
	var (
		config, stateDir, logLevel, metrics string
		busyPoll                            time.Duration
		cpuLatency                          optDuration
		rxSteer                             bool
	)
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the switch daemon",
		Long: `daemon runs the switch: it owns the networks and their endpoints, keeps them
in the state dir, and answers the CLI on the unix socket (mode 0660).

On start it re-adopts the endpoints whose links still exist (forwarding
resumes) and cleans up the others. SIGTERM or SIGINT stops it; endpoints stay
and are re-adopted by the next start. --config applies a YAML topology (the
API's schema: networks: [{name, subnets, ..., endpoints: [{netns, ...}],
attachments: [{iface, netns}]}]) after that: missing networks, endpoints and
attachments are created.

--busy-poll has the ring ports poll their rings for that long before they
sleep: lower latency and higher small-frame rates on a CPU the daemon may
keep busy (pin it with taskset), a full CPU spent while traffic flows.

--cpu-latency holds a PM QoS CPU latency request while the daemon runs: no
CPU takes longer than that to wake from idle. With 0s idle CPUs poll instead
of halting, so the endpoints' CPU is woken without an interrupt: on the
bench's VM a UDP round trip through the switch fell from 50 to 11 us with
--busy-poll 200us (38 us with the ports sleeping at once). Idle
CPUs then never sleep (power on bare metal, host CPU time in a VM); the
request ends with the daemon.

--rx-steering has each ring port's interface steer its received frames to the
daemon's CPUs (rps_cpus, put back when the port closes): a TCP sender's
segments stay in order (no spurious retransmits) and the kernel's copy into
the ring moves off the sender's CPU, at an IPI per burst of frames. On the
bench's VM with --cpu-latency 0s, single-stream TCP was 0.87x the kernel
bridge with the defaults and 0.98x with --busy-poll 0 --rx-steering, while
64-byte frames fell from 1200 to 180 kpps.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var lvl zapcore.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return usagef(cmd, "invalid --log-level %q: want debug, info, warn or error", logLevel)
			}
			log, err := newLogger(lvl)
			if err != nil {
				return err
			}
			defer log.Sync()
			if busyPoll < 0 || busyPoll > daemon.MaxBusyPoll {
				return usagef(cmd, "invalid --busy-poll %v: want 0 to %v", busyPoll, daemon.MaxBusyPoll)
			}
			if d := cpuLatency.ptr(); d != nil {
				if *d < 0 || *d > pmqos.Max {
					return usagef(cmd, "invalid --cpu-latency %v: want 0 to %v", *d, pmqos.Max)
				}
				req, err := pmqos.Hold(*d)
				if err != nil {
					return err
				}
				defer req.Close()
				log.Info("holding a CPU latency request", zap.Duration("max", req.Max()))
			}
			cfg := &daemon.Config{StateDir: stateDir, Socket: *socket, Logger: log, BusyPoll: busyPoll, RxSteering: rxSteer}
			if config != "" {
				t, err := daemon.LoadTopology(config)
				if err != nil {
					return err
				}
				cfg.Topology = t
			}
			var mln net.Listener
			if metrics != "" {
				if mln, err = daemon.ListenMetrics(metrics); err != nil {
					return err
				}
			}
			d, err := daemon.New(cfg)
			if err != nil {
				if mln != nil {
					mln.Close()
				}
				return err
			}
			if mln != nil {
				defer d.ServeMetrics(mln)()
			}
			sigs := make(chan os.Signal, 1)
			signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
			defer signal.Stop(sigs)
			go func() {
				s, ok := <-sigs
				if ok {
					log.Info("signal received; stopping", zap.String("signal", s.String()))
					d.Close()
				}
			}()
			err = d.Serve()
			d.Close()
			if err != nil {
				return fmt.Errorf("serving %s: %w", *socket, err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&config, "config", "", "apply this YAML topology at start")
	f.StringVar(&stateDir, "state-dir", api.DefaultStateDir, "where the state files live")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.DurationVar(&busyPoll, "busy-poll", 0, "how long ring ports poll before sleeping, e.g. 200us (0: sleep at once)")
	f.Var(&cpuLatency, "cpu-latency", cpuLatencyUsage)
	f.BoolVar(&rxSteer, "rx-steering", false, "steer each ring port's received frames to the daemon's CPUs (rps_cpus): TCP in order, at a cost in small-frame rate")
	f.StringVar(&metrics, "metrics", "", "serve Prometheus metrics on `ADDR` (host:port), at /metrics")
	return cmd
}

// newLogger returns a JSON logger on stderr at level lvl.
func newLogger(lvl zapcore.Level) (*zap.Logger, error) {
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.Sampling = nil
	zc.EncoderConfig.TimeKey = "time"
	zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	return zc.Build()
}
