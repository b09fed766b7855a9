package bench

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
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
	"github.com/switchyard-net/switchyard/switch/port/tap"
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
		var sc switchConfig
		fs.StringVar(&sc.ports, "ports", "", "comma-separated interfaces to bridge over AF_PACKET rings")
		fs.StringVar(&sc.taps, "taps", "", "comma-separated TAP endpoints to create and bridge: NAME=NETNS=MAC=ADDR/BITS")
		sc.ringFlags(fs)
		run = func(ctx context.Context) error { sc.netns = *ns; return switchWorker(ctx, stdout, sc) }
	case "nat":
		var nc natConfig
		fs.StringVar(&nc.ports, "ports", "", "comma-separated inside interfaces to bridge over AF_PACKET rings")
		fs.StringVar(&nc.uplink, "uplink", "", "the uplink interface, opened with an AF_PACKET ring")
		fs.StringVar(&nc.gw, "gw", "", "the gateway's inside address, ADDR/BITS (the inside subnet)")
		fs.StringVar(&nc.gwMAC, "gw-mac", "", "the gateway's inside MAC")
		fs.StringVar(&nc.upMAC, "uplink-mac", "", "the gateway's MAC on the uplink")
		fs.StringVar(&nc.ext, "ext", "", "comma-separated external addresses ADDR/BITS; masquerade uses the first")
		fs.StringVar(&nc.publish, "publish", "", "comma-separated published ports: EXTIP:PORT[-END]=CTRIP:PORT/tcp|udp")
		fs.StringVar(&nc.neigh, "neigh", "", "comma-separated inside neighbours pinned in the gateway: ADDR=MAC")
		nc.ringFlags(fs)
		run = func(ctx context.Context) error { nc.netns = *ns; return natWorker(ctx, stdout, nc) }
	case "http-server":
		listen := fs.String("listen", "", "IPv4 address:port to serve HTTP/1.0 on")
		run = func(ctx context.Context) error { return httpServer(ctx, stdout, *listen) }
	case "conn-client":
		var c connConfig
		fs.StringVar(&c.server, "server", "", "server IPv4 address:port")
		fs.StringVar(&c.sources, "sources", "", "source address pool, a prefix: each connection binds the next address")
		fs.IntVar(&c.concurrency, "concurrency", connConcurrency, "connections in flight")
		fs.DurationVar(&c.duration, "duration", time.Second, "how long to measure")
		fs.IntVar(&c.count, "count", connMaxCount, "stop after this many connections")
		fs.DurationVar(&c.wait, "wait", 3*time.Second, "how long one connection may take before it counts as failed")
		run = func(ctx context.Context) error { return connClient(ctx, stdout, c) }
	case "gen":
		var g genConfig
		fs.StringVar(&g.ifname, "ifname", epIfName, "interface to send on")
		fs.StringVar(&g.srcMAC, "src-mac", "", "source MAC")
		fs.StringVar(&g.dstMAC, "dst-mac", "", "destination MACs, comma-separated, one per -dst")
		fs.StringVar(&g.src, "src", "", "source IPv4 address:port")
		fs.StringVar(&g.dst, "dst", "", "destination IPv4 address:port, comma-separated: frames go to each in turn")
		fs.IntVar(&g.size, "size", minFrame, "frame size without FCS")
		fs.IntVar(&g.batch, "batch", 256, "most frames per send call")
		fs.Float64Var(&g.rate, "rate", 0, "frames per second to offer (0: as fast as possible)")
		fs.StringVar(&g.mode, "mode", "mmsg", "mmsg (raw socket, sendmmsg: the faster here) or ring (AF_PACKET TX ring)")
		fs.DurationVar(&g.duration, "duration", time.Second, "how long to send")
		run = func(ctx context.Context) error { g.netns = *ns; return genWorker(ctx, stdout, g) }
	case "tcp-sink":
		var c tcpConfig
		fs.StringVar(&c.addr, "listen", "", "IPv4 address:port to listen on")
		fs.IntVar(&c.streams, "streams", 1, "connections to accept")
		run = func(ctx context.Context) error { c.netns = *ns; return tcpSink(ctx, stdout, c) }
	case "tcp-send":
		var c tcpConfig
		fs.StringVar(&c.addr, "server", "", "IPv4 address:port to send to")
		fs.IntVar(&c.streams, "streams", 1, "connections to send on")
		fs.DurationVar(&c.duration, "duration", time.Second, "how long to send")
		run = func(ctx context.Context) error { c.netns = *ns; return tcpSend(ctx, stdout, c) }
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

