package frame

import (
	"encoding/binary"
	"net/netip"
)

// ARPLen is the size of an ARP packet for Ethernet and IPv4.
const ARPLen = 28

// ARP operations.
const (
	ARPRequest uint16 = 1
	ARPReply   uint16 = 2
)

// ARP is a view of an ARP packet (RFC 826). Only Ethernet/IPv4 ARP is valid.
type ARP []byte

// IsValid reports whether a holds a complete ARP packet for Ethernet
// hardware addresses and IPv4 protocol addresses.
func (a ARP) IsValid() bool {
	return len(a) >= ARPLen &&
		binary.BigEndian.Uint16(a[0:]) == 1 && // hardware type Ethernet
		binary.BigEndian.Uint16(a[2:]) == EtherTypeIPv4 &&
		a[4] == 6 && a[5] == 4
}

// Op returns the operation (ARPRequest, ARPReply).
func (a ARP) Op() uint16 { return binary.BigEndian.Uint16(a[6:]) }

// SenderMAC returns the sender hardware address.
func (a ARP) SenderMAC() MAC { return MAC(a[8:14]) }

// SenderIP returns the sender protocol address.
func (a ARP) SenderIP() netip.Addr { return netip.AddrFrom4([4]byte(a[14:18])) }

// TargetMAC returns the target hardware address.
func (a ARP) TargetMAC() MAC { return MAC(a[18:24]) }

// TargetIP returns the target protocol address.
func (a ARP) TargetIP() netip.Addr { return netip.AddrFrom4([4]byte(a[24:28])) }

// SetOp sets the operation.
func (a ARP) SetOp(op uint16) { binary.BigEndian.PutUint16(a[6:], op) }

// SetSender sets the sender hardware and protocol (IPv4) addresses.
func (a ARP) SetSender(m MAC, ip netip.Addr) {
	copy(a[8:14], m[:])
	b := ip.As4()
	copy(a[14:18], b[:])
}

// SetTarget sets the target hardware and protocol (IPv4) addresses.
func (a ARP) SetTarget(m MAC, ip netip.Addr) {
	copy(a[18:24], m[:])
	b := ip.As4()
	copy(a[24:28], b[:])
}
