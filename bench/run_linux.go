package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-net/switchyard/internal/pmqos"
	"github.com/switchyard-net/switchyard/netns"
)

const (
	// startTimeout bounds how long a worker may take to say it is ready.
	startTimeout = 10 * time.Second
	// slack is added to a run's own duration before it is killed.
	slack = 15 * time.Second
	// healthTimeout bounds the round trip that checks a peer still
	// forwards after each test.
	healthTimeout = 2 * time.Second
)

// Run measures every configured peer with every configured test, rep after
// rep, and returns the report. Each rep measures the peers in turn (A B C,
// A B C, ...): a peer gets a topology of fresh namespaces, is started, runs
// every test, and is stopped and its namespaces removed before the next
// peer starts, so no peer idles (or polls) beside another's measurement.
//
// A test that fails is a sample with an error. A peer that crashes (its
// process exits) or hangs (no round trip from A to B within healthTimeout
// after a test) is stopped, its namespaces removed, and its runs end there
// with an error recorded in Report.Failed; the other peers go on. A peer
// whose programs are missing is skipped with a note. Run itself fails when
// it cannot run at all (not root, a tool missing). When ctx ends it stops
// its children, removes its namespaces and returns what it has with ctx's
// error.
func Run(ctx context.Context, cfg *Config) (_ *Report, err error) {
	r, err := cfg.resolve(runtime.NumCPU())
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := preflight(r); err != nil {
		return nil, err
	}
	var cpuLatency string
	if d := r.cpuLatency; d != nil {
		req, err := pmqos.Hold(*d)
		if err != nil {
			return nil, fmt.Errorf("bench: --cpu-latency: %w", err)
		}
		defer req.Close()
		cpuLatency = req.Max().String()
	}
	if r.tcpTool == TCPAuto {
		r.tcpTool = TCPBuiltin
		if _, err := exec.LookPath("iperf3"); err == nil {
			r.tcpTool = TCPIperf3
		}
	}
	rep := &Report{
		Machine: machine(),
		Settings: Settings{Duration: r.duration.String(), TCPDuration: r.tcpDuration.String(), Reps: r.reps,
			Trials: r.trials, LossThreshold: LossThreshold, Endpoints: r.eps, Quick: r.quick, TCPTool: r.tcpTool,
			TPacket: r.tpacket, BusyPoll: r.busyPoll.String(), RxSteering: r.rxSteer, TX: r.tx, RX: r.rx, CPULatency: cpuLatency, EndpointCPU: r.epCPU, SwitchCPU: r.swCPU},
		Tests: r.tests, Peers: r.peers,
		PeerInfo: map[string]PeerInfo{}, Failed: map[string]string{}, Skipped: map[string]string{},
	}
	if r.epCPU == r.swCPU {
		rep.Notes = append(rep.Notes, fmt.Sprintf("endpoints and switch share CPU %d", r.epCPU))
	}
	if r.tcpTool == TCPBuiltin && (slices.Contains(r.tests, TestTCP) || slices.Contains(r.tests, TestTCP4)) {
		rep.Notes = append(rep.Notes, "tcp: iperf3 is not installed (or not chosen): the built-in bulk sender measured TCP, "+
			"its figures are not comparable to iperf3's")
	}
	if slices.ContainsFunc(r.peers, isNATPeer) {
		rep.Notes = append(rep.Notes, "NAT peers: A outside, B behind a gateway in S that publishes B's ports on its outside "+
			"address (DNAT) and masquerades the inside; A reaches B at that address. Their topology is routed and translated, "+
			"so they are compared with each other (nat-switchyard/nat-kernel), not with the kernel bridge")
		if r.quick && !r.testsGiven {
			rep.Notes = append(rep.Notes, "quick: the NAT peers ran only "+strings.Join(quickNATTests, ", "))
		}
	}
	b := &bencher{r: r}
	var peers []peer
	for _, name := range r.peers {
		p := newPeer(name)
		if err := p.missing(); err != nil {
			rep.Skipped[name] = err.Error()
			continue
		}
		peers = append(peers, p)
	}
	total := 0
	for _, p := range peers {
		total += r.reps * len(r.testsFor(p.name()))
	}
	done := 0
	for rp := range r.reps {
		for _, p := range peers {
			if ctx.Err() != nil {
				break
			}
			if _, failed := rep.Failed[p.name()]; failed {
				done += len(r.testsFor(p.name()))
				continue
			}
			b.runPeer(ctx, p, rp, rep, func(test string, finished bool) {
				if finished {
					done++
				}
				r.progress(Progress{Done: done, Total: total, Rep: rp + 1, Reps: r.reps, Peer: p.name(), Test: test})
			})
		}
	}
	r.progress(Progress{Done: done, Total: total, Rep: r.reps, Reps: r.reps})
	if slices.Contains(r.tests, TestRR) && ctx.Err() == nil {
		if f, ferr := b.rrFloor(ctx); ferr != nil {
			rep.Notes = append(rep.Notes, "cross-CPU floor: not measured: "+ferr.Error())
		} else {
			rep.RRFloor = f
			why := "two wakeups of a CPU that sleeps between requests, which a switch on another CPU than the endpoints " +
				"pays for the endpoints' CPU too (a busy-polling switch keeps its own CPU awake; --cpu-latency 0s keeps idle CPUs polling)"
			if rep.Machine.CPULatency == "0s" {
				why = "idle CPUs poll (CPU wakeup latency bound 0s), so this is the cost of crossing CPUs itself"
			}
			rep.Notes = append(rep.Notes, fmt.Sprintf("cross-CPU floor: the same round trip over a direct veth A-B with no switch, "+
				"server on CPU %d: p50 %.1f us, p99 %.1f us: %s", r.swCPU, f.P50, f.P99, why))
		}
	}
	rep.Notes = append(rep.Notes, b.notes...)
	if len(rep.Failed) == 0 {
		rep.Failed = nil
	}
	if len(rep.Skipped) == 0 {
		rep.Skipped = nil
	}
	rep.Summarize()
	if ctx.Err() != nil {
		return rep, fmt.Errorf("bench: interrupted: %w", ctx.Err())
	}
	return rep, nil
}

