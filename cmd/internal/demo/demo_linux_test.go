package demo

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/switchyard-net/switchyard/cmd/internal/api"
	"github.com/switchyard-net/switchyard/internal/nstest"
	"github.com/switchyard-net/switchyard/netns"
)

// testSuffix returns a namespace suffix unique to this test.
func testSuffix() string { return nstest.Name("t") }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// demoNames are the namespaces a run with suffix creates.
func demoNames(suffix string) []string {
	return []string{NetnsPrefix + RoleWeb + "-" + suffix, NetnsPrefix + RoleClient + "-" + suffix, NetnsPrefix + RolePeer + "-" + suffix}
}

// assertGone fails t if a namespace of the run or its state dir is left.
func assertGone(t *testing.T, suffix, stateDir string) {
	t.Helper()
	for _, ns := range demoNames(suffix) {
		if netns.Exists(ns) {
			t.Errorf("namespace %s left after Run", ns)
			_ = netns.Delete(ns)
		}
	}
	if stateDir != "" {
		if _, err := os.Stat(stateDir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("state dir %s left after Run (stat: %v)", stateDir, err)
			os.RemoveAll(stateDir)
		}
	}
}

// rootAddrsIn returns the addresses in subnet on the links of the test's
// own namespace.
func rootAddrsIn(t *testing.T, subnet netip.Prefix) []string {
	t.Helper()
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatalf("listing addresses: %v", err)
	}
	var out []string
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && subnet.Contains(ip.Unmap()) {
			out = append(out, a.String())
		}
	}
	return out
}

// TestRun runs the whole demo and checks what it did and printed, and that
// it left nothing behind.
func TestRun(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	suffix := testSuffix()
	subnet := netip.MustParsePrefix("198.18.101.0/24")
	var out bytes.Buffer
	var midRun []string
	var sawNamespaces bool
	rep, err := Run(testCtx(t), &out, &Config{Subnet: subnet, Suffix: suffix, Step: func(s Step) {
		if s == StepPinged {
			midRun = rootAddrsIn(t, subnet)
			sawNamespaces = netns.Exists(demoNames(suffix)[0]) && netns.Exists(demoNames(suffix)[2])
		}
	}})
	t.Logf("output:\n%s", out.String())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	assertGone(t, suffix, rep.StateDir)
	if !sawNamespaces {
		t.Errorf("the namespaces did not exist during the run")
	}
	if len(midRun) > 0 {
		t.Errorf("addresses of the demo subnet on the test's own namespace during the run: %v", midRun)
	}

	// Endpoints: three, in role order, addressed in the subnet.
	if len(rep.Endpoints) != 3 {
		t.Fatalf("%d endpoints, want 3: %+v", len(rep.Endpoints), rep.Endpoints)
	}
	names := demoNames(suffix)
	wantKinds := []string{api.KindVeth, api.KindVeth, api.KindTap}
	ips := map[string]netip.Addr{}
	for i, e := range rep.Endpoints {
		p := e.Port
		pfx, err := netip.ParsePrefix(p.IPv4)
		if err != nil || !subnet.Contains(pfx.Addr()) || pfx.Bits() != subnet.Bits() {
			t.Errorf("endpoint %s: IPv4 %q, want an address in %s", p.Name, p.IPv4, subnet)
		}
		ips[e.Role] = pfx.Addr()
		if p.Netns != names[i] || p.Kind != wantKinds[i] || p.MAC == "" || !p.Up {
			t.Errorf("endpoint %d = %+v, want namespace %s, kind %s, a MAC, up", i, p, names[i], wantKinds[i])
		}
		if p.Counters.RxFrames == 0 || p.Counters.TxFrames == 0 {
			t.Errorf("endpoint %s counters %+v: want frames both ways", p.Name, p.Counters)
		}
		for _, s := range []string{p.Netns, p.IPv4, p.MAC} {
			if !strings.Contains(out.String(), s) {
				t.Errorf("output does not show %q of endpoint %s", s, p.Name)
			}
		}
	}
	if gw := rep.Network.Subnets[0].Gateway; gw != "198.18.101.1" {
		t.Errorf("gateway %s, want 198.18.101.1", gw)
	}

	// The fetch: 200 and the page of the web namespace, seen from the
	// client's address.
	f := rep.Fetch
	if !f.OK() || f.Code != 200 {
		t.Errorf("fetch = %+v, want 200 with a body", f)
	}
	if want := pageLine(names[0], ips[RoleWeb]); f.FirstLine() != want {
		t.Errorf("page's first line = %q, want %q", f.FirstLine(), want)
	}
	if want := "you came from " + ips[RoleClient].String() + ":"; !strings.Contains(f.Body, want) {
		t.Errorf("page = %q, want it to contain %q", f.Body, want)
	}
	if !strings.Contains(out.String(), "200 OK") || !strings.Contains(out.String(), f.FirstLine()) {
		t.Errorf("output does not show the fetch's status and first line")
	}

	// The pings: gateway and peer, every echo answered.
	if len(rep.Pings) != 2 {
		t.Fatalf("%d pings, want 2", len(rep.Pings))
	}
	for i, want := range []netip.Addr{netip.MustParseAddr("198.18.101.1"), ips[RolePeer]} {
		p := rep.Pings[i]
		if p.To != want || p.From != names[1] || !p.OK() || p.Sent != pingCount {
			t.Errorf("ping %d = %+v, want %d/%d replies from %s to %s", i, p, pingCount, pingCount, names[1], want)
		}
	}

	// The MAC table: the gateway's static entry and the three endpoint
	// MACs learned on their own ports, in the report and the output.
	fdb := map[string]api.FDBEntry{}
	for _, e := range rep.FDB {
		fdb[e.MAC] = e
	}
	if e := fdb[rep.Network.GatewayMAC]; e.Port != api.GatewayPort || e.Type != "static" {
		t.Errorf("gateway MAC entry = %+v", e)
	}
	table := section(out.String(), "MAC table")
	for _, ep := range rep.Endpoints {
		if e := fdb[ep.Port.MAC]; e.Port != ep.Port.Name || e.Type != "learned" {
			t.Errorf("MAC table entry for %s = %+v, want learned on %s", ep.Port.MAC, e, ep.Port.Name)
		}
		if !strings.Contains(table, ep.Port.MAC+"  "+ep.Port.Name) {
			t.Errorf("printed MAC table lacks %s on %s:\n%s", ep.Port.MAC, ep.Port.Name, table)
		}
	}
	if counters := section(out.String(), "per-port counters"); strings.Count(counters, "\n") != 5 {
		t.Errorf("counters section should have a header and 4 ports:\n%s", counters)
	}
	if !strings.Contains(out.String(), "nothing is left") {
		t.Errorf("output lacks the final cleanup line")
	}
}

