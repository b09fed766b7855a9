package nat

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/switch/frame"
)

// expect translates p from side and checks the verdict and, on Forward,
// the rewritten addresses and ports (a port of 0: any) and the checksums.
func expect(t *testing.T, n *NAT, side Side, p pkt, want Verdict, src, dst netip.AddrPort) frame.Parsed {
	t.Helper()
	b := build(t, p)
	var vnet *frame.VNetHdr
	if p.partial {
		vnet = partialHdr(p.proto)
	}
	before := n.Stats().Drops
	v, pr := xlate(n, side, b, vnet)
	if v.Kind() != want.Kind() || (want.Reason() != ReasonNone && v.Reason() != want.Reason()) {
		t.Fatalf("verdict %v, want %v (stats %+v)", v, want, n.Stats())
	}
	if r := v.Reason(); v.Kind() == Drop && (r == ReasonNone || n.Stats().Drops[r.String()] != before[r.String()]+1) {
		t.Fatalf("drop verdict %v does not name the reason counted (stats %+v)", v, n.Stats())
	}
	if v != Forward {
		return pr
	}
	if p.partial {
		if !frame.FinishChecksum(b, vnet) {
			t.Fatal("FinishChecksum failed")
		}
	}
	got := checkValid(t, b)
	gs, gd := ap(got.SrcIP, got.SrcPort), ap(got.DstIP, got.DstPort)
	if got.Proto == frame.ProtoICMPv4 {
		gs, gd = ap(got.SrcIP, got.ICMPEchoID), ap(got.DstIP, got.ICMPEchoID)
	}
	// A wanted port of 0 means any port.
	if src.Port() == 0 {
		gs = ap(gs.Addr(), 0)
	}
	if dst.Port() == 0 {
		gd = ap(gd.Addr(), 0)
	}
	if gs != src || gd != dst {
		t.Fatalf("rewritten to %v -> %v, want %v -> %v", gs, gd, src, dst)
	}
	if pr.SrcIP != got.SrcIP || pr.DstIP != got.DstIP {
		t.Errorf("Parsed not updated: %v -> %v, frame says %v -> %v", pr.SrcIP, pr.DstIP, got.SrcIP, got.DstIP)
	}
	return got
}

func TestMasqueradeTCP(t *testing.T) {
	for _, partial := range []bool{false, true} {
		n := newTestNAT(t, nil)
		syn := pkt{proto: frame.ProtoTCP, src: host2, dst: server, sport: 40000, dport: 80, flags: tcpSYN, partial: partial}
		expect(t, n, Inside, syn, Forward, ap(ext1, 40000), ap(server, 80))
		synack := pkt{proto: frame.ProtoTCP, src: server, dst: ext1, sport: 80, dport: 40000, flags: tcpSYN | tcpACK, partial: partial}
		expect(t, n, Outside, synack, Forward, ap(server, 80), ap(host2, 40000))
		ack := syn
		ack.flags, ack.payload = tcpACK, []byte("GET / HTTP/1.0\r\n\r\n")
		expect(t, n, Inside, ack, Forward, ap(ext1, 40000), ap(server, 80))
		fl := n.Flows(0)
		if len(fl) != 1 || fl[0].State != "ESTABLISHED" || fl[0].Packets != 3 || fl[0].Kind != "masquerade" ||
			fl[0].OrigSrc != ap(host2, 40000) || fl[0].NewSrc != ap(ext1, 40000) {
			t.Fatalf("flows %+v", fl)
		}
		if fl[0].Timeout != DefaultTimeouts.TCPEstablished {
			t.Errorf("timeout %v, want %v", fl[0].Timeout, DefaultTimeouts.TCPEstablished)
		}
		// A second host with the same source port gets another port.
		syn3 := syn
		syn3.src = host3
		got := expect(t, n, Inside, syn3, Forward, ap(ext1, 0), ap(server, 80))
		_ = got
	}
}