// preflight checks privileges and tools, with one line that says what to
// do.
func preflight(r resolved) error {
	if os.Geteuid() != 0 {
		return errors.New("bench: needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) to build network namespaces: run it with sudo")
	}
	tools := []struct{ bin, hint string }{
		{"ip", "apt-get install iproute2"},
		{"taskset", "apt-get install util-linux"},
	}
	if r.tcpTool == TCPIperf3 && (slices.Contains(r.tests, TestTCP) || slices.Contains(r.tests, TestTCP4)) {
		tools = append(tools, struct{ bin, hint string }{"iperf3", "apt-get install iperf3, or measure TCP with --tcp builtin"})
	}
	for _, t := range tools {
		if _, err := exec.LookPath(t.bin); err != nil {
			return fmt.Errorf("bench: %s not found in PATH: %s", t.bin, t.hint)
		}
	}
	return nil
}

type bencher struct {
	r     resolved
	notes []string // for the report, from the peers
}

// testHookAfterTest, when set, is called after each test of each peer
// with the PIDs of the peer's processes; a test injects failures with it.
var testHookAfterTest func(peer, test string, rep int, pids []int)

// runPeer brings p up for rep rp, runs every test, checks after each that
// the peer still forwards, and takes it down. Samples, and the peer's
// failure if any, go into rep. progress is called before each test and
// after it.
func (b *bencher) runPeer(ctx context.Context, p peer, rp int, rep *Report, progress func(test string, finished bool)) {
	name := p.name()
	tests := b.r.testsFor(name)
	if len(tests) == 0 {
		return
	}
	fail := func(from int, why string) {
		rep.Failed[name] = why
		for _, t := range tests[from:] {
			rep.Samples = append(rep.Samples, Sample{Rep: rp, Peer: name, Test: t, Error: why})
			progress(t, true)
		}
	}
	b.r.logf("%s: rep %d: up", name, rp+1)
	progress(tests[0], false)
	in, err := p.up(ctx, b)
	if err != nil {
		if ctx.Err() == nil {
			fail(0, "setup: "+err.Error())
		}
		return
	}
	in.peer = name
	info := in.info
	info.MTU, _ = linkMTU(in.client().Netns, epIfName)
	info.Offloads = "endpoints' eth0: " + offloads(in.client().Netns, epIfName)
	if hp := in.topo.hostPorts(); len(hp) > 0 {
		info.Offloads += "; switch's " + hp[0] + ": " + offloads(in.topo.S, hp[0])
	}
	rep.PeerInfo[name] = info
	if rep.Machine.CongestionControl == "" {
		rep.Machine.CongestionControl = congestionControl(in.client().Netns)
	}
	defer func() {
		b.r.logf("%s: rep %d: down", name, rp+1)
		if err := in.close(); err != nil {
			if _, failed := rep.Failed[name]; !failed {
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s: rep %d: teardown: %v", name, rp+1, err))
			}
		}
		if in.ports != nil && len(rep.Samples) > 0 {
			if last := &rep.Samples[len(rep.Samples)-1]; last.Peer == name {
				last.SwitchPorts = in.ports()
			}
		}
	}()
	if err := b.checkPath(ctx, in, 5*time.Second); err != nil {
		if ctx.Err() == nil {
			fail(0, "setup: "+err.Error())
		}
		return
	}
	for i, test := range tests {
		if ctx.Err() != nil {
			return
		}
		progress(test, false)
		b.r.logf("%s: rep %d: %s", name, rp+1, test)
		s := b.runTest(ctx, in, test)
		s.Rep, s.Peer, s.Test = rp, name, test
		if testHookAfterTest != nil {
			var pids []int
			for _, p := range in.procs {
				pids = append(pids, p.cmd.Process.Pid)
			}
			testHookAfterTest(name, test, rp, pids)
		}
		if ctx.Err() != nil {
			if s.Error == "" {
				rep.Samples = append(rep.Samples, s)
			}
			return
		}
		// A crash or a hang ends the peer's runs: this sample is
		// suspect, and the later ones are not run.
		if why := b.health(ctx, in, test); why != "" {
			b.r.logf("%s: rep %d: %s", name, rp+1, why)
			s.Metrics, s.TCP, s.PPS, s.NDR, s.RR, s.Conn = nil, nil, nil, nil, nil, nil
			s.Error = why
			rep.Samples = append(rep.Samples, s)
			progress(test, true)
			fail(i+1, why)
			return
		}
		if s.Error != "" {
			b.r.logf("%s: rep %d: %s: %s", name, rp+1, test, s.Error)
		}
		if s.NDR != nil && s.NDR.PPS == 0 && len(s.NDR.Trials) > 0 {
			low := s.NDR.Trials[len(s.NDR.Trials)-1]
			for _, t := range s.NDR.Trials {
				if t.OfferedPPS < low.OfferedPPS {
					low = t
				}
			}
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s: rep %d: %s: no trial passed; the lowest, %.0f kpps offered, lost %.2f%%",
				name, rp+1, test, low.OfferedPPS/1e3, low.Loss*100))
		}
		rep.Samples = append(rep.Samples, s)
		progress(test, true)
	}
}

