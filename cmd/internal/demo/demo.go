// Package demo is `switchyard demo`: the embedded default topology, end to
// end, in one process. Run starts a daemon in-process (state in a temporary
// dir), creates three network namespaces and one bridge network, connects
// them (two veth endpoints and one TAP endpoint), serves HTTP in one
// namespace and fetches it from another through the userspace switch, pings
// the gateway and the third namespace, prints what happened (addresses, MAC
// table, per-port counters) and removes everything again.
//
// Every host is a namespace the demo created; no address is put on an
// interface of the namespace the process runs in, and nothing is sent from
// it. Cleanup runs on every path: success, an error half way, and a
// cancelled context (Ctrl-C) at any moment.
package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/cmd/internal/api"
	"github.com/switchyard-net/switchyard/cmd/internal/daemon"
	"github.com/switchyard-net/switchyard/netns"
)

// NetworkName is the demo network's name.
const NetworkName = "demo"

// DefaultSubnet is the demo network's subnet when Config.Subnet is not set:
// a block of the benchmarking range (RFC 2544), which no real network uses.
var DefaultSubnet = netip.MustParsePrefix("198.18.100.0/24")

// NetnsPrefix starts the name of every namespace the demo creates.
const NetnsPrefix = "sydemo-"

// Roles of the three namespaces, in the order they are connected.
const (
	RoleWeb    = "web"
	RoleClient = "client"
	RolePeer   = "peer"
)

// Timeouts of the traffic steps.
const (
	fetchTimeout = 5 * time.Second
	pingCount    = 2
	pingTimeout  = time.Second
)

// Step names a point Run has reached; Config.Step is told after each.
type Step string

// The steps, in order.
const (
	StepDaemon     Step = "daemon"     // the in-process daemon is up
	StepNamespaces Step = "namespaces" // the three namespaces exist
	StepNetwork    Step = "network"    // the network exists
	StepConnected  Step = "connected"  // the three endpoints are connected
	StepServing    Step = "serving"    // the HTTP server listens in the web namespace
	StepFetched    Step = "fetched"    // the client fetched the page (or failed to)
	StepPinged     Step = "pinged"     // the pings are done
	StepReported   Step = "reported"   // the report is printed (and, with Keep, the hints)
)

// Config sets up a demo run. A nil *Config means all defaults.
type Config struct {
	// Subnet of the demo network; the zero value means DefaultSubnet. It
	// must be IPv4 and leave room for the gateway and three endpoints.
	Subnet netip.Prefix
	// Keep leaves everything up after the report, with the daemon
	// answering on a socket in its state dir, until ctx is done.
	Keep bool
	// Logger gets the daemon's logs; nil means none.
	Logger *zap.Logger
	// Self is how the --keep hints call the switchyard binary; empty
	// means "switchyard".
	Self string
	// Suffix ends the namespace names; empty means 4 random hex digits.
	Suffix string
	// TempDir is where the state dir is made; empty means os.TempDir().
	TempDir string
	// Step, when set, is called after each step, from Run's goroutine
	// (tests cancel the context from it).
	Step func(Step)
}

// Report is what a run found.
type Report struct {
	// Network is the network as inspected after the traffic: subnet,
	// gateway, and every port with its counters.
	Network api.Network
	// Endpoints are the three endpoints, in role order.
	Endpoints []Endpoint
	// Fetch is the HTTP fetch from the client namespace.
	Fetch Fetch
	// Pings are the pings from the client namespace: gateway, then peer.
	Pings []Ping
	// FDB is the network's MAC table after the traffic.
	FDB []api.FDBEntry
	// StateDir is the daemon's (temporary) state dir.
	StateDir string
	// Socket is the daemon's socket with Keep, else empty.
	Socket string
}

// Endpoint is one namespace of the demo and its port on the network.
type Endpoint struct {
	Role string
	Port api.Port
}

// Fetch is the outcome of the HTTP fetch.
type Fetch struct {
	From    string // the client's namespace
	URL     string
	Status  string // "200 OK"
	Code    int
	Bytes   int
	Body    string
	Elapsed time.Duration
	Err     error
}

// OK reports whether the fetch returned 200 with a body.
func (f Fetch) OK() bool { return f.Err == nil && f.Code == http.StatusOK && f.Bytes > 0 }

// FirstLine returns the first line of the body.
func (f Fetch) FirstLine() string {
	line, _, _ := strings.Cut(f.Body, "\n")
	return line
}

// Ping is the outcome of pinging one address.
type Ping struct {
	From   string // namespace
	To     netip.Addr
	ToName string // "gateway" or the namespace
	Sent   int
	RTTs   []time.Duration // one per reply
	Err    error           // why no echo could be sent, if so
}

// OK reports whether every echo got its reply.
func (p Ping) OK() bool { return p.Err == nil && p.Sent > 0 && len(p.RTTs) == p.Sent }