type switchConfig struct {
	netns, ports, taps, tpacket, tx, rx string
	busy                                time.Duration
	rxSteer                             bool
}

// ringFlags adds the ring ports' flags to fs.
func (sc *switchConfig) ringFlags(fs *flag.FlagSet) {
	fs.StringVar(&sc.tpacket, "tpacket", "", "ring version: v2 or v3 (default: the afpacket default)")
	fs.DurationVar(&sc.busy, "busy-poll", 0, "how long ports poll their rings before sleeping")
	fs.StringVar(&sc.tx, "tx", "mmsg", "transmit path: mmsg or ring")
	fs.StringVar(&sc.rx, "rx", "split", "receive path: split, ring or mmsg")
	fs.BoolVar(&sc.rxSteer, "rx-steering", false, "steer each flow's frames to the worker's CPUs (afpacket.Config.RxSteering)")
}

// ringConfig is the ring ports' configuration.
func (sc switchConfig) ringConfig() (*afpacket.Config, error) {
	cfg := &afpacket.Config{BusyPoll: sc.busy, RxSteering: sc.rxSteer}
	switch sc.tpacket {
	case "":
	case "v2":
		cfg.Version = afpacket.TPacketV2
	case "v3":
		cfg.Version = afpacket.TPacketV3
	default:
		return nil, fmt.Errorf("-tpacket %q: want v2 or v3", sc.tpacket)
	}
	var ok bool
	if cfg.TxMode, ok = txPaths[sc.tx]; !ok {
		return nil, fmt.Errorf("-tx %q: want ring or mmsg", sc.tx)
	}
	if cfg.RxMode, ok = rxPaths[sc.rx]; !ok {
		return nil, fmt.Errorf("-rx %q: want split, ring or mmsg", sc.rx)
	}
	return cfg, nil
}

