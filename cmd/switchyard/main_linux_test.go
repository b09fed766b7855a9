package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/cmd/internal/api"
	"github.com/switchyard-net/switchyard/cmd/internal/daemon"
	"github.com/switchyard-net/switchyard/internal/nstest"
	"github.com/switchyard-net/switchyard/internal/pmqos"
	"github.com/switchyard-net/switchyard/internal/testns"
	"github.com/switchyard-net/switchyard/netns"
)

// TestMain doubles as the switchyard binary: with SWITCHYARD_TEST_MAIN=1
// the test binary runs the CLI with its arguments, so tests can run it as
// another process (another user, a daemon to signal).
func TestMain(m *testing.M) {
	if os.Getenv("SWITCHYARD_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// env is a daemon on a socket in a temp dir.
type env struct {
	dir, stateDir, socket string
	d                     *daemon.Daemon
}

// openDir returns a temp dir that every user can traverse.
func openDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for p := dir; p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func startDaemon(t *testing.T) *env {
	t.Helper()
	dir := openDir(t)
	e := &env{dir: dir, stateDir: filepath.Join(dir, "state"), socket: filepath.Join(dir, "run", "s.sock")}
	d, err := daemon.New(&daemon.Config{StateDir: e.stateDir, Socket: e.socket, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	e.d = d
	done := make(chan error, 1)
	go func() { done <- d.Serve() }()
	t.Cleanup(func() {
		d.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return e
}

// sy runs the CLI in-process against e's socket.
func (e *env) sy(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, er bytes.Buffer
	code = run(append([]string{"--socket", e.socket}, args...), &o, &er)
	return o.String(), er.String(), code
}

// ok runs the CLI and fails the test unless it succeeds.
func (e *env) ok(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := e.sy(t, args...)
	if code != 0 {
		t.Fatalf("switchyard %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

func newNS(t *testing.T) string { return testns.New(t, "syc") }

func inNS(ns string, args ...string) (string, error) { return testns.Exec(ns, 10*time.Second, args...) }

func mustPing(t *testing.T, ns, addr string) {
	t.Helper()
	out, err := inNS(ns, "ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "1", addr)
	if err != nil || !strings.Contains(out, "2 received") {
		t.Fatalf("ping %s from %s: %v: %s", addr, ns, err, out)
	}
}

func pingFails(ns, addr string) bool { return testns.PingFails(ns, addr) }

func inspect(t *testing.T, e *env, name string) api.Network {
	t.Helper()
	var nets []api.Network
	if err := json.Unmarshal([]byte(e.ok(t, "network", "inspect", name)), &nets); err != nil {
		t.Fatalf("inspect output is not a JSON array of networks: %v", err)
	}
	if len(nets) != 1 || nets[0].Name != name {
		t.Fatalf("inspect %s = %+v", name, nets)
	}
	return nets[0]
}

func port(t *testing.T, n api.Network, name string) api.Port {
	t.Helper()
	for _, p := range n.Ports {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no port %s in %+v", name, n.Ports)
	return api.Port{}
}

func linkExists(t *testing.T, ns, name string) bool {
	t.Helper()
	ok, err := netns.LinkExists(ns, name)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestCLIEndToEnd drives every network command through the CLI against a
// daemon: create, connect three namespaces, ping, inspect, fdb, port
// flags, set, disconnect, rm.
func TestCLIEndToEnd(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	a, b, c := newNS(t), newNS(t), newNS(t)
	e := startDaemon(t)

	if out := e.ok(t, "network", "create", "cli", "--subnet", "198.18.40.0/24", "--ip-range", "198.18.40.64/26",
		"--aux-address", "printer=198.18.40.250", "--ageing", "2m"); out != "cli\n" {
		t.Errorf("create printed %q", out)
	}
	ls := e.ok(t, "network", "ls")
	if !strings.HasPrefix(ls, "NAME") || !strings.Contains(ls, "cli") || !strings.Contains(ls, "198.18.40.0/24") || !strings.Contains(ls, "198.18.40.1") {
		t.Errorf("ls:\n%s", ls)
	}
	if out := e.ok(t, "network", "ls", "-q"); out != "cli\n" {
		t.Errorf("ls -q = %q", out)
	}
	outA := e.ok(t, "network", "connect", "cli", a)
	if !strings.Contains(outA, "198.18.40.64/24") {
		t.Errorf("connect a printed %q, want the first address of the ip-range", outA)
	}
	e.ok(t, "network", "connect", "cli", b, "--ip", "198.18.40.10", "--mac", "02:00:00:40:00:10")
	e.ok(t, "network", "connect", "cli", c, "--kind", "tap", "--ifname", "tap0")

	mustPing(t, a, "198.18.40.10")
	mustPing(t, c, "198.18.40.10")
	mustPing(t, b, "198.18.40.1")

	n := inspect(t, e, "cli")
	pa, pb, pc := port(t, n, a), port(t, n, b), port(t, n, c)
	if pa.Kind != "veth" || pa.Netns != a || pa.IfName != "eth0" || pa.HostLink == "" || pa.MAC == "" || pa.IPv4 != "198.18.40.64/24" {
		t.Errorf("a = %+v", pa)
	}
	if pb.MAC != "02:00:00:40:00:10" || pb.IPv4 != "198.18.40.10/24" {
		t.Errorf("b = %+v", pb)
	}
	if pc.Kind != "tap" || pc.IfName != "tap0" {
		t.Errorf("c = %+v", pc)
	}
	if g := port(t, n, "gateway"); g.Kind != "gateway" || g.IPv4 != "198.18.40.1/24" {
		t.Errorf("gateway = %+v", g)
	}
	if n.Ageing != "2m0s" || n.AuxAddresses["printer"] != "198.18.40.250" {
		t.Errorf("network = %+v", n)
	}

	fdb := e.ok(t, "fdb", "cli")
	for _, want := range []string{"MAC", pa.MAC + "  " + a, pb.MAC, "static"} {
		if !strings.Contains(fdb, want) {
			t.Errorf("fdb lacks %q:\n%s", want, fdb)
		}
	}

	e.ok(t, "port", "set", "cli", a, "--isolated", "on")
	e.ok(t, "port", "set", "cli", b, "--isolated", "on", "--hairpin", "on", "--mcast-flood", "off")
	if !pingFails(a, "198.18.40.10") {
		t.Errorf("isolated ports still reach each other")
	}
	n = inspect(t, e, "cli")
	if f := port(t, n, b).Flags; !f.Isolated || !f.Hairpin || f.McastFlood || !f.Flood {
		t.Errorf("b's flags = %+v", f)
	}
	e.ok(t, "port", "set", "cli", a, "--isolated", "off")
	mustPing(t, a, "198.18.40.10")

	e.ok(t, "network", "set", "cli", "--ageing", "10m", "--mac-limit", "100")
	if n := inspect(t, e, "cli"); n.Ageing != "10m0s" || n.MACLimit != 100 {
		t.Errorf("after set: ageing %s, mac_limit %d", n.Ageing, n.MACLimit)
	}
	if out := e.ok(t, "fdb", "cli", "--flush"); !strings.HasPrefix(out, "flushed ") {
		t.Errorf("flush printed %q", out)
	}

	e.ok(t, "network", "disconnect", "cli", b)
	if linkExists(t, "", pb.HostLink) {
		t.Errorf("disconnect left %s", pb.HostLink)
	}
	if out := e.ok(t, "network", "rm", "cli"); out != "cli\n" {
		t.Errorf("rm printed %q", out)
	}
	if linkExists(t, "", pa.HostLink) || linkExists(t, c, "tap0") {
		t.Errorf("rm left links")
	}
	if out := e.ok(t, "network", "ls", "-q"); out != "" {
		t.Errorf("ls after rm = %q", out)
	}
}

// TestCLIBadInput: every bad input is one line on stderr naming the
// problem, a non-zero exit (2 for usage), and the state is unchanged.
func TestCLIBadInput(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	x, y := newNS(t), newNS(t)
	e := startDaemon(t)
	e.ok(t, "network", "create", "net1", "--subnet", "198.18.41.0/24")
	e.ok(t, "network", "create", "tiny", "--subnet", "198.18.42.0/30")
	e.ok(t, "network", "connect", "net1", x, "--ip", "198.18.41.7")
	e.ok(t, "network", "connect", "tiny", x, "--ifname", "eth1")
	t.Cleanup(func() {
		e.ok(t, "network", "rm", "net1", "tiny")
	})
	statePath := filepath.Join(e.stateDir, "state.json")
	ipamPath := filepath.Join(e.stateDir, "ipam.json")
	st0, _ := os.ReadFile(statePath)
	ip0, _ := os.ReadFile(ipamPath)

	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"network", "create", "o", "--subnet", "198.18.41.128/25"}, 1, `subnet 198.18.41.128/25 overlaps network "net1"`},
		{[]string{"network", "create", "g", "--subnet", "198.18.43.0/24", "--gateway", "198.18.44.1"}, 1, "gateway 198.18.44.1 is outside subnet 198.18.43.0/24"},
		{[]string{"network", "create", "g", "--subnet", "198.18.43.0/24", "--ip-range", "198.18.44.0/25"}, 1, "ip-range 198.18.44.0/25 is not inside subnet 198.18.43.0/24"},
		{[]string{"network", "create", "g", "--subnet", "198.18.43.0/24", "--aux-address", "r=198.18.43.1"}, 1, "collides with the gateway"},
		{[]string{"network", "create", "net1", "--subnet", "198.18.43.0/24"}, 1, `network "net1" already exists`},
		{[]string{"network", "create", "g", "--driver", "macvlan"}, 1, "macvlan needs a parent interface"},
		{[]string{"network", "create", "g", "--subnet", "198.18.43.0/24", "--uplink", "sycnoiface", "--uplink-ip", "198.18.50.2/24"}, 1, "uplink interface sycnoiface not found"},
		{[]string{"network", "create", "g", "--subnet", "198.18.43.0/24", "--uplink", "sycnoiface", "--uplink-ip", "198.18.50.2/24", "--nat-timeout", "udp"}, 2, "want NAME=DURATION"},
		{[]string{"network", "create", "g", "--uplink-ip", "198.18.50.2/24"}, 1, "need --uplink"},
		{[]string{"network", "create", "g", "--subnet", "banana"}, 1, `subnet "banana" is not a CIDR prefix`},
		{[]string{"network", "create", "g", "--ipam", "none", "--subnet", "198.18.43.0/24"}, 1, "ipam none"},
		{[]string{"network", "create", "g", "--mtu", "big"}, 2, `invalid argument "big" for "--mtu"`},
		{[]string{"network", "create", "g", "--aux-address", "noequals"}, 2, "want NAME=IP"},
		{[]string{"network", "create", "g", "--gateway", "198.18.43.1"}, 2, "need --subnet"},
		{[]string{"network", "create"}, 2, "takes 1 argument(s) (NAME)"},
		{[]string{"network", "create", "g", "--bogus"}, 2, "unknown flag: --bogus"},
		{[]string{"network", "connect", "net1", y, "--ip", "198.18.99.1"}, 1, "198.18.99.1 is outside the subnets"},
		{[]string{"network", "connect", "net1", y, "--ip", "198.18.41.7"}, 1, `198.18.41.7 in network "net1" is already allocated to "` + x + `"`},
		{[]string{"network", "connect", "tiny", y}, 1, "no free address left"},
		{[]string{"network", "connect", "nonet", y}, 1, `network "nonet" not found`},
		{[]string{"network", "connect", "net1", "sycnotthere"}, 1, `namespace "sycnotthere" not found`},
		{[]string{"network", "connect", "net1", x}, 1, "already connected"},
		{[]string{"network", "connect", "net1", y, "--kind", "vxlan"}, 2, `invalid --kind "vxlan"`},
		{[]string{"network", "connect", "net1", y, "--ip", "none", "--ip", "198.18.41.9"}, 2, "--ip none cannot be combined"},
		{[]string{"network", "connect", "net1", y, "--mac", "nope"}, 1, `MAC "nope"`},
		{[]string{"network", "connect", "net1", y, "--publish", "8080:80"}, 1, `network "net1" has no uplink`},
		{[]string{"network", "connect", "net1"}, 2, "takes 2 argument(s) (NAME NETNS)"},
		{[]string{"network", "disconnect", "net1", y}, 1, "is not connected"},
		{[]string{"network", "attach", "net1", "sycnoiface"}, 1, "interface sycnoiface not found"},
		{[]string{"network", "detach", "net1", "sycnoiface"}, 1, "not attached"},
		{[]string{"network", "inspect", "nonet"}, 1, `network "nonet" not found`},
		{[]string{"network", "rm", "nonet"}, 1, `network "nonet" not found`},
		{[]string{"network", "set", "net1"}, 2, "nothing to set"},
		{[]string{"network", "set", "net1", "--ageing", "forever"}, 1, `ageing "forever"`},
		{[]string{"network", "set", "net1", "--mac-limit", "x"}, 2, `invalid argument "x"`},
		{[]string{"port", "set", "net1", x, "--hairpin", "maybe"}, 2, `invalid --hairpin "maybe": want on or off`},
		{[]string{"port", "set", "net1", x}, 2, "nothing to set"},
		{[]string{"port", "set", "net1", "noport", "--hairpin", "on"}, 1, `port "noport" not found`},
		{[]string{"fdb", "nonet"}, 1, `network "nonet" not found`},
		{[]string{"nat", "net1"}, 1, `network "net1" has no NAT: it has no uplink`},
		{[]string{"nat", "nonet"}, 1, `network "nonet" not found`},
		{[]string{"nat", "net1", "--max", "0"}, 2, "--max 0: want a positive number"},
		{[]string{"nat"}, 2, "takes 1 argument(s) (NAME)"},
		{[]string{"capture", "nonet", "-w", filepath.Join(e.dir, "c.pcapng"), "-f", "icmp", "-c", "5", "--duration", "2s"}, 1, `network "nonet" not found`},
		{[]string{"capture", "net1", "--endpoint", y, "-w", filepath.Join(e.dir, "c.pcapng")}, 1, `network "net1" has no port "` + y + `"`},
		{[]string{"capture", "net1", "-w", filepath.Join(e.dir, "c.pcapng"), "-f", "tcp prt 80"}, 1, `filter "tcp prt 80": want and, or or the end at column 5 ("prt")`},
		{[]string{"capture", "net1", "-w", filepath.Join(e.dir, "nodir", "c.pcapng")}, 1, "cannot write " + filepath.Join(e.dir, "nodir", "c.pcapng") + ": no such file or directory"},
		{[]string{"stats", "nonet"}, 1, `network "nonet" not found`},
		{[]string{"trace", "net1", "--from", y, "icmp", "198.18.41.2", ">", "198.18.41.1"}, 1, `network "net1" has no endpoint or port "` + y + `"`},
		{[]string{"trace", "net1", "--from", x, "icmp", "198.18.41.2"}, 1, "frame spec"},
		{[]string{"capture", "net1", "-c", "many"}, 2, `invalid argument "many"`},
		{[]string{"network", "frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"network"}, 2, "needs a subcommand"},
		{[]string{"bench", "--rx", "bogus"}, 1, `bench: rx "bogus": want split, ring or mmsg`},
		{[]string{"daemon", "--busy-poll", "1s", "--state-dir", filepath.Join(e.dir, "other")}, 2, "invalid --busy-poll 1s: want 0 to 10ms"},
		{[]string{"daemon", "--cpu-latency", "-1us", "--state-dir", filepath.Join(e.dir, "other")}, 2, "invalid --cpu-latency -1µs: want 0 to 35m47.483647s"},
		{[]string{"daemon", "--cpu-latency", "soon", "--state-dir", filepath.Join(e.dir, "other")}, 2, `invalid argument "soon" for "--cpu-latency" flag: want a duration such as 0s or 20us`},
		{[]string{"daemon", "--metrics", "9100", "--state-dir", filepath.Join(e.dir, "other")}, 1, "metrics: cannot listen on 9100: address 9100: missing port in address"},
		{[]string{"daemon", "--state-dir", e.stateDir, "--socket", filepath.Join(e.dir, "other.sock")}, 1, "another switchyard daemon is using state dir " + e.stateDir},
	} {
		name := strings.Join(tc.args, " ")
		out, errOut, code := e.sy(t, tc.args...)
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d (stderr %q)", name, code, tc.code, errOut)
		}
		if out != "" {
			t.Errorf("%s: stdout %q, want nothing", name, out)
		}
		if strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "switchyard: ") || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%s: stderr %q, want one line containing %q", name, errOut, tc.msg)
		}
		if tc.code == 2 && !strings.Contains(errOut, "--help'") {
			t.Errorf("%s: usage error %q without a hint to --help", name, errOut)
		}
		if st, _ := os.ReadFile(statePath); !bytes.Equal(st, st0) {
			t.Fatalf("%s changed the state file", name)
		}
		if ip, _ := os.ReadFile(ipamPath); !bytes.Equal(ip, ip0) {
			t.Fatalf("%s changed the IPAM file", name)
		}
	}
	if linkExists(t, y, "eth0") {
		t.Errorf("failed connects left a link in %s", y)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "c.pcapng")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed capture made its -w file: %v", err)
	}
}

// TestCLIHelp: --help works on every command.
func TestCLIHelp(t *testing.T) {
	var paths [][]string
	root := newRootCmd()
	var visit func(prefix []string, cmds []*cobra.Command)
	visit = func(prefix []string, cmds []*cobra.Command) {
		for _, c := range cmds {
			if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
				continue
			}
			p := append(append([]string(nil), prefix...), c.Name())
			paths = append(paths, p)
			visit(p, c.Commands())
		}
	}
	visit(nil, root.Commands())
	want := []string{"daemon", "network create", "network ls", "network inspect", "network rm", "network set",
		"network connect", "network disconnect", "network attach", "network detach", "port set", "fdb", "nat", "capture"}
	have := map[string]bool{}
	for _, p := range paths {
		have[strings.Join(p, " ")] = true
	}
	for _, w := range want {
		if !have[w] {
			t.Errorf("no command %q", w)
		}
	}
	for _, p := range paths {
		var o, er bytes.Buffer
		code := run(append(p, "--help"), &o, &er)
		if code != 0 || !strings.Contains(o.String(), "Usage:") || er.Len() != 0 {
			t.Errorf("%s --help: exit %d, stdout %q, stderr %q", strings.Join(p, " "), code, o.String(), er.String())
		}
	}
	// The contract's flags exist.
	for cmd, flags := range map[string][]string{
		"daemon":             {"config", "state-dir", "socket", "log-level", "metrics", "busy-poll", "cpu-latency", "rx-steering"},
		"network create":     {"driver", "mode", "parent", "parent-netns", "ipam", "subnet", "ip-range", "gateway", "aux-address", "uplink", "uplink-ip", "uplink-gateway", "internal", "mtu", "ageing", "mac-limit"},
		"network set":        {"ageing", "mac-limit"},
		"network connect":    {"ip", "mac", "ifname", "kind", "publish"},
		"network attach":     {"netns"},
		"network detach":     {"netns"},
		"port set":           {"hairpin", "isolated", "flood", "mcast-flood", "bcast-flood"},
		"fdb":                {"flush"},
		"nat":                {"socket"},
		"capture":            {"endpoint", "w", "f", "c", "duration", "socket"},
		"network disconnect": {"socket"},
	} {
		c, _, err := newRootCmd().Find(strings.Fields(cmd))
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		for _, f := range flags {
			if len(f) == 1 { // a shorthand, like capture's -w
				if c.Flags().ShorthandLookup(f) == nil {
					t.Errorf("%s has no -%s", cmd, f)
				}
				continue
			}
			if c.Flags().Lookup(f) == nil && c.InheritedFlags().Lookup(f) == nil {
				t.Errorf("%s has no --%s", cmd, f)
			}
		}
	}
}

// testBinary copies the test binary where every user can run it.
func testBinary(t *testing.T, dir string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	p := filepath.Join(dir, "switchyard")
	out, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func binCmd(ctx context.Context, bin string, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, bin, args...)
	c.Env = append(os.Environ(), "SWITCHYARD_TEST_MAIN=1")
	return c
}

// TestCLIPermission: a user without access to the socket gets one line
// saying so; with no daemon, one line saying that.
func TestCLIPermission(t *testing.T) {
	nstest.RequirePriv(t)
	e := startDaemon(t)
	bin := testBinary(t, e.dir)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := binCmd(ctx, bin, "--socket", e.socket, "network", "ls")
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var o, er bytes.Buffer
	c.Stdout, c.Stderr = &o, &er
	err := c.Run()
	want := "switchyard: permission denied on " + e.socket + "; run as root"
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.HasPrefix(er.String(), want) || strings.Count(er.String(), "\n") != 1 || o.Len() != 0 {
		t.Errorf("as uid 65534: %v, stdout %q, stderr %q; want exit 1 and %q", err, o.String(), er.String(), want)
	}
	if fi, err := os.Stat(e.socket); err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode: %v %v, want 0660", fi.Mode(), err)
	}

	_, errOut, code := (&env{socket: filepath.Join(e.dir, "none.sock")}).sy(t, "network", "ls")
	if code != 1 || !strings.Contains(errOut, "is `switchyard daemon` running?") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("no daemon: exit %d, %q", code, errOut)
	}
}

// TestCLIDaemon runs `switchyard daemon` as a process: --config applies a
// topology, SIGTERM stops it cleanly (exit 0, socket removed, endpoints
// kept), a new daemon re-adopts them and forwarding resumes.
func TestCLIDaemon(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	a, b := newNS(t), newNS(t)
	dir := openDir(t)
	e := &env{dir: dir, stateDir: filepath.Join(dir, "state"), socket: filepath.Join(dir, "s.sock")}
	cfg := filepath.Join(dir, "topo.yaml")
	topo := "networks:\n  - name: dn\n    subnets: [{subnet: 198.18.45.0/24}]\n    endpoints:\n      - netns: " + a + "\n      - {netns: " + b + ", ips: [198.18.45.20]}\n"
	if err := os.WriteFile(cfg, []byte(topo), 0o600); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	startProc := func(extra ...string) (*exec.Cmd, *syncBuffer, chan error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		t.Cleanup(cancel)
		c := binCmd(ctx, self, append([]string{"daemon", "--state-dir", e.stateDir, "--socket", e.socket, "--log-level", "debug"}, extra...)...)
		logs := &syncBuffer{}
		c.Stderr = logs
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		cl := api.NewClient(e.socket)
		for i := 0; ; i++ {
			if _, err := cl.Ping(context.Background()); err == nil {
				break
			}
			select {
			case err := <-done:
				t.Fatalf("daemon exited: %v\n%s", err, logs.String())
			default:
			}
			if i > 100 {
				t.Fatalf("daemon not answering after 10 s\n%s", logs.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
		return c, logs, done
	}
	stop := func(c *exec.Cmd, logs *syncBuffer, done chan error) {
		t.Helper()
		if err := c.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("daemon after SIGTERM: %v\n%s", err, logs.String())
			}
		case <-time.After(10 * time.Second):
			c.Process.Kill()
			t.Fatalf("daemon did not stop on SIGTERM")
		}
		if _, err := os.Stat(e.socket); !os.IsNotExist(err) {
			t.Errorf("socket left after SIGTERM: %v", err)
		}
	}

	c, logs, done := startProc("--config", cfg)
	mustPing(t, a, "198.18.45.20")
	mustPing(t, a, "198.18.45.1")
	stop(c, logs, done)
	if !strings.Contains(logs.String(), "signal received") {
		t.Errorf("no log of the signal:\n%s", logs.String())
	}

	// The second daemon also holds a CPU latency request while it runs.
	before, qosErr := pmqos.Current()
	c, logs, done = startProc("--cpu-latency", "0s")
	mustPing(t, a, "198.18.45.20")
	if !strings.Contains(logs.String(), "endpoint re-adopted") {
		t.Errorf("no log of the re-adoption:\n%s", logs.String())
	}
	if qosErr == nil {
		if d, err := pmqos.Current(); err != nil || d != 0 {
			t.Errorf("CPU latency bound with the daemon's --cpu-latency 0s held: %v, %v; want 0", d, err)
		}
	}
	e.ok(t, "network", "rm", "dn")
	stop(c, logs, done)
	if qosErr == nil {
		if d, err := pmqos.Current(); err != nil || d != before {
			t.Errorf("CPU latency bound after the daemon stopped: %v, %v; want %v as before", d, err, before)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
