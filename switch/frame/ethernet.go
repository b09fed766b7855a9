package frame

import "encoding/binary"

// MAC is an Ethernet hardware address. Unlike net.HardwareAddr it is a
// value: comparable, usable as a map key, and free to copy.
type MAC [6]byte

// Broadcast is ff:ff:ff:ff:ff:ff.
var Broadcast = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

const hexDigits = "0123456789abcdef"

// String formats m as six lower-case colon-separated hex bytes.
func (m MAC) String() string {
	var b [17]byte
	for i, x := range m {
		if i > 0 {
			b[3*i-1] = ':'
		}
		b[3*i] = hexDigits[x>>4]
		b[3*i+1] = hexDigits[x&0xf]
	}
	return string(b[:])
}

// IsBroadcast reports whether m is ff:ff:ff:ff:ff:ff.
func (m MAC) IsBroadcast() bool { return m == Broadcast }

// IsMulticast reports whether m is a group address (broadcast included).
func (m MAC) IsMulticast() bool { return m[0]&1 != 0 }

// IsZero reports whether m is 00:00:00:00:00:00.
func (m MAC) IsZero() bool { return m == MAC{} }

// EtherTypes this package knows.
const (
	EtherTypeIPv4 uint16 = 0x0800
	EtherTypeARP  uint16 = 0x0806
	EtherTypeVLAN uint16 = 0x8100 // 802.1Q customer tag
	EtherTypeQinQ uint16 = 0x88a8 // 802.1ad service tag
	EtherTypeIPv6 uint16 = 0x86dd
)

// EthernetLen is the size of an untagged Ethernet II header; VLANTagLen is
// what each 802.1Q/802.1ad tag adds.
const (
	EthernetLen = 14
	VLANTagLen  = 4
	maxVLANTags = 2
)

// Ethernet is a view of an Ethernet II frame, starting at the destination
// address. Accessors need IsValid.
type Ethernet []byte

// IsValid reports whether e holds an untagged Ethernet header.
func (e Ethernet) IsValid() bool { return len(e) >= EthernetLen }

// Dst returns the destination address.
func (e Ethernet) Dst() MAC { return MAC(e[0:6]) }

// Src returns the source address.
func (e Ethernet) Src() MAC { return MAC(e[6:12]) }

// SetDst sets the destination address.
func (e Ethernet) SetDst(m MAC) { copy(e[0:6], m[:]) }

// SetSrc sets the source address.
func (e Ethernet) SetSrc(m MAC) { copy(e[6:12], m[:]) }

// EtherType returns the outer EtherType (a tag type for a tagged frame).
func (e Ethernet) EtherType() uint16 { return binary.BigEndian.Uint16(e[12:]) }

// Untag reads past up to two VLAN tags (0x8100 or 0x88a8, in any order) and
// returns the inner EtherType, the outer tag's VLAN ID (0 if untagged), the
// number of tags and the offset of the L3 header. off is -1 when a tag is
// truncated or there are more than two; Untag never reads beyond e.
func (e Ethernet) Untag() (etherType, vlan uint16, tags, off int) {
	if len(e) < EthernetLen {
		return 0, 0, 0, -1
	}
	off = 12
	for {
		et := binary.BigEndian.Uint16(e[off:])
		if et != EtherTypeVLAN && et != EtherTypeQinQ {
			return et, vlan, tags, off + 2
		}
		if tags == maxVLANTags || len(e) < off+VLANTagLen+2 {
			return 0, 0, 0, -1
		}
		if tags == 0 {
			vlan = binary.BigEndian.Uint16(e[off+2:]) & 0x0fff
		}
		tags++
		off += VLANTagLen
	}
}
