package daemon

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/cmd/internal/api"
	"github.com/switchyard-net/switchyard/internal/nstest"
	"github.com/switchyard-net/switchyard/internal/testns"
	"github.com/switchyard-net/switchyard/netns"
	"github.com/switchyard-net/switchyard/switch/macvlan"
)

// mvWire makes a parent for macvlan tests: link up0 in a parent namespace,
// a veth whose other end is eth0 of an "external" host namespace with
// address ext/24 (keep it from the IPAM with wireAux). It returns the parent and external namespaces.
func mvWire(t *testing.T, ext string) (par, extNS string) {
	t.Helper()
	par, extNS = testns.New(t, "symp"), testns.New(t, "symx")
	ep := netns.Endpoint{Netns: extNS, IfName: "eth0", HostName: "up0", HostNetns: par,
		Addrs: []netip.Prefix{netip.MustParsePrefix(ext + "/24")}}
	if err := netns.AddVeth(ep); err != nil {
		t.Fatal(err)
	}
	return par, extNS
}

// wireAux keeps the external host's address out of the IPAM's hands.
func wireAux(a string) map[string]string { return map[string]string{"wire": a} }

func parentState(t *testing.T, par string) (mac string, promisc bool) {
	t.Helper()
	mac, err := linkMAC(par, "up0")
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, promisc, err = linkInfo(par, "up0")
	if err != nil {
		t.Fatal(err)
	}
	return mac, promisc
}

// rmRestoresParent removes network name and checks that the parent link
// par has its MAC and promiscuity from before (mac0, promisc0) again.
func rmRestoresParent(t *testing.T, td *testDaemon, name, par, mac0 string, promisc0 bool) {
	t.Helper()
	if err := td.c.RemoveNetwork(ctx(), name); err != nil {
		t.Fatal(err)
	}
	if mac, p := parentState(t, par); mac != mac0 || p != promisc0 {
		t.Errorf("parent after rm: MAC %s promisc %v; want %s %v as before", mac, p, mac0, promisc0)
	}
}

// TestMacvlanNetwork drives a bridge-mode macvlan network through the API:
// veth and TAP endpoints, inspect, fdb, a restart, rm.
func TestMacvlanNetwork(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	par, ext := mvWire(t, "198.18.63.200")
	a, b := newNS(t), newNS(t)
	mac0, promisc0 := parentState(t, par)
	dir := stateDir(t)
	td := start(t, dir)
	req := api.NetworkCreate{Name: "mvb", Driver: api.DriverMacvlan, Parent: "up0", ParentNetns: par, Subnets: subnet("198.18.63.0/24"), AuxAddresses: wireAux("198.18.63.200")}
	n, err := td.c.CreateNetwork(ctx(), req)
	if err != nil {
		t.Fatal(err)
	}
	if m := n.Macvlan; m == nil || m.Mode != "bridge" || m.Parent != "up0" || m.ParentNetns != par || m.ParentMAC != mac0 {
		t.Fatalf("inspect macvlan = %+v; want bridge mode on up0 in %s with MAC %s", n.Macvlan, par, mac0)
	}
	if n.GatewayMAC != "" {
		t.Errorf("a macvlan network got a gateway port (%s); its gateway is on the wire", n.GatewayMAC)
	}
	pa, err := td.c.Connect(ctx(), "mvb", api.EndpointCreate{Netns: a})
	if err != nil {
		t.Fatal(err)
	}
	pb, err := td.c.Connect(ctx(), "mvb", api.EndpointCreate{Netns: b, Kind: api.KindTap})
	if err != nil {
		t.Fatal(err)
	}
	mustPing(t, a, addrOf(pb.IPv4))   // bridge mode: child to child
	mustPing(t, a, "198.18.63.200")   // to the wire
	mustPing(t, ext, addrOf(pb.IPv4)) // from the wire to the TAP child
	if _, p := parentState(t, par); !p {
		t.Error("parent not promiscuous while in use")
	}
	fdb, err := td.c.FDB(ctx(), "mvb")
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, e := range fdb {
		rows = append(rows, e.Port+" "+e.MAC+" "+e.Type)
	}
	want := []string{a + " " + pa.MAC + " static", b + " " + pb.MAC + " static"}
	slices.Sort(want)
	if strings.Join(rows, ",") != strings.Join(want, ",") {
		t.Errorf("fdb = %v, want %v", rows, want)
	}
	n, err = td.c.Network(ctx(), "mvb")
	if err != nil {
		t.Fatal(err)
	}
	if pp := n.Macvlan.ParentPort; pp == nil || pp.Counters.RxFrames == 0 || pp.Counters.TxFrames == 0 {
		t.Errorf("parent port counters missing: %+v", n.Macvlan.ParentPort)
	}
	if p := findPort(t, n, a); !p.Up || p.Counters.TxFrames == 0 {
		t.Errorf("endpoint %s not live: %+v", a, p)
	}

	td.stop(t)
	td2 := start(t, dir)
	mustPing(t, a, addrOf(pb.IPv4))
	mustPing(t, ext, addrOf(pa.IPv4))
	if n, err := td2.c.Network(ctx(), "mvb"); err != nil || !findPort(t, n, b).Up {
		t.Fatalf("after the restart: %v %+v", err, n)
	}
	rmRestoresParent(t, td2, "mvb", par, mac0, promisc0)
}