// TestMasqueradePortClash checks the port a clashing flow gets is in the
// range, and that both flows' replies reach their own host.
func TestMasqueradePortClash(t *testing.T) {
	n := newTestNAT(t, func(c *Config) { c.PortMin, c.PortMax = 20000, 20009 })
	for i, h := range []netip.Addr{host2, host3} {
		b := build(t, pkt{proto: frame.ProtoUDP, src: h, dst: server, sport: 5353, dport: 53, payload: []byte{byte(i)}})
		v, pr := xlate(n, Inside, b, nil)
		if v != Forward {
			t.Fatalf("host %v: %v", h, v)
		}
		checkValid(t, b)
		port := pr.SrcPort
		if i == 0 && port != 5353 {
			t.Fatalf("first flow's port changed to %d", port)
		}
		if i == 1 && (port < 20000 || port > 20009) {
			t.Fatalf("clashing flow got port %d, want 20000-20009", port)
		}
		expect(t, n, Outside, pkt{proto: frame.ProtoUDP, src: server, dst: ext1, sport: 53, dport: port}, Forward, ap(server, 53), ap(h, 5353))
	}
}

func TestMasqueradeUDPAndICMP(t *testing.T) {
	n := newTestNAT(t, nil)
	// UDP without a checksum keeps none.
	b := build(t, pkt{proto: frame.ProtoUDP, src: host2, dst: server, sport: 1234, dport: 53, noUDPCsum: true, payload: []byte("q")})
	if v, _ := xlate(n, Inside, b, nil); v != Forward {
		t.Fatal(v)
	}
	if c := binary.BigEndian.Uint16(b[34+6:]); c != 0 {
		t.Errorf("UDP checksum 0 became %#x", c)
	}
	expect(t, n, Outside, pkt{proto: frame.ProtoUDP, src: server, dst: ext1, sport: 53, dport: 1234}, Forward, ap(server, 53), ap(host2, 1234))
	fl := n.Flows(0)
	if len(fl) != 1 || fl[0].State != "ASSURED" || fl[0].Timeout != DefaultTimeouts.UDPStream {
		t.Fatalf("udp flow %+v", fl)
	}
	// Echo, and a second host with the same id gets another id.
	expect(t, n, Inside, pkt{proto: frame.ProtoICMPv4, icmpType: frame.ICMPv4EchoRequest, src: host2, dst: server, sport: 7}, Forward, ap(ext1, 7), ap(server, 7))
	b = build(t, pkt{proto: frame.ProtoICMPv4, icmpType: frame.ICMPv4EchoRequest, src: host3, dst: server, sport: 7})
	v, pr := xlate(n, Inside, b, nil)
	if v != Forward || pr.ICMPEchoID == 7 {
		t.Fatalf("second echo: %v id %d", v, pr.ICMPEchoID)
	}
	checkValid(t, b)
	id := pr.ICMPEchoID
	expect(t, n, Outside, pkt{proto: frame.ProtoICMPv4, icmpType: frame.ICMPv4EchoReply, src: server, dst: ext1, sport: id}, Forward, ap(server, 7), ap(host3, 7))
	expect(t, n, Outside, pkt{proto: frame.ProtoICMPv4, icmpType: frame.ICMPv4EchoReply, src: server, dst: ext1, sport: 7}, Forward, ap(server, 7), ap(host2, 7))
	// An echo reply nobody asked for opens nothing; an echo request to
	// us is the gateway's.
	expect(t, n, Outside, pkt{proto: frame.ProtoICMPv4, icmpType: frame.ICMPv4EchoReply, src: server, dst: ext1, sport: 99}, Pass, ap(netip.Addr{}, 0), ap(netip.Addr{}, 0))
	expect(t, n, Outside, pkt{proto: frame.ProtoICMPv4, icmpType: frame.ICMPv4EchoRequest, src: server, dst: ext1, sport: 99}, Pass, ap(netip.Addr{}, 0), ap(netip.Addr{}, 0))
}