// Run runs the demo, writes its report to w and removes what it created;
// with cfg.Keep it waits for ctx to be done before removing it. It returns
// the report (nil if it did not get that far) and an error if a step
// failed, the fetch or a ping did not get through, ctx was done before the
// report, or cleanup failed. Without root it fails at once, creating
// nothing.
func Run(ctx context.Context, w io.Writer, cfg *Config) (rep *Report, err error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if !c.Subnet.IsValid() {
		c.Subnet = DefaultSubnet
	}
	if err := CheckSubnet(c.Subnet); err != nil {
		return nil, err
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Self == "" {
		c.Self = "switchyard"
	}
	if c.Suffix == "" {
		var b [2]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		c.Suffix = hex.EncodeToString(b[:])
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("demo needs root: network namespaces, veth pairs and TAP devices need CAP_SYS_ADMIN and CAP_NET_ADMIN; run it as root")
	}
	r := &runner{cfg: c, w: w}
	defer func() {
		if cerr := r.cleanup(); cerr != nil {
			err = errors.Join(err, cerr)
		} else if r.started {
			fmt.Fprintf(w, "\nremoved: %s\n", r.removed())
		}
	}()
	return r.run(ctx)
}

// CheckSubnet accepts an IPv4 subnet with room for the gateway and three
// endpoints.
func CheckSubnet(p netip.Prefix) error {
	if !p.Addr().Is4() {
		return fmt.Errorf("demo subnet %s: want an IPv4 subnet", p)
	}
	if p.Bits() > 29 {
		return fmt.Errorf("demo subnet %s: too small for a gateway and three endpoints (want /29 or larger)", p)
	}
	return nil
}

// runner holds what a run created, for cleanup.
type runner struct {
	cfg Config
	w   io.Writer

	started    bool // something was created
	dir        string
	d          *daemon.Daemon
	serveDone  chan struct{}
	netCreated bool
	namespaces []string
	srv        *http.Server
	srvDone    chan struct{}
	tr         *http.Transport
}

// step marks step s as done, tells Config.Step, and returns an error if
// ctx is done (the run stops there; during says where, for the message).
func (r *runner) step(ctx context.Context, s Step, during string) error {
	r.cfg.Logger.Debug("demo step", zap.String("step", string(s)))
	if r.cfg.Step != nil {
		r.cfg.Step(s)
	}
	return interrupted(ctx, during)
}

// interrupted returns ctx's error, worded for a user, if ctx is done.
func interrupted(ctx context.Context, during string) error {
	if ctx.Err() == nil {
		return nil
	}
	return fmt.Errorf("demo interrupted %s: %w", during, context.Cause(ctx))
}

func (r *runner) run(ctx context.Context) (*Report, error) {
	c := r.cfg
	names := map[string]string{
		RoleWeb:    NetnsPrefix + RoleWeb + "-" + c.Suffix,
		RoleClient: NetnsPrefix + RoleClient + "-" + c.Suffix,
		RolePeer:   NetnsPrefix + RolePeer + "-" + c.Suffix,
	}
	roles := []string{RoleWeb, RoleClient, RolePeer}

	// The daemon, in-process, with its state in a temporary dir.
	dir, err := os.MkdirTemp(c.TempDir, "switchyard-demo-")
	if err != nil {
		return nil, fmt.Errorf("creating the state dir: %w", err)
	}
	r.dir, r.started = dir, true
	dcfg := &daemon.Config{StateDir: dir, Logger: c.Logger}
	if c.Keep {
		dcfg.Socket = filepath.Join(dir, "switchyard.sock")
	}
	r.d, err = daemon.New(dcfg)
	if err != nil {
		return nil, fmt.Errorf("starting the daemon: %w", err)
	}
	if c.Keep {
		r.serveDone = make(chan struct{})
		go func() {
			defer close(r.serveDone)
			if err := r.d.Serve(); err != nil {
				c.Logger.Error("serving the demo socket", zap.Error(err))
			}
		}()
	}
	if err := r.step(ctx, StepDaemon, "while starting the daemon"); err != nil {
		return nil, err
	}

	for _, role := range roles {
		ns := names[role]
		if err := netns.Create(ns); err != nil {
			return nil, fmt.Errorf("creating namespace %s: %w", ns, err)
		}
		r.namespaces = append(r.namespaces, ns)
		if err := interrupted(ctx, "while creating the namespaces"); err != nil {
			return nil, err
		}
	}
	if err := r.step(ctx, StepNamespaces, "after creating the namespaces"); err != nil {
		return nil, err
	}

	fmt.Fprintf(r.w, "switchyard demo: three namespaces on one bridge network, switched in userspace by this process\n\n")
	n, err := r.d.CreateNetwork(api.NetworkCreate{Name: NetworkName, Driver: api.DriverBridge,
		Subnets: []api.Subnet{{Subnet: c.Subnet.String()}}})
	if err != nil {
		return nil, fmt.Errorf("creating network %s: %w", NetworkName, err)
	}
	r.netCreated = true
	if err := r.step(ctx, StepNetwork, "after creating the network"); err != nil {
		return nil, err
	}
	if len(n.Subnets) != 1 || n.Subnets[0].Gateway == "" {
		return nil, fmt.Errorf("network %s has no gateway (subnets %v)", NetworkName, n.Subnets)
	}
	gw, err := netip.ParseAddr(n.Subnets[0].Gateway)
	if err != nil {
		return nil, fmt.Errorf("network %s: gateway %q: %w", NetworkName, n.Subnets[0].Gateway, err)
	}

	rep := &Report{StateDir: dir}
	if c.Keep {
		rep.Socket = dcfg.Socket
	}
	for _, role := range roles {
		req := api.EndpointCreate{Netns: names[role]}
		if role == RolePeer {
			req.Kind = api.KindTap
		}
		p, err := r.d.Connect(NetworkName, req)
		if err != nil {
			return nil, fmt.Errorf("connecting %s to %s: %w", names[role], NetworkName, err)
		}
		rep.Endpoints = append(rep.Endpoints, Endpoint{Role: role, Port: p})
		if err := interrupted(ctx, "while connecting the namespaces"); err != nil {
			return nil, err
		}
	}
	if err := r.step(ctx, StepConnected, "after connecting the namespaces"); err != nil {
		return nil, err
	}
	addr := func(role string) (netip.Addr, error) {
		for _, e := range rep.Endpoints {
			if e.Role == role {
				p, err := netip.ParsePrefix(e.Port.IPv4)
				if err != nil {
					return netip.Addr{}, fmt.Errorf("endpoint %s has no IPv4 address (%q)", e.Port.Name, e.Port.IPv4)
				}
				return p.Addr(), nil
			}
		}
		return netip.Addr{}, fmt.Errorf("no %s endpoint", role)
	}
	webIP, err := addr(RoleWeb)
	if err != nil {
		return nil, err
	}
	peerIP, err := addr(RolePeer)
	if err != nil {
		return nil, err
	}

	// HTTP in the web namespace, fetched from the client namespace.
	if err := r.serve(names[RoleWeb], webIP); err != nil {
		return nil, err
	}
	if err := r.step(ctx, StepServing, "before the HTTP fetch"); err != nil {
		return nil, err
	}
	rep.Fetch = r.fetch(ctx, names[RoleClient], "http://"+webIP.String()+"/")
	if err := r.step(ctx, StepFetched, "during the HTTP fetch"); err != nil {
		return nil, err
	}

	for _, t := range []struct {
		to   netip.Addr
		name string
	}{{gw, api.GatewayPort}, {peerIP, names[RolePeer]}} {
		p := ping(ctx, names[RoleClient], t.to, pingCount, pingTimeout)
		p.ToName = t.name
		rep.Pings = append(rep.Pings, p)
		if err := interrupted(ctx, "during the pings"); err != nil {
			return nil, err
		}
	}
	if err := r.step(ctx, StepPinged, "after the pings"); err != nil {
		return nil, err
	}

	if rep.Network, err = r.d.Network(NetworkName); err != nil {
		return nil, fmt.Errorf("inspecting network %s: %w", NetworkName, err)
	}
	// The final counters and addresses replace those from connect time.
	for i, e := range rep.Endpoints {
		for _, p := range rep.Network.Ports {
			if p.Name == e.Port.Name {
				rep.Endpoints[i].Port = p
			}
		}
	}
	if rep.FDB, err = r.d.FDB(NetworkName); err != nil {
		return nil, fmt.Errorf("reading the MAC table of %s: %w", NetworkName, err)
	}
	if err := Print(r.w, rep); err != nil {
		return rep, err
	}
	var failed []string
	if !rep.Fetch.OK() {
		failed = append(failed, "the HTTP fetch")
	}
	for _, p := range rep.Pings {
		if !p.OK() {
			failed = append(failed, "the ping to "+p.To.String())
		}
	}
	if c.Keep {
		// Left up even when traffic failed: that is when looking
		// around helps most.
		r.printHints(rep, names, gw, webIP)
		_ = r.step(ctx, StepReported, "")
		<-ctx.Done()
		fmt.Fprintf(r.w, "\n%s; removing everything\n", stopReason(ctx))
	} else {
		_ = r.step(ctx, StepReported, "")
	}
	if len(failed) > 0 {
		return rep, fmt.Errorf("demo traffic failed: %s did not get through", strings.Join(failed, " and "))
	}
	return rep, nil
}

// stopReason names why ctx is done, for the line before cleanup.
func stopReason(ctx context.Context) string {
	if c := context.Cause(ctx); c != nil && c != context.Canceled {
		return c.Error()
	}
	return "stopping"
}

// printHints tells, with Keep, what to try while the demo stays up.
func (r *runner) printHints(rep *Report, names map[string]string, gw, webIP netip.Addr) {
	w := r.w
	fmt.Fprintf(w, "\nleft up (--keep); try, as root:\n")
	fmt.Fprintf(w, "  ip netns exec %s ping -c 3 %s\n", names[RoleClient], gw)
	fmt.Fprintf(w, "  ip netns exec %s curl -s http://%s/   (or wget -qO-)\n", names[RoleClient], webIP)
	fmt.Fprintf(w, "  ip netns exec %s ip -br addr\n", names[RolePeer])
	fmt.Fprintf(w, "  %s --socket %s fdb %s\n", r.cfg.Self, rep.Socket, NetworkName)
	fmt.Fprintf(w, "  %s --socket %s network inspect %s\n", r.cfg.Self, rep.Socket, NetworkName)
	fmt.Fprintf(w, "Ctrl-C (or SIGTERM) removes everything.\n")
}

// serve starts an HTTP server whose listener lives in namespace ns.
func (r *runner) serve(ns string, ip netip.Addr) error {
	var ln net.Listener
	err := netns.Do(ns, func() error {
		var err error
		ln, err = net.Listen("tcp4", net.JoinHostPort(ip.String(), "80"))
		return err
	})
	if err != nil {
		return fmt.Errorf("listening for HTTP in %s: %w", ns, err)
	}
	r.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintf(w, "%s\nyou came from %s\n", pageLine(ns, ip), req.RemoteAddr)
		}),
		ReadHeaderTimeout: fetchTimeout,
		ErrorLog:          zap.NewStdLog(r.cfg.Logger),
	}
	r.srvDone = make(chan struct{})
	go func() {
		defer close(r.srvDone)
		_ = r.srv.Serve(ln) // returns on Close
	}()
	return nil
}

