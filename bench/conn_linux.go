package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/netns"
)

// The conn tests: a tiny HTTP/1.0 server (http-server) in one endpoint,
// and a client (conn-client) in another that opens short connections to
// it, connConcurrency at a time, each from the next address of a pool of
// connPoolSize on its interface, so that every connection is a new flow
// in a NAT's table and no 4-tuple comes back while the last one with it
// may still be in TIME_WAIT. Both run whole inside their namespace (ip
// netns exec), pinned to the endpoints' CPU.

// httpRequest is what the client sends; httpResponse what the server
// answers, then closes (HTTP/1.0 without keep-alive: the server closes
// first, so TIME_WAIT stays on its side).
var (
	httpRequest  = []byte("GET / HTTP/1.0\r\nHost: b\r\nUser-Agent: switchyard-bench\r\n\r\n")
	httpBody     = []byte("switchyard bench: one short connection\n")
	httpResponse = []byte("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
		strconv.Itoa(len(httpBody)) + "\r\nConnection: close\r\n\r\n" + string(httpBody))
)

// maxSources bounds the source addresses the server lists.
const maxSources = 4096

// httpServerReport is what http-server prints when it ends.
type httpServerReport struct {
	Requests uint64   `json:"requests"`
	Failed   uint64   `json:"failed"`
	Sources  []string `json:"sources"` // distinct client addresses, at most maxSources
}

// httpServer answers every request on listen with httpResponse and closes,
// until ctx ends; then prints an httpServerReport.
func httpServer(ctx context.Context, stdout io.Writer, listen string) error {
	la, err := netip.ParseAddrPort(listen)
	if err != nil || !la.Addr().Is4() {
		return fmt.Errorf("-listen %q: want IPv4 address:port", listen)
	}
	ln, err := net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(la))
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var (
		mu       sync.Mutex
		sources  = map[netip.Addr]bool{}
		requests atomic.Uint64
		failed   atomic.Uint64
		wg       sync.WaitGroup
	)
	bufs := sync.Pool{New: func() any { return make([]byte, 2048) }}
	serve := func(c *net.TCPConn) {
		defer wg.Done()
		defer c.Close()
		if ra, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			a := ra.AddrPort().Addr().Unmap()
			mu.Lock()
			if len(sources) < maxSources {
				sources[a] = true
			}
			mu.Unlock()
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := bufs.Get().([]byte)
		defer bufs.Put(buf)
		n := 0
		for !bytes.Contains(buf[:n], []byte("\r\n\r\n")) {
			if n == len(buf) {
				failed.Add(1)
				return
			}
			k, err := c.Read(buf[n:])
			n += k
			if err != nil {
				failed.Add(1)
				return
			}
		}
		if _, err := c.Write(httpResponse); err != nil {
			failed.Add(1)
			return
		}
		requests.Add(1)
	}
	fmt.Fprintln(stdout, lineReady)
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		wg.Add(1)
		go serve(c)
	}
	wg.Wait()
	rep := httpServerReport{Requests: requests.Load(), Failed: failed.Load(), Sources: []string{}}
	for a := range sources {
		rep.Sources = append(rep.Sources, a.String())
	}
	slices.Sort(rep.Sources)
	b, _ := json.Marshal(rep)
	fmt.Fprintf(stdout, "%s\n", b)
	return nil
}

type connConfig struct {
	server, sources string
	concurrency     int
	duration        time.Duration
	count           int
	wait            time.Duration
}

// connClientReport is what conn-client prints.
type connClientReport struct {
	Conns      uint64  `json:"conns"`
	Failed     uint64  `json:"failed"`
	FirstError string  `json:"first_error,omitempty"`
	Seconds    float64 `json:"seconds"`
	P50        float64 `json:"p50_us"`
	P99        float64 `json:"p99_us"`
}

// poolAddrs lists the addresses of an IPv4 prefix, at most max.
func poolAddrs(p netip.Prefix, max int) []netip.Addr {
	var out []netip.Addr
	for a := p.Masked().Addr(); p.Contains(a) && len(out) < max; a = a.Next() {
		out = append(out, a)
	}
	return out
}

// connClient opens connections to c.server until c.duration or c.count,
// c.concurrency at a time, each bound to the next address of c.sources,
// and prints a connClientReport. A connection counts when the whole
// response came back before c.wait.
func connClient(ctx context.Context, stdout io.Writer, c connConfig) error {
	ra, err := netip.ParseAddrPort(c.server)
	if err != nil || !ra.Addr().Is4() {
		return fmt.Errorf("-server %q: want IPv4 address:port", c.server)
	}
	var srcs []netip.Addr
	if c.sources != "" {
		p, err := netip.ParsePrefix(c.sources)
		if err != nil || !p.Addr().Is4() {
			return fmt.Errorf("-sources %q: want an IPv4 prefix", c.sources)
		}
		srcs = poolAddrs(p, 1<<16)
	}
	if c.concurrency < 1 || c.concurrency > 256 {
		return fmt.Errorf("-concurrency %d out of range 1-256", c.concurrency)
	}
	if c.count < 1 {
		return fmt.Errorf("-count %d: want at least 1", c.count)
	}
	if c.wait <= 0 {
		return fmt.Errorf("-wait %v: must be positive", c.wait)
	}
	server := ra.String()
	var (
		issued, failed atomic.Uint64
		mu             sync.Mutex
		firstErr       string
		lat            []time.Duration
		wg             sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(c.duration)
	for range c.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 4096)
			var mine []time.Duration
			for ctx.Err() == nil && time.Now().Before(end) {
				i := issued.Add(1)
				if i > uint64(c.count) {
					break
				}
				d := net.Dialer{Timeout: c.wait, Control: bindNoPort}
				if len(srcs) > 0 {
					d.LocalAddr = &net.TCPAddr{IP: srcs[(i-1)%uint64(len(srcs))].AsSlice()}
				}
				t0 := time.Now()
				err := oneConn(ctx, &d, server, t0.Add(c.wait), buf)
				if err != nil {
					failed.Add(1)
					mu.Lock()
					if firstErr == "" {
						firstErr = err.Error()
					}
					mu.Unlock()
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	rep := connClientReport{Conns: uint64(len(lat)), Failed: failed.Load(), FirstError: firstErr,
		Seconds: time.Since(start).Seconds()}
	if len(lat) > 0 {
		s := summarize(lat, 0)
		rep.P50, rep.P99 = s.P50, s.P99
	}
	b, _ := json.Marshal(rep)
	fmt.Fprintf(stdout, "%s\n", b)
	return nil
}

// bindNoPort sets IP_BIND_ADDRESS_NO_PORT: the source port of a socket
// bound to an address is picked at connect, for the 4-tuple, rather than
// reserved for the address alone at bind.
func bindNoPort(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	})
	return errors.Join(err, serr)
}