func TestPublished(t *testing.T) {
	n := newTestNAT(t, nil)
	err := n.AddMappings(
		Mapping{Proto: frame.ProtoTCP, ExtPort: 8000, ExtEnd: 8009, CtrIP: host2, CtrPort: 80, Owner: "a"},
		Mapping{Proto: frame.ProtoUDP, ExtIP: ext2, ExtPort: 5353, ExtEnd: 5353, CtrIP: host3, CtrPort: 53, Owner: "b"},
		Mapping{Proto: frame.ProtoTCP, ExtIP: ext2, ExtPort: 9000, ExtEnd: 9000, CtrIP: host3, CtrPort: 90, Owner: "b",
			AllowFrom: []netip.Prefix{netip.MustParsePrefix("198.19.0.200/32")}},
	)
	if err != nil {
		t.Fatal(err)
	}
	// A range: port 8005 lands on 85, source kept; the reply goes back
	// from 8005.
	expect(t, n, Outside, pkt{proto: frame.ProtoTCP, src: client, dst: ext1, sport: 33000, dport: 8005, flags: tcpSYN}, Forward, ap(client, 33000), ap(host2, 85))
	expect(t, n, Inside, pkt{proto: frame.ProtoTCP, src: host2, dst: client, sport: 85, dport: 33000, flags: tcpSYN | tcpACK}, Forward, ap(ext1, 8005), ap(client, 33000))
	// Unbound ranges answer on every external address.
	expect(t, n, Outside, pkt{proto: frame.ProtoTCP, src: client, dst: ext2, sport: 33001, dport: 8000, flags: tcpSYN}, Forward, ap(client, 33001), ap(host2, 80))
	// Bound to ext2: on ext1 nothing is published there.
	expect(t, n, Outside, pkt{proto: frame.ProtoUDP, src: client, dst: ext2, sport: 4000, dport: 5353}, Forward, ap(client, 4000), ap(host3, 53))
	expect(t, n, Outside, pkt{proto: frame.ProtoUDP, src: client, dst: ext1, sport: 4000, dport: 5353}, Pass, ap(netip.Addr{}, 0), ap(netip.Addr{}, 0))
	// Outside the range, and a TCP packet that is not a SYN.
	expect(t, n, Outside, pkt{proto: frame.ProtoTCP, src: client, dst: ext1, sport: 33002, dport: 8010, flags: tcpSYN}, Pass, ap(netip.Addr{}, 0), ap(netip.Addr{}, 0))
	expect(t, n, Outside, pkt{proto: frame.ProtoTCP, src: client, dst: ext1, sport: 33003, dport: 8001, flags: tcpACK}, Drop, ap(netip.Addr{}, 0), ap(netip.Addr{}, 0))
	if n.Dropped(ReasonNoFlow) != 1 {
		t.Errorf("no-flow drops %d, want 1", n.Dropped(ReasonNoFlow))
	}
	// The allow-list.
	expect(t, n, Outside, pkt{proto: frame.ProtoTCP, src: server, dst: ext2, sport: 1, dport: 9000, flags: tcpSYN}, Drop, ap(netip.Addr{}, 0), ap(netip.Addr{}, 0))
	if n.Dropped(ReasonFiltered) != 1 {
		t.Errorf("filtered drops %d, want 1", n.Dropped(ReasonFiltered))
	}
	expect(t, n, Outside, pkt{proto: frame.ProtoTCP, src: client, dst: ext2, sport: 1, dport: 9000, flags: tcpSYN}, Forward, ap(client, 1), ap(host3, 90))
	// Not ours.
	expect(t, n, Outside, pkt{proto: frame.ProtoTCP, src: client, dst: server, sport: 1, dport: 80, flags: tcpSYN}, Drop, ap(netip.Addr{}, 0), ap(netip.Addr{}, 0))
	// Conflicts and bad mappings.
	for _, m := range []Mapping{
		{Proto: frame.ProtoTCP, ExtPort: 8009, ExtEnd: 8020, CtrIP: host3, CtrPort: 1},
		{Proto: frame.ProtoTCP, ExtIP: ext1, ExtPort: 8003, ExtEnd: 8003, CtrIP: host3, CtrPort: 1},
		{Proto: frame.ProtoUDP, ExtPort: 5353, ExtEnd: 5353, CtrIP: host3, CtrPort: 1},
	} {
		if err := n.AddMappings(m); !errors.Is(err, ErrConflict) {
			t.Errorf("AddMappings(%v) = %v, want a conflict", m, err)
		}
	}
	if err := n.AddMappings(Mapping{Proto: frame.ProtoUDP, ExtIP: ext1, ExtPort: 5353, ExtEnd: 5353, CtrIP: host2, CtrPort: 53}); err != nil {
		t.Errorf("same port on the other address: %v", err)
	}
	if err := n.AddMappings(Mapping{Proto: frame.ProtoUDP, ExtIP: server, ExtPort: 1, ExtEnd: 1, CtrIP: host2, CtrPort: 53}); err == nil {
		t.Error("a host address that is not external was taken")
	}
	if err := n.AddMappings(Mapping{Proto: frame.ProtoTCP, ExtPort: 65000, ExtEnd: 65535, CtrIP: host2, CtrPort: 65100}); err == nil {
		t.Error("a container range past 65535 was taken")
	}
	if got := n.RemoveMappings("b"); got != 2 {
		t.Errorf("RemoveMappings(b) = %d, want 2", got)
	}
}

