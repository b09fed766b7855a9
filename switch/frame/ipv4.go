package frame

import (
	"encoding/binary"
	"net/netip"
)

// IPv4MinLen is the size of an IPv4 header without options.
const IPv4MinLen = 20

// IP protocol numbers this package knows.
const (
	ProtoHopByHop uint8 = 0
	ProtoICMPv4   uint8 = 1
	ProtoTCP      uint8 = 6
	ProtoUDP      uint8 = 17
	ProtoRouting  uint8 = 43
	ProtoFragment uint8 = 44
	ProtoESP      uint8 = 50
	ProtoAH       uint8 = 51
	ProtoICMPv6   uint8 = 58
	ProtoNoNext   uint8 = 59
	ProtoDstOpts  uint8 = 60
)

// IPv4 is a view of an IPv4 packet starting at its header. Accessors need
// IsValid. The Set methods keep the header checksum right by RFC 1624
// incremental update.
type IPv4 []byte

// IsValid reports whether b holds a version-4 header whose IHL (options
// included) and total length are consistent and within b. b may extend
// past the total length (Ethernet padding).
func (b IPv4) IsValid() bool {
	if len(b) < IPv4MinLen || b[0]>>4 != 4 {
		return false
	}
	hl := b.HeaderLen()
	tl := int(b.TotalLen())
	return hl >= IPv4MinLen && hl <= tl && tl <= len(b)
}

// HeaderLen returns the header length in bytes (IHL*4), options included.
func (b IPv4) HeaderLen() int { return int(b[0]&0xf) * 4 }

// TOS returns the DSCP/ECN byte.
func (b IPv4) TOS() uint8 { return b[1] }

// TotalLen returns the total length field: header plus payload.
func (b IPv4) TotalLen() uint16 { return binary.BigEndian.Uint16(b[2:]) }

// ID returns the identification field.
func (b IPv4) ID() uint16 { return binary.BigEndian.Uint16(b[4:]) }

// DF reports whether the don't-fragment flag is set.
func (b IPv4) DF() bool { return b[6]&0x40 != 0 }

// MF reports whether the more-fragments flag is set.
func (b IPv4) MF() bool { return b[6]&0x20 != 0 }

// FragOffset returns the fragment offset in bytes.
func (b IPv4) FragOffset() uint16 { return binary.BigEndian.Uint16(b[6:]) & 0x1fff * 8 }

// IsFragment reports whether b is a fragment (MF set or a non-zero offset).
func (b IPv4) IsFragment() bool { return binary.BigEndian.Uint16(b[6:])&0x3fff != 0 }

// TTL returns the time to live.
func (b IPv4) TTL() uint8 { return b[8] }

// Protocol returns the payload protocol.
func (b IPv4) Protocol() uint8 { return b[9] }

// Checksum returns the header checksum field.
func (b IPv4) Checksum() uint16 { return binary.BigEndian.Uint16(b[10:]) }

// Src returns the source address.
func (b IPv4) Src() netip.Addr { return netip.AddrFrom4([4]byte(b[12:16])) }

// Dst returns the destination address.
func (b IPv4) Dst() netip.Addr { return netip.AddrFrom4([4]byte(b[16:20])) }

// Options returns the options bytes (empty without options).
func (b IPv4) Options() []byte { return b[IPv4MinLen:b.HeaderLen()] }

// Payload returns the bytes after the header up to the total length.
func (b IPv4) Payload() []byte { return b[b.HeaderLen():b.TotalLen()] }

// VerifyChecksum reports whether the header checksum is correct.
func (b IPv4) VerifyChecksum() bool { return Sum(b[:b.HeaderLen()], 0) == 0xffff }

// FillChecksum computes the header checksum from scratch and stores it.
func (b IPv4) FillChecksum() {
	b[10], b[11] = 0, 0
	binary.BigEndian.PutUint16(b[10:], Checksum(b[:b.HeaderLen()], 0))
}

func (b IPv4) setChecksum(c uint16) { binary.BigEndian.PutUint16(b[10:], c) }

// SetSrc sets the source address (an IPv4 address) and updates the header
// checksum. A transport checksum covering the pseudo-header needs its own
// update (TCP.UpdateAddr, UDP.UpdateAddr).
func (b IPv4) SetSrc(a netip.Addr) {
	b.setChecksum(UpdateAddr(b.Checksum(), b.Src(), a))
	v := a.As4()
	copy(b[12:16], v[:])
}

// SetDst sets the destination address and updates the header checksum.
func (b IPv4) SetDst(a netip.Addr) {
	b.setChecksum(UpdateAddr(b.Checksum(), b.Dst(), a))
	v := a.As4()
	copy(b[16:20], v[:])
}

// SetTTL sets the time to live and updates the header checksum.
func (b IPv4) SetTTL(ttl uint8) {
	old := binary.BigEndian.Uint16(b[8:])
	b[8] = ttl
	b.setChecksum(Update16(b.Checksum(), old, binary.BigEndian.Uint16(b[8:])))
}

// DecTTL decrements the time to live (updating the checksum) and returns
// the new value. A TTL of 0 stays 0.
func (b IPv4) DecTTL() uint8 {
	if t := b.TTL(); t > 0 {
		b.SetTTL(t - 1)
	}
	return b.TTL()
}

// SetTotalLen sets the total length and updates the header checksum.
func (b IPv4) SetTotalLen(n uint16) {
	b.setChecksum(Update16(b.Checksum(), b.TotalLen(), n))
	binary.BigEndian.PutUint16(b[2:], n)
}

// SetID sets the identification field and updates the header checksum.
func (b IPv4) SetID(id uint16) {
	b.setChecksum(Update16(b.Checksum(), b.ID(), id))
	binary.BigEndian.PutUint16(b[4:], id)
}
