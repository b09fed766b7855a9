package nat

import (
	"net/netip"
	"testing"

	"github.com/switchyard-net/switchyard/switch/frame"
)

// FuzzTranslate feeds arbitrary frames to a NAT with flows and mappings in
// place, from either side, with or without a partial-checksum header. It
// must never panic or read past the frame, and a packet it forwards whose
// IP header checksum was right must still have a right one.
func FuzzTranslate(f *testing.F) {
	seeds := []pkt{
		{proto: frame.ProtoTCP, src: host2, dst: server, sport: 40000, dport: 80, flags: tcpSYN},
		{proto: frame.ProtoTCP, src: server, dst: ext1, sport: 80, dport: 40000, flags: tcpSYN | tcpACK},
		{proto: frame.ProtoTCP, src: client, dst: ext1, sport: 1, dport: 8080, flags: tcpSYN},
		{proto: frame.ProtoUDP, src: host2, dst: server, sport: 5000, dport: 53},
		{proto: frame.ProtoICMPv4, icmpType: frame.ICMPv4EchoRequest, src: host2, dst: server, sport: 7},
		{proto: frame.ProtoUDP, src: host2, dst: server, id: 9, moreFrags: true, rawL4: make([]byte, 24)},
		{proto: frame.ProtoUDP, src: host2, dst: server, id: 9, fragOff: 3, rawL4: make([]byte, 16)},
	}
	for _, p := range seeds {
		b := build(f, p)
		f.Add(b, uint8(0))
		f.Add(b, uint8(1))
		f.Add(b, uint8(2))
	}
	quoted := build(f, pkt{proto: frame.ProtoUDP, src: ext1, dst: server, sport: 5000, dport: 53})[14:]
	f.Add(build(f, pkt{proto: frame.ProtoICMPv4, icmpType: icmpDestUnreach, src: server, dst: ext1, inner: quoted}), uint8(1))
	f.Fuzz(func(t *testing.T, b []byte, mode uint8) {
		n := newTestNAT(t, func(c *Config) { c.MaxFlows = 64 })
		_ = n.AddMappings(Mapping{Proto: frame.ProtoTCP, ExtPort: 8080, ExtEnd: 8090, CtrIP: host3, CtrPort: 80},
			Mapping{Proto: frame.ProtoUDP, ExtIP: ext2, ExtPort: 53, ExtEnd: 53, CtrIP: host2, CtrPort: 53,
				AllowFrom: []netip.Prefix{netip.MustParsePrefix("198.19.0.0/24")}})
		for _, p := range seeds[:5] {
			xlate(n, Inside, build(t, p), nil)
		}
		side := Side(mode & 1)
		var vnet *frame.VNetHdr
		if mode&2 != 0 {
			vnet = &frame.VNetHdr{Flags: frame.VNetNeedsCsum, CsumStart: 34, CsumOffset: uint16(mode>>2) % 20}
		}
		b = b[:len(b):len(b)] // no room past the end to hide a bad write
		var pr frame.Parsed
		pr.Decode(b)
		ipOK := pr.IPVersion == 4 && pr.Reason == frame.OK && frame.IPv4(b[pr.L3Off:pr.L3End]).VerifyChecksum()
		v := n.Translate(side, b, &pr, vnet)
		if v == Forward && ipOK && !frame.IPv4(b[pr.L3Off:pr.L3End]).VerifyChecksum() {
			t.Fatalf("forwarded with a broken IP header checksum")
		}
		// The same frame again: a flow it opened must now match.
		var pr2 frame.Parsed
		pr2.Decode(b)
		n.Translate(side, b, &pr2, vnet)
		n.Flows(0)
		n.SweepAll()
	})
}
