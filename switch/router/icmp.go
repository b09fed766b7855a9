package router

import (
	"encoding/binary"
	"net/netip"

	"github.com/switchyard-net/switchyard/switch/frame"
)

const (
	icmpDestUnreach  = 3
	icmpPortUnreach  = 3 // code
	icmpTimeExceeded = 11
	tcpFIN           = 0x01
	tcpSYN           = 0x02
	tcpRST           = 0x04
	tcpACK           = 0x10
	// icmpQuoteMax bounds an ICMP error to 576 bytes of IP, as RFC 1812 asks.
	icmpQuoteMax = 576 - frame.IPv4MinLen - frame.ICMPLen
)

// ipv4Header writes a 20-byte IPv4 header at b for a payload of n bytes
// and fills its checksum.
func ipv4Header(b []byte, proto uint8, src, dst netip.Addr, n int) {
	clear(b[:frame.IPv4MinLen])
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(frame.IPv4MinLen+n))
	b[6] = 0x40 // DF
	b[8] = 64
	b[9] = proto
	s, d := src.As4(), dst.As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	frame.IPv4(b).FillChecksum()
}

// arpRequest writes into b a broadcast ARP request from mac/src for target
// and returns its length.
func arpRequest(b []byte, mac frame.MAC, src, target netip.Addr) int {
	const n = frame.EthernetLen + frame.ARPLen
	clear(b[:n])
	eth := frame.Ethernet(b[:n])
	eth.SetDst(frame.Broadcast)
	eth.SetSrc(mac)
	binary.BigEndian.PutUint16(b[12:], frame.EtherTypeARP)
	a := frame.ARP(b[frame.EthernetLen:n])
	binary.BigEndian.PutUint16(a[0:], 1)      // Ethernet
	binary.BigEndian.PutUint16(a[2:], 0x0800) // IPv4
	a[4], a[5] = 6, 4
	a.SetOp(1)
	a.SetSender(mac, src)
	a.SetTarget(frame.MAC{}, target)
	return pad(b, n)
}

// icmpError writes into b an ICMP error of type typ/code from mac/src to
// the sender of the IPv4 packet in d, quoting it, and returns its length;
// 0 when no error may be sent about it (an ICMP error itself, a later
// fragment, a broadcast or multicast, a VLAN-tagged frame).
func icmpError(b []byte, pr *frame.Parsed, d []byte, mac frame.MAC, src netip.Addr, typ, code uint8) int {
	if pr.IPVersion != 4 || pr.Frag == frame.LaterFragment || pr.VLANTags > 0 || pr.DstMAC.IsMulticast() ||
		!src.Is4() || pr.SrcIP.IsMulticast() || pr.SrcIP.IsUnspecified() {
		return 0
	}
	if pr.Proto == frame.ProtoICMPv4 && pr.ICMPType != frame.ICMPv4EchoRequest && pr.ICMPType != frame.ICMPv4EchoReply {
		return 0
	}
	quote := d[pr.L3Off:pr.L3End]
	if len(quote) > icmpQuoteMax {
		quote = quote[:icmpQuoteMax]
	}
	l3 := frame.EthernetLen
	l4 := l3 + frame.IPv4MinLen
	n := l4 + frame.ICMPLen + len(quote)
	if n > len(b) {
		return 0
	}
	eth := frame.Ethernet(b[:n])
	eth.SetDst(pr.SrcMAC)
	eth.SetSrc(mac)
	binary.BigEndian.PutUint16(b[12:], frame.EtherTypeIPv4)
	ipv4Header(b[l3:], frame.ProtoICMPv4, src, pr.SrcIP, frame.ICMPLen+len(quote))
	m := b[l4:n]
	clear(m[:frame.ICMPLen])
	m[0], m[1] = typ, code
	copy(m[frame.ICMPLen:], quote)
	frame.ICMPv4(m).FillChecksum()
	return pad(b, n)
}

// tcpReset writes into b the reset a closed port answers the TCP segment
// in d with (RFC 793), from mac, and returns its length.
func tcpReset(b []byte, pr *frame.Parsed, d []byte, mac frame.MAC) int {
	if pr.VLANTags > 0 || pr.Frag != frame.NotFragment || pr.DstMAC.IsMulticast() {
		return 0
	}
	in := frame.TCP(d[pr.L4Off:pr.L3End])
	l3 := frame.EthernetLen
	l4 := l3 + frame.IPv4MinLen
	n := l4 + frame.TCPMinLen
	eth := frame.Ethernet(b[:n])
	eth.SetDst(pr.SrcMAC)
	eth.SetSrc(mac)
	binary.BigEndian.PutUint16(b[12:], frame.EtherTypeIPv4)
	ipv4Header(b[l3:], frame.ProtoTCP, pr.DstIP, pr.SrcIP, frame.TCPMinLen)
	t := frame.TCP(b[l4:n])
	clear(t)
	binary.BigEndian.PutUint16(t[0:], pr.DstPort)
	binary.BigEndian.PutUint16(t[2:], pr.SrcPort)
	t[12] = 5 << 4
	if pr.TCPFlags&tcpACK != 0 {
		binary.BigEndian.PutUint32(t[4:], in.Ack())
		t[13] = tcpRST
	} else {
		seglen := uint32(pr.L3End - pr.PayloadOff)
		if pr.TCPFlags&tcpSYN != 0 {
			seglen++
		}
		if pr.TCPFlags&tcpFIN != 0 {
			seglen++
		}
		binary.BigEndian.PutUint32(t[8:], in.Seq()+seglen)
		t[13] = tcpRST | tcpACK
	}
	t.FillChecksum(pr.DstIP, pr.SrcIP)
	return pad(b, n)
}
