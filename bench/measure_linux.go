package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-net/switchyard/netns"
)

// tcp measures TCP throughput from A to B on streams connections, with
// iperf3 or the built-in bulk sender.
func (b *bencher) tcp(ctx context.Context, in *instance, streams int) (*TCPResult, error) {
	if b.r.tcpTool == TCPBuiltin {
		return b.tcpBuiltin(ctx, in, streams)
	}
	tg := in.server()
	secs := int(b.r.tcpDuration.Seconds())
	port := strconv.Itoa(iperfPort)
	srv, err := startProc("iperf3 server", pinned(tg.Netns, b.r.epCPU,
		"iperf3", "-s", "-1", "-p", port, "-B", tg.Listen.String()))
	if err != nil {
		return nil, err
	}
	defer srv.stop(2 * time.Second)
	if err := waitListening(ctx, tg.Netns, srv, iperfPort, startTimeout); err != nil {
		return nil, err
	}
	cli, err := startProc("iperf3 client", pinned(in.client().Netns, b.r.epCPU,
		"iperf3", "-c", tg.Dst.String(), "-p", port, "-t", strconv.Itoa(secs), "-P", strconv.Itoa(streams),
		"-J", "--connect-timeout", "3000"))
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
	res.Streams = streams
	return &res, nil
}

// tcpBuiltin measures TCP throughput with the tcp-send and tcp-sink
// workers.
func (b *bencher) tcpBuiltin(ctx context.Context, in *instance, streams int) (*TCPResult, error) {
	tg := in.server()
	d := b.r.tcpDuration
	sink, err := startProc("tcp sink", b.worker(b.r.epCPU, "tcp-sink", "-netns", tg.Netns,
		"-listen", netip.AddrPortFrom(tg.Listen, tcpPort).String(), "-streams", strconv.Itoa(streams),
		"-timeout", (d+slack).String()))
	if err != nil {
		return nil, err
	}
	defer sink.stop(2 * time.Second)
	if err := sink.waitLine(ctx, lineReady, startTimeout); err != nil {
		return nil, err
	}
	send, err := startProc("tcp sender", b.worker(b.r.epCPU, "tcp-send", "-netns", in.client().Netns,
		"-server", netip.AddrPortFrom(tg.Dst, tcpPort).String(), "-streams", strconv.Itoa(streams),
		"-duration", d.String(), "-timeout", (d+slack).String()))
	if err != nil {
		return nil, err
	}
	if err := send.wait(ctx, d+slack); err != nil {
		return nil, err
	}
	if err := sink.wait(ctx, 5*time.Second); err != nil {
		return nil, err
	}
	var sr tcpSendReport
	if err := json.Unmarshal([]byte(send.lastLine()), &sr); err != nil {
		return nil, fmt.Errorf("bench: tcp sender report %q: %w", send.lastLine(), err)
	}
	var kr tcpSinkReport
	if err := json.Unmarshal([]byte(sink.lastLine()), &kr); err != nil {
		return nil, fmt.Errorf("bench: tcp sink report %q: %w", sink.lastLine(), err)
	}
	if kr.Seconds <= 0 || kr.Bytes == 0 {
		return nil, fmt.Errorf("bench: tcp sink received %d bytes", kr.Bytes)
	}
	res := &TCPResult{Tool: TCPBuiltin, Streams: streams, Gbps: float64(kr.Bytes) * 8 / kr.Seconds / 1e9,
		Retransmits: sr.Retransmits, Seconds: kr.Seconds}
	if sr.Seconds > 0 {
		res.SenderGbps = float64(sr.Bytes) * 8 / sr.Seconds / 1e9
	}
	return res, nil
}

