package frame

import (
	"encoding/binary"
	"net/netip"
)

// Transport header sizes.
const (
	TCPMinLen = 20
	UDPLen    = 8
	ICMPLen   = 8 // type, code, checksum and the 4-byte rest of header
)

// TCP flags.
const (
	TCPFin uint8 = 0x01
	TCPSyn uint8 = 0x02
	TCPRst uint8 = 0x04
	TCPPsh uint8 = 0x08
	TCPAck uint8 = 0x10
	TCPUrg uint8 = 0x20
	TCPEce uint8 = 0x40
	TCPCwr uint8 = 0x80
)

// TCP is a view of a TCP segment starting at its header. Accessors need
// IsValid. Set methods keep the checksum right incrementally.
type TCP []byte

// IsValid reports whether t holds a header whose data offset is within t.
func (t TCP) IsValid() bool {
	return len(t) >= TCPMinLen && t.HeaderLen() >= TCPMinLen && t.HeaderLen() <= len(t)
}

// SrcPort returns the source port.
func (t TCP) SrcPort() uint16 { return binary.BigEndian.Uint16(t[0:]) }

// DstPort returns the destination port.
func (t TCP) DstPort() uint16 { return binary.BigEndian.Uint16(t[2:]) }

// Seq returns the sequence number.
func (t TCP) Seq() uint32 { return binary.BigEndian.Uint32(t[4:]) }

// Ack returns the acknowledgement number.
func (t TCP) Ack() uint32 { return binary.BigEndian.Uint32(t[8:]) }

// HeaderLen returns the data offset in bytes, options included.
func (t TCP) HeaderLen() int { return int(t[12]>>4) * 4 }

// Flags returns the flags byte (TCPFin ... TCPCwr).
func (t TCP) Flags() uint8 { return t[13] }

// Window returns the window field.
func (t TCP) Window() uint16 { return binary.BigEndian.Uint16(t[14:]) }

// Checksum returns the checksum field.
func (t TCP) Checksum() uint16 { return binary.BigEndian.Uint16(t[16:]) }

// Urgent returns the urgent pointer.
func (t TCP) Urgent() uint16 { return binary.BigEndian.Uint16(t[18:]) }

// Payload returns the bytes after the header.
func (t TCP) Payload() []byte { return t[t.HeaderLen():] }

func (t TCP) setChecksum(c uint16) { binary.BigEndian.PutUint16(t[16:], c) }

// SetSrcPort sets the source port and updates the checksum.
func (t TCP) SetSrcPort(p uint16) {
	t.setChecksum(Update16(t.Checksum(), t.SrcPort(), p))
	binary.BigEndian.PutUint16(t[0:], p)
}

// SetDstPort sets the destination port and updates the checksum.
func (t TCP) SetDstPort(p uint16) {
	t.setChecksum(Update16(t.Checksum(), t.DstPort(), p))
	binary.BigEndian.PutUint16(t[2:], p)
}

// UpdateAddr updates the checksum for a pseudo-header address that changed
// from old to new (call it with the IP header's SetSrc/SetDst).
func (t TCP) UpdateAddr(old, new netip.Addr) { t.setChecksum(UpdateAddr(t.Checksum(), old, new)) }

// Verify reports whether the checksum is right for the given addresses; t
// must be the whole segment.
func (t TCP) Verify(src, dst netip.Addr) bool {
	return Sum(t, PseudoHeaderSum(ProtoTCP, src, dst, len(t))) == 0xffff
}

// FillChecksum computes the checksum from scratch; t must be the whole
// segment.
func (t TCP) FillChecksum(src, dst netip.Addr) {
	t.setChecksum(0)
	t.setChecksum(Checksum(t, PseudoHeaderSum(ProtoTCP, src, dst, len(t))))
}

// UDP is a view of a UDP datagram starting at its header. Accessors need
// IsValid. A zero checksum (IPv4 only) means none and is left alone by the
// Set methods.
type UDP []byte

// IsValid reports whether u holds a header whose length field is at least
// the header and within u.
func (u UDP) IsValid() bool {
	return len(u) >= UDPLen && u.Len() >= UDPLen && int(u.Len()) <= len(u)
}

// SrcPort returns the source port.
func (u UDP) SrcPort() uint16 { return binary.BigEndian.Uint16(u[0:]) }

// DstPort returns the destination port.
func (u UDP) DstPort() uint16 { return binary.BigEndian.Uint16(u[2:]) }

// Len returns the length field (header plus payload).
func (u UDP) Len() uint16 { return binary.BigEndian.Uint16(u[4:]) }

// Checksum returns the checksum field.
func (u UDP) Checksum() uint16 { return binary.BigEndian.Uint16(u[6:]) }

// Payload returns the bytes after the header up to the length field.
func (u UDP) Payload() []byte { return u[UDPLen:u.Len()] }

func (u UDP) update(c uint16) {
	if old := u.Checksum(); old != 0 {
		if c == 0 {
			c = 0xffff // 0 means "no checksum" in UDP
		}
		binary.BigEndian.PutUint16(u[6:], c)
	}
}

// SetSrcPort sets the source port and updates the checksum.
func (u UDP) SetSrcPort(p uint16) {
	u.update(Update16(u.Checksum(), u.SrcPort(), p))
	binary.BigEndian.PutUint16(u[0:], p)
}

