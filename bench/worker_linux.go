package bench

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/netns"
	"github.com/switchyard-net/switchyard/switch/bridge"
	"github.com/switchyard-net/switchyard/switch/port"
	"github.com/switchyard-net/switchyard/switch/port/afpacket"
)

// Worker lines: what a worker prints on stdout when it is ready or has
// started sending. Its results follow as one line of JSON.
const (
	lineReady = "ready"
	lineStart = "start"
)

// Worker runs one of the harness's child processes; it is what the hidden
// `bench-worker` subcommand calls. args[0] names the worker (see
// WorkerNames), the rest are its flags. A worker prints a readiness line
// and then its results, one line of JSON, on stdout; it ends at the end of
// its run, on SIGTERM or SIGINT, or at its -timeout, whichever is first.
func Worker(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("bench-worker: name a worker: %s", strings.Join(WorkerNames, ", "))
	}
	name := args[0]
	fs := flag.NewFlagSet("bench-worker "+name, flag.ContinueOnError)
	timeout := fs.Duration("timeout", 10*time.Minute, "end after this long whatever happens")
	ns := fs.String("netns", "", "network namespace to open sockets in")
	var run func(ctx context.Context) error
	switch name {
	case "switch":
		ports := fs.String("ports", "", "comma-separated interfaces to bridge")
		tpacket := fs.String("tpacket", "", "ring version: v2 or v3 (default: the afpacket default)")
		busy := fs.Duration("busy-poll", 0, "how long ports poll their rings before sleeping")
		tx := fs.String("tx", "ring", "transmit path: ring or mmsg")
		run = func(ctx context.Context) error {
			return switchWorker(ctx, stdout, *ns, *ports, *tpacket, *busy, *tx)
		}
	case "gen":
		var g genConfig
		fs.StringVar(&g.ifname, "ifname", epIfName, "interface to send on")
		fs.StringVar(&g.srcMAC, "src-mac", "", "source MAC")
		fs.StringVar(&g.dstMAC, "dst-mac", "", "destination MAC")
		fs.StringVar(&g.src, "src", "", "source IPv4 address:port")
		fs.StringVar(&g.dst, "dst", "", "destination IPv4 address:port")
		fs.IntVar(&g.size, "size", minFrame, "frame size without FCS")
		fs.IntVar(&g.batch, "batch", 256, "frames per send call")
		fs.StringVar(&g.mode, "mode", "mmsg", "mmsg (raw socket, sendmmsg: the faster here) or ring (AF_PACKET TX ring)")
		fs.DurationVar(&g.duration, "duration", time.Second, "how long to send")
		run = func(ctx context.Context) error { g.netns = *ns; return genWorker(ctx, stdout, g) }
	case "udp-server":
		listen := fs.String("listen", "", "IPv4 address:port to echo on")
		run = func(ctx context.Context) error { return udpServer(ctx, stdout, *ns, *listen) }
	case "udp-client":
		var c rrConfig
		fs.StringVar(&c.server, "server", "", "server IPv4 address:port")
		fs.DurationVar(&c.duration, "duration", time.Second, "how long to measure")
		fs.IntVar(&c.count, "count", 0, "stop after this many round trips (0: no limit)")
		fs.IntVar(&c.warmup, "warmup", 100, "round trips before measuring")
		fs.DurationVar(&c.wait, "wait", 100*time.Millisecond, "how long to wait for a reply before counting it lost")
		run = func(ctx context.Context) error { c.netns = *ns; return udpClient(ctx, stdout, c) }
	default:
		return fmt.Errorf("bench-worker: unknown worker %q: want one of %s", name, strings.Join(WorkerNames, ", "))
	}
	if err := fs.Parse(args[1:]); err != nil {
		return fmt.Errorf("bench-worker %s: %w", name, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench-worker %s: unexpected arguments %q", name, fs.Args())
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := run(ctx); err != nil {
		return fmt.Errorf("bench-worker %s: %w", name, err)
	}
	return nil
}

// switchWorker bridges the named interfaces of namespace ns with
// switchyard's bridge over AF_PACKET ring ports until ctx ends, then
// prints the ports' counters.
func switchWorker(ctx context.Context, stdout io.Writer, ns, ports, tpacket string, busy time.Duration, tx string) error {
	names := strings.Split(ports, ",")
	if ports == "" || len(names) < 2 {
		return errors.New("-ports: give at least two interfaces")
	}
	cfg := &afpacket.Config{}
	switch tpacket {
	case "":
	case "v2":
		cfg.Version = afpacket.TPacketV2
	case "v3":
		cfg.Version = afpacket.TPacketV3
	default:
		return fmt.Errorf("-tpacket %q: want v2 or v3", tpacket)
	}
	cfg.BusyPoll = busy
	switch tx {
	case "ring":
	case "mmsg":
		cfg.TxMode = afpacket.TxSendmmsg
	default:
		return fmt.Errorf("-tx %q: want ring or mmsg", tx)
	}
	var opened []*afpacket.Port
	err := netns.Do(ns, func() error {
		for _, n := range names {
			p, err := afpacket.Open(n, cfg)
			if err != nil {
				return err
			}
			opened = append(opened, p)
		}
		return nil
	})
	if err != nil {
		for _, p := range opened {
			p.Close()
		}
		return err
	}
	br := bridge.New(nil)
	for i, p := range opened {
		if err := br.AddPort(names[i], p, bridge.DefaultFlags()); err != nil {
			for _, q := range opened[i:] {
				q.Close()
			}
			br.Close()
			return err
		}
	}
	fmt.Fprintln(stdout, lineReady)
	<-ctx.Done()
	info := br.Ports()
	cerr := br.Close()
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n", b)
	return cerr
}

type genConfig struct {
	netns, ifname  string
	srcMAC, dstMAC string
	src, dst       string
	size, batch    int
	mode           string
	duration       time.Duration
}

// genReport is what the generator prints when it is done.
type genReport struct {
	Sent    uint64  `json:"sent"`
	Dropped uint64  `json:"dropped"`
	Errors  uint64  `json:"errors"`
	Seconds float64 `json:"seconds"`
}

// genWorker sends copies of one UDP frame as fast as it can for the
// configured duration and reports how many the interface took.
func genWorker(ctx context.Context, stdout io.Writer, g genConfig) error {
	srcMAC, err := net.ParseMAC(g.srcMAC)
	if err != nil {
		return fmt.Errorf("-src-mac: %w", err)
	}
	dstMAC, err := net.ParseMAC(g.dstMAC)
	if err != nil {
		return fmt.Errorf("-dst-mac: %w", err)
	}
	src, err := netip.ParseAddrPort(g.src)
	if err != nil {
		return fmt.Errorf("-src: %w", err)
	}
	dst, err := netip.ParseAddrPort(g.dst)
	if err != nil {
		return fmt.Errorf("-dst: %w", err)
	}
	if g.batch < 1 || g.batch > 1024 {
		return fmt.Errorf("-batch %d out of range 1-1024", g.batch)
	}
	frame, err := udpFrame(srcMAC, dstMAC, src, dst, g.size)
	if err != nil {
		return err
	}
	var send func() error
	var report func() genReport
	var closer func()
	switch g.mode {
	case "ring":
		var p *afpacket.Port
		err = netns.Do(g.netns, func() error {
			var err error
			p, err = afpacket.Open(g.ifname, &afpacket.Config{
				DisableVNetHdr: true,
				TxFrameSize:    256,
				TxFrameCount:   4 * g.batch,
				RxBlockCount:   2,
				BatchSize:      g.batch,
			})
			return err
		})
		if err != nil {
			return err
		}
		closer = func() { p.Close() }
		frames := make([]port.Frame, g.batch)
		for i := range frames {
			frames[i].Data = frame
		}
		send = func() error { _, err := p.Write(frames); return err }
		report = func() genReport {
			st := p.Stats()
			return genReport{Sent: st.TxFrames, Dropped: st.TxDropped, Errors: st.TxErrors}
		}
	case "mmsg":
		var m *mmsgSender
		err = netns.Do(g.netns, func() error {
			var err error
			m, err = newMmsgSender(g.ifname, frame, g.batch)
			return err
		})
		if err != nil {
			return err
		}
		closer = m.close
		send = m.send
		report = func() genReport { return genReport{Sent: m.sent, Errors: m.errors} }
	default:
		return fmt.Errorf("-mode %q: want ring or mmsg", g.mode)
	}
	defer closer()

	fmt.Fprintln(stdout, lineStart)
	start := time.Now()
	var serr error
	for i := 0; ; i++ {
		if err := send(); err != nil {
			serr = err
			break
		}
		if i%16 == 0 {
			if time.Since(start) >= g.duration || ctx.Err() != nil {
				break
			}
		}
	}
	rep := report()
	rep.Seconds = time.Since(start).Seconds()
	b, _ := json.Marshal(rep)
	fmt.Fprintf(stdout, "%s\n", b)
	return serr
}

// udpSocket opens a UDP socket in namespace ns bound to local (and
// connected to remote if valid), blocking, with a receive timeout.
func udpSocket(ns string, local, remote netip.AddrPort, rcvTimeout time.Duration) (int, error) {
	fd := -1
	err := netns.Do(ns, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		tv := unix.NsecToTimeval(rcvTimeout.Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return fmt.Errorf("SO_RCVTIMEO: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: local.Addr().As4(), Port: int(local.Port())}); err != nil {
			return fmt.Errorf("bind %s: %w", local, err)
		}
		if remote.IsValid() {
			if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: remote.Addr().As4(), Port: int(remote.Port())}); err != nil {
				return fmt.Errorf("connect %s: %w", remote, err)
			}
		}
		return nil
	})
	if err != nil && fd >= 0 {
		unix.Close(fd)
		fd = -1
	}
	return fd, err
}