func TestNetworkAllowList(t *testing.T) {
	n := newTestNAT(t, func(c *Config) { c.AllowFrom = []netip.Prefix{netip.MustParsePrefix("198.19.0.192/26")} })
	if err := n.AddMappings(Mapping{Proto: frame.ProtoTCP, ExtPort: 80, ExtEnd: 80, CtrIP: host2, CtrPort: 80}); err != nil {
		t.Fatal(err)
	}
	expect(t, n, Outside, pkt{proto: frame.ProtoTCP, src: server, dst: ext1, sport: 1, dport: 80, flags: tcpSYN}, Drop, ap(netip.Addr{}, 0), ap(netip.Addr{}, 0))
	expect(t, n, Outside, pkt{proto: frame.ProtoTCP, src: client, dst: ext1, sport: 1, dport: 80, flags: tcpSYN}, Forward, ap(client, 1), ap(host2, 80))
}

func TestHairpin(t *testing.T) {
	n := newTestNAT(t, nil)
	if err := n.AddMappings(Mapping{Proto: frame.ProtoTCP, ExtIP: ext1, ExtPort: 8080, ExtEnd: 8080, CtrIP: host3, CtrPort: 80}); err != nil {
		t.Fatal(err)
	}
	for _, from := range []netip.Addr{host2, host3} { // another endpoint, and the published one itself
		expect(t, n, Inside, pkt{proto: frame.ProtoTCP, src: from, dst: ext1, sport: 45000, dport: 8080, flags: tcpSYN}, Forward, ap(gwIP, 0), ap(host3, 80))
		fl := n.Flows(0)
		var port uint16
		for _, f := range fl {
			if f.OrigSrc == ap(from, 45000) {
				port = f.NewSrc.Port()
				if f.Kind != "hairpin" {
					t.Errorf("kind %q", f.Kind)
				}
			}
		}
		expect(t, n, Inside, pkt{proto: frame.ProtoTCP, src: host3, dst: gwIP, sport: 80, dport: port, flags: tcpSYN | tcpACK}, Forward, ap(ext1, 8080), ap(from, 45000))
	}
	// Other inside traffic to the gateway is the gateway's; to another
	// network, denied.
	expect(t, n, Inside, pkt{proto: frame.ProtoICMPv4, icmpType: frame.ICMPv4EchoRequest, src: host2, dst: gwIP, sport: 1}, Pass, ap(netip.Addr{}, 0), ap(netip.Addr{}, 0))
	expect(t, n, Inside, pkt{proto: frame.ProtoTCP, src: host2, dst: netip.MustParseAddr("198.18.2.9"), sport: 1, dport: 80, flags: tcpSYN}, Drop, ap(netip.Addr{}, 0), ap(netip.Addr{}, 0))
	if n.Dropped(ReasonDenied) != 1 {
		t.Errorf("denied %d", n.Dropped(ReasonDenied))
	}
}