// switchWorker bridges, with switchyard's bridge, the named interfaces of
// namespace ns over AF_PACKET ring ports and the TAP endpoints it creates
// (each a TAP moved into its namespace, whose fd it keeps: the TAPs go
// away with the process, however it ends) until ctx ends, then prints the
// ports' counters.
func switchWorker(ctx context.Context, stdout io.Writer, sc switchConfig) error {
	var names []string
	var ports []port.Port
	closeAll := func() {
		for _, p := range ports {
			p.Close()
		}
	}
	if sc.ports != "" {
		cfg, err := sc.ringConfig()
		if err != nil {
			return err
		}
		err = netns.Do(sc.netns, func() error {
			for _, n := range strings.Split(sc.ports, ",") {
				p, err := afpacket.Open(n, cfg)
				if err != nil {
					return err
				}
				names, ports = append(names, n), append(ports, p)
			}
			return nil
		})
		if err != nil {
			closeAll()
			return err
		}
	}
	if sc.taps != "" {
		for _, spec := range strings.Split(sc.taps, ",") {
			q, err := openTapEndpoint(sc.netns, spec)
			if err != nil {
				closeAll()
				return err
			}
			names, ports = append(names, q.Name()), append(ports, q)
		}
	}
	if len(ports) < 2 {
		closeAll()
		return errors.New("give at least two ports with -ports and -taps")
	}
	br := bridge.New(nil)
	for i, p := range ports {
		if err := br.AddPort(names[i], p, bridge.DefaultFlags()); err != nil {
			for _, q := range ports[i:] {
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

// openTapEndpoint creates the TAP endpoint spec describes, NAME=NETNS=MAC=
// ADDR/BITS: a TAP created as NAME in namespace hostNs, moved into NETNS
// as eth0 with MAC and ADDR, and returns its queue.
func openTapEndpoint(hostNs, spec string) (*tap.Queue, error) {
	f := strings.Split(spec, "=")
	if len(f) != 4 {
		return nil, fmt.Errorf("-taps %q: want NAME=NETNS=MAC=ADDR/BITS", spec)
	}
	mac, err := net.ParseMAC(f[2])
	if err != nil {
		return nil, fmt.Errorf("-taps %q: %w", spec, err)
	}
	addr, err := netip.ParsePrefix(f[3])
	if err != nil {
		return nil, fmt.Errorf("-taps %q: %w", spec, err)
	}
	files, err := netns.AddTap(netns.Endpoint{Netns: f[1], IfName: epIfName, HostName: f[0], HostNetns: hostNs,
		MAC: mac, Addrs: []netip.Prefix{addr}}, 1)
	if err != nil {
		return nil, err
	}
	qs, err := tap.New(f[0], files, nil)
	if err != nil {
		return nil, err
	}
	return qs[0], nil
}

type genConfig struct {
	netns, ifname  string
	srcMAC, dstMAC string
	src, dst       string
	size, batch    int
	rate           float64
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

// genWorker sends copies of UDP frames, to each destination in turn, for
// the configured duration, as fast as it can or paced to the configured
// rate, and reports how many the interface took.
func genWorker(ctx context.Context, stdout io.Writer, g genConfig) error {
	srcMAC, err := net.ParseMAC(g.srcMAC)
	if err != nil {
		return fmt.Errorf("-src-mac: %w", err)
	}
	src, err := netip.ParseAddrPort(g.src)
	if err != nil {
		return fmt.Errorf("-src: %w", err)
	}
	dsts, macs := strings.Split(g.dst, ","), strings.Split(g.dstMAC, ",")
	if len(dsts) != len(macs) {
		return fmt.Errorf("-dst has %d entries and -dst-mac %d: want one MAC per destination", len(dsts), len(macs))
	}
	if g.batch < 1 || g.batch > 1024 {
		return fmt.Errorf("-batch %d out of range 1-1024", g.batch)
	}
	if g.rate < 0 || math.IsNaN(g.rate) || math.IsInf(g.rate, 0) {
		return fmt.Errorf("-rate %v: want a rate in frames per second, or 0", g.rate)
	}
	var frames [][]byte
	for i := range dsts {
		dstMAC, err := net.ParseMAC(macs[i])
		if err != nil {
			return fmt.Errorf("-dst-mac: %w", err)
		}
		dst, err := netip.ParseAddrPort(dsts[i])
		if err != nil {
			return fmt.Errorf("-dst: %w", err)
		}
		f, err := udpFrame(srcMAC, dstMAC, src, dst, g.size)
		if err != nil {
			return err
		}
		frames = append(frames, f)
	}
	var send func(n int) error
	var report func() genReport
	var closer func()
	switch g.mode {
	case "ring":
		var p *afpacket.Port
		err = netns.Do(g.netns, func() error {
			var err error
			p, err = afpacket.Open(g.ifname, &afpacket.Config{
				DisableVNetHdr: true,
				TxMode:         afpacket.TxRing,
				TxFrameSize:    2048,
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
		pf := make([]port.Frame, g.batch)
		for i := range pf {
			pf[i].Data = frames[i%len(frames)]
		}
		send = func(n int) error { _, err := p.Write(pf[:n]); return err }
		report = func() genReport {
			st := p.Stats()
			return genReport{Sent: st.TxFrames, Dropped: st.TxDropped, Errors: st.TxErrors}
		}
	case "mmsg":
		var m *mmsgSender
		err = netns.Do(g.netns, func() error {
			var err error
			m, err = newMmsgSender(g.ifname, frames, g.batch)
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

	// A paced generator sends at most what keeps a burst under
	// maxBurst at its rate, so the offered load is smooth at the scale
	// of a switch's batch.
	const maxBurst = 50 * time.Microsecond
	batch := g.batch
	if g.rate > 0 {
		batch = min(g.batch, max(1, int(g.rate*maxBurst.Seconds())))
	}
	fmt.Fprintln(stdout, lineStart)
	start := time.Now()
	var serr error
	var attempted int64
	for i := 0; ; i++ {
		n := batch
		if g.rate > 0 {
			el := time.Since(start)
			if el >= g.duration || ctx.Err() != nil {
				break
			}
			due := int64(g.rate*el.Seconds()) + 1 - attempted
			if due <= 0 {
				// Ahead of schedule: spin (a sleep can oversleep by
				// a millisecond and then owe a burst), unless far
				// ahead, as at very low rates.
				if ahead := time.Duration(float64(-due+1) / g.rate * float64(time.Second)); ahead > 2*time.Millisecond {
					time.Sleep(ahead - time.Millisecond)
				}
				continue
			}
			if due > int64(4*batch) {
				// Fell behind (preempted): drop the backlog rather
				// than send it as one burst. The report counts only
				// what was sent, so the offered rate stays honest.
				attempted += due - int64(batch)
				due = int64(batch)
			}
			n = int(min(int64(batch), due))
		} else if i%16 == 0 && (time.Since(start) >= g.duration || ctx.Err() != nil) {
			break
		}
		if err := send(n); err != nil {
			serr = err
			break
		}
		attempted += int64(n)
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