// health says why in is no longer usable after test, or "".
func (b *bencher) health(ctx context.Context, in *instance, test string) string {
	if err := in.crashed(); err != nil {
		return fmt.Sprintf("crashed during the %s test: %v", test, err)
	}
	if err := b.checkPath(ctx, in, healthTimeout); err != nil && ctx.Err() == nil {
		if cerr := in.crashed(); cerr != nil {
			return fmt.Sprintf("crashed during the %s test: %v", test, cerr)
		}
		return fmt.Sprintf("hung after the %s test: no UDP round trip from A to B within %v", test, healthTimeout)
	}
	return ""
}

// runTest runs one test against in.
func (b *bencher) runTest(ctx context.Context, in *instance, test string) Sample {
	var s Sample
	var err error
	switch test {
	case TestTCP, TestTCP4:
		streams := 1
		if test == TestTCP4 {
			streams = 4
		}
		s.TCP, err = b.tcp(ctx, in, streams)
		if s.TCP != nil {
			s.Metrics = map[string]float64{MetricGbps: s.TCP.Gbps, MetricRetrans: float64(s.TCP.Retransmits)}
		}
	case TestPPS64, TestPPS1518:
		s.PPS, err = b.pps(ctx, in, testFrameSize(test))
		if s.PPS != nil {
			s.Metrics = map[string]float64{MetricRxPPS: s.PPS.RxPPS, MetricOfferedPPS: s.PPS.OfferedPPS,
				MetricPPSGbps: wireGbps(s.PPS.RxPPS, s.PPS.Size)}
			if s.PPS.CPUPerMpkt > 0 {
				s.Metrics[MetricCPUPerMpkt] = s.PPS.CPUPerMpkt
			}
		}
	case TestNDR64, TestNDR1518:
		s.NDR, err = b.ndr(ctx, in, testFrameSize(test))
		if s.NDR != nil {
			s.Metrics = map[string]float64{MetricNDRPPS: s.NDR.PPS, MetricNDRGbps: wireGbps(s.NDR.PPS, s.NDR.Size),
				MetricNDRLoss: s.NDR.Loss, MetricNDRTrials: float64(len(s.NDR.Trials))}
		}
	case TestRR:
		s.RR, err = b.rr(ctx, in)
		if s.RR != nil && s.RR.Count > 0 {
			s.Metrics = map[string]float64{MetricP50: s.RR.P50, MetricP99: s.RR.P99, MetricP999: s.RR.P999,
				MetricRRCount: float64(s.RR.Count), MetricRRLost: float64(s.RR.Lost)}
		}
	case TestConn, TestConnOut:
		s.Conn, err = b.conn(ctx, in, test == TestConnOut)
		if s.Conn != nil {
			s.Metrics = map[string]float64{MetricConnPS: s.Conn.PerSec, MetricConnErrors: float64(s.Conn.Failed)}
			if s.Conn.Conns > 0 {
				s.Metrics[MetricConnP50], s.Metrics[MetricConnP99] = s.Conn.P50, s.Conn.P99
				if s.Conn.CPUSeconds > 0 {
					s.Metrics[MetricConnCPU] = s.Conn.CPUSeconds * 1e3 / (float64(s.Conn.Conns) / 1e3)
				}
			}
		}
	default:
		err = fmt.Errorf("bench: test %q not supported", test)
	}
	if err != nil {
		s.Error = err.Error()
		s.Metrics = nil
	}
	return s
}

