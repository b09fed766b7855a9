package frame

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// Internet checksum (RFC 1071) helpers. A "sum" is the folded 16-bit ones'
// complement sum of big-endian words, not inverted; the checksum field of a
// header holds ^sum. Sums compose: Sum(b, Sum(a, 0)) is the sum of a then b
// when len(a) is even.

// Sum returns the ones' complement sum of b added to initial. An odd final
// byte is padded with a zero byte, as RFC 1071 prescribes.
func Sum(b []byte, initial uint16) uint16 {
	// The sum of little-endian words is the byte swap of the sum of
	// big-endian words (RFC 1071 section 2(B)), so load 8 bytes at a time
	// in whatever order is cheapest and swap once at the end.
	var acc, carry uint64
	acc = uint64(bits.ReverseBytes16(initial))
	for len(b) >= 32 {
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b), 0)
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b[8:]), carry)
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b[16:]), carry)
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b[24:]), carry)
		acc += carry
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, carry = bits.Add64(acc, binary.LittleEndian.Uint64(b), 0)
		acc += carry
		b = b[8:]
	}
	if len(b) >= 4 {
		acc, carry = bits.Add64(acc, uint64(binary.LittleEndian.Uint32(b)), 0)
		acc += carry
		b = b[4:]
	}
	if len(b) >= 2 {
		acc, carry = bits.Add64(acc, uint64(binary.LittleEndian.Uint16(b)), 0)
		acc += carry
		b = b[2:]
	}
	if len(b) == 1 {
		acc, carry = bits.Add64(acc, uint64(b[0]), 0)
		acc += carry
	}
	return bits.ReverseBytes16(fold64(acc))
}

func fold64(acc uint64) uint16 {
	s := acc>>32 + acc&0xffffffff // at most 33 bits
	s = s>>16 + s&0xffff          // at most 17 bits... twice to be sure
	s = s>>16 + s&0xffff
	s = s>>16 + s&0xffff
	return uint16(s)
}

// add16 is the ones' complement addition of two 16-bit values.
func add16(a, b uint16) uint16 {
	s := uint32(a) + uint32(b)
	return uint16(s>>16 + s&0xffff)
}

// Checksum returns the Internet checksum of b with initial already summed
// in: the value to store in a checksum field.
func Checksum(b []byte, initial uint16) uint16 { return ^Sum(b, initial) }

// PseudoHeaderSum returns the sum of the TCP/UDP/ICMPv6 pseudo-header for
// src and dst (both IPv4 or both IPv6; IPv4-mapped addresses count as
// IPv4), protocol proto and transport length n.
func PseudoHeaderSum(proto uint8, src, dst netip.Addr, n int) uint16 {
	var s uint16
	if src.Is4() || src.Is4In6() {
		a, b := src.As4(), dst.As4()
		s = Sum(a[:], 0)
		s = Sum(b[:], s)
	} else {
		a, b := src.As16(), dst.As16()
		s = Sum(a[:], 0)
		s = Sum(b[:], s)
	}
	s = add16(s, uint16(proto))
	s = add16(s, uint16(n>>16))
	return add16(s, uint16(n))
}

// Update16 returns checksum field value csum after a 16-bit word of the
// covered data changed from old to new (RFC 1624 eqn. 3:
// HC' = ~(~HC + ~m + m')).
func Update16(csum, old, new uint16) uint16 {
	return ^add16(add16(^csum, ^old), new)
}

// Update32 is Update16 for an aligned 32-bit field (two words).
func Update32(csum uint16, old, new uint32) uint16 {
	s := add16(^csum, ^uint16(old>>16))
	s = add16(s, ^uint16(old))
	s = add16(s, uint16(new>>16))
	return ^add16(s, uint16(new))
}

// UpdateAddr is Update16 for an address field (4 or 16 bytes) that changed
// from old to new; both must be the same family. It covers both the IPv4
// header checksum and a transport checksum whose pseudo-header holds the
// address.
func UpdateAddr(csum uint16, old, new netip.Addr) uint16 {
	if old.Is4() {
		a, b := old.As4(), new.As4()
		return Update32(csum, binary.BigEndian.Uint32(a[:]), binary.BigEndian.Uint32(b[:]))
	}
	a, b := old.As16(), new.As16()
	s := ^csum
	for i := 0; i < 16; i += 2 {
		s = add16(s, ^binary.BigEndian.Uint16(a[i:]))
		s = add16(s, binary.BigEndian.Uint16(b[i:]))
	}
	return ^s
}