// section returns the lines after the one starting with title, up to the
// next blank line.
func section(out, title string) string {
	i := strings.Index(out, "\n"+title)
	if i < 0 {
		return ""
	}
	s := out[i+1:]
	s = s[strings.Index(s, "\n")+1:]
	if j := strings.Index(s, "\n\n"); j >= 0 {
		s = s[:j+1]
	}
	return s
}

// TestRunCancelled cancels the context at each step and checks that Run
// stops with the context's error and removes everything.
func TestRunCancelled(t *testing.T) {
	nstest.RequirePriv(t)
	for _, at := range []Step{StepDaemon, StepNamespaces, StepNetwork, StepConnected, StepServing, StepFetched} {
		t.Run(string(at), func(t *testing.T) {
			nstest.CheckLeaks(t)
			suffix := testSuffix()
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			tmp := t.TempDir()
			var reached []Step
			var out bytes.Buffer
			_, err := Run(ctx, &out, &Config{Suffix: suffix, TempDir: tmp, Step: func(s Step) {
				reached = append(reached, s)
				if s == at {
					cancel()
				}
			}})
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run cancelled at %s: err = %v, want context.Canceled", at, err)
			}
			if last := reached[len(reached)-1]; last != at {
				t.Errorf("Run went on to step %s after being cancelled at %s", last, at)
			}
			if !strings.Contains(out.String(), "nothing is left") {
				t.Errorf("output lacks the cleanup line:\n%s", out.String())
			}
			assertGone(t, suffix, "")
			emptyDir(t, tmp)
		})
	}
}

// emptyDir fails t if dir, the parent of a run's state dir, holds
// anything after Run.
func emptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("%s left in %s after Run", e.Name(), dir)
	}
}

// TestRunKeep leaves the demo up, talks to its daemon over the printed
// socket, then stops it.
func TestRunKeep(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	suffix := testSuffix()
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	tmp := t.TempDir()
	var out bytes.Buffer
	var inspected api.Network
	var inspectErr error
	var up bool
	rep, err := Run(ctx, &out, &Config{Keep: true, Suffix: suffix, TempDir: tmp, Self: "switchyard", Step: func(s Step) {
		if s != StepReported {
			return
		}
		defer cancel()
		socks, _ := filepath.Glob(filepath.Join(tmp, "switchyard-demo-*", "switchyard.sock"))
		if len(socks) != 1 {
			t.Errorf("sockets under %s: %v, want one", tmp, socks)
			return
		}
		c := api.NewClient(socks[0])
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		inspected, inspectErr = c.Network(cctx, NetworkName)
		up = true
		for _, ns := range demoNames(suffix) {
			up = up && netns.Exists(ns)
		}
	}})
	if err != nil {
		t.Fatalf("Run --keep: %v", err)
	}
	if !up {
		t.Errorf("namespaces not up while kept")
	}
	if inspectErr != nil || inspected.Name != NetworkName || len(inspected.Ports) != 4 {
		t.Errorf("inspect over the printed socket: %+v, %v; want network %s with 4 ports", inspected, inspectErr, NetworkName)
	}
	for _, want := range []string{"ip netns exec " + demoNames(suffix)[1] + " ping", "switchyard --socket " + rep.Socket + " fdb demo"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("hints lack %q:\n%s", want, out.String())
		}
	}
	assertGone(t, suffix, rep.StateDir)
	emptyDir(t, tmp)
}

// TestRunSetupError makes a step fail half way (a namespace name is
// taken) and checks that Run fails with one line naming it, removes what
// it made, and leaves alone what it did not make.
func TestRunSetupError(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	suffix := testSuffix()
	taken := demoNames(suffix)[2]
	if err := netns.Create(taken); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.Delete(taken) })
	tmp := t.TempDir()
	var out bytes.Buffer
	_, err := Run(testCtx(t), &out, &Config{Suffix: suffix, TempDir: tmp})
	if err == nil || !strings.Contains(err.Error(), "creating namespace "+taken) || strings.Contains(err.Error(), "\n") {
		t.Errorf("Run with %s taken: err = %v, want one line naming it", taken, err)
	}
	if !netns.Exists(taken) {
		t.Errorf("Run deleted namespace %s, which it did not create", taken)
	}
	for _, ns := range demoNames(suffix)[:2] {
		if netns.Exists(ns) {
			t.Errorf("namespace %s left after the failed run", ns)
			_ = netns.Delete(ns)
		}
	}
	emptyDir(t, tmp)
}
