package daemon

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/switchyard-net/switchyard/cmd/internal/api"
	"github.com/switchyard-net/switchyard/internal/nstest"
	"github.com/switchyard-net/switchyard/netns"
)

// natWorld is a network with an uplink to an "outside" namespace. The
// uplink's far end (eth0 in out) carries the upstream router's address
// (.1) and a second client address (.100); the near end lives in a
// namespace of its own (upns), which the daemon opens it in.
type natWorld struct {
	td                *testDaemon
	out, upns         string
	c1, c2, c3        string
	ext1, ext2, gw    string // the uplink's addresses, the network's gateway
	router, client100 string // out's addresses
	c1IP, c2IP        string
}

func newNATWorld(t *testing.T) *natWorld {
	t.Helper()
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	w := &natWorld{
		td: start(t, stateDir(t)), out: newNS(t), upns: newNS(t), c1: newNS(t), c2: newNS(t), c3: newNS(t),
		ext1: "198.19.42.2", ext2: "198.19.42.3", router: "198.19.42.1", client100: "198.19.42.100",
	}
	up := nstest.Name("syup")
	err := netns.AddVeth(netns.Endpoint{Netns: w.out, IfName: "eth0", HostName: up, HostNetns: w.upns,
		Addrs: []netip.Prefix{netip.MustParsePrefix(w.router + "/24"), netip.MustParsePrefix(w.client100 + "/24")}})
	if err != nil {
		t.Fatal(err)
	}
	n, err := w.td.CreateNetwork(api.NetworkCreate{Name: "natnet", Subnets: []api.Subnet{{Subnet: "198.18.42.0/24"}},
		Uplink: up, UplinkNetns: w.upns, UplinkIP: w.ext1 + "/24," + w.ext2 + "/24", UplinkGateway: w.router,
		NATTimeouts: map[string]string{"udp": "20s"}})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	w.gw = n.Subnets[0].Gateway
	if n.Uplink == nil || !n.Uplink.Up || len(n.Uplink.Addrs) != 2 || n.NATTimeouts["udp"] != "20s" {
		t.Fatalf("uplink in inspect: %+v", n)
	}
	t.Cleanup(func() { _ = w.td.RemoveNetwork("natnet") })
	p1, err := w.td.Connect("natnet", api.EndpointCreate{Netns: w.c1, Publish: []string{"9100:80"}, PublishAllow: []string{w.client100 + "/32"}})
	if err != nil {
		t.Fatalf("connect c1: %v", err)
	}
	p2, err := w.td.Connect("natnet", api.EndpointCreate{Netns: w.c2, Kind: api.KindTap,
		Publish: []string{w.ext1 + ":9000-9001:80-81/tcp", "5353:53/udp"}})
	if err != nil {
		t.Fatalf("connect c2: %v", err)
	}
	w.c1IP, w.c2IP = addrOf(p1.IPv4), addrOf(p2.IPv4)
	return w
}

// inNet runs fn with the calling thread in namespace ns (sockets made there
// stay there).
func inNet(t *testing.T, ns string, fn func() error) {
	t.Helper()
	if err := netns.Do(ns, fn); err != nil {
		t.Fatal(err)
	}
}

// serveWho serves, in ns on addr, HTTP that answers with the client's
// address as the server sees it.
func serveWho(t *testing.T, ns, addr string) {
	t.Helper()
	var ln net.Listener
	inNet(t, ns, func() (err error) { ln, err = net.Listen("tcp4", addr); return err })
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprint(w, host)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// echoWhoUDP answers every datagram on addr in ns with its sender's address.
func echoWhoUDP(t *testing.T, ns, addr string) {
	t.Helper()
	var pc net.PacketConn
	inNet(t, ns, func() (err error) { pc, err = net.ListenPacket("udp4", addr); return err })
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(from.String())
			pc.WriteTo([]byte(host), from)
		}
	}()
	t.Cleanup(func() { pc.Close() })
}