// oneConn connects, sends the request, reads the whole response and
// closes, by deadline.
func oneConn(ctx context.Context, d *net.Dialer, server string, deadline time.Time, buf []byte) error {
	c, err := d.DialContext(ctx, "tcp4", server)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(deadline)
	if _, err := c.Write(httpRequest); err != nil {
		return err
	}
	n := 0
	for {
		k, err := c.Read(buf[n:])
		n += k
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if n == len(buf) {
			return errors.New("response too long")
		}
	}
	if !bytes.Equal(buf[:n], httpResponse) {
		return fmt.Errorf("short or wrong response (%d bytes)", n)
	}
	return nil
}

// conn runs a conn test on in: from A to B's target (through a NAT peer,
// DNAT), or with out from B to a server in A (through a NAT peer,
// masquerade). The client's source pool is put on its interface first.
func (b *bencher) conn(ctx context.Context, in *instance, out bool) (*ConnResult, error) {
	a, tg := in.client(), in.server()
	res := &ConnResult{From: "A", To: "B", Concurrency: connConcurrency}
	cliNs, srvNs := a.Netns, tg.Netns
	listen, dst := tg.Listen, tg.Dst
	pool := connPoolL2
	if in.topo.outside {
		pool = connPoolNAT
	}
	if out {
		res.From, res.To = "B", "A"
		cliNs, srvNs = tg.Netns, a.Netns
		listen, dst = a.Addr.Addr(), a.Addr.Addr()
		pool = connPoolInside
	}
	res.Pool, res.Server = pool.String(), netip.AddrPortFrom(dst, httpPort).String()
	if err := in.addPool(cliNs, pool); err != nil {
		return nil, err
	}
	d := b.r.duration
	srv, err := startProc("http server", b.workerIn(srvNs, b.r.epCPU, "http-server",
		"-listen", netip.AddrPortFrom(listen, httpPort).String(), "-timeout", (d+2*slack).String()))
	if err != nil {
		return nil, err
	}
	defer srv.stop(2 * time.Second)
	if err := srv.waitLine(ctx, lineReady, startTimeout); err != nil {
		return nil, err
	}
	c1, cerr := in.cpu()
	cli, err := startProc("conn client", b.workerIn(cliNs, b.r.epCPU, "conn-client",
		"-server", res.Server, "-sources", pool.String(), "-concurrency", strconv.Itoa(connConcurrency),
		"-duration", d.String(), "-timeout", (d+slack).String()))
	if err != nil {
		return nil, err
	}
	if err := cli.wait(ctx, d+slack); err != nil {
		return nil, err
	}
	c2, cerr2 := in.cpu()
	var cr connClientReport
	if err := json.Unmarshal([]byte(cli.lastLine()), &cr); err != nil {
		return nil, fmt.Errorf("bench: conn client report %q: %w", cli.lastLine(), err)
	}
	if err := srv.stop(5 * time.Second); err != nil {
		return nil, err
	}
	var sr httpServerReport
	if err := json.Unmarshal([]byte(srv.lastLine()), &sr); err != nil {
		return nil, fmt.Errorf("bench: http server report %q: %w", srv.lastLine(), err)
	}
	res.Conns, res.Failed, res.FirstError, res.Seconds = cr.Conns, cr.Failed, cr.FirstError, cr.Seconds
	res.P50, res.P99 = cr.P50, cr.P99
	if cr.Seconds > 0 {
		res.PerSec = float64(cr.Conns) / cr.Seconds
	}
	if cerr == nil && cerr2 == nil {
		res.CPUSeconds = c2 - c1
	}
	res.ServerRequests, res.ServerSources = sr.Requests, len(sr.Sources)
	for _, s := range sr.Sources {
		if a, err := netip.ParseAddr(s); err == nil && pool.Contains(a) {
			res.ServerSourcesInPool++
		}
	}
	if res.Conns == 0 {
		return res, fmt.Errorf("bench: no connection completed (%d failed: %s)", res.Failed, res.FirstError)
	}
	return res, nil
}

// addPool puts the addresses of pool, as /32s, on the endpoint interface
// of namespace ns, once per instance.
func (in *instance) addPool(ns string, pool netip.Prefix) error {
	key := ns + " " + pool.String()
	if in.pools[key] {
		return nil
	}
	h, err := netns.NetlinkHandle(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	for _, a := range poolAddrs(pool, connPoolSize) {
		if err := addrAdd(h, epIfName, netip.PrefixFrom(a, 32)); err != nil {
			return err
		}
	}
	if in.pools == nil {
		in.pools = map[string]bool{}
	}
	in.pools[key] = true
	return nil
}