// SetDstPort sets the destination port and updates the checksum.
func (u UDP) SetDstPort(p uint16) {
	u.update(Update16(u.Checksum(), u.DstPort(), p))
	binary.BigEndian.PutUint16(u[2:], p)
}

// UpdateAddr updates the checksum for a pseudo-header address change.
func (u UDP) UpdateAddr(old, new netip.Addr) { u.update(UpdateAddr(u.Checksum(), old, new)) }

// Verify reports whether the checksum is right for the given addresses
// (true for an absent IPv4 checksum); u is the datagram up to Len.
func (u UDP) Verify(src, dst netip.Addr) bool {
	if u.Checksum() == 0 && src.Is4() {
		return true
	}
	n := int(u.Len())
	return Sum(u[:n], PseudoHeaderSum(ProtoUDP, src, dst, n)) == 0xffff
}

// FillChecksum computes the checksum from scratch over u[:Len].
func (u UDP) FillChecksum(src, dst netip.Addr) {
	binary.BigEndian.PutUint16(u[6:], 0)
	n := int(u.Len())
	c := Checksum(u[:n], PseudoHeaderSum(ProtoUDP, src, dst, n))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], c)
}

// ICMP message types with an echo identifier and sequence number.
const (
	ICMPv4EchoReply   uint8 = 0
	ICMPv4EchoRequest uint8 = 8
	ICMPv6EchoRequest uint8 = 128
	ICMPv6EchoReply   uint8 = 129
)

// ICMPv4 is a view of an ICMP message. Accessors need IsValid.
type ICMPv4 []byte

// IsValid reports whether m holds the 8-byte ICMP header.
func (m ICMPv4) IsValid() bool { return len(m) >= ICMPLen }

// Type returns the message type.
func (m ICMPv4) Type() uint8 { return m[0] }

// Code returns the message code.
func (m ICMPv4) Code() uint8 { return m[1] }

// Checksum returns the checksum field.
func (m ICMPv4) Checksum() uint16 { return binary.BigEndian.Uint16(m[2:]) }

// IsEcho reports whether m is an echo request or reply.
func (m ICMPv4) IsEcho() bool { return m[0] == ICMPv4EchoRequest || m[0] == ICMPv4EchoReply }

// EchoID returns the echo identifier (meaningful when IsEcho).
func (m ICMPv4) EchoID() uint16 { return binary.BigEndian.Uint16(m[4:]) }

// EchoSeq returns the echo sequence number (meaningful when IsEcho).
func (m ICMPv4) EchoSeq() uint16 { return binary.BigEndian.Uint16(m[6:]) }

// SetEchoID sets the echo identifier and updates the checksum.
func (m ICMPv4) SetEchoID(id uint16) {
	binary.BigEndian.PutUint16(m[2:], Update16(m.Checksum(), m.EchoID(), id))
	binary.BigEndian.PutUint16(m[4:], id)
}

// Verify reports whether the checksum over m (the whole message) is right.
func (m ICMPv4) Verify() bool { return Sum(m, 0) == 0xffff }

// FillChecksum computes the checksum over m from scratch.
func (m ICMPv4) FillChecksum() {
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint16(m[2:], Checksum(m, 0))
}

// ICMPv6 is a view of an ICMPv6 message. Accessors need IsValid.
type ICMPv6 []byte

// IsValid reports whether m holds the 8-byte ICMPv6 header.
func (m ICMPv6) IsValid() bool { return len(m) >= ICMPLen }

// Type returns the message type.
func (m ICMPv6) Type() uint8 { return m[0] }

// Code returns the message code.
func (m ICMPv6) Code() uint8 { return m[1] }

// Checksum returns the checksum field.
func (m ICMPv6) Checksum() uint16 { return binary.BigEndian.Uint16(m[2:]) }

// IsEcho reports whether m is an echo request or reply.
func (m ICMPv6) IsEcho() bool { return m[0] == ICMPv6EchoRequest || m[0] == ICMPv6EchoReply }

// EchoID returns the echo identifier (meaningful when IsEcho).
func (m ICMPv6) EchoID() uint16 { return binary.BigEndian.Uint16(m[4:]) }

// EchoSeq returns the echo sequence number (meaningful when IsEcho).
func (m ICMPv6) EchoSeq() uint16 { return binary.BigEndian.Uint16(m[6:]) }

// SetEchoID sets the echo identifier and updates the checksum.
func (m ICMPv6) SetEchoID(id uint16) {
	binary.BigEndian.PutUint16(m[2:], Update16(m.Checksum(), m.EchoID(), id))
	binary.BigEndian.PutUint16(m[4:], id)
}

// UpdateAddr updates the checksum for a pseudo-header address change.
func (m ICMPv6) UpdateAddr(old, new netip.Addr) {
	binary.BigEndian.PutUint16(m[2:], UpdateAddr(m.Checksum(), old, new))
}

// Verify reports whether the checksum over m (the whole message) is right.
func (m ICMPv6) Verify(src, dst netip.Addr) bool {
	return Sum(m, PseudoHeaderSum(ProtoICMPv6, src, dst, len(m))) == 0xffff
}

// FillChecksum computes the checksum over m from scratch.
func (m ICMPv6) FillChecksum(src, dst netip.Addr) {
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint16(m[2:], Checksum(m, PseudoHeaderSum(ProtoICMPv6, src, dst, len(m))))
}