func TestICMPErrorTranslated(t *testing.T) {
	n := newTestNAT(t, nil)
	// UDP from host2 leaves as ext1:5000 (port kept).
	expect(t, n, Inside, pkt{proto: frame.ProtoUDP, src: host2, dst: server, sport: 5000, dport: 53, payload: []byte("hello")}, Forward, ap(ext1, 5000), ap(server, 53))
	// The server says port unreachable, quoting what it got.
	quoted := build(t, pkt{proto: frame.ProtoUDP, src: ext1, dst: server, sport: 5000, dport: 53, payload: []byte("hello")})[14:]
	for _, from := range []netip.Addr{server, router2} {
		b := build(t, pkt{proto: frame.ProtoICMPv4, icmpType: icmpDestUnreach, src: from, dst: ext1, inner: quoted})
		v, pr := xlate(n, Outside, b, nil)
		if v != Forward {
			t.Fatalf("error from %v: %v", from, v)
		}
		checkValid(t, b)
		if pr.SrcIP != from || pr.DstIP != host2 {
			t.Fatalf("outer %v -> %v, want %v -> %v", pr.SrcIP, pr.DstIP, from, host2)
		}
		in := b[pr.L4Off+8:]
		var ipr frame.Parsed
		eth := append(make([]byte, 12), 0x08, 0)
		ipr.Decode(append(eth, in...))
		if ipr.SrcIP != host2 || ipr.DstIP != server || ipr.SrcPort != 5000 || ipr.DstPort != 53 {
			t.Fatalf("inner %v:%d -> %v:%d", ipr.SrcIP, ipr.SrcPort, ipr.DstIP, ipr.DstPort)
		}
		if !frame.IPv4(in).VerifyChecksum() {
			t.Error("inner IP checksum wrong")
		}
		if !frame.UDP(in[20:]).Verify(host2, server) {
			t.Error("inner UDP checksum wrong")
		}
	}
	// An error about no flow of ours is dropped.
	stray := build(t, pkt{proto: frame.ProtoUDP, src: ext1, dst: server, sport: 5001, dport: 53})[14:]
	b := build(t, pkt{proto: frame.ProtoICMPv4, icmpType: icmpDestUnreach, src: server, dst: ext1, inner: stray})
	if v, _ := xlate(n, Outside, b, nil); v.Kind() != Drop {
		t.Fatalf("stray error: %v", v)
	}
}

func TestPublishedICMPErrorFromInside(t *testing.T) {
	n := newTestNAT(t, nil)
	if err := n.AddMappings(Mapping{Proto: frame.ProtoUDP, ExtPort: 7000, ExtEnd: 7000, CtrIP: host2, CtrPort: 70}); err != nil {
		t.Fatal(err)
	}
	expect(t, n, Outside, pkt{proto: frame.ProtoUDP, src: client, dst: ext1, sport: 6000, dport: 7000}, Forward, ap(client, 6000), ap(host2, 70))
	quoted := build(t, pkt{proto: frame.ProtoUDP, src: client, dst: host2, sport: 6000, dport: 70})[14:]
	b := build(t, pkt{proto: frame.ProtoICMPv4, icmpType: icmpDestUnreach, src: host2, dst: client, inner: quoted})
	v, pr := xlate(n, Inside, b, nil)
	if v != Forward || pr.SrcIP != ext1 || pr.DstIP != client {
		t.Fatalf("%v %v -> %v", v, pr.SrcIP, pr.DstIP)
	}
	checkValid(t, b)
	in := frame.IPv4(b[pr.L4Off+8:])
	if in.Src() != client || in.Dst() != ext1 || binary.BigEndian.Uint16(in[22:]) != 7000 {
		t.Fatalf("inner %v -> %v:%d", in.Src(), in.Dst(), binary.BigEndian.Uint16(in[22:]))
	}
}

func TestFragments(t *testing.T) {
	n := newTestNAT(t, nil)
	// The first fragment: a UDP header and 16 bytes of a longer datagram.
	udp := make([]byte, 8+16)
	binary.BigEndian.PutUint16(udp[0:], 6000)
	binary.BigEndian.PutUint16(udp[2:], 53)
	binary.BigEndian.PutUint16(udp[4:], 8+32)
	first := build(t, pkt{proto: frame.ProtoUDP, src: host2, dst: server, id: 77, moreFrags: true, rawL4: udp})
	later := build(t, pkt{proto: frame.ProtoUDP, src: host2, dst: server, id: 77, fragOff: 3, rawL4: make([]byte, 16)})
	if v, pr := xlate(n, Inside, first, nil); v != Forward || pr.SrcIP != ext1 {
		t.Fatalf("first fragment: %v %v", v, pr.SrcIP)
	}
	checkValid(t, first)
	v, pr := xlate(n, Inside, later, nil)
	if v != Forward || pr.SrcIP != ext1 || pr.DstIP != server {
		t.Fatalf("later fragment: %v %v", v, pr.SrcIP)
	}
	checkValid(t, later)
	orphan := build(t, pkt{proto: frame.ProtoUDP, src: host2, dst: server, id: 78, fragOff: 3, rawL4: make([]byte, 16)})
	if v, _ := xlate(n, Inside, orphan, nil); v.Kind() != Drop || n.Dropped(ReasonFragment) != 1 {
		t.Fatalf("orphan fragment: %v", v)
	}
}