// TestMacvlanPassthru: the endpoint takes the parent's MAC, or gives it
// its own; the parent goes promiscuous; a second endpoint is refused; rm
// puts the parent's MAC and promiscuity back.
func TestMacvlanPassthru(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	par, ext := mvWire(t, "198.18.64.200")
	a, b := newNS(t), newNS(t)
	mac0, promisc0 := parentState(t, par)
	td := start(t, stateDir(t))
	if _, err := td.c.CreateNetwork(ctx(), api.NetworkCreate{Name: "mvp", Driver: api.DriverMacvlan, Mode: "passthru",
		Parent: "up0", ParentNetns: par, Subnets: subnet("198.18.64.0/24"), AuxAddresses: wireAux("198.18.64.200")}); err != nil {
		t.Fatal(err)
	}
	const mine = "02:5a:00:00:00:77"
	pa, err := td.c.Connect(ctx(), "mvp", api.EndpointCreate{Netns: a, MAC: mine})
	if err != nil {
		t.Fatal(err)
	}
	if mac, p := parentState(t, par); mac != mine || !p {
		t.Errorf("parent: MAC %s promisc %v; want the endpoint's %s, promiscuous", mac, p, mine)
	}
	mustPing(t, a, "198.18.64.200")
	mustPing(t, ext, addrOf(pa.IPv4))
	_, err = td.c.Connect(ctx(), "mvp", api.EndpointCreate{Netns: b})
	if api.CodeOf(err) != api.CodeConflict || !strings.Contains(err.Error(), "passthru takes one") {
		t.Errorf("second passthru endpoint: %v", err)
	}
	if ok, _ := netns.LinkExists(b, "eth0"); ok {
		t.Error("the refused endpoint left a link")
	}
	rmRestoresParent(t, td, "mvp", par, mac0, promisc0)
}