// httpWho fetches http://dst/ from ns (from local address src when set)
// and returns the body: who the server saw.
func httpWho(t *testing.T, ns, src, dst string) (string, error) {
	t.Helper()
	var conn net.Conn
	d := net.Dialer{Timeout: 2 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	err := netns.Do(ns, func() (err error) { conn, err = d.Dial("tcp4", dst); return err })
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var sb strings.Builder
	_, err = bufio.NewReader(resp.Body).WriteTo(&sb)
	return sb.String(), err
}

// udpWho sends one datagram from ns to dst and returns the reply, or the
// error (ECONNREFUSED for a port unreachable).
func udpWho(t *testing.T, ns, dst string) (string, error) {
	t.Helper()
	var conn net.Conn
	inNet(t, ns, func() (err error) { conn, err = net.Dial("udp4", dst); return err })
	defer conn.Close()
	buf := make([]byte, 1500)
	var lastErr error
	for try := 0; try < 3; try++ { // the first may wait on ARP
		conn.SetDeadline(time.Now().Add(time.Second))
		if _, err := conn.Write([]byte("who")); err != nil {
			lastErr = err
			continue
		}
		n, err := conn.Read(buf)
		if err == nil {
			return string(buf[:n]), nil
		}
		lastErr = err
		if errors.Is(err, syscall.ECONNREFUSED) {
			return "", err
		}
	}
	return "", lastErr
}

func TestNATEndToEnd(t *testing.T) {
	w := newNATWorld(t)
	serveWho(t, w.out, w.router+":8080")
	echoWhoUDP(t, w.out, w.router+":5300")
	serveWho(t, w.c1, ":80")
	serveWho(t, w.c2, ":80")
	serveWho(t, w.c2, ":81")
	echoWhoUDP(t, w.c2, ":53")

	t.Run("masquerade", func(t *testing.T) {
		// The first packet to the upstream router waits on ARP, held
		// by the gateway: the very first ping is answered.
		if out, err := inNS(w.c1, "ping", "-n", "-c", "1", "-W", "2", w.router); err != nil {
			t.Fatalf("first ping through the NAT: %v\n%s", err, out)
		}
		got, err := httpWho(t, w.c1, "", w.router+":8080")
		if err != nil || got != w.ext1 {
			t.Fatalf("outside server saw %q (%v), want the uplink address %s", got, err, w.ext1)
		}
		got, err = udpWho(t, w.c2, w.router+":5300")
		if err != nil || got != w.ext1 {
			t.Fatalf("UDP: outside saw %q (%v), want %s", got, err, w.ext1)
		}
	})
	t.Run("capture shows both sides of the NAT", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cs, err := w.td.c.Capture(ctx, "natnet", api.CaptureRequest{Filter: "udp and port 5300", Count: 7, Duration: 15 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		if got, err := udpWho(t, w.c2, w.router+":5300"); err != nil || got != w.ext1 {
			t.Fatalf("UDP: outside saw %q (%v), want %s", got, err, w.ext1)
		}
		ng, err := pcapgo.NewNgReader(cs, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			t.Fatal(err)
		}
		type rec struct {
			port, dir, note, src, dst string
			data                      []byte
		}
		var got []rec
		for {
			data, ci, opts, err := ng.ReadPacketDataWithOptions()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			ifc, _ := ng.Interface(ci.InterfaceIndex)
			r := rec{port: ifc.Name, dir: "in", data: data}
			if opts.Flags != nil && opts.Flags.Direction == pcapgo.NgEpbFlagDirectionOutbound {
				r.dir = "out"
			}
			if len(opts.Comments) > 0 {
				r.note = opts.Comments[0]
			}
			p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
			if ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
				r.src, r.dst = ip.SrcIP.String(), ip.DstIP.String()
			}
			got = append(got, r)
		}
		key := func(r rec) string { return strings.Join([]string{r.port, r.dir, r.note, r.src, r.dst}, " ") }
		want := []string{
			strings.Join([]string{w.c2, "in", "", w.c2IP, w.router}, " "),
			strings.Join([]string{"gateway", "out", "", w.c2IP, w.router}, " "),
			strings.Join([]string{"uplink:", "out", "pre-nat", w.c2IP, w.router}, " "),
			strings.Join([]string{"uplink:", "out", "post-nat", w.ext1, w.router}, " "),
			strings.Join([]string{"uplink:", "in", "pre-nat", w.router, w.ext1}, " "),
			strings.Join([]string{"uplink:", "in", "post-nat", w.router, w.c2IP}, " "),
			strings.Join([]string{w.c2, "out", "", w.router, w.c2IP}, " "),
		}
		var keys []string
		at := map[string]rec{}
		for _, r := range got {
			keys = append(keys, key(r))
			at[key(r)] = r
		}
		if strings.Join(keys, "\n") != strings.Join(want, "\n") {
			t.Fatalf("captured:\n%s\nwant:\n%s", strings.Join(keys, "\n"), strings.Join(want, "\n"))
		}
		// The pre-NAT frame is the one the bridge handed the gateway, and
		// the post-NAT reply the one the endpoint got.
		if !bytes.Equal(at[want[1]].data, at[want[2]].data) || !bytes.Equal(at[want[5]].data, at[want[6]].data) {
			t.Errorf("pre-nat or post-nat frames differ from the bridge's view of them")
		}
		if sum, ok := cs.Summary(); !ok || sum.Captured != 7 || sum.Lost != 0 {
			t.Errorf("summary %+v", sum)
		}
	})
	t.Run("port unreachable comes back translated", func(t *testing.T) {
		if _, err := udpWho(t, w.c1, w.router+":7777"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("UDP to a closed outside port: %v, want connection refused", err)
		}
	})
	t.Run("published range keeps the client's address", func(t *testing.T) {
		for _, port := range []string{"9000", "9001"} {
			got, err := httpWho(t, w.out, w.router, w.ext1+":"+port)
			if err != nil || got != w.router {
				t.Fatalf("port %s: container saw %q (%v), want the client %s", port, got, err, w.router)
			}
		}
		got, err := udpWho(t, w.out, w.ext2+":5353")
		if err != nil || got != w.router {
			t.Fatalf("published UDP: container saw %q (%v), want %s", got, err, w.router)
		}
	})
	t.Run("bound to one address, refused on the other", func(t *testing.T) {
		_, err := httpWho(t, w.out, w.router, w.ext2+":9000")
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("port 9000 on %s: %v, want connection refused", w.ext2, err)
		}
	})
	t.Run("allow-list", func(t *testing.T) {
		if got, err := httpWho(t, w.out, w.router, w.ext1+":9100"); err == nil {
			t.Fatalf("an unlisted source got through: %q", got)
		}
		got, err := httpWho(t, w.out, w.client100, w.ext1+":9100")
		if err != nil || got != w.client100 {
			t.Fatalf("listed source: %q (%v)", got, err)
		}
	})
	t.Run("hairpin", func(t *testing.T) {
		got, err := httpWho(t, w.c1, "", w.ext1+":9001")
		if err != nil || got != w.gw {
			t.Fatalf("c1 to c2's published port: c2 saw %q (%v), want the gateway %s", got, err, w.gw)
		}
		got, err = httpWho(t, w.c1, "", w.ext1+":9100") // its own published port
		if err != nil || got != w.gw {
			t.Fatalf("c1 to its own published port: %q (%v), want %s", got, err, w.gw)
		}
	})
	t.Run("table", func(t *testing.T) {
		tab, err := w.td.NATTable("natnet", 1000)
		if err != nil {
			t.Fatal(err)
		}
		kinds := map[string]int{}
		for _, e := range tab.Entries {
			kinds[e.Kind]++
		}
		if kinds["masquerade"] == 0 || kinds["published"] == 0 || kinds["hairpin"] == 0 || len(tab.Mappings) != 3 {
			t.Fatalf("table: %+v", tab)
		}
		if tab.Drops["filtered"] == 0 {
			t.Errorf("the allow-list drop was not counted: %+v", tab.Drops)
		}
	})
	t.Run("isolation", func(t *testing.T) {
		iso := newNS(t)
		if _, err := w.td.CreateNetwork(api.NetworkCreate{Name: "isonet", Subnets: []api.Subnet{{Subnet: "198.18.43.0/24"}}, Internal: true}); err != nil {
			t.Fatal(err)
		}
		defer w.td.RemoveNetwork("isonet")
		p, err := w.td.Connect("isonet", api.EndpointCreate{Netns: iso})
		if err != nil {
			t.Fatal(err)
		}
		mustPing(t, iso, "198.18.43.1")
		if !pingNone(t, iso, w.router) {
			t.Error("an internal network reached the outside")
		}
		if !pingNone(t, w.c1, addrOf(p.IPv4)) {
			t.Error("an endpoint reached another network's endpoint")
		}
	})
	t.Run("publish conflicts and bad input", func(t *testing.T) {
		ns := newNS(t)
		for _, tc := range []struct {
			pub  []string
			code string
			msg  string
		}{
			{[]string{"9001:80"}, api.CodeConflict, "overlaps"},
			{[]string{"9500-9502:80-81"}, api.CodeInvalidArgument, "differ in length"},
			{[]string{"198.19.42.9:9500:80"}, api.CodeInvalidArgument, "not one of the uplink's addresses"},
			{[]string{"9500:80/sctp"}, api.CodeInvalidArgument, "want tcp or udp"},
			{[]string{"0:80"}, api.CodeInvalidArgument, "not a port"},
		} {
			_, err := w.td.Connect("natnet", api.EndpointCreate{Netns: ns, Publish: tc.pub})
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Code != tc.code || !strings.Contains(ae.Message, tc.msg) {
				t.Errorf("publish %v: %v, want %s containing %q", tc.pub, err, tc.code, tc.msg)
			}
		}
		n, _ := w.td.Network("natnet")
		if len(n.Ports) != 3 {
			t.Errorf("a failed connect left a port: %+v", n.Ports)
		}
	})
}