// waitListening waits until something in namespace ns listens on TCP
// port.
func waitListening(ctx context.Context, ns string, p *proc, port int, timeout time.Duration) error {
	want := fmt.Sprintf(":%04X ", port)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var listening bool
		err := netns.Do(ns, func() error {
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

// sinks opens, in every target, a UDP socket on the generator's port that
// never reads: the target's stack queues the first frames and drops the
// rest at the full socket, cheaply. Without it every frame makes the
// stack look up a route and build an ICMP port-unreachable, and with veth
// that work runs on the sending CPU: the switch's, which then measures the
// receiver's ICMP error path more than its own forwarding.
func sinks(ts []target) (func(), error) {
	var conns []*net.UDPConn
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	for _, t := range ts {
		err := netns.Do(t.Netns, func() error {
			c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(t.Listen, genDst)))
			if err != nil {
				return err
			}
			conns = append(conns, c)
			return c.SetReadBuffer(4096)
		})
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("bench: sink socket in %s: %w", t.Netns, err)
		}
	}
	return closeAll, nil
}

func targetNamespaces(ts []target) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Netns)
	}
	return out
}

// genArgs is the generator's command line for frames of size bytes (with
// FCS) from A to every target, for d, at rate (0: full speed).
func (b *bencher) genArgs(in *instance, size int, d time.Duration, rate float64) []string {
	a := in.client()
	dsts, macs := joinTargets(in.targets, genDst)
	return b.worker(b.r.epCPU, "gen", "-netns", a.Netns, "-ifname", epIfName,
		"-src-mac", a.MAC.String(), "-dst-mac", macs,
		"-src", netip.AddrPortFrom(a.Addr.Addr(), genSrc).String(), "-dst", dsts,
		"-size", strconv.Itoa(size-fcsLen), "-rate", strconv.FormatFloat(rate, 'f', 0, 64),
		"-duration", d.String(), "-timeout", (d + slack).String())
}

// pps runs the generator at full speed in A and counts what arrives at the
// targets over the middle 80% of the run, away from start-up and from the
// frames still queued when the generator stops, and the switch's CPU time
// over the same window.
func (b *bencher) pps(ctx context.Context, in *instance, size int) (*PPSResult, error) {
	closeSinks, err := sinks(in.targets)
	if err != nil {
		return nil, err
	}
	defer closeSinks()
	nss := targetNamespaces(in.targets)
	d := b.r.duration
	gen, err := startProc("generator", b.genArgs(in, size, d, 0))
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
	n1, err := rxPackets(nss)
	if err != nil {
		return nil, err
	}
	c1, cerr := in.cpu()
	t1 := time.Now()
	if err := sleep(ctx, d*8/10); err != nil {
		return nil, err
	}
	n2, err := rxPackets(nss)
	if err != nil {
		return nil, err
	}
	c2, cerr2 := in.cpu()
	window := time.Since(t1)
	if err := gen.wait(ctx, d+slack); err != nil {
		return nil, err
	}
	var g genReport
	if err := json.Unmarshal([]byte(gen.lastLine()), &g); err != nil {
		return nil, fmt.Errorf("bench: generator report %q: %w", gen.lastLine(), err)
	}
	res := &PPSResult{Size: size, Sent: g.Sent, Received: n2 - n1, Window: window.Seconds()}
	res.RxPPS = float64(res.Received) / window.Seconds()
	if g.Seconds > 0 {
		res.OfferedPPS = float64(g.Sent) / g.Seconds
	}
	if cerr == nil && cerr2 == nil && res.Received > 0 {
		res.CPUSeconds = c2 - c1
		res.CPUPerMpkt = res.CPUSeconds / (float64(res.Received) / 1e6)
	}
	return res, nil
}

// trial offers frames of size bytes at rate (0: full speed) for d and
// counts what the targets received.
func (b *bencher) trial(ctx context.Context, in *instance, size int, d time.Duration, rate float64) (Trial, error) {
	tr := Trial{TargetPPS: rate}
	nss := targetNamespaces(in.targets)
	n1, err := rxPackets(nss)
	if err != nil {
		return tr, err
	}
	gen, err := startProc("generator", b.genArgs(in, size, d, rate))
	if err != nil {
		return tr, err
	}
	defer gen.stop(time.Second)
	if err := gen.wait(ctx, d+slack); err != nil {
		return tr, err
	}
	var g genReport
	if err := json.Unmarshal([]byte(gen.lastLine()), &g); err != nil {
		return tr, fmt.Errorf("bench: generator report %q: %w", gen.lastLine(), err)
	}
	// Let what is queued in the switch arrive: until the count stops
	// moving, at most a second.
	n2 := n1
	for i := 0; i < 50; i++ {
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return tr, err
		}
		n, err := rxPackets(nss)
		if err != nil {
			return tr, err
		}
		if i > 0 && n == n2 {
			break
		}
		n2 = n
	}
	tr.Sent, tr.Received = g.Sent, n2-n1
	if g.Seconds > 0 {
		tr.OfferedPPS = float64(g.Sent) / g.Seconds
	}
	tr.Loss = lossOf(tr.Sent, tr.Received)
	tr.Pass = tr.Sent > 0 && tr.Loss < LossThreshold
	return tr, nil
}

