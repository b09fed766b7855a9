package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/netns"
)

// The built-in TCP bulk test: tcp-send in A writes on some connections for
// a while, tcp-sink in B counts what arrives. It stands in for iperf3 when
// that is not installed.

type tcpConfig struct {
	netns, addr string
	streams     int
	duration    time.Duration
}

// tcpSinkReport is what tcp-sink prints: the bytes received on all
// connections, and the time from the first byte to the last connection's
// end.
type tcpSinkReport struct {
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
}

// tcpSendReport is what tcp-send prints.
type tcpSendReport struct {
	Bytes       int64   `json:"bytes"`
	Seconds     float64 `json:"seconds"`
	Retransmits int64   `json:"retransmits"`
}

// tcpSink accepts c.streams connections on c.addr and reads them to the
// end, then prints a tcpSinkReport.
func tcpSink(ctx context.Context, stdout io.Writer, c tcpConfig) error {
	la, err := netip.ParseAddrPort(c.addr)
	if err != nil {
		return fmt.Errorf("-listen %q: %w", c.addr, err)
	}
	if c.streams < 1 || c.streams > 64 {
		return fmt.Errorf("-streams %d out of range 1-64", c.streams)
	}
	var ln *net.TCPListener
	err = netns.Do(c.netns, func() error {
		var err error
		ln, err = net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(la))
		return err
	})
	if err != nil {
		return err
	}
	defer ln.Close()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	fmt.Fprintln(stdout, lineReady)
	var (
		mu          sync.Mutex
		total       int64
		first, last time.Time
		wg          sync.WaitGroup
		conns       []net.Conn
	)
	for range c.streams {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return fmt.Errorf("accept: %w", err)
		}
		conns = append(conns, conn)
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256<<10)
			for {
				n, err := conn.Read(buf)
				if n > 0 {
					mu.Lock()
					if first.IsZero() {
						first = time.Now()
					}
					total += int64(n)
					mu.Unlock()
				}
				if err != nil {
					mu.Lock()
					last = time.Now()
					mu.Unlock()
					return
				}
			}
		}()
	}
	stopConns := context.AfterFunc(ctx, func() {
		for _, c := range conns {
			c.Close()
		}
	})
	defer stopConns()
	wg.Wait()
	for _, c := range conns {
		c.Close()
	}
	rep := tcpSinkReport{Bytes: total}
	if !first.IsZero() {
		rep.Seconds = last.Sub(first).Seconds()
	}
	b, _ := json.Marshal(rep)
	fmt.Fprintf(stdout, "%s\n", b)
	return nil
}

// tcpSend opens c.streams connections to c.addr, writes on each for
// c.duration, reads the retransmit counts and closes them, then prints a
// tcpSendReport.
func tcpSend(ctx context.Context, stdout io.Writer, c tcpConfig) error {
	ra, err := netip.ParseAddrPort(c.addr)
	if err != nil {
		return fmt.Errorf("-server %q: %w", c.addr, err)
	}
	if c.streams < 1 || c.streams > 64 {
		return fmt.Errorf("-streams %d out of range 1-64", c.streams)
	}
	var conns []*net.TCPConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	err = netns.Do(c.netns, func() error {
		d := net.Dialer{Timeout: 3 * time.Second}
		for range c.streams {
			conn, err := d.DialContext(ctx, "tcp4", ra.String())
			if err != nil {
				return err
			}
			conns = append(conns, conn.(*net.TCPConn))
		}
		return nil
	})
	if err != nil {
		return err
	}
	start := time.Now()
	end := start.Add(c.duration)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int64
		errs  []error
	)
	for _, conn := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 128<<10)
			_ = conn.SetWriteDeadline(end)
			var n int64
			for time.Now().Before(end) && ctx.Err() == nil {
				w, err := conn.Write(buf)
				n += int64(w)
				if err != nil {
					if !errors.Is(err, syscall.ETIMEDOUT) && !isTimeout(err) {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
					break
				}
			}
			mu.Lock()
			total += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	rep := tcpSendReport{Bytes: total, Seconds: time.Since(start).Seconds()}
	for _, conn := range conns {
		if raw, err := conn.SyscallConn(); err == nil {
			_ = raw.Control(func(fd uintptr) {
				if ti, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
					rep.Retransmits += int64(ti.Total_retrans)
				}
			})
		}
	}
	b, _ := json.Marshal(rep)
	fmt.Fprintf(stdout, "%s\n", b)
	return errors.Join(errs...)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