func TestNATCreateErrors(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	td := start(t, stateDir(t))
	upns := newNS(t)
	up := nstest.Name("syup")
	other := newNS(t)
	if err := netns.AddVeth(netns.Endpoint{Netns: other, HostName: up, HostNetns: upns}); err != nil {
		t.Fatal(err)
	}
	base := api.NetworkCreate{Name: "n1", Subnets: []api.Subnet{{Subnet: "198.18.44.0/24"}}, Uplink: up, UplinkNetns: upns,
		UplinkIP: "198.19.44.2/24", UplinkGateway: "198.19.44.1"}
	for _, tc := range []struct {
		mod  func(*api.NetworkCreate)
		code string
		msg  string
	}{
		{func(r *api.NetworkCreate) { r.UplinkIP = "" }, api.CodeInvalidArgument, "needs --uplink-ip"},
		{func(r *api.NetworkCreate) { r.Internal = true }, api.CodeInvalidArgument, "internal network has no uplink"},
		{func(r *api.NetworkCreate) { r.Uplink = "nosuch0" }, api.CodeNotFound, "not found"},
		{func(r *api.NetworkCreate) { r.UplinkIP = "198.18.44.9/24" }, api.CodeInvalidArgument, "overlaps the network's subnet"},
		{func(r *api.NetworkCreate) { r.UplinkIP = "198.19.44.0/24" }, api.CodeInvalidArgument, "network or broadcast"},
		{func(r *api.NetworkCreate) { r.UplinkGateway = "198.19.99.1" }, api.CodeInvalidArgument, "not on the uplink"},
		{func(r *api.NetworkCreate) { r.UplinkIP = "2001:db8::2/64" }, api.CodeInvalidArgument, "IPv4"},
		{func(r *api.NetworkCreate) { r.NATTimeouts = map[string]string{"tcp-bogus": "1m"} }, api.CodeInvalidArgument, "unknown timeout"},
		{func(r *api.NetworkCreate) { r.NATMaxFlows = -1 }, api.CodeInvalidArgument, "out of range"},
		{func(r *api.NetworkCreate) { r.Uplink = ""; r.UplinkIP = "" }, api.CodeInvalidArgument, "need --uplink"},
		{func(r *api.NetworkCreate) { r.IPAM = api.IPAMNone; r.Subnets = nil }, api.CodeInvalidArgument, "ipam default"},
	} {
		req := base
		tc.mod(&req)
		if req.Uplink == "" && req.UplinkIP == "" {
			req.UplinkGateway = "198.19.44.1"
		}
		_, err := td.CreateNetwork(req)
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != tc.code || !strings.Contains(ae.Message, tc.msg) {
			t.Errorf("%+v: %v, want %s containing %q", req, err, tc.code, tc.msg)
		}
	}
	if ns, _ := td.Networks(); len(ns) != 0 {
		t.Fatalf("a failed create left %d networks", len(ns))
	}
	// The uplink is taken once; the second network cannot have it.
	if _, err := td.CreateNetwork(base); err != nil {
		t.Fatal(err)
	}
	second := base
	second.Name, second.Subnets, second.UplinkIP = "n2", []api.Subnet{{Subnet: "198.18.45.0/24"}}, "198.19.44.5/24"
	if _, err := td.CreateNetwork(second); err == nil || !strings.Contains(err.Error(), "already the uplink") {
		t.Errorf("second network on the same uplink: %v", err)
	}
	if err := td.RemoveNetwork("n1"); err != nil {
		t.Fatal(err)
	}
}
