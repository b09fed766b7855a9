package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-net/switchyard/netns"
)

const (
	iperfPort = 5201
	rrPort    = 7777
	genSrc    = 9999
	genDst    = 9 // discard: nothing listens in B
	echoPort  = 7
	// startTimeout bounds how long a worker may take to say it is ready.
	startTimeout = 10 * time.Second
	// slack is added to a run's own duration before it is killed.
	slack = 15 * time.Second
)

// Run builds the topology, measures every configured peer with every
// configured test, removes the topology and returns the report. A test
// that fails for one peer is recorded in that peer's Errors and the run
// goes on; Run itself fails when it cannot run at all (not root, a tool
// missing, the topology cannot be built). When ctx ends it stops its
// children, removes the topology and returns what it has with ctx's error.
func Run(ctx context.Context, cfg *Config) (_ *Report, err error) {
	r, err := cfg.resolve(runtime.NumCPU())
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := preflight(r); err != nil {
		return nil, err
	}
	rep := &Report{
		Duration: r.duration.String(), TPacket: r.tpacket,
		BusyPoll: r.busyPoll.String(), TX: r.tx,
		EndpointCPU: r.epCPU, SwitchCPU: r.swCPU,
		Tests: r.tests, Peers: r.peers,
	}
	if r.epCPU == r.swCPU {
		rep.Notes = append(rep.Notes, fmt.Sprintf("endpoints and switchyard share CPU %d", r.epCPU))
	}
	r.logf("building topology")
	topo, err := newTopology()
	if err != nil {
		return nil, err
	}
	r.logf("namespaces %s, %s, %s", topo.A, topo.B, topo.S)
	defer func() {
		if cerr := topo.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	b := &bencher{r: r, t: topo}
	for _, peer := range r.peers {
		if ctx.Err() != nil {
			break
		}
		if peer == PeerOVS {
			if oerr := OVSInstalled(); oerr != nil {
				rep.Notes = append(rep.Notes, "ovs: skipped: "+oerr.Error())
				continue
			}
		}
		pr := b.measure(ctx, peer)
		if peer == PeerKernel && pr.PPS != nil && pr.PPS.RxPPS >= 0.9*pr.PPS.OfferedPPS {
			rep.Notes = append(rep.Notes, "kernel: the kernel bridge forwards in the generator's own softirq on its CPU, "+
				"so its 64-byte figure is what the generator and bridge manage together on one CPU")
		}
		rep.Results = append(rep.Results, pr)
	}
	if slices.Contains(r.tests, TestRR) && ctx.Err() == nil {
		if f, ferr := b.rrFloor(ctx); ferr != nil {
			rep.Notes = append(rep.Notes, "cross-CPU floor: not measured: "+ferr.Error())
		} else {
			rep.RRFloor = f
			rep.Notes = append(rep.Notes, fmt.Sprintf("cross-CPU floor: the same round trip over a direct veth A-B with no switch, "+
				"server on CPU %d: p50 %.1f us, p90 %.1f us; any switch on another CPU than the endpoints pays at least this",
				r.swCPU, f.P50, f.P90))
		}
	}
	rep.Notes = append(rep.Notes, b.notes...)
	rep.computeRatios()
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
	for _, t := range r.tests {
		if t == TestTCP {
			tools = append(tools, struct{ bin, hint string }{"iperf3", "apt-get install iperf3, or leave out the tcp test with --tests pps,rr"})
		}
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
	t     *topology
	notes []string // for the report, from the peers
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
	argv := append(append([]string{}, b.r.worker...), args...)
	return pinned("", cpu, argv...)
}

// measure brings peer up, runs every test against it and takes it down.
func (b *bencher) measure(ctx context.Context, peer string) (pr PeerResult) {
	pr = PeerResult{Peer: peer, Errors: map[string]string{}}
	// Deferred: runs after the peer is taken down below.
	defer func() {
		if len(pr.Errors) == 0 {
			pr.Errors = nil
		}
	}()
	b.r.logf("%s: up", peer)
	down, err := b.peerUp(ctx, peer, &pr)
	if err != nil {
		pr.Errors["setup"] = err.Error()
		return pr
	}
	defer func() {
		if err := down(); err != nil {
			pr.Errors["teardown"] = err.Error()
		}
	}()
	if err := b.checkPath(ctx, 5*time.Second); err != nil {
		pr.Errors["setup"] = err.Error()
		return pr
	}
	for _, test := range b.r.tests {
		if ctx.Err() != nil {
			return pr
		}
		b.r.logf("%s: %s", peer, test)
		var err error
		switch test {
		case TestTCP:
			pr.TCP, err = b.tcp(ctx)
		case TestPPS:
			pr.PPS, err = b.pps(ctx)
		case TestRR:
			pr.RR, err = b.rr(ctx)
		}
		if err != nil {
			pr.Errors[test] = err.Error()
			b.r.logf("%s: %s: %v", peer, test, err)
		}
	}
	return pr
}

// peerUp starts forwarding between pa and pb and returns what stops it.
func (b *bencher) peerUp(ctx context.Context, peer string, pr *PeerResult) (func() error, error) {
	switch peer {
	case PeerKernel:
		if err := b.t.kernelBridgeUp(); err != nil {
			return nil, err
		}
		return b.t.kernelBridgeDown, nil
	case PeerSwitchyard:
		args := []string{"switch", "-netns", b.t.S, "-ports", portA + "," + portB,
			"-timeout", b.workerTimeout().String()}
		if b.r.tpacket != "" {
			args = append(args, "-tpacket", b.r.tpacket)
		}
		args = append(args, "-busy-poll", b.r.busyPoll.String(), "-tx", b.r.tx)
		sw, err := startProc("switchyard worker", b.worker(b.r.swCPU, args...))
		if err != nil {
			return nil, err
		}
		if err := sw.waitLine(ctx, lineReady, startTimeout); err != nil {
			sw.stop(time.Second)
			return nil, err
		}
		return func() error {
			err := sw.stop(5 * time.Second)
			if l := sw.lastLine(); json.Valid([]byte(l)) && l != lineReady {
				pr.SwitchPorts = json.RawMessage(l)
			}
			return err
		}, nil
	case PeerOVS:
		return b.ovsUp(ctx)
	}
	return nil, fmt.Errorf("bench: peer %q not supported", peer)
}

// workerTimeout bounds a long-lived worker (the switch) in case the
// harness cannot stop it.
func (b *bencher) workerTimeout() time.Duration {
	return time.Duration(len(b.r.tests))*(b.r.duration+2*slack) + time.Minute
}

// checkPath sends UDP datagrams from A to B and back until one round trip
// succeeds: the path works, both sides have resolved each other's MAC and
// the switch has learned both.
func (b *bencher) checkPath(ctx context.Context, timeout time.Duration) error {
	var srv *net.UDPConn
	err := netns.Do(b.t.B, func() error {
		var err error
		srv, err = net.ListenUDP("udp4", &net.UDPAddr{IP: addrB.Addr().AsSlice(), Port: echoPort})
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
	err = netns.Do(b.t.A, func() error {
		var err error
		cli, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: addrB.Addr().AsSlice(), Port: echoPort})
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

// tcp runs one iperf3 stream from A to B.
func (b *bencher) tcp(ctx context.Context) (*TCPResult, error) {
	secs := max(1, int(math.Ceil(b.r.duration.Seconds())))
	port := strconv.Itoa(iperfPort)
	srv, err := startProc("iperf3 server", pinned(b.t.B, b.r.epCPU,
		"iperf3", "-s", "-1", "-p", port, "-B", addrB.Addr().String()))
	if err != nil {
		return nil, err
	}
	defer srv.stop(2 * time.Second)
	if err := b.waitListening(ctx, srv, iperfPort, startTimeout); err != nil {
		return nil, err
	}
	cli, err := startProc("iperf3 client", pinned(b.t.A, b.r.epCPU,
		"iperf3", "-c", addrB.Addr().String(), "-p", port, "-t", strconv.Itoa(secs), "-J", "--connect-timeout", "3000"))
	if err != nil {
		return nil, err
	}
	werr := cli.wait(ctx, time.Duration(secs)*time.Second+slack)
	res, perr := parseIperf3(cli.stdout())
	if perr != nil {
		if werr != nil {
			return nil, errors.Join(werr, perr)
		}
		return nil, perr
	}
	return &res, nil
}

// waitListening waits until something in B listens on TCP port.
func (b *bencher) waitListening(ctx context.Context, p *proc, port int, timeout time.Duration) error {
	want := fmt.Sprintf(":%04X ", port)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var listening bool
		err := netns.Do(b.t.B, func() error {
			for _, f := range []string{"/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"} {
				data, err := os.ReadFile(f)
				if err != nil {
					continue
				}
				sc := bufio.NewScanner(bytes.NewReader(data))
				for sc.Scan() {
					fields := strings.Fields(sc.Text())
					// sl local_address rem_address st ...; 0A is LISTEN.
					if len(fields) > 3 && strings.HasSuffix(fields[1]+" ", want) && fields[3] == "0A" {
						listening = true
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if listening {
			return nil
		}
		select {
		case <-p.done:
			return p.failure(fmt.Errorf("exited before listening (%v)", p.err))
		default:
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	return p.failure(fmt.Errorf("not listening on port %d after %v", port, timeout))
}

// pps runs the 64-byte generator in A and counts what arrives at B over
// the middle 80% of the run, away from start-up and from the frames still
// queued when the generator stops.
func (b *bencher) pps(ctx context.Context) (*PPSResult, error) {
	h, err := netns.NetlinkHandle(b.t.B)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	// A socket on the generator's port that never reads: B's stack queues
	// the first frames and drops the rest at the full socket, cheaply.
	// Without it every frame makes B's stack look up a route and build an
	// ICMP port-unreachable, and with veth that work runs on the sending
	// CPU: the switch's, for switchyard and OVS, which then measure B's
	// ICMP error path more than their own forwarding.
	var sink *net.UDPConn
	err = netns.Do(b.t.B, func() error {
		var err error
		sink, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addrB.Addr(), genDst)))
		if err == nil {
			err = sink.SetReadBuffer(4096)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("bench: sink socket in B: %w", err)
	}
	defer sink.Close()
	d := b.r.duration
	gen, err := startProc("generator", b.worker(b.r.epCPU, "gen", "-netns", b.t.A, "-ifname", epIfName,
		"-src-mac", macA.String(), "-dst-mac", macB.String(),
		"-src", netip.AddrPortFrom(addrA.Addr(), genSrc).String(),
		"-dst", netip.AddrPortFrom(addrB.Addr(), genDst).String(),
		"-duration", d.String(), "-timeout", (d+slack).String()))
	if err != nil {
		return nil, err
	}
	defer gen.stop(time.Second)
	if err := gen.waitLine(ctx, lineStart, startTimeout); err != nil {
		return nil, err
	}
	if err := sleep(ctx, d/10); err != nil {
		return nil, err
	}
	n1, err := rxPackets(h, epIfName)
	if err != nil {
		return nil, err
	}
	t1 := time.Now()
	if err := sleep(ctx, d*8/10); err != nil {
		return nil, err
	}
	n2, err := rxPackets(h, epIfName)
	if err != nil {
		return nil, err
	}
	window := time.Since(t1)
	if err := gen.wait(ctx, d+slack); err != nil {
		return nil, err
	}
	var g genReport
	if err := json.Unmarshal([]byte(gen.lastLine()), &g); err != nil {
		return nil, fmt.Errorf("bench: generator report %q: %w", gen.lastLine(), err)
	}
	res := &PPSResult{Sent: g.Sent, Received: n2 - n1, Window: window.Seconds()}
	res.RxPPS = float64(res.Received) / window.Seconds()
	if g.Seconds > 0 {
		res.OfferedPPS = float64(g.Sent) / g.Seconds
	}
	return res, nil
}

// rr runs the UDP echo server in B and the one-in-flight client in A.
func (b *bencher) rr(ctx context.Context) (*RRResult, error) {
	return b.rrTo(ctx, addrB.Addr(), b.r.epCPU)
}

// rrTo runs the request/response test from A to server in B, the server
// pinned to serverCPU.
func (b *bencher) rrTo(ctx context.Context, server netip.Addr, serverCPU int) (*RRResult, error) {
	d := b.r.duration
	ap := netip.AddrPortFrom(server, rrPort).String()
	srv, err := startProc("udp server", b.worker(serverCPU, "udp-server", "-netns", b.t.B,
		"-listen", ap, "-timeout", (d+2*slack).String()))
	if err != nil {
		return nil, err
	}
	defer srv.stop(2 * time.Second)
	if err := srv.waitLine(ctx, lineReady, startTimeout); err != nil {
		return nil, err
	}
	cli, err := startProc("udp client", b.worker(b.r.epCPU, "udp-client", "-netns", b.t.A,
		"-server", ap, "-duration", d.String(), "-timeout", (d+slack).String()))
	if err != nil {
		return nil, err
	}
	if err := cli.wait(ctx, d+slack); err != nil {
		return nil, err
	}
	var res RRResult
	if err := json.Unmarshal([]byte(cli.lastLine()), &res); err != nil {
		return nil, fmt.Errorf("bench: udp client report %q: %w", cli.lastLine(), err)
	}
	if res.Count == 0 {
		return &res, fmt.Errorf("bench: no round trip completed (%d lost)", res.Lost)
	}
	return &res, nil
}