// pageLine is the first line of the web namespace's page.
func pageLine(ns string, ip netip.Addr) string {
	return fmt.Sprintf("hello from %s (%s), through the switchyard userspace switch", ns, ip)
}

// fetch GETs url with a socket created in namespace ns.
func (r *runner) fetch(ctx context.Context, ns, url string) Fetch {
	f := Fetch{From: ns, URL: url}
	dialer := &net.Dialer{Timeout: fetchTimeout}
	r.tr = &http.Transport{
		Proxy:             nil, // never a proxy from the environment
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var conn net.Conn
			err := netns.Do(ns, func() error {
				var err error
				conn, err = dialer.DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		},
		ResponseHeaderTimeout: fetchTimeout,
	}
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		f.Err = err
		return f
	}
	start := time.Now()
	resp, err := (&http.Client{Transport: r.tr}).Do(req)
	if err != nil {
		f.Err = err
		f.Elapsed = time.Since(start)
		return f
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	f.Elapsed = time.Since(start)
	f.Status, f.Code, f.Bytes, f.Body, f.Err = resp.Status, resp.StatusCode, len(body), string(body), err
	return f
}

// cleanup removes what the run created, in reverse order, and reports
// what it could not remove.
func (r *runner) cleanup() error {
	var errs []error
	if r.srv != nil {
		_ = r.srv.Close()
		<-r.srvDone
	}
	if r.tr != nil {
		r.tr.CloseIdleConnections()
	}
	if r.d != nil {
		if r.netCreated {
			if err := r.d.RemoveNetwork(NetworkName); err != nil {
				errs = append(errs, fmt.Errorf("removing network %s: %w", NetworkName, err))
			}
		}
		_ = r.d.Close()
		if r.serveDone != nil {
			<-r.serveDone
		}
	}
	// Deleting a namespace also deletes its veths (and so their host ends)
	// and its TAP device, should removing the network have failed.
	for i := len(r.namespaces) - 1; i >= 0; i-- {
		ns := r.namespaces[i]
		if err := netns.Delete(ns); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("deleting namespace %s: %w", ns, err))
		}
	}
	if r.dir != "" {
		if err := os.RemoveAll(r.dir); err != nil {
			errs = append(errs, fmt.Errorf("removing the state dir: %w", err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("demo cleanup: %w", errors.Join(errs...))
	}
	return nil
}

// removed describes what cleanup removed.
func (r *runner) removed() string {
	var parts []string
	if r.netCreated {
		parts = append(parts, "network "+NetworkName)
	}
	if len(r.namespaces) > 0 {
		parts = append(parts, "namespaces "+strings.Join(r.namespaces, ", "))
	}
	parts = append(parts, "their links and the daemon's state dir")
	return strings.Join(parts, ", ") + "; nothing is left"
}