// wireGbps is the bit rate of pps frames of size bytes (with FCS) on an
// Ethernet wire, preamble and gap included.
func wireGbps(pps float64, size int) float64 {
	return pps * float64(size+wireOverhead) * 8 / 1e9
}

// pinned prefixes argv with taskset for cpu, run inside namespace ns when
// ns is not empty.
func pinned(ns string, cpu int, argv ...string) []string {
	out := []string{}
	if ns != "" {
		out = append(out, "ip", "netns", "exec", ns)
	}
	out = append(out, "taskset", "-c", strconv.Itoa(cpu))
	return append(out, argv...)
}

func (b *bencher) worker(cpu int, args ...string) []string {
	return b.workerIn("", cpu, args...)
}

// workerIn is a worker's command line run, whole, inside namespace ns.
func (b *bencher) workerIn(ns string, cpu int, args ...string) []string {
	argv := append(append([]string{}, b.r.worker...), args...)
	return pinned(ns, cpu, argv...)
}

// workerTimeout bounds a long-lived worker (the switch) in case the
// harness cannot stop it: every test of one rep, with room.
func (b *bencher) workerTimeout() time.Duration {
	per := b.r.duration*time.Duration(b.r.trials+3) + b.r.tcpDuration + 2*slack
	return time.Duration(len(b.r.tests))*per + time.Minute
}

// checkPath sends UDP datagrams from A to B and back until one round trip
// succeeds: the path works, both sides have resolved each other's MAC and
// the switch has learned both.
func (b *bencher) checkPath(ctx context.Context, in *instance, timeout time.Duration) error {
	tg := in.server()
	var srv *net.UDPConn
	err := netns.Do(tg.Netns, func() error {
		var err error
		srv, err = net.ListenUDP("udp4", &net.UDPAddr{IP: tg.Listen.AsSlice(), Port: echoPort})
		return err
	})
	if err != nil {
		return fmt.Errorf("bench: path check: %w", err)
	}
	defer srv.Close()
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := srv.ReadFromUDP(buf)
			if err != nil {
				return
			}
			_, _ = srv.WriteToUDP(buf[:n], from)
		}
	}()
	var cli *net.UDPConn
	err = netns.Do(in.client().Netns, func() error {
		var err error
		cli, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: tg.Dst.AsSlice(), Port: echoPort})
		return err
	})
	if err != nil {
		return fmt.Errorf("bench: path check: %w", err)
	}
	defer cli.Close()
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 64)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if _, err := cli.Write([]byte("switchyard bench")); err != nil {
			time.Sleep(100 * time.Millisecond) // ICMP unreachable, ARP not done yet
			continue
		}
		_ = cli.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if n, err := cli.Read(buf); err == nil && string(buf[:n]) == "switchyard bench" {
			return nil
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("bench: path check: no UDP round trip from A to B within %v", timeout)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// joinTargets lists the targets' destinations and MACs for the generator.
func joinTargets(ts []target, port uint16) (dsts, macs string) {
	var d, m []string
	for _, t := range ts {
		d = append(d, fmt.Sprintf("%s:%d", t.Dst, port))
		m = append(m, t.DstMAC.String())
	}
	return strings.Join(d, ","), strings.Join(m, ",")
}