// udpServer echoes every datagram on listen back to its sender until ctx
// ends. It works with blocking system calls on a locked thread: the
// shortest path for a lone request.
func udpServer(ctx context.Context, stdout io.Writer, ns, listen string) error {
	la, err := netip.ParseAddrPort(listen)
	if err != nil || !la.Addr().Is4() {
		return fmt.Errorf("-listen %q: want IPv4 address:port", listen)
	}
	fd, err := udpSocket(ns, la, netip.AddrPort{}, 100*time.Millisecond)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	fmt.Fprintln(stdout, lineReady)
	buf := make([]byte, 2048)
	for ctx.Err() == nil {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			if err == unix.EAGAIN || err == unix.EINTR {
				continue
			}
			return fmt.Errorf("recvfrom: %w", err)
		}
		if err := unix.Sendto(fd, buf[:n], 0, from); err != nil && err != unix.EINTR {
			return fmt.Errorf("sendto: %w", err)
		}
	}
	return nil
}

type rrConfig struct {
	netns, server string
	duration      time.Duration
	count, warmup int
	wait          time.Duration
}

// udpClient sends one request at a time to the server and times each round
// trip; a reply not back within wait counts as lost. It prints an RRResult.
func udpClient(ctx context.Context, stdout io.Writer, c rrConfig) error {
	ra, err := netip.ParseAddrPort(c.server)
	if err != nil || !ra.Addr().Is4() {
		return fmt.Errorf("-server %q: want IPv4 address:port", c.server)
	}
	if c.wait <= 0 {
		return fmt.Errorf("-wait %v: must be positive", c.wait)
	}
	fd, err := udpSocket(c.netns, netip.AddrPortFrom(netip.IPv4Unspecified(), 0), ra, c.wait)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	req := make([]byte, 32)
	resp := make([]byte, 2048)
	samples := make([]time.Duration, 0, 1<<16)
	lost := 0
	var seq uint64
	// roundTrip sends request seq and waits for its reply, skipping late
	// replies to earlier requests.
	roundTrip := func() (time.Duration, bool, error) {
		seq++
		binary.BigEndian.PutUint64(req, seq)
		t0 := time.Now()
		if err := unix.Send(fd, req, 0); err != nil {
			if err == unix.ECONNREFUSED || err == unix.EINTR {
				return 0, false, nil
			}
			return 0, false, fmt.Errorf("send: %w", err)
		}
		for {
			n, err := unix.Read(fd, resp)
			if err != nil {
				if err == unix.EINTR && time.Since(t0) < c.wait {
					continue
				}
				if err == unix.EAGAIN || err == unix.EINTR || err == unix.ECONNREFUSED {
					return 0, false, nil
				}
				return 0, false, fmt.Errorf("read: %w", err)
			}
			if n >= 8 && binary.BigEndian.Uint64(resp) == seq {
				return time.Since(t0), true, nil
			}
			if time.Since(t0) >= c.wait {
				return 0, false, nil
			}
		}
	}
	for i := 0; i < c.warmup && ctx.Err() == nil; i++ {
		if _, _, err := roundTrip(); err != nil {
			return err
		}
	}
	start := time.Now()
	for ctx.Err() == nil && time.Since(start) < c.duration && (c.count == 0 || len(samples) < c.count) {
		d, ok, err := roundTrip()
		if err != nil {
			return err
		}
		if !ok {
			lost++
			continue
		}
		samples = append(samples, d)
	}
	b, _ := json.Marshal(summarize(samples, lost))
	fmt.Fprintf(stdout, "%s\n", b)
	return nil
}
