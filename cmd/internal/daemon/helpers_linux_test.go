package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/switchyard-net/switchyard/cmd/internal/api"
	"github.com/switchyard-net/switchyard/internal/testns"
	"github.com/switchyard-net/switchyard/netns"
)

// testDaemon is a daemon serving on a socket in a temp dir.
type testDaemon struct {
	*Daemon
	c      *api.Client
	served chan error
}

// start starts a daemon on stateDir with its socket in the same temp tree.
// Cleanup closes it (without tearing the networks down).
func start(t *testing.T, stateDir string) *testDaemon {
	t.Helper()
	return startWith(t, &Config{StateDir: stateDir})
}

// startWith is start with more of the configuration given: cfg's socket
// and logger are set here.
func startWith(t *testing.T, cfg *Config) *testDaemon {
	t.Helper()
	cfg.Socket, cfg.Logger = filepath.Join(cfg.StateDir, "..", "sock", "s.sock"), testLogger(t)
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	td := &testDaemon{Daemon: d, c: api.NewClient(d.socket), served: make(chan error, 1)}
	go func() { td.served <- d.Serve() }()
	t.Cleanup(func() { td.stop(t) })
	return td
}

// stop closes the daemon and checks that Serve returned cleanly.
func (td *testDaemon) stop(t *testing.T) {
	t.Helper()
	td.Close()
	select {
	case err := <-td.served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		td.served <- nil // later stops see it too
	case <-time.After(5 * time.Second):
		t.Errorf("Serve did not return after Close")
	}
}

func testLogger(t *testing.T) *zap.Logger {
	if os.Getenv("SWITCHYARD_TEST_LOG") != "" {
		return zaptest.NewLogger(t)
	}
	return zap.NewNop()
}

// stateDir returns a fresh state dir.
func stateDir(t *testing.T) string {
	return filepath.Join(t.TempDir(), "state")
}

// newNS creates a namespace removed at cleanup.
func newNS(t *testing.T) string { return testns.New(t, "syd") }

// inNS runs a command inside namespace ns, bounded in time.
func inNS(ns string, args ...string) (string, error) { return testns.Exec(ns, 10*time.Second, args...) }

// ping reports whether 2 pings from ns to addr all got replies.
func ping(t *testing.T, ns, addr string) bool {
	t.Helper()
	return testns.Ping(t, ns, addr, 2)
}

// pingNone reports whether a single ping from ns to addr got no reply.
func pingNone(t *testing.T, ns, addr string) bool { return testns.PingFails(ns, addr) }

func mustPing(t *testing.T, ns, addr string) {
	t.Helper()
	if !ping(t, ns, addr) {
		t.Fatalf("no ping from %s to %s", ns, addr)
	}
}

// addrOf strips the prefix length.
func addrOf(p string) string {
	a, _, _ := strings.Cut(p, "/")
	return a
}

func hostLinkExists(t *testing.T, ns, name string) bool {
	t.Helper()
	ok, err := netns.LinkExists(ns, name)
	if err != nil {
		t.Fatalf("link exists %s: %v", name, err)
	}
	return ok
}

// readFile returns a file's bytes (nil when missing).
func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return b
}

// raw sends a raw request body over the socket and returns the status and
// the decoded error (nil on success).
func raw(t *testing.T, td *testDaemon, method, path, body string) (int, *api.Error) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", td.socket)
	}}, Timeout: 30 * time.Second}
	req, err := http.NewRequest(method, "http://switchyard"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode < 300 {
		return resp.StatusCode, nil
	}
	var eb api.ErrorBody
	if err := json.Unmarshal(data, &eb); err != nil || eb.Error == nil {
		t.Fatalf("%s %s: status %d, body %q is not an error body", method, path, resp.StatusCode, data)
	}
	return resp.StatusCode, eb.Error
}

func findPort(t *testing.T, n api.Network, name string) api.Port {
	t.Helper()
	for _, p := range n.Ports {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("network %s has no port %s; ports: %+v", n.Name, name, n.Ports)
	return api.Port{}
}

func hasPort(n api.Network, name string) bool {
	for _, p := range n.Ports {
		if p.Name == name {
			return true
		}
	}
	return false
}

func ctx() context.Context { return context.Background() }

// innerMAC returns the MAC of ifname inside ns.
func innerMAC(t *testing.T, ns, ifname string) string {
	t.Helper()
	m, err := linkMAC(ns, ifname)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func prefixes(t *testing.T, ss ...string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func mustAddrs(t *testing.T, ss ...string) []netip.Addr {
	t.Helper()
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// hostAddrs lists the addresses on a link of the daemon's namespace.
func hostAddrs(t *testing.T, name string) []string {
	t.Helper()
	h, err := netns.NetlinkHandle("")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	as, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range as {
		out = append(out, a.IPNet.String())
	}
	return out
}
