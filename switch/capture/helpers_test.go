package capture

import (
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0b}
)

// pkt describes a test frame; build serialises it with gopacket.
type pkt struct {
	vlan     int // -1: untagged
	src, dst string
	proto    string // tcp, udp, icmp, icmp6, arp
	sp, dp   uint16
}

func build(tb testing.TB, p pkt) []byte {
	tb.Helper()
	eth := &layers.Ethernet{SrcMAC: macA, DstMAC: macB}
	var ls []gopacket.SerializableLayer
	ls = append(ls, eth)
	next := &eth.EthernetType
	if p.vlan >= 0 {
		eth.EthernetType = layers.EthernetTypeDot1Q
		d := &layers.Dot1Q{VLANIdentifier: uint16(p.vlan)}
		ls = append(ls, d)
		next = &d.Type
	}
	src, dst := netip.MustParseAddr(p.src), netip.MustParseAddr(p.dst)
	if p.proto == "arp" {
		*next = layers.EthernetTypeARP
		ls = append(ls, &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPRequest,
			SourceHwAddress: macA, SourceProtAddress: src.AsSlice(), DstHwAddress: make([]byte, 6), DstProtAddress: dst.AsSlice()})
	} else {
		var nl gopacket.NetworkLayer
		var ipproto layers.IPProtocol
		switch p.proto {
		case "tcp":
			ipproto = layers.IPProtocolTCP
		case "udp":
			ipproto = layers.IPProtocolUDP
		case "icmp":
			ipproto = layers.IPProtocolICMPv4
		case "icmp6":
			ipproto = layers.IPProtocolICMPv6
		}
		if src.Is4() {
			*next = layers.EthernetTypeIPv4
			ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: ipproto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
			nl = ip
			ls = append(ls, ip)
		} else {
			*next = layers.EthernetTypeIPv6
			ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: ipproto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
			nl = ip
			ls = append(ls, ip)
		}
		switch p.proto {
		case "tcp":
			t := &layers.TCP{SrcPort: layers.TCPPort(p.sp), DstPort: layers.TCPPort(p.dp), SYN: true, Window: 1000}
			_ = t.SetNetworkLayerForChecksum(nl)
			ls = append(ls, t)
		case "udp":
			u := &layers.UDP{SrcPort: layers.UDPPort(p.sp), DstPort: layers.UDPPort(p.dp)}
			_ = u.SetNetworkLayerForChecksum(nl)
			ls = append(ls, u)
		case "icmp":
			ls = append(ls, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 1, Seq: 1})
		case "icmp6":
			i := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(128, 0)}
			_ = i.SetNetworkLayerForChecksum(nl)
			ls = append(ls, i, &layers.ICMPv6Echo{Identifier: 1, SeqNumber: 1})
		}
		ls = append(ls, gopacket.Payload("hello"))
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}