// lossOf is the fraction of sent frames not received; frames received
// beyond those sent (an ARP request, say) do not make it negative.
func lossOf(sent, received uint64) float64 {
	if sent == 0 {
		return 1
	}
	if received >= sent {
		return 0
	}
	return float64(sent-received) / float64(sent)
}

// ndr searches for the highest rate at which the peer loses less than
// LossThreshold of frames of size bytes (see search).
func (b *bencher) ndr(ctx context.Context, in *instance, size int) (*NDRResult, error) {
	closeSinks, err := sinks(in.targets)
	if err != nil {
		return nil, err
	}
	defer closeSinks()
	res := &NDRResult{Size: size}
	var terr error
	res.Trials = search(b.r.trials, func(rate float64) (Trial, bool) {
		tr, err := b.trial(ctx, in, size, b.r.duration, rate)
		if err != nil {
			terr = err
			return tr, false
		}
		return tr, true
	})
	if terr != nil {
		return nil, terr
	}
	for _, tr := range res.Trials {
		if tr.Pass && tr.OfferedPPS > res.PPS {
			res.PPS, res.Loss = tr.OfferedPPS, tr.Loss
		}
	}
	return res, nil
}

// search is an RFC 2544-style binary search on the offered rate. The first
// trial runs the generator at full speed: when it passes, the generator is
// the limit and the search ends. Otherwise the rate lies between 0 and
// what the generator offered; the second trial tries what the receivers
// got in the first (the switch's rate under overload, often close), and
// each later one halves the interval between the highest rate that passed
// and the lowest that failed, up to trials trials after the first. run
// runs one trial at a rate; false stops the search.
func search(trials int, run func(rate float64) (Trial, bool)) []Trial {
	var out []Trial
	first, ok := run(0)
	out = append(out, first)
	if !ok || first.Pass || first.OfferedPPS <= 0 {
		return out
	}
	lo, hi := 0.0, first.OfferedPPS
	next := hi * (1 - first.Loss)
	for range trials {
		if next <= lo || next >= hi || next < 1 {
			next = (lo + hi) / 2
		}
		tr, ok := run(next)
		out = append(out, tr)
		if !ok {
			break
		}
		if tr.Pass {
			lo = next
		} else {
			hi = next
		}
		next = (lo + hi) / 2
	}
	return out
}

// rr runs the UDP echo server in B and the one-in-flight client in A.
func (b *bencher) rr(ctx context.Context, in *instance) (*RRResult, error) {
	tg := in.server()
	return b.rrTo(ctx, in.client().Netns, tg.Netns, tg.Listen, tg.Dst, b.r.epCPU)
}

// rrTo runs the request/response test from namespace client to a server
// in namespace server listening on listen, which the client reaches at
// dst, the server pinned to serverCPU.
func (b *bencher) rrTo(ctx context.Context, client, server string, listen, dst netip.Addr, serverCPU int) (*RRResult, error) {
	d := b.r.duration
	srv, err := startProc("udp server", b.worker(serverCPU, "udp-server", "-netns", server,
		"-listen", netip.AddrPortFrom(listen, rrPort).String(), "-timeout", (d+2*slack).String()))
	if err != nil {
		return nil, err
	}
	defer srv.stop(2 * time.Second)
	if err := srv.waitLine(ctx, lineReady, startTimeout); err != nil {
		return nil, err
	}
	cli, err := startProc("udp client", b.worker(b.r.epCPU, "udp-client", "-netns", client,
		"-server", netip.AddrPortFrom(dst, rrPort).String(), "-duration", d.String(), "-timeout", (d+slack).String()))
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
