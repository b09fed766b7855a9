package daemon

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard-net/switchyard/cmd/internal/api"
	"github.com/switchyard-net/switchyard/internal/nstest"
	"github.com/switchyard-net/switchyard/netns"
)

func subnet(s string) []api.Subnet { return []api.Subnet{{Subnet: s}} }

// TestLifecycle drives the API end to end: create, connect three
// namespaces (veth and tap), ping, inspect, fdb, port flags, disconnect,
// rm, and nothing left behind.
func TestLifecycle(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	a, b, c := newNS(t), newNS(t), newNS(t)
	td := start(t, stateDir(t))

	n, err := td.c.CreateNetwork(ctx(), api.NetworkCreate{Name: "lc", Subnets: subnet("198.18.10.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]api.Subnet{{Subnet: "198.18.10.0/24", Gateway: "198.18.10.1"}}, n.Subnets); diff != "" {
		t.Errorf("subnets (-want +got):\n%s", diff)
	}
	gw := findPort(t, n, api.GatewayPort)
	if gw.Kind != api.KindGateway || gw.IPv4 != "198.18.10.1/24" || gw.MAC != n.GatewayMAC || !gw.Up {
		t.Errorf("gateway port = %+v", gw)
	}

	pa, err := td.c.Connect(ctx(), "lc", api.EndpointCreate{Netns: a})
	if err != nil {
		t.Fatal(err)
	}
	pb, err := td.c.Connect(ctx(), "lc", api.EndpointCreate{Netns: b, IPs: []string{"198.18.10.50"}, MAC: "02:00:00:00:10:50"})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := td.c.Connect(ctx(), "lc", api.EndpointCreate{Netns: c, Kind: api.KindTap, IfName: "tap0"})
	if err != nil {
		t.Fatal(err)
	}
	if pa.Kind != api.KindVeth || pa.IPv4 != "198.18.10.2/24" || pa.IfName != "eth0" || pa.HostLink == "" {
		t.Errorf("endpoint a = %+v", pa)
	}
	if pb.IPv4 != "198.18.10.50/24" || pb.MAC != "02:00:00:00:10:50" {
		t.Errorf("endpoint b = %+v", pb)
	}
	if pc.Kind != api.KindTap || pc.IfName != "tap0" || pc.HostLink != "" || pc.IPv4 != "198.18.10.3/24" {
		t.Errorf("endpoint c = %+v", pc)
	}
	if !hostLinkExists(t, "", pa.HostLink) || !hostLinkExists(t, "", pb.HostLink) || !hostLinkExists(t, c, "tap0") {
		t.Fatalf("links missing after connect")
	}
	if addrs := hostAddrs(t, pa.HostLink); len(addrs) != 0 {
		t.Errorf("host end %s carries addresses %v; want none", pa.HostLink, addrs)
	}
	if got := innerMAC(t, b, "eth0"); got != pb.MAC {
		t.Errorf("b's eth0 MAC = %s, inspect says %s", got, pb.MAC)
	}
	if out, _ := inNS(a, "ip", "route", "show", "default"); !strings.Contains(out, "via 198.18.10.1") {
		t.Errorf("a's default route = %q, want via the gateway", out)
	}

	mustPing(t, a, "198.18.10.50")
	mustPing(t, a, addrOf(pc.IPv4))
	mustPing(t, c, "198.18.10.50")
	if gatewayAnswers {
		mustPing(t, a, "198.18.10.1")
		mustPing(t, c, "198.18.10.1")
	} else {
		t.Log("gateway ping skipped: built without switch/router")
	}

	n, err = td.c.Network(ctx(), "lc")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range n.Ports {
		names = append(names, p.Name+"/"+p.Kind)
		if !p.Up {
			t.Errorf("port %s not up", p.Name)
		}
	}
	want := []string{"gateway/gateway"}
	for _, x := range []struct{ n, k string }{{a, "veth"}, {b, "veth"}, {c, "tap"}} {
		want = append(want, x.n+"/"+x.k)
	}
	slices.Sort(want[1:])
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("ports (-want +got):\n%s", diff)
	}
	if ia := findPort(t, n, a); ia.Counters.RxFrames == 0 || ia.Counters.TxFrames == 0 || ia.Netns != a {
		t.Errorf("port a after pings = %+v", ia)
	}

	fdb, err := td.c.FDB(ctx(), "lc")
	if err != nil {
		t.Fatal(err)
	}
	learned := map[string]string{}
	for _, e := range fdb {
		learned[e.MAC] = e.Port + "/" + e.Type
	}
	for mac, want := range map[string]string{pa.MAC: a + "/learned", pb.MAC: b + "/learned", pc.MAC: c + "/learned", n.GatewayMAC: "gateway/static"} {
		if learned[mac] != want {
			t.Errorf("fdb[%s] = %q, want %q (fdb: %+v)", mac, learned[mac], want, fdb)
		}
	}

	// Isolate a and b: they lose each other and keep c.
	on, off := true, false
	for _, p := range []string{a, b} {
		if _, err := td.c.SetPort(ctx(), "lc", p, api.PortUpdate{Isolated: &on}); err != nil {
			t.Fatal(err)
		}
	}
	if !pingNone(t, a, "198.18.10.50") {
		t.Errorf("isolated a still reaches isolated b")
	}
	mustPing(t, a, addrOf(pc.IPv4))
	p, err := td.c.SetPort(ctx(), "lc", c, api.PortUpdate{Hairpin: &on, Flood: &off})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Flags.Hairpin || p.Flags.Flood || p.Flags.Isolated || !p.Flags.BcastFlood {
		t.Errorf("c's flags = %+v", p.Flags)
	}
	n, _ = td.c.Network(ctx(), "lc")
	if !findPort(t, n, a).Flags.Isolated || !findPort(t, n, c).Flags.Hairpin {
		t.Errorf("inspect does not show the flags: %+v", n.Ports)
	}
	k, err := td.c.FlushFDB(ctx(), "lc")
	if err != nil || k < 3 {
		t.Errorf("flush = %d, %v; want >= 3 learned entries", k, err)
	}

	// Disconnect b: links gone, address free again.
	if err := td.c.Disconnect(ctx(), "lc", b); err != nil {
		t.Fatal(err)
	}
	if hostLinkExists(t, "", pb.HostLink) || hostLinkExists(t, b, "eth0") {
		t.Errorf("disconnect left b's links")
	}
	n, _ = td.c.Network(ctx(), "lc")
	if hasPort(n, b) {
		t.Errorf("b still a port after disconnect")
	}
	pb2, err := td.c.Connect(ctx(), "lc", api.EndpointCreate{Netns: b, IPs: []string{"198.18.10.50"}})
	if err != nil {
		t.Fatalf("reconnect with the released address: %v", err)
	}
	if pb2.Flags.Isolated || pb2.IPv4 != "198.18.10.50/24" {
		t.Errorf("reconnected b = %+v, want default flags and its address", pb2)
	}

	if err := td.c.RemoveNetwork(ctx(), "lc"); err != nil {
		t.Fatal(err)
	}
	for _, l := range []struct{ ns, name string }{{"", pa.HostLink}, {"", pb2.HostLink}, {c, "tap0"}, {a, "eth0"}} {
		if hostLinkExists(t, l.ns, l.name) {
			t.Errorf("rm left link %s in %q", l.name, l.ns)
		}
	}
	if _, err := td.c.Network(ctx(), "lc"); api.CodeOf(err) != api.CodeNotFound {
		t.Errorf("inspect after rm: %v, want not_found", err)
	}
	if nets := td.ipam.Networks(); len(nets) != 0 {
		t.Errorf("IPAM still has %v", nets)
	}
}

// TestRestart: a daemon closed without cleanup leaves its links; the next
// daemon on the state dir re-adopts them (forwarding resumes, veth and
// tap), and cleans up an endpoint whose namespace died meanwhile.
func TestRestart(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	a, b, c := newNS(t), newNS(t), newNS(t)
	dir := stateDir(t)
	td := start(t, dir)
	if _, err := td.c.CreateNetwork(ctx(), api.NetworkCreate{Name: "rs", Subnets: subnet("198.18.11.0/24")}); err != nil {
		t.Fatal(err)
	}
	pa, err := td.c.Connect(ctx(), "rs", api.EndpointCreate{Netns: a})
	if err != nil {
		t.Fatal(err)
	}
	pb, err := td.c.Connect(ctx(), "rs", api.EndpointCreate{Netns: b, Kind: api.KindTap})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := td.c.Connect(ctx(), "rs", api.EndpointCreate{Netns: c})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := td.c.SetPort(ctx(), "rs", a, api.PortUpdate{Hairpin: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	mustPing(t, a, addrOf(pb.IPv4))
	td.stop(t)

	if !hostLinkExists(t, "", pa.HostLink) || !hostLinkExists(t, b, "eth0") {
		t.Fatalf("Close removed links; it must leave them for the next daemon")
	}
	if !pingNone(t, a, addrOf(pb.IPv4)) {
		t.Errorf("frames flow with the daemon stopped")
	}
	if err := netns.Delete(c); err != nil { // dies while the daemon is down
		t.Fatal(err)
	}

	td2 := start(t, dir)
	mustPing(t, a, addrOf(pb.IPv4))
	mustPing(t, b, addrOf(pa.IPv4))
	n, err := td2.c.Network(ctx(), "rs")
	if err != nil {
		t.Fatal(err)
	}
	if hasPort(n, c) {
		t.Errorf("endpoint of the deleted namespace re-adopted: %+v", n.Ports)
	}
	if !findPort(t, n, a).Flags.Hairpin {
		t.Errorf("a's hairpin flag lost over the restart")
	}
	if hostLinkExists(t, "", pc.HostLink) {
		t.Errorf("c's host link left")
	}
	if owners := td2.ipam.Owners("rs"); !slices.Equal(owners, sortedStrings(a, b)) {
		t.Errorf("IPAM owners = %v, want %v (c's lease released)", owners, sortedStrings(a, b))
	}
	// c's address is free again.
	if _, err := td2.ipam.Allocate("rs", "probe", mustAddrs(t, addrOf(pc.IPv4))); err != nil {
		t.Errorf("c's address still held: %v", err)
	}
	_ = td2.ipam.Release("rs", "probe")
	if err := td2.c.RemoveNetwork(ctx(), "rs"); err != nil {
		t.Fatal(err)
	}
}

// TestPortGone: a namespace deleted while the daemon runs is noticed and
// its endpoint cleaned up.
func TestPortGone(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	a, b := newNS(t), newNS(t)
	td := start(t, stateDir(t))
	if _, err := td.c.CreateNetwork(ctx(), api.NetworkCreate{Name: "pg", Subnets: subnet("198.18.12.0/24")}); err != nil {
		t.Fatal(err)
	}
	if _, err := td.c.Connect(ctx(), "pg", api.EndpointCreate{Netns: a}); err != nil {
		t.Fatal(err)
	}
	pb, err := td.c.Connect(ctx(), "pg", api.EndpointCreate{Netns: b})
	if err != nil {
		t.Fatal(err)
	}
	if err := netns.Delete(b); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := td.c.Network(ctx(), "pg")
		if err != nil {
			t.Fatal(err)
		}
		if !hasPort(n, b) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("endpoint of the deleted namespace still there after 5 s: %+v", findPort(t, n, b))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if hostLinkExists(t, "", pb.HostLink) {
		t.Errorf("host link left")
	}
	if owners := td.ipam.Owners("pg"); !slices.Equal(owners, []string{a}) {
		t.Errorf("IPAM owners = %v, want [%s]", owners, a)
	}
	if err := td.c.RemoveNetwork(ctx(), "pg"); err != nil {
		t.Fatal(err)
	}
}

// TestTwoDaemons: the second daemon on a state dir refuses to start, naming
// the dir; so does a second daemon on a socket in use.
func TestTwoDaemons(t *testing.T) {
	nstest.RequirePriv(t)
	dir := stateDir(t)
	td := start(t, dir)
	_, err := New(&Config{StateDir: dir})
	if err == nil || !strings.Contains(err.Error(), dir) || api.CodeOf(err) != api.CodeConflict {
		t.Errorf("second daemon on %s: %v; want a conflict naming the dir", dir, err)
	}
	other := stateDir(t)
	_, err = New(&Config{StateDir: other, Socket: td.socket})
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second daemon on socket %s: %v; want in use", td.socket, err)
	}
	if _, err := td.c.Ping(ctx()); err != nil {
		t.Errorf("first daemon disturbed: %v", err)
	}
	// Once the first is closed, the dir is free.
	td.stop(t)
	d, err := New(&Config{StateDir: dir})
	if err != nil {
		t.Fatalf("daemon after the first closed: %v", err)
	}
	d.Close()
}

// TestCorruptState: a state file that does not parse is reported with its
// path and left as it is.
func TestCorruptState(t *testing.T) {
	nstest.RequirePriv(t)
	for _, tc := range []struct{ file, data string }{
		{stateFileName, "{not json"},
		{stateFileName, `{"version":1,"networks":{"x":{"name":"y"}}}`},
		{stateFileName, `{"version":7,"networks":{}}`},
		// Names teardown would act on, checked as a request's are: an
		// empty namespace would be the daemon's own.
		{stateFileName, `{"version":1,"networks":{"x":{"name":"x","endpoints":{"":{"netns":"","kind":"tap","ifname":"eth0"}}}}}`},
		{stateFileName, `{"version":1,"networks":{"x":{"name":"x","endpoints":{"a/b":{"netns":"a/b","kind":"tap","ifname":"eth0"}}}}}`},
		{stateFileName, `{"version":1,"networks":{"x":{"name":"x","endpoints":{"n":{"netns":"n","kind":"tap","ifname":"a-name-too-long-for-a-link"}}}}}`},
		{stateFileName, `{"version":1,"networks":{"x":{"name":"x","endpoints":{"n":{"netns":"n","kind":"veth","ifname":"eth0","host_link":"bad name"}}}}}`},
		{stateFileName, `{"version":1,"networks":{"x":{"name":"x","endpoints":{"n":{"netns":"n","kind":"tap","ifname":"eth0","host_link":"eth9"}}}}}`},
		{stateFileName, `{"version":1,"networks":{"x":{"name":"x","attachments":{"":{"iface":""}}}}}`},
		{stateFileName, `{"version":1,"networks":{"x":{"name":"x","attachments":{"lo":{"iface":"lo"}}}}}`},
		{stateFileName, `{"version":1,"networks":{"x":{"name":"x","attachments":{"eth1":{"iface":"eth1","netns":".."}}}}}`},
		{ipamFileName, `{"version":1,"networks":{"x":{"config":{"subnets":[]}}}} trailing`},
	} {
		dir := stateDir(t)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, tc.file)
		if err := os.WriteFile(p, []byte(tc.data), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := New(&Config{StateDir: dir})
		if err == nil || !strings.Contains(err.Error(), p) || api.CodeOf(err) != api.CodeStateCorrupt {
			t.Errorf("%s = %q: New: %v; want state_corrupt naming %s", tc.file, tc.data, err, p)
		}
		if got := string(readFile(t, p)); got != tc.data {
			t.Errorf("%s rewritten to %q", tc.file, got)
		}
		// The lock was released: a retry fails the same way, not on the lock.
		if _, err := New(&Config{StateDir: dir}); api.CodeOf(err) != api.CodeStateCorrupt {
			t.Errorf("retry: %v", err)
		}
	}
}

// TestTeardownFails: when an endpoint's link cannot be deleted, disconnect
// and network rm fail and keep the endpoint, its lease and its port on the
// switch (the state file unchanged), and a retry once the link can be
// deleted finishes the job.
func TestTeardownFails(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	a, b := newNS(t), newNS(t)
	dir := stateDir(t)
	td := start(t, dir)
	if _, err := td.c.CreateNetwork(ctx(), api.NetworkCreate{Name: "tf", Subnets: subnet("198.18.18.0/24")}); err != nil {
		t.Fatal(err)
	}
	pa, err := td.c.Connect(ctx(), "tf", api.EndpointCreate{Netns: a})
	if err != nil {
		t.Fatal(err)
	}
	pb, err := td.c.Connect(ctx(), "tf", api.EndpointCreate{Netns: b, Kind: api.KindTap})
	if err != nil {
		t.Fatal(err)
	}
	mustPing(t, a, addrOf(pb.IPv4))
	statePath := filepath.Join(dir, stateFileName)
	ipamPath := filepath.Join(dir, ipamFileName)
	st0, ip0 := readFile(t, statePath), readFile(t, ipamPath)

	injected := errors.New("injected: device busy")
	delLink = func(string, string, string) error { return injected }
	t.Cleanup(func() { delLink = delLinkOfType })
	unchanged := func(what string) {
		t.Helper()
		if !bytes.Equal(readFile(t, statePath), st0) || !bytes.Equal(readFile(t, ipamPath), ip0) {
			t.Errorf("%s: state or IPAM file changed", what)
		}
		n, err := td.c.Network(ctx(), "tf")
		if err != nil {
			t.Fatalf("%s: network gone: %v", what, err)
		}
		for _, ns := range []string{a, b} {
			if p := findPort(t, n, ns); !p.Up {
				t.Errorf("%s: port %s not back on the switch: %+v", what, ns, p)
			}
		}
		if owners := td.ipam.Owners("tf"); !slices.Equal(owners, sortedStrings(a, b)) {
			t.Errorf("%s: IPAM owners = %v, want %v", what, owners, sortedStrings(a, b))
		}
	}
	for _, ns := range []string{a, b} {
		err := td.c.Disconnect(ctx(), "tf", ns)
		if api.CodeOf(err) != api.CodeInternal || !strings.Contains(err.Error(), "injected") || !strings.Contains(err.Error(), "kept") {
			t.Errorf("disconnect %s with deletion failing: %v; want internal, naming the cause, endpoint kept", ns, err)
		}
		unchanged("disconnect " + ns)
	}
	err = td.c.RemoveNetwork(ctx(), "tf")
	if api.CodeOf(err) != api.CodeInternal || !strings.Contains(err.Error(), "not removed") {
		t.Errorf("network rm with deletion failing: %v; want internal, not removed", err)
	}
	unchanged("network rm")
	mustPing(t, a, addrOf(pb.IPv4)) // both ports forward again
	mustPing(t, b, addrOf(pa.IPv4))

	delLink = delLinkOfType
	if err := td.c.Disconnect(ctx(), "tf", a); err != nil {
		t.Fatalf("disconnect retry: %v", err)
	}
	if hostLinkExists(t, "", pa.HostLink) || hostLinkExists(t, a, "eth0") {
		t.Errorf("disconnect retry left a's links")
	}
	if err := td.c.RemoveNetwork(ctx(), "tf"); err != nil {
		t.Fatalf("network rm retry: %v", err)
	}
	if hostLinkExists(t, b, "eth0") {
		t.Errorf("network rm retry left b's tap")
	}
	if nets := td.ipam.Networks(); len(nets) != 0 {
		t.Errorf("IPAM still has %v", nets)
	}
}

// TestDelLinkOfType: only a missing link (or namespace) counts as deleted;
// a link of another type is left alone with errLinkReplaced.
func TestDelLinkOfType(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	ns := newNS(t)
	if err := delLinkOfType(ns, "synothere", "veth"); err != nil {
		t.Errorf("missing link: %v", err)
	}
	if err := delLinkOfType(nstest.Name("sydgone"), "eth0", "veth"); err != nil {
		t.Errorf("missing namespace: %v", err)
	}
	if err := delLinkOfType(ns, "lo", "veth"); !errors.Is(err, errLinkReplaced) {
		t.Errorf("loopback as a veth: %v, want errLinkReplaced", err)
	}
	if !hostLinkExists(t, ns, "lo") {
		t.Errorf("loopback deleted")
	}
}

// TestReopenTapGone: reopening a TAP that is not there fails with
// errTapGone and leaves no device behind (TUNSETIFF alone would make a new,
// unconfigured one).
func TestReopenTapGone(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	ns := newNS(t)
	f, err := reopenTap(ns, "sytapgone")
	if f != nil {
		f.Close()
	}
	if !errors.Is(err, errTapGone) {
		t.Errorf("reopenTap of a missing tap: %v, want errTapGone", err)
	}
	if hostLinkExists(t, ns, "sytapgone") {
		t.Errorf("reopenTap left a new device behind")
	}
}

// TestBadInputs: every bad request gets its coded error and a one-line
// message, and changes neither state file.
func TestBadInputs(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	x, y, z := newNS(t), newNS(t), newNS(t)
	td := start(t, stateDir(t))
	if _, err := td.c.CreateNetwork(ctx(), api.NetworkCreate{Name: "bad", Subnets: []api.Subnet{{Subnet: "198.18.20.0/24", IPRange: "198.18.20.0/25"}},
		AuxAddresses: map[string]string{"router": "198.18.20.254"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := td.c.CreateNetwork(ctx(), api.NetworkCreate{Name: "tiny", Subnets: subnet("198.18.21.0/30")}); err != nil {
		t.Fatal(err)
	}
	if _, err := td.c.Connect(ctx(), "tiny", api.EndpointCreate{Netns: x}); err != nil {
		t.Fatal(err)
	}
	px, err := td.c.Connect(ctx(), "bad", api.EndpointCreate{Netns: x, IfName: "eth1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, n := range []string{"bad", "tiny"} {
			if err := td.RemoveNetwork(n); err != nil {
				t.Errorf("rm %s: %v", n, err)
			}
		}
	})
	statePath, ipamPath := td.StatePath(), filepath.Join(td.StateDir(), ipamFileName)
	st0, ip0 := readFile(t, statePath), readFile(t, ipamPath)

	const nets, eps = "/v1/networks", "/v1/networks/bad/endpoints"
	for _, tc := range []struct {
		name, method, path, body string
		code                     string
		msg                      string // a part of the message
	}{
		{"overlap", "POST", nets, `{"name":"o","subnets":[{"subnet":"198.18.20.128/25"}]}`, api.CodeSubnetOverlap, "overlaps network \"bad\""},
		{"gateway outside", "POST", nets, `{"name":"g","subnets":[{"subnet":"198.18.30.0/24","gateway":"198.18.31.1"}]}`, api.CodeOutsideSubnet, "198.18.31.1"},
		{"range outside", "POST", nets, `{"name":"g","subnets":[{"subnet":"198.18.30.0/24","ip_range":"198.18.31.0/25"}]}`, api.CodeRangeOutsideSubnet, "198.18.31.0/25"},
		{"aux is gateway", "POST", nets, `{"name":"g","subnets":[{"subnet":"198.18.30.0/24"}],"aux_addresses":{"r":"198.18.30.1"}}`, api.CodeAuxCollision, "gateway"},
		{"duplicate", "POST", nets, `{"name":"bad","subnets":[{"subnet":"198.18.30.0/24"}]}`, api.CodeConflict, "already exists"},
		{"bad subnet", "POST", nets, `{"name":"g","subnets":[{"subnet":"198.18.30.0"}]}`, api.CodeInvalidArgument, "not a CIDR"},
		{"bad name", "POST", nets, `{"name":"-g"}`, api.CodeInvalidArgument, "network name"},
		{"ipam none with subnet", "POST", nets, `{"name":"g","ipam":"none","subnets":[{"subnet":"198.18.30.0/24"}]}`, api.CodeInvalidArgument, "ipam none"},
		{"macvlan without parent", "POST", nets, `{"name":"g","driver":"macvlan"}`, api.CodeInvalidArgument, "needs a parent"},
		{"uplink without ip", "POST", nets, `{"name":"g","subnets":[{"subnet":"198.18.31.0/24"}],"uplink":"eth9"}`, api.CodeInvalidArgument, "needs --uplink-ip"},
		{"uplink internal", "POST", nets, `{"name":"g","uplink":"eth9","internal":true}`, api.CodeInvalidArgument, "internal network has no uplink"},
		{"mtu", "POST", nets, `{"name":"g","mtu":10}`, api.CodeInvalidArgument, "mtu"},
		{"ageing", "POST", nets, `{"name":"g","ageing":"soon"}`, api.CodeInvalidArgument, "ageing"},
		{"malformed", "POST", nets, `{"name":`, api.CodeInvalidJSON, "malformed JSON"},
		{"unknown field", "POST", nets, `{"name":"g","colour":"red"}`, api.CodeInvalidJSON, "colour"},
		{"trailing data", "POST", nets, `{"name":"g"} {}`, api.CodeInvalidJSON, "after the JSON"},
		{"empty body", "POST", nets, ``, api.CodeInvalidJSON, "empty body"},
		{"wrong type", "POST", nets, `{"name":7}`, api.CodeInvalidJSON, "name"},
		{"unknown network", "POST", "/v1/networks/nope/endpoints", `{"netns":"` + y + `"}`, api.CodeNotFound, `network "nope" not found`},
		{"unknown namespace", "POST", eps, `{"netns":"sydnonexistent"}`, api.CodeNotFound, "sydnonexistent"},
		{"ip outside", "POST", eps, `{"netns":"` + y + `","ips":["198.18.99.5"]}`, api.CodeOutsideSubnet, "198.18.99.5"},
		{"ip taken", "POST", eps, `{"netns":"` + y + `","ips":["` + addrOf(px.IPv4) + `"]}`, api.CodeAddressTaken, x},
		{"ip is gateway", "POST", eps, `{"netns":"` + y + `","ips":["198.18.20.1"]}`, api.CodeAddressTaken, "198.18.20.1"},
		{"ip is aux", "POST", eps, `{"netns":"` + y + `","ips":["198.18.20.254"]}`, api.CodeAddressTaken, "198.18.20.254"},
		{"bad ip", "POST", eps, `{"netns":"` + y + `","ips":["198.18.20.x"]}`, api.CodeInvalidArgument, "not an IP"},
		{"none and ip", "POST", eps, `{"netns":"` + y + `","ips":["none","198.18.20.9"]}`, api.CodeInvalidArgument, "none"},
		{"pool exhausted", "POST", "/v1/networks/tiny/endpoints", `{"netns":"` + y + `"}`, api.CodePoolExhausted, "no free address"},
		{"already connected", "POST", eps, `{"netns":"` + x + `"}`, api.CodeConflict, "already connected"},
		{"ifname in use", "POST", eps, `{"netns":"` + z + `","ifname":"lo"}`, api.CodeConflict, "lo"},
		{"bad kind", "POST", eps, `{"netns":"` + y + `","kind":"vxlan"}`, api.CodeInvalidArgument, "vxlan"},
		{"bad mac", "POST", eps, `{"netns":"` + y + `","mac":"zz"}`, api.CodeInvalidArgument, "zz"},
		{"multicast mac", "POST", eps, `{"netns":"` + y + `","mac":"01:00:5e:00:00:01"}`, api.CodeInvalidArgument, "multicast"},
		{"long ifname", "POST", eps, `{"netns":"` + y + `","ifname":"abcdefghijklmnopq"}`, api.CodeInvalidArgument, "longer than 15"},
		{"publish without uplink", "POST", eps, `{"netns":"` + y + `","publish":["80:80"]}`, api.CodeInvalidArgument, "has no uplink"},
		{"bad netns name", "POST", eps, `{"netns":"a/b"}`, api.CodeInvalidArgument, "a/b"},
		{"disconnect unknown", "DELETE", eps + "/" + y, ``, api.CodeNotFound, "not connected"},
		{"attach unknown iface", "POST", "/v1/networks/bad/attachments", `{"iface":"synothere0"}`, api.CodeNotFound, "synothere0"},
		{"attach unknown netns", "POST", "/v1/networks/bad/attachments", `{"iface":"eth0","netns":"sydnonexistent"}`, api.CodeNotFound, "sydnonexistent"},
		{"attach endpoint link", "POST", "/v1/networks/bad/attachments", `{"iface":"` + px.HostLink + `"}`, api.CodeConflict, "belongs to endpoint"},
		{"detach unknown", "DELETE", "/v1/networks/bad/attachments/eth9", ``, api.CodeNotFound, "not attached"},
		{"port unknown", "PATCH", "/v1/networks/bad/ports/nope", `{"hairpin":true}`, api.CodeNotFound, "nope"},
		{"port nothing", "PATCH", "/v1/networks/bad/ports/" + x, `{}`, api.CodeInvalidArgument, "nothing to change"},
		{"port bad value", "PATCH", "/v1/networks/bad/ports/" + x, `{"hairpin":"on"}`, api.CodeInvalidJSON, "hairpin"},
		{"set nothing", "PATCH", "/v1/networks/bad", `{}`, api.CodeInvalidArgument, "nothing to change"},
		{"set ageing zero", "PATCH", "/v1/networks/bad", `{"ageing":"0s"}`, api.CodeInvalidArgument, "positive"},
		{"set negative limit", "PATCH", "/v1/networks/bad", `{"mac_limit":-1}`, api.CodeInvalidArgument, "negative"},
		{"fdb unknown", "GET", "/v1/networks/nope/fdb", ``, api.CodeNotFound, "nope"},
		{"rm unknown", "DELETE", "/v1/networks/nope", ``, api.CodeNotFound, "nope"},
		{"no route", "GET", "/v1/nope", ``, api.CodeNotFound, "no route"},
		{"wrong method", "PUT", nets, `{}`, api.CodeNotFound, "no route"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, e := raw(t, td, tc.method, tc.path, tc.body)
			if e == nil {
				t.Fatalf("%s %s %s: succeeded (%d), want %s", tc.method, tc.path, tc.body, status, tc.code)
			}
			if e.Code != tc.code || status != api.HTTPStatus(tc.code) {
				t.Errorf("code %s (%d), want %s (%d): %s", e.Code, status, tc.code, api.HTTPStatus(tc.code), e.Message)
			}
			if !strings.Contains(e.Message, tc.msg) || strings.Contains(e.Message, "\n") {
				t.Errorf("message %q: want one line containing %q", e.Message, tc.msg)
			}
			if !bytes.Equal(readFile(t, statePath), st0) {
				t.Errorf("state file changed")
			}
			if !bytes.Equal(readFile(t, ipamPath), ip0) {
				t.Errorf("IPAM file changed")
			}
		})
	}
	if hostLinkExists(t, y, "eth0") {
		t.Errorf("a failed connect left y's eth0")
	}
}

// TestAttach: interfaces in a named namespace and in the daemon's own
// become ports; frames flow; detach undoes promiscuous mode.
func TestAttach(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	a, x, y, z := newNS(t), newNS(t), newNS(t), newNS(t)
	td := start(t, stateDir(t))
	if _, err := td.c.CreateNetwork(ctx(), api.NetworkCreate{Name: "at", Subnets: []api.Subnet{{Subnet: "198.18.13.0/24", IPRange: "198.18.13.0/26"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := td.c.Connect(ctx(), "at", api.EndpointCreate{Netns: a}); err != nil {
		t.Fatal(err)
	}
	// x:eth0 (198.18.13.100) <-> y:yport, attached from namespace y.
	yport := nstest.Name("sya")
	if err := netns.AddVeth(netns.Endpoint{Netns: x, HostName: yport, HostNetns: y, Addrs: prefixes(t, "198.18.13.100/24")}); err != nil {
		t.Fatal(err)
	}
	// z:eth0 (198.18.13.101) <-> rport in the daemon's namespace.
	rport := nstest.Name("sya")
	if err := netns.AddVeth(netns.Endpoint{Netns: z, HostName: rport, Addrs: prefixes(t, "198.18.13.101/24")}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = delLinkOfType("", rport, "veth") })
	quietHostEnd(rport)

	py, err := td.c.Attach(ctx(), "at", api.AttachmentCreate{Iface: yport, Netns: y})
	if err != nil {
		t.Fatal(err)
	}
	if py.Kind != api.KindAttached || py.Netns != y || py.IfName != yport || py.MAC == "" {
		t.Errorf("attached port = %+v", py)
	}
	if _, err := td.c.Attach(ctx(), "at", api.AttachmentCreate{Iface: rport}); err != nil {
		t.Fatal(err)
	}
	if _, err := td.c.Attach(ctx(), "at", api.AttachmentCreate{Iface: rport}); api.CodeOf(err) != api.CodeConflict {
		t.Errorf("attaching twice: %v, want conflict", err)
	}
	if _, _, _, promisc, _ := linkInfo(y, yport); !promisc {
		t.Errorf("attached %s not promiscuous", yport)
	}
	mustPing(t, a, "198.18.13.100")
	mustPing(t, a, "198.18.13.101")
	mustPing(t, x, "198.18.13.101")

	if err := td.c.Detach(ctx(), "at", yport, "wrongns"); api.CodeOf(err) != api.CodeNotFound {
		t.Errorf("detach with the wrong netns: %v, want not_found", err)
	}
	if err := td.c.Detach(ctx(), "at", yport, y); err != nil {
		t.Fatal(err)
	}
	if _, _, _, promisc, _ := linkInfo(y, yport); promisc {
		t.Errorf("detach left %s promiscuous", yport)
	}
	if !pingNone(t, a, "198.18.13.100") {
		t.Errorf("frames still reach the detached interface")
	}
	n, _ := td.c.Network(ctx(), "at")
	if hasPort(n, yport) || !hasPort(n, rport) {
		t.Errorf("ports after detach: %+v", n.Ports)
	}
	if err := td.c.RemoveNetwork(ctx(), "at"); err != nil {
		t.Fatal(err)
	}
	if !hostLinkExists(t, "", rport) {
		t.Errorf("rm deleted an attached interface; it must only let go of it")
	}
}

// TestL2Only: --ipam none makes a pure L2 switch; --ip none an address-less
// endpoint.
func TestL2Only(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	a, b, c := newNS(t), newNS(t), newNS(t)
	td := start(t, stateDir(t))
	n, err := td.c.CreateNetwork(ctx(), api.NetworkCreate{Name: "l2", IPAM: api.IPAMNone})
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Subnets) != 0 || n.GatewayMAC != "" || hasPort(n, api.GatewayPort) {
		t.Errorf("ipam none network = %+v", n)
	}
	for _, ns := range []string{a, b} {
		p, err := td.c.Connect(ctx(), "l2", api.EndpointCreate{Netns: ns})
		if err != nil {
			t.Fatal(err)
		}
		if p.IPv4 != "" || p.IPv6 != "" {
			t.Errorf("endpoint on ipam none got %s %s", p.IPv4, p.IPv6)
		}
	}
	if _, err := td.c.Connect(ctx(), "l2", api.EndpointCreate{Netns: c, IPs: []string{"198.18.14.3"}}); api.CodeOf(err) != api.CodeInvalidArgument {
		t.Errorf("--ip on ipam none: %v, want invalid_argument", err)
	}
	for i, ns := range []string{a, b} {
		if out, err := inNS(ns, "ip", "addr", "add", "198.18.14."+string(rune('1'+i))+"/24", "dev", "eth0"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	mustPing(t, a, "198.18.14.2")

	if _, err := td.c.CreateNetwork(ctx(), api.NetworkCreate{Name: "l3", Subnets: subnet("198.18.15.0/24")}); err != nil {
		t.Fatal(err)
	}
	p, err := td.c.Connect(ctx(), "l3", api.EndpointCreate{Netns: c, IPs: []string{api.IPNone}})
	if err != nil {
		t.Fatal(err)
	}
	if p.IPv4 != "" {
		t.Errorf("--ip none endpoint got %s", p.IPv4)
	}
	if out, _ := inNS(c, "ip", "-4", "addr", "show", "dev", "eth0"); strings.Contains(out, "inet ") {
		t.Errorf("--ip none endpoint has an address: %s", out)
	}
	if owners := td.ipam.Owners("l3"); len(owners) != 0 {
		t.Errorf("--ip none took a lease: %v", owners)
	}
	for _, name := range []string{"l2", "l3"} {
		if err := td.c.RemoveNetwork(ctx(), name); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBusyPoll: a daemon whose ring ports busy-poll forwards as one that
// sleeps; an out-of-range setting is refused before anything is created.
func TestBusyPoll(t *testing.T) {
	for _, bad := range []time.Duration{-time.Microsecond, MaxBusyPoll + 1} {
		dir := stateDir(t)
		if _, err := New(&Config{StateDir: dir, BusyPoll: bad}); err == nil || !strings.Contains(err.Error(), "busy poll") {
			t.Errorf("BusyPoll %v: %v, want an out-of-range error", bad, err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("BusyPoll %v: the state dir was created (%v)", bad, err)
		}
	}
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	td := startWith(t, &Config{StateDir: stateDir(t), BusyPoll: 200 * time.Microsecond})
	pingPair(t, td, "198.18.19.0/24", nil)
}

// TestRxSteering: a daemon with RxSteering sets rps_cpus on its ring
// ports' host links and forwards; without it the masks stay empty.
func TestRxSteering(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	for _, steer := range []bool{false, true} {
		td := startWith(t, &Config{StateDir: stateDir(t), RxSteering: steer})
		pingPair(t, td, "198.18.20.0/24", func(p api.Port) {
			m, err := os.ReadFile("/sys/class/net/" + p.HostLink + "/queues/rx-0/rps_cpus")
			if err != nil {
				t.Fatal(err)
			}
			if set := strings.Trim(string(m), "0,\n") != ""; set != steer {
				t.Errorf("RxSteering %v: %s rps_cpus %q", steer, p.HostLink, strings.TrimSpace(string(m)))
			}
		})
	}
}

// pingPair creates network "pair" on cidr in td, connects two new
// namespaces (calling check, when set, with each port), pings both ways
// and removes the network.
func pingPair(t *testing.T, td *testDaemon, cidr string, check func(api.Port)) {
	t.Helper()
	if _, err := td.c.CreateNetwork(ctx(), api.NetworkCreate{Name: "pair", Subnets: subnet(cidr)}); err != nil {
		t.Fatal(err)
	}
	nss := []string{newNS(t), newNS(t)}
	var ips []string
	for _, ns := range nss {
		p, err := td.c.Connect(ctx(), "pair", api.EndpointCreate{Netns: ns})
		if err != nil {
			t.Fatal(err)
		}
		ips = append(ips, strings.Split(p.IPv4, "/")[0])
		if check != nil {
			check(p)
		}
	}
	mustPing(t, nss[0], ips[1])
	mustPing(t, nss[1], ips[0])
	if err := td.c.RemoveNetwork(ctx(), "pair"); err != nil {
		t.Fatal(err)
	}
}

// TestTopology: a topology file is applied at start, and again (as a
// no-op) on restart.
func TestTopology(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	a, b := newNS(t), newNS(t)
	doc := `networks:
  - name: topo
    subnets:
      - subnet: 198.18.16.0/24
        ip_range: 198.18.16.128/25
    ageing: 1m
    endpoints:
      - netns: ` + a + `
      - netns: ` + b + `
        ips: [198.18.16.9]
        kind: tap
`
	p := filepath.Join(t.TempDir(), "topo.yaml")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	topo, err := LoadTopology(p)
	if err != nil {
		t.Fatal(err)
	}
	dir := stateDir(t)
	d, err := New(&Config{StateDir: dir, Topology: topo, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	n, err := d.Network("topo")
	if err != nil {
		t.Fatal(err)
	}
	if pa := findPort(t, n, a); pa.IPv4 != "198.18.16.128/24" || n.Ageing != "1m0s" {
		t.Errorf("a = %+v, ageing %s", pa, n.Ageing)
	}
	mustPing(t, a, "198.18.16.9")
	d.Close()
	d, err = New(&Config{StateDir: dir, Topology: topo})
	if err != nil {
		t.Fatalf("re-applying the topology: %v", err)
	}
	mustPing(t, a, "198.18.16.9")
	if err := d.RemoveNetwork("topo"); err != nil {
		t.Fatal(err)
	}
	d.Close()

	if _, err := ParseTopology([]byte("networks:\n  - name: x\n    colour: red\n")); err == nil || !strings.Contains(err.Error(), "colour") {
		t.Errorf("unknown field: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

func sortedStrings(s ...string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

var _ = errors.New
var _ = http.MethodGet

// TestDualStack: an IPv4 and an IPv6 subnet; endpoints get one address of
// each and reach each other and the gateway over both.
func TestDualStack(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	a, b := newNS(t), newNS(t)
	td := start(t, stateDir(t))
	n, err := td.c.CreateNetwork(ctx(), api.NetworkCreate{Name: "ds", Subnets: []api.Subnet{
		{Subnet: "198.18.17.0/24"}, {Subnet: "fd00:198:18:17::/64"}}})
	if err != nil {
		t.Fatal(err)
	}
	if g := findPort(t, n, api.GatewayPort); g.IPv4 != "198.18.17.1/24" || g.IPv6 != "fd00:198:18:17::1/64" {
		t.Errorf("gateway = %+v", g)
	}
	pa, err := td.c.Connect(ctx(), "ds", api.EndpointCreate{Netns: a})
	if err != nil {
		t.Fatal(err)
	}
	pb, err := td.c.Connect(ctx(), "ds", api.EndpointCreate{Netns: b, IPs: []string{"fd00:198:18:17::b"}})
	if err != nil {
		t.Fatal(err)
	}
	if pa.IPv4 == "" || pa.IPv6 == "" || pb.IPv6 != "fd00:198:18:17::b/64" || pb.IPv4 == "" {
		t.Errorf("a = %+v, b = %+v", pa, pb)
	}
	mustPing(t, a, addrOf(pb.IPv4))
	mustPing(t, a, "fd00:198:18:17::b")
	mustPing(t, b, "fd00:198:18:17::1")
	if out, _ := inNS(a, "ip", "-6", "route", "show", "default"); !strings.Contains(out, "via fd00:198:18:17::1") {
		t.Errorf("a's IPv6 default route = %q", out)
	}
	if err := td.c.RemoveNetwork(ctx(), "ds"); err != nil {
		t.Fatal(err)
	}
}
