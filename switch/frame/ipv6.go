package frame

import (
	"encoding/binary"
	"net/netip"
)

// IPv6Len is the size of the fixed IPv6 header.
const IPv6Len = 40

// maxIPv6Ext bounds the extension headers Transport walks.
const maxIPv6Ext = 8

// IPv6 is a view of an IPv6 packet starting at its fixed header. Accessors
// need IsValid.
type IPv6 []byte

// IsValid reports whether b holds a version-6 header and the payload its
// payload length announces. b may extend past it (Ethernet padding).
// Jumbograms (payload length 0) are not valid.
func (b IPv6) IsValid() bool {
	return len(b) >= IPv6Len && b[0]>>4 == 6 && b.PayloadLen() != 0 &&
		IPv6Len+int(b.PayloadLen()) <= len(b)
}

// TrafficClass returns the traffic class (DSCP/ECN).
func (b IPv6) TrafficClass() uint8 { return uint8(binary.BigEndian.Uint16(b[0:]) >> 4) }

// FlowLabel returns the 20-bit flow label.
func (b IPv6) FlowLabel() uint32 { return binary.BigEndian.Uint32(b[0:]) & 0xfffff }

// PayloadLen returns the payload length: everything after the fixed header,
// extension headers included.
func (b IPv6) PayloadLen() uint16 { return binary.BigEndian.Uint16(b[4:]) }

// NextHeader returns the type of the header after the fixed header.
func (b IPv6) NextHeader() uint8 { return b[6] }

// HopLimit returns the hop limit.
func (b IPv6) HopLimit() uint8 { return b[7] }

// SetHopLimit sets the hop limit (IPv6 has no header checksum).
func (b IPv6) SetHopLimit(h uint8) { b[7] = h }

// Src returns the source address.
func (b IPv6) Src() netip.Addr { return netip.AddrFrom16([16]byte(b[8:24])) }

// Dst returns the destination address.
func (b IPv6) Dst() netip.Addr { return netip.AddrFrom16([16]byte(b[24:40])) }

// SetSrc sets the source address (an IPv6 address). A transport checksum
// covering it needs TCP.UpdateAddr, UDP.UpdateAddr or ICMPv6.UpdateAddr.
func (b IPv6) SetSrc(a netip.Addr) { v := a.As16(); copy(b[8:24], v[:]) }

// SetDst sets the destination address.
func (b IPv6) SetDst(a netip.Addr) { v := a.As16(); copy(b[24:40], v[:]) }

// Payload returns the bytes after the fixed header up to the payload
// length.
func (b IPv6) Payload() []byte { return b[IPv6Len : IPv6Len+int(b.PayloadLen())] }

// IPv6Transport is where the extension header chain of an IPv6 packet ends.
type IPv6Transport struct {
	// Proto is the upper-layer protocol: TCP, UDP, ICMPv6, ESP, NoNext, or
	// for a non-first fragment the protocol of the fragmented payload.
	Proto uint8
	// Off is the offset of the upper-layer header from the start of the
	// IPv6 header (of the fragment data for a non-first fragment).
	Off int
	// Fragment is set when a fragment header was found; FragOffset (bytes),
	// More and FragID are its fields.
	Fragment   bool
	More       bool
	FragOffset uint16
	FragID     uint32
}

// Transport walks the extension headers (hop-by-hop, routing, fragment,
// destination options, AH; at most 8) within the payload length. ok is
// false when a header is truncated or the chain is too long. b must be
// valid.
func (b IPv6) Transport() (t IPv6Transport, ok bool) {
	end := IPv6Len + int(b.PayloadLen())
	nh, off := b.NextHeader(), IPv6Len
	for range maxIPv6Ext {
		var n int
		switch nh {
		case ProtoHopByHop, ProtoRouting, ProtoDstOpts:
			if off+8 > end {
				return t, false
			}
			n = (int(b[off+1]) + 1) * 8
		case ProtoAH:
			if off+8 > end {
				return t, false
			}
			n = (int(b[off+1]) + 2) * 4
		case ProtoFragment:
			if off+8 > end {
				return t, false
			}
			fo := binary.BigEndian.Uint16(b[off+2:])
			t.Fragment = true
			t.FragOffset = fo &^ 7
			t.More = fo&1 != 0
			t.FragID = binary.BigEndian.Uint32(b[off+4:])
			if t.FragOffset != 0 {
				t.Proto, t.Off = b[off], off+8
				return t, true
			}
			n = 8
		default:
			t.Proto, t.Off = nh, off
			return t, true
		}
		if off+n > end {
			return t, false
		}
		nh = b[off]
		off += n
	}
	return t, false
}
