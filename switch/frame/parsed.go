package frame

import (
	"encoding/binary"
	"net/netip"
)

// Reason says why Decode stopped short of a complete summary. The engine
// uses it as a drop reason; String gives a stable lower-case name.
type Reason uint8

// Reasons, in the order Decode meets them.
const (
	OK             Reason = iota // decoded as far as this package goes
	ReasonShort                  // shorter than an Ethernet header
	ReasonVLAN                   // truncated VLAN tag or more than two tags
	ReasonARP                    // truncated or not Ethernet/IPv4 ARP
	ReasonIPHeader               // IP header truncated, wrong version or bad IHL
	ReasonIPLength               // IP length field beyond the frame or below the header
	ReasonIPv6Ext                // IPv6 extension header truncated, or too many
	ReasonL4Header               // transport header truncated, bad data offset or UDP length
	numReasons
)

var reasonNames = [numReasons]string{
	OK:             "ok",
	ReasonShort:    "truncated-ethernet",
	ReasonVLAN:     "bad-vlan",
	ReasonARP:      "bad-arp",
	ReasonIPHeader: "bad-ip-header",
	ReasonIPLength: "bad-ip-length",
	ReasonIPv6Ext:  "bad-ipv6-ext",
	ReasonL4Header: "bad-l4-header",
}

// String returns the reason's name.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Frag classifies IP fragments.
type Frag uint8

// Fragment classes.
const (
	NotFragment   Frag = iota
	FirstFragment      // offset 0, more to come: holds the transport header
	LaterFragment      // offset > 0: no transport header
)

// Parsed is the L2-L4 summary of one frame that forwarding, NAT and capture
// filters share. Decode fills it in place without allocating; reuse one
// Parsed per goroutine. Fields beyond the layer where decoding stopped are
// zero.
type Parsed struct {
	// Reason is OK, or what is wrong with the first layer that failed.
	// Layers before it are filled in: a frame with Reason ReasonL4Header
	// still has good Ethernet and IP fields.
	Reason Reason

	DstMAC, SrcMAC MAC
	// EtherType is the type after any VLAN tags.
	EtherType uint16
	// VLAN is the outer tag's VLAN ID; VLANTags the number of tags (0-2).
	VLAN     uint16
	VLANTags uint8

	// L3Off is the offset of the ARP or IP header; L3End the end of the IP
	// packet (total/payload length), short of any Ethernet padding.
	L3Off, L3End int

	// IPVersion is 4 or 6 for IP, 0 otherwise. Proto is the transport
	// protocol (after IPv6 extension headers), TTL the TTL or hop limit.
	IPVersion uint8
	Proto     uint8
	TTL       uint8
	Frag      Frag

	// SrcIP and DstIP are the IP addresses, or for ARP the sender and
	// target protocol addresses.
	SrcIP, DstIP netip.Addr

	// L4Off is the offset of the transport header (of the fragment data for
	// a LaterFragment); PayloadOff the offset of the transport payload.
	L4Off, PayloadOff int

	SrcPort, DstPort uint16
	TCPFlags         uint8

	// ICMPType and ICMPCode for ICMPv4 and ICMPv6; ICMPEchoID and
	// ICMPEchoSeq for echo requests and replies.
	ICMPType, ICMPCode      uint8
	ICMPEchoID, ICMPEchoSeq uint16

	// ARPOp and the hardware addresses of an ARP packet (protocol
	// addresses are in SrcIP and DstIP).
	ARPOp                      uint16
	ARPSenderMAC, ARPTargetMAC MAC
}

// HasVLAN reports whether the frame carried at least one VLAN tag.
func (p *Parsed) HasVLAN() bool { return p.VLANTags > 0 }

// IsIP reports whether the frame holds an IPv4 or IPv6 header.
func (p *Parsed) IsIP() bool { return p.IPVersion != 0 }

// Decode fills p from the Ethernet frame b. It never panics and never reads
// outside b, whatever b holds; p.Reason says whether and where it found b
// malformed.
func (p *Parsed) Decode(b []byte) {
	*p = Parsed{}
	if len(b) < EthernetLen {
		p.Reason = ReasonShort
		return
	}
	e := Ethernet(b)
	p.DstMAC, p.SrcMAC = e.Dst(), e.Src()
	et, vlan, tags, off := e.Untag()
	if off < 0 {
		p.Reason = ReasonVLAN
		return
	}
	p.EtherType, p.VLAN, p.VLANTags, p.L3Off = et, vlan, uint8(tags), off
	l3 := b[off:]
	switch et {
	case EtherTypeARP:
		a := ARP(l3)
		if !a.IsValid() {
			p.Reason = ReasonARP
			return
		}
		p.L3End = off + ARPLen
		p.ARPOp = a.Op()
		p.ARPSenderMAC, p.SrcIP = a.SenderMAC(), a.SenderIP()
		p.ARPTargetMAC, p.DstIP = a.TargetMAC(), a.TargetIP()
	case EtherTypeIPv4:
		p.decodeIPv4(b, IPv4(l3))
	case EtherTypeIPv6:
		p.decodeIPv6(b, IPv6(l3))
	}
}