func TestBadInput(t *testing.T) {
	n := newTestNAT(t, nil)
	expect(t, n, Inside, pkt{proto: frame.ProtoTCP, src: host2, dst: server, sport: 1, dport: 80, flags: tcpSYN, badCsum: true}, Drop, ap(netip.Addr{}, 0), ap(netip.Addr{}, 0))
	if n.Dropped(ReasonBadChecksum) != 1 {
		t.Errorf("bad-checksum drops %d", n.Dropped(ReasonBadChecksum))
	}
	b := build(t, pkt{proto: frame.ProtoTCP, src: host2, dst: server, sport: 1, dport: 80, flags: tcpSYN})
	short := b[:14+20+10]
	frame.IPv4(short[14:]).SetTotalLen(30)
	if v, _ := xlate(n, Inside, short, nil); v.Kind() != Drop || n.Dropped(ReasonMalformed) != 1 {
		t.Errorf("truncated TCP: %v", v)
	}
	if n.Stats().Flows != 0 {
		t.Errorf("bad packets opened flows: %+v", n.Stats())
	}
	// No masquerade: a new flow from inside is dropped.
	n2 := newTestNAT(t, func(c *Config) { c.Masquerade = false })
	expect(t, n2, Inside, pkt{proto: frame.ProtoUDP, src: host2, dst: server, sport: 1, dport: 53}, Drop, ap(netip.Addr{}, 0), ap(netip.Addr{}, 0))
}