// TestMacvlanBadInput: each bad request gets one line naming the problem
// and changes nothing.
func TestMacvlanBadInput(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	par, _ := mvWire(t, "198.18.65.200")
	if err := netns.AddVeth(netns.Endpoint{Netns: par, IfName: "up1", HostName: "dn0", HostNetns: par}); err != nil {
		t.Fatal(err)
	}
	if err := setLink(par, "dn0", new(bool), nil); err != nil { // dn0 down
		t.Fatal(err)
	}
	y := newNS(t)
	td := start(t, stateDir(t))
	mk := func(name, mode, parent string, extra func(*api.NetworkCreate)) api.NetworkCreate {
		r := api.NetworkCreate{Name: name, Driver: api.DriverMacvlan, Mode: mode, Parent: parent, ParentNetns: par, IPAM: api.IPAMNone}
		if extra != nil {
			extra(&r)
		}
		return r
	}
	if _, err := td.c.CreateNetwork(ctx(), mk("mv1", "bridge", "up0", func(r *api.NetworkCreate) {
		r.IPAM, r.Subnets, r.AuxAddresses = "", subnet("198.18.65.0/24"), wireAux("198.18.65.200")
	})); err != nil {
		t.Fatal(err)
	}
	if _, err := td.c.CreateNetwork(ctx(), mk("mvpt", "passthru", "up1", nil)); err != nil {
		t.Fatal(err)
	}
	px, err := td.c.Connect(ctx(), "mv1", api.EndpointCreate{Netns: newNS(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := td.c.Connect(ctx(), "mvpt", api.EndpointCreate{Netns: newNS(t)}); err != nil {
		t.Fatal(err)
	}
	parentMAC, _ := parentState(t, par)
	st0 := readFile(t, td.StatePath())

	for _, tc := range []struct {
		name string
		do   func() error
		code string
		msg  string
	}{
		{"missing parent", func() error { _, err := td.c.CreateNetwork(ctx(), mk("g", "", "nosuch0", nil)); return err }, api.CodeNotFound, "parent interface nosuch0 not found"},
		{"down parent", func() error { _, err := td.c.CreateNetwork(ctx(), mk("g", "", "dn0", nil)); return err }, api.CodeInvalidArgument, "is down"},
		{"missing parent netns", func() error {
			_, err := td.c.CreateNetwork(ctx(), mk("g", "", "up0", func(r *api.NetworkCreate) { r.ParentNetns = "synotthere" }))
			return err
		}, api.CodeNotFound, `parent namespace "synotthere" not found`},
		{"no parent", func() error { _, err := td.c.CreateNetwork(ctx(), mk("g", "", "", nil)); return err }, api.CodeInvalidArgument, "needs a parent"},
		{"bad mode", func() error { _, err := td.c.CreateNetwork(ctx(), mk("g", "source", "up0", nil)); return err }, api.CodeInvalidArgument, `unknown macvlan mode "source"`},
		{"passthru on a used parent", func() error { _, err := td.c.CreateNetwork(ctx(), mk("g", "passthru", "up0", nil)); return err }, api.CodeConflict, "needs its parent alone"},
		{"bridge on a passthru parent", func() error { _, err := td.c.CreateNetwork(ctx(), mk("g", "vepa", "up1", nil)); return err }, api.CodeConflict, `used by network "mvpt" in passthru mode`},
		{"host-access with passthru", func() error {
			_, err := td.c.CreateNetwork(ctx(), mk("g", "passthru", "up0", func(r *api.NetworkCreate) { r.HostAccess = true }))
			return err
		}, api.CodeInvalidArgument, "host-access is not available in passthru mode"},
		{"ageing", func() error {
			_, err := td.c.CreateNetwork(ctx(), mk("g", "", "up0", func(r *api.NetworkCreate) { r.Ageing = "5m" }))
			return err
		}, api.CodeInvalidArgument, "learn no MACs"},
		{"mode on a bridge", func() error {
			_, err := td.c.CreateNetwork(ctx(), api.NetworkCreate{Name: "g", Mode: "vepa", IPAM: api.IPAMNone})
			return err
		}, api.CodeInvalidArgument, "belong to the macvlan driver"},
		{"second passthru endpoint", func() error { _, err := td.c.Connect(ctx(), "mvpt", api.EndpointCreate{Netns: y}); return err }, api.CodeConflict, "passthru takes one"},
		{"duplicate MAC", func() error {
			_, err := td.c.Connect(ctx(), "mv1", api.EndpointCreate{Netns: y, MAC: px.MAC})
			return err
		}, api.CodeConflict, "is taken by endpoint"},
		{"the parent's MAC", func() error {
			_, err := td.c.Connect(ctx(), "mv1", api.EndpointCreate{Netns: y, MAC: parentMAC})
			return err
		}, api.CodeConflict, "is the parent up0's own"},
		{"multicast MAC", func() error {
			_, err := td.c.Connect(ctx(), "mv1", api.EndpointCreate{Netns: y, MAC: "01:00:5e:00:00:01"})
			return err
		}, api.CodeInvalidArgument, "multicast"},
		{"zero MAC", func() error {
			_, err := td.c.Connect(ctx(), "mv1", api.EndpointCreate{Netns: y, MAC: "00:00:00:00:00:00"})
			return err
		}, api.CodeInvalidArgument, "not usable"},
		{"attach", func() error {
			_, err := td.c.Attach(ctx(), "mv1", api.AttachmentCreate{Iface: "up1", Netns: par})
			return err
		}, api.CodeInvalidArgument, "cannot be attached"},
		{"port flags", func() error {
			_, err := td.c.SetPort(ctx(), "mv1", px.Name, api.PortUpdate{Hairpin: ptr(true)})
			return err
		}, api.CodeInvalidArgument, "no forwarding flags"},
		{"network set", func() error {
			_, err := td.c.UpdateNetwork(ctx(), "mv1", api.NetworkUpdate{Ageing: ptr("5m")})
			return err
		}, api.CodeInvalidArgument, "learns no MACs"},
	} {
		err := tc.do()
		if api.CodeOf(err) != tc.code || err == nil || !strings.Contains(err.Error(), tc.msg) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: got %v (%s), want code %s and a line with %q", tc.name, err, api.CodeOf(err), tc.code, tc.msg)
		}
	}
	if st := readFile(t, td.StatePath()); !bytes.Equal(st, st0) {
		t.Errorf("state changed by refused requests:\n%s\nwas\n%s", st, st0)
	}
	if ok, _ := netns.LinkExists(y, "eth0"); ok {
		t.Error("a refused connect left a link")
	}
	for _, n := range []string{"mv1", "mvpt"} {
		if err := td.c.RemoveNetwork(ctx(), n); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMacvlanHostAccess: with --host-access the parent's namespace reaches
// the endpoints of a private network through its syh... interface, which
// the kernel's macvlan never allows; the endpoints still do not reach each
// other.
func TestMacvlanHostAccess(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	par, _ := mvWire(t, "198.18.66.200")
	a, b := newNS(t), newNS(t)
	dir := stateDir(t)
	td := start(t, dir)
	n, err := td.c.CreateNetwork(ctx(), api.NetworkCreate{Name: "mvh", Driver: api.DriverMacvlan, Mode: "private", HostAccess: true,
		Parent: "up0", ParentNetns: par, Subnets: subnet("198.18.66.0/24"), AuxAddresses: wireAux("198.18.66.200")})
	if err != nil {
		t.Fatal(err)
	}
	ha := n.Macvlan.HostAccess
	if ha == nil || !ha.Up || ha.Netns != par || !strings.HasPrefix(ha.IfName, "syh") {
		t.Fatalf("inspect host_access = %+v", ha)
	}
	// The host addresses its side as it likes; here the test does, in
	// the parent's namespace (never the root one).
	if out, err := inNS(par, "ip", "addr", "add", "198.18.66.254/24", "dev", ha.IfName); err != nil {
		t.Fatalf("address the host side: %v: %s", err, out)
	}
	pa, err := td.c.Connect(ctx(), "mvh", api.EndpointCreate{Netns: a})
	if err != nil {
		t.Fatal(err)
	}
	pb, err := td.c.Connect(ctx(), "mvh", api.EndpointCreate{Netns: b, Kind: api.KindTap})
	if err != nil {
		t.Fatal(err)
	}
	mustPing(t, par, addrOf(pa.IPv4))
	mustPing(t, b, "198.18.66.254")
	if !pingNone(t, a, addrOf(pb.IPv4)) {
		t.Error("private endpoints reach each other without a hairpinning switch")
	}
	td.stop(t)
	td2 := start(t, dir)
	mustPing(t, par, addrOf(pb.IPv4))
	if err := td2.c.RemoveNetwork(ctx(), "mvh"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := netns.LinkExists(par, ha.IfName); ok {
		t.Errorf("host-access link %s left after rm", ha.IfName)
	}
}

// mvChild returns what the macvlan engine holds for endpoint ns of
// network.
func mvChild(t *testing.T, td *testDaemon, network, ns string) macvlan.PortInfo {
	t.Helper()
	td.mu.Lock()
	defer td.mu.Unlock()
	rn := td.nets[network]
	if rn == nil {
		t.Fatalf("network %s not running", network)
	}
	e := rn.br.(*mvEngine)
	ci, err := e.par.sw.Child(e.child(ns))
	if err != nil {
		t.Fatal(err)
	}
	return ci
}

// eventually waits up to 5 s for cond, and fails with what otherwise.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 5 s", what)
		}
	}
}

// TestMacvlanPassthruMACChange: a MAC set on the passthru endpoint's
// interface after connect goes to the parent, as the kernel applies a
// passthru macvlan's MAC change to its lower device; traffic follows; rm
// puts the parent's first MAC back.
func TestMacvlanPassthruMACChange(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	for _, kind := range []string{api.KindVeth, api.KindTap} {
		t.Run(kind, func(t *testing.T) { testPassthruMACChange(t, kind) })
	}
}

func testPassthruMACChange(t *testing.T, kind string) {
	par, ext := mvWire(t, "198.18.62.200")
	a := newNS(t)
	mac0, promisc0 := parentState(t, par)
	dir := stateDir(t)
	td := start(t, dir)
	if _, err := td.c.CreateNetwork(ctx(), api.NetworkCreate{Name: "mvpm", Driver: api.DriverMacvlan, Mode: "passthru",
		Parent: "up0", ParentNetns: par, Subnets: subnet("198.18.62.0/24"), AuxAddresses: wireAux("198.18.62.200")}); err != nil {
		t.Fatal(err)
	}
	pa, err := td.c.Connect(ctx(), "mvpm", api.EndpointCreate{Netns: a, Kind: kind})
	if err != nil {
		t.Fatal(err)
	}
	mustPing(t, ext, addrOf(pa.IPv4))
	for i, mac := range []string{"02:5a:00:00:62:01", "02:5a:00:00:62:02"} {
		if out, err := inNS(a, "ip", "link", "set", "eth0", "address", mac); err != nil {
			t.Fatalf("set the endpoint's MAC: %v: %s", err, out)
		}
		eventually(t, "the parent takes the endpoint's new MAC "+mac, func() bool { m, _ := parentState(t, par); return m == mac })
		if ci := mvChild(t, td, "mvpm", a); ci.MAC != mac {
			t.Errorf("engine's child MAC %s, want %s", ci.MAC, mac)
		}
		eventually(t, "the record takes the new MAC", func() bool {
			n, err := td.c.Network(ctx(), "mvpm")
			return err == nil && findPort(t, n, a).MAC == mac
		})
		if _, p := parentState(t, par); !p {
			t.Error("parent no longer promiscuous")
		}
		if out, err := inNS(ext, "ip", "neigh", "flush", "all"); err != nil {
			t.Fatalf("flush neighbours: %v: %s", err, out)
		}
		mustPing(t, ext, addrOf(pa.IPv4))
		mustPing(t, a, "198.18.62.200")
		if i == 0 {
			// A restart re-adopts the endpoint with its new MAC.
			td.stop(t)
			td = start(t, dir)
			if m, _ := parentState(t, par); m != mac {
				t.Errorf("parent's MAC after a restart %s, want %s", m, mac)
			}
		}
	}
	rmRestoresParent(t, td, "mvpm", par, mac0, promisc0)
}

// TestMacvlanMACChange: in bridge mode an endpoint's new MAC re-keys it
// (fdb, state, traffic); a MAC another endpoint has is not taken, as the
// kernel refuses it.
func TestMacvlanMACChange(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	par, ext := mvWire(t, "198.18.62.200")
	a, b := newNS(t), newNS(t)
	td := start(t, stateDir(t))
	if _, err := td.c.CreateNetwork(ctx(), api.NetworkCreate{Name: "mvmc", Driver: api.DriverMacvlan, Mode: "bridge",
		Parent: "up0", ParentNetns: par, Subnets: subnet("198.18.62.0/24"), AuxAddresses: wireAux("198.18.62.200")}); err != nil {
		t.Fatal(err)
	}
	pa, err := td.c.Connect(ctx(), "mvmc", api.EndpointCreate{Netns: a})
	if err != nil {
		t.Fatal(err)
	}
	pb, err := td.c.Connect(ctx(), "mvmc", api.EndpointCreate{Netns: b, Kind: api.KindTap})
	if err != nil {
		t.Fatal(err)
	}
	const mac = "02:5a:00:00:62:0b"
	if out, err := inNS(b, "ip", "link", "set", "eth0", "address", mac); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	eventually(t, "fdb lists b's new MAC", func() bool {
		fdb, err := td.c.FDB(ctx(), "mvmc")
		if err != nil {
			return false
		}
		for _, e := range fdb {
			if e.Port == b {
				return e.MAC == mac
			}
		}
		return false
	})
	eventually(t, "the record takes the new MAC", func() bool {
		n, err := td.c.Network(ctx(), "mvmc")
		return err == nil && findPort(t, n, b).MAC == mac
	})
	for _, ns := range []string{a, ext} {
		if out, err := inNS(ns, "ip", "neigh", "flush", "all"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	mustPing(t, a, addrOf(pb.IPv4))
	mustPing(t, ext, addrOf(pb.IPv4))
	// a's MAC: the switch keeps b's.
	if out, err := inNS(b, "ip", "link", "set", "eth0", "address", pa.MAC); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	time.Sleep(3 * mvWatchPoll)
	if ci := mvChild(t, td, "mvmc", b); ci.MAC != mac {
		t.Errorf("b took a's MAC on the switch: %s", ci.MAC)
	}
	if ci := mvChild(t, td, "mvmc", a); ci.MAC != pa.MAC {
		t.Errorf("a's MAC on the switch: %s, want %s", ci.MAC, pa.MAC)
	}
	mustPing(t, ext, addrOf(pa.IPv4))
	if err := td.c.RemoveNetwork(ctx(), "mvmc"); err != nil {
		t.Fatal(err)
	}
}

// TestMacvlanLinkDown: an endpoint whose interface is down gets nothing
// (counted as child_down), in bridge mode from a sibling and from the
// wire; up again, it is reached again. A veth and a TAP endpoint.
func TestMacvlanLinkDown(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	par, ext := mvWire(t, "198.18.62.200")
	a := newNS(t)
	td := start(t, stateDir(t))
	if _, err := td.c.CreateNetwork(ctx(), api.NetworkCreate{Name: "mvld", Driver: api.DriverMacvlan, Mode: "bridge",
		Parent: "up0", ParentNetns: par, Subnets: subnet("198.18.62.0/24"), AuxAddresses: wireAux("198.18.62.200")}); err != nil {
		t.Fatal(err)
	}
	if _, err := td.c.Connect(ctx(), "mvld", api.EndpointCreate{Netns: a}); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{api.KindVeth, api.KindTap} {
		t.Run(kind, func(t *testing.T) {
			b := newNS(t)
			pb, err := td.c.Connect(ctx(), "mvld", api.EndpointCreate{Netns: b, Kind: kind})
			if err != nil {
				t.Fatal(err)
			}
			mustPing(t, a, addrOf(pb.IPv4))
			if out, err := inNS(b, "ip", "link", "set", "eth0", "down"); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			eventually(t, "engine sees the endpoint down", func() bool { return mvChild(t, td, "mvld", b).Down })
			if !pingNone(t, a, addrOf(pb.IPv4)) {
				t.Error("a sibling reaches the down endpoint")
			}
			if !pingNone(t, ext, addrOf(pb.IPv4)) {
				t.Error("the wire reaches the down endpoint")
			}
			n, err := td.c.Network(ctx(), "mvld")
			if err != nil {
				t.Fatal(err)
			}
			if d := findPort(t, n, b).Counters.Drops["child_down"]; d == 0 {
				t.Errorf("no child_down drops counted on the down endpoint: %+v", findPort(t, n, b).Counters)
			}
			if out, err := inNS(b, "ip", "link", "set", "eth0", "up"); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			eventually(t, "engine sees the endpoint up", func() bool { return !mvChild(t, td, "mvld", b).Down })
			mustPing(t, a, addrOf(pb.IPv4))
			mustPing(t, ext, addrOf(pb.IPv4))
			if err := td.c.Disconnect(ctx(), "mvld", b); err != nil {
				t.Fatal(err)
			}
		})
	}
	td.mu.Lock()
	watches := len(td.nets["mvld"].br.(*mvEngine).watches)
	td.mu.Unlock()
	if watches != 1 {
		t.Errorf("%d endpoint watchers after the disconnects, want 1", watches)
	}
	if err := td.c.RemoveNetwork(ctx(), "mvld"); err != nil {
		t.Fatal(err)
	}
}

// TestMacvlanPortGone: a macvlan endpoint's namespace deleted while the
// daemon runs is noticed and cleaned up; the watcher does not keep the
// namespace (and so the veth) alive.
func TestMacvlanPortGone(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	par, _ := mvWire(t, "198.18.62.200")
	a := newNS(t)
	td := start(t, stateDir(t))
	if _, err := td.c.CreateNetwork(ctx(), api.NetworkCreate{Name: "mvpg", Driver: api.DriverMacvlan, Mode: "vepa",
		Parent: "up0", ParentNetns: par, Subnets: subnet("198.18.62.0/24"), AuxAddresses: wireAux("198.18.62.200")}); err != nil {
		t.Fatal(err)
	}
	pa, err := td.c.Connect(ctx(), "mvpg", api.EndpointCreate{Netns: a})
	if err != nil {
		t.Fatal(err)
	}
	if err := netns.Delete(a); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deleted namespace's endpoint cleaned up", func() bool {
		n, err := td.c.Network(ctx(), "mvpg")
		return err == nil && !hasPort(n, a)
	})
	if hostLinkExists(t, "", pa.HostLink) {
		t.Error("host link left")
	}
	if err := td.c.RemoveNetwork(ctx(), "mvpg"); err != nil {
		t.Fatal(err)
	}
}
