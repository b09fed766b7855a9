package nat

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/switchyard-net/switchyard/switch/frame"
)

var (
	t0      = time.Unix(1_700_000_000, 0)
	subnet  = netip.MustParsePrefix("198.18.1.0/24")
	gwIP    = netip.MustParseAddr("198.18.1.1")
	host2   = netip.MustParseAddr("198.18.1.2")
	host3   = netip.MustParseAddr("198.18.1.3")
	ext1    = netip.MustParseAddr("198.19.0.2")
	ext2    = netip.MustParseAddr("198.19.0.3")
	server  = netip.MustParseAddr("198.19.0.100")
	client  = netip.MustParseAddr("198.19.0.200")
	router2 = netip.MustParseAddr("198.19.0.1")
)

func newTestNAT(t testing.TB, mod func(*Config)) *NAT {
	t.Helper()
	cfg := &Config{
		Inside: []netip.Prefix{subnet}, Gateway: gwIP, External: []netip.Addr{ext1, ext2},
		Masquerade: true, Now: t0, MaxFlows: 1024,
		Deny: []netip.Prefix{netip.MustParsePrefix("198.18.2.0/24")},
	}
	if mod != nil {
		mod(cfg)
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// pkt describes a test packet.
type pkt struct {
	proto            uint8
	src, dst         netip.Addr
	sport, dport     uint16 // ICMP: sport is the echo id
	flags            uint8  // TCP flags
	icmpType         uint8
	payload          []byte
	id               uint16 // IP id
	ttl              uint8
	noUDPCsum        bool
	fragOff          uint16 // in 8-byte units
	moreFrags        bool
	rawL4            []byte // use as the IP payload as is (ICMP errors, fragments)
	inner            []byte // ICMP error: the quoted packet (IP header on)
	badCsum, partial bool
}

func ip4(a netip.Addr) net.IP { b := a.As4(); return net.IP(b[:]) }

// build returns the Ethernet frame for p, checksums filled (or broken or
// partial, as asked).
func build(t testing.TB, p pkt) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	ttl := p.ttl
	if ttl == 0 {
		ttl = 64
	}
	ip := &layers.IPv4{Version: 4, TTL: ttl, Id: p.id, Protocol: layers.IPProtocol(p.proto), SrcIP: ip4(p.src), DstIP: ip4(p.dst), FragOffset: p.fragOff}
	if p.moreFrags {
		ip.Flags = layers.IPv4MoreFragments
	}
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	var ls []gopacket.SerializableLayer
	switch {
	case p.rawL4 != nil:
		ls = []gopacket.SerializableLayer{eth, ip, gopacket.Payload(p.rawL4)}
	case p.proto == frame.ProtoTCP:
		tcp := &layers.TCP{SrcPort: layers.TCPPort(p.sport), DstPort: layers.TCPPort(p.dport), Seq: 1000, Ack: 1, Window: 65535,
			FIN: p.flags&tcpFIN != 0, SYN: p.flags&tcpSYN != 0, RST: p.flags&tcpRST != 0, ACK: p.flags&tcpACK != 0}
		_ = tcp.SetNetworkLayerForChecksum(ip)
		ls = []gopacket.SerializableLayer{eth, ip, tcp, gopacket.Payload(p.payload)}
	case p.proto == frame.ProtoUDP:
		udp := &layers.UDP{SrcPort: layers.UDPPort(p.sport), DstPort: layers.UDPPort(p.dport)}
		_ = udp.SetNetworkLayerForChecksum(ip)
		ls = []gopacket.SerializableLayer{eth, ip, udp, gopacket.Payload(p.payload)}
	case p.proto == frame.ProtoICMPv4:
		typ := p.icmpType
		ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: p.sport, Seq: 1}
		pl := p.payload
		if p.inner != nil {
			ic.Id, ic.Seq = 0, 0
			pl = p.inner
		}
		ls = []gopacket.SerializableLayer{eth, ip, ic, gopacket.Payload(pl)}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		t.Fatal(err)
	}
	b := append([]byte(nil), buf.Bytes()...)
	if p.rawL4 == nil && (p.badCsum || p.partial || p.noUDPCsum) {
		off := csumOff(p.proto)
		l4 := b[14+20 : 14+int(binary.BigEndian.Uint16(b[14+2:]))]
		switch {
		case p.noUDPCsum:
			binary.BigEndian.PutUint16(l4[6:], 0)
		case p.badCsum:
			l4[off] ^= 0x55
		case p.partial:
			binary.BigEndian.PutUint16(l4[off:], frame.PseudoHeaderSum(p.proto, p.src, p.dst, len(l4)))
		}
	}
	return b
}

func csumOff(proto uint8) int {
	switch proto {
	case frame.ProtoTCP:
		return 16
	case frame.ProtoUDP:
		return 6
	}
	return 2
}

func partialHdr(proto uint8) *frame.VNetHdr {
	return &frame.VNetHdr{Flags: frame.VNetNeedsCsum, CsumStart: 34, CsumOffset: uint16(csumOff(proto))}
}

// xlate decodes b and translates it.
func xlate(n *NAT, side Side, b []byte, vnet *frame.VNetHdr) (Verdict, frame.Parsed) {
	var pr frame.Parsed
	pr.Decode(b)
	v := n.Translate(side, b, &pr, vnet)
	return v, pr
}

// checkValid fails t unless b's IPv4 header checksum and (for a whole
// packet) its transport checksum are right, and the decode of b agrees
// with want's addresses and ports.
func checkValid(t testing.TB, b []byte) frame.Parsed {
	t.Helper()
	var pr frame.Parsed
	pr.Decode(b)
	if pr.Reason != frame.OK {
		t.Fatalf("rewritten frame does not decode: %v", pr.Reason)
	}
	ip := frame.IPv4(b[pr.L3Off:pr.L3End])
	if !ip.VerifyChecksum() {
		t.Errorf("IPv4 header checksum wrong after rewrite")
	}
	if pr.Frag != frame.NotFragment {
		return pr
	}
	l4 := b[pr.L4Off:pr.L3End]
	switch pr.Proto {
	case frame.ProtoTCP:
		if !frame.TCP(l4).Verify(pr.SrcIP, pr.DstIP) {
			t.Errorf("TCP checksum wrong after rewrite")
		}
	case frame.ProtoUDP:
		if binary.BigEndian.Uint16(l4[6:]) != 0 && !frame.UDP(l4).Verify(pr.SrcIP, pr.DstIP) {
			t.Errorf("UDP checksum wrong after rewrite")
		}
	case frame.ProtoICMPv4:
		if !frame.ICMPv4(l4).Verify() {
			t.Errorf("ICMP checksum wrong after rewrite")
		}
	}
	return pr
}

func ap(a netip.Addr, p uint16) netip.AddrPort { return netip.AddrPortFrom(a, p) }