func TestTCPStates(t *testing.T) {
	type step struct {
		dir   int
		flags uint8
		want  string
	}
	const syn, ack, fin, rst = tcpSYN, tcpACK, tcpFIN | tcpACK, tcpRST
	tests := []struct {
		name  string
		steps []step
	}{
		{"handshake and close", []step{{0, syn, "SYN_SENT"}, {1, syn | ack, "SYN_RECV"}, {0, ack, "ESTABLISHED"},
			{0, fin, "FIN_WAIT"}, {1, ack, "FIN_WAIT"}, {1, fin, "LAST_ACK"}, {0, ack, "TIME_WAIT"}}},
		{"server closes first", []step{{0, syn, "SYN_SENT"}, {1, syn | ack, "SYN_RECV"}, {0, ack, "ESTABLISHED"},
			{1, fin, "CLOSE_WAIT"}, {0, fin, "LAST_ACK"}, {1, ack, "TIME_WAIT"}}},
		{"reset", []step{{0, syn, "SYN_SENT"}, {1, rst | ack, "CLOSE"}}},
		{"reopen after time-wait", []step{{0, syn, "SYN_SENT"}, {1, syn | ack, "SYN_RECV"}, {0, ack, "ESTABLISHED"},
			{0, fin, "FIN_WAIT"}, {1, fin, "LAST_ACK"}, {0, ack, "TIME_WAIT"}, {0, syn, "SYN_SENT"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestNAT(t, nil)
			for i, s := range tc.steps {
				p := pkt{proto: frame.ProtoTCP, src: host2, dst: server, sport: 40000, dport: 80, flags: s.flags}
				side := Inside
				if s.dir == 1 {
					p = pkt{proto: frame.ProtoTCP, src: server, dst: ext1, sport: 80, dport: 40000, flags: s.flags}
					side = Outside
				}
				if v, _ := xlate(n, side, build(t, p), nil); v != Forward {
					t.Fatalf("step %d: %v", i, v)
				}
				if fl := n.Flows(0); len(fl) != 1 || fl[0].State != s.want {
					t.Fatalf("step %d: flows %+v, want state %s", i, fl, s.want)
				}
			}
		})
	}
}

func TestExpiry(t *testing.T) {
	var to Timeouts
	if err := to.Set("tcp-syn-sent", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	n := newTestNAT(t, func(c *Config) { c.Timeouts = to })
	syn := pkt{proto: frame.ProtoTCP, src: host2, dst: server, sport: 40000, dport: 80, flags: tcpSYN}
	expect(t, n, Inside, syn, Forward, ap(ext1, 40000), ap(server, 80))
	expect(t, n, Inside, pkt{proto: frame.ProtoUDP, src: host2, dst: server, sport: 1, dport: 53}, Forward, ap(ext1, 1), ap(server, 53))
	n.Tick(t0.Add(4 * time.Second))
	n.SweepAll()
	if got := n.Stats().Flows; got != 2 {
		t.Fatalf("after 4s: %d flows, want 2", got)
	}
	n.Tick(t0.Add(6 * time.Second))
	n.SweepAll()
	if s := n.Stats(); s.Flows != 1 || s.Expired != 1 {
		t.Fatalf("after 6s: %+v, want the SYN_SENT flow expired", s)
	}
	// Its SYN-ACK arrives late: nothing to match, and it opens nothing.
	expect(t, n, Outside, pkt{proto: frame.ProtoTCP, src: server, dst: ext1, sport: 80, dport: 40000, flags: tcpSYN | tcpACK}, Pass, ap(netip.Addr{}, 0), ap(netip.Addr{}, 0))
	// Lazy expiry: the UDP flow (30 s) is gone on lookup without a sweep.
	n.Tick(t0.Add(40 * time.Second))
	expect(t, n, Outside, pkt{proto: frame.ProtoUDP, src: server, dst: ext1, sport: 53, dport: 1}, Pass, ap(netip.Addr{}, 0), ap(netip.Addr{}, 0))
	if got := n.Stats().Flows; got != 0 {
		t.Fatalf("%d flows left", got)
	}
	if err := to.Set("udp", time.Millisecond); err == nil {
		t.Error("a sub-second timeout was taken")
	}
	if err := to.Set("tcp-bogus", time.Minute); err == nil {
		t.Error("an unknown timeout name was taken")
	}
}

func TestTableFull(t *testing.T) {
	n := newTestNAT(t, func(c *Config) { c.MaxFlows = 4 })
	open := func(sport uint16) Verdict {
		v, _ := xlate(n, Inside, build(t, pkt{proto: frame.ProtoTCP, src: host2, dst: server, sport: sport, dport: 80, flags: tcpSYN}), nil)
		return v
	}
	reply := func(sport uint16) Verdict {
		v, _ := xlate(n, Outside, build(t, pkt{proto: frame.ProtoTCP, src: server, dst: ext1, sport: 80, dport: sport, flags: tcpSYN | tcpACK}), nil)
		return v
	}
	for p := uint16(1); p <= 4; p++ {
		if open(p) != Forward {
			t.Fatalf("flow %d refused", p)
		}
	}
	// Full of unreplied flows: a new one evicts one of them.
	if open(5) != Forward || n.Stats().Evicted != 1 || n.Stats().Flows != 4 {
		t.Fatalf("5th flow: %+v", n.Stats())
	}
	// Reply to every live flow; now nothing may be evicted.
	for _, f := range n.Flows(0) {
		if reply(f.NewSrc.Port()) != Forward {
			t.Fatalf("reply to %v lost", f.NewSrc)
		}
	}
	if open(6).Reason() != ReasonTableFull || n.Dropped(ReasonTableFull) != 1 {
		t.Fatalf("6th flow in a full table of replied flows: %+v", n.Stats())
	}
	// Known flows keep working.
	for _, f := range n.Flows(0) {
		if reply(f.NewSrc.Port()) != Forward {
			t.Fatalf("known flow %v stopped working", f.NewSrc)
		}
	}
}

func TestFlush(t *testing.T) {
	n := newTestNAT(t, nil)
	for p := uint16(1); p <= 3; p++ {
		expect(t, n, Inside, pkt{proto: frame.ProtoUDP, src: host2, dst: server, sport: p, dport: 53}, Forward, ap(ext1, p), ap(server, 53))
	}
	expect(t, n, Inside, pkt{proto: frame.ProtoUDP, src: host3, dst: server, sport: 9, dport: 53}, Forward, ap(ext1, 9), ap(server, 53))
	if got := n.Flush(host2); got != 3 {
		t.Fatalf("Flush(host2) = %d", got)
	}
	if got := n.Flush(netip.Addr{}); got != 1 {
		t.Fatalf("Flush(all) = %d", got)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Masquerade: true},
		{MaxFlows: -1},
		{MaxFlows: MaxMaxFlows + 1},
		{External: []netip.Addr{netip.MustParseAddr("2001:db8::1")}},
		{PortMin: 2000, PortMax: 1000},
	} {
		if _, err := New(&cfg); err == nil {
			t.Errorf("New(%+v) took it", cfg)
		}
	}
}