func (p *Parsed) decodeIPv4(b []byte, ip IPv4) {
	if len(ip) < IPv4MinLen || ip[0]>>4 != 4 || ip.HeaderLen() < IPv4MinLen || ip.HeaderLen() > len(ip) {
		p.Reason = ReasonIPHeader
		return
	}
	p.IPVersion = 4
	p.Proto, p.TTL = ip.Protocol(), ip.TTL()
	p.SrcIP, p.DstIP = ip.Src(), ip.Dst()
	tl := int(ip.TotalLen())
	if tl < ip.HeaderLen() || tl > len(ip) {
		p.Reason = ReasonIPLength
		return
	}
	p.L3End = p.L3Off + tl
	p.L4Off = p.L3Off + ip.HeaderLen()
	p.PayloadOff = p.L4Off
	if ip.IsFragment() {
		if ip.FragOffset() != 0 {
			p.Frag = LaterFragment
			return
		}
		p.Frag = FirstFragment
	}
	p.decodeL4(b[p.L4Off:p.L3End])
}

func (p *Parsed) decodeIPv6(b []byte, ip IPv6) {
	if len(ip) < IPv6Len || ip[0]>>4 != 6 {
		p.Reason = ReasonIPHeader
		return
	}
	p.IPVersion = 6
	p.Proto, p.TTL = ip.NextHeader(), ip.HopLimit()
	p.SrcIP, p.DstIP = ip.Src(), ip.Dst()
	if !ip.IsValid() {
		p.Reason = ReasonIPLength
		return
	}
	p.L3End = p.L3Off + IPv6Len + int(ip.PayloadLen())
	t, ok := ip[:p.L3End-p.L3Off].Transport()
	if !ok {
		p.Reason = ReasonIPv6Ext
		return
	}
	p.Proto = t.Proto
	p.L4Off = p.L3Off + t.Off
	p.PayloadOff = p.L4Off
	if t.Fragment {
		if t.FragOffset != 0 {
			p.Frag = LaterFragment
			return
		}
		if t.More {
			p.Frag = FirstFragment
		}
		// An atomic fragment (offset 0, no more) is a whole packet.
	}
	p.decodeL4(b[p.L4Off:p.L3End])
}

// decodeL4 reads the transport header in l4 (bounded by the IP length).
func (p *Parsed) decodeL4(l4 []byte) {
	switch p.Proto {
	case ProtoTCP:
		t := TCP(l4)
		if !t.IsValid() {
			p.Reason = ReasonL4Header
			return
		}
		p.SrcPort, p.DstPort, p.TCPFlags = t.SrcPort(), t.DstPort(), t.Flags()
		p.PayloadOff = p.L4Off + t.HeaderLen()
	case ProtoUDP:
		u := UDP(l4)
		if len(u) < UDPLen {
			p.Reason = ReasonL4Header
			return
		}
		p.SrcPort, p.DstPort = u.SrcPort(), u.DstPort()
		p.PayloadOff = p.L4Off + UDPLen
		// The length field covers the whole datagram, which a first
		// fragment holds only part of.
		if n := int(u.Len()); n < UDPLen || (p.Frag == NotFragment && n > len(u)) {
			p.Reason = ReasonL4Header
		}
	case ProtoICMPv4, ProtoICMPv6:
		if (p.Proto == ProtoICMPv4) != (p.IPVersion == 4) {
			return // ICMP of the other family: not ours to read
		}
		if len(l4) < 4 {
			p.Reason = ReasonL4Header
			return
		}
		p.ICMPType, p.ICMPCode = l4[0], l4[1]
		p.PayloadOff = p.L4Off + min(len(l4), ICMPLen)
		echo := (p.Proto == ProtoICMPv4 && ICMPv4(l4).IsEcho()) ||
			(p.Proto == ProtoICMPv6 && ICMPv6(l4).IsEcho())
		if echo {
			if len(l4) < ICMPLen {
				p.Reason = ReasonL4Header
				return
			}
			p.ICMPEchoID = binary.BigEndian.Uint16(l4[4:])
			p.ICMPEchoSeq = binary.BigEndian.Uint16(l4[6:])
		}
	}
}
