package bench

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
)

const (
	epIfName   = "eth0" // the endpoints' interface
	bridgeName = "sybr0"
)

// Frame sizes on the wire (with the 4-byte FCS, which the generator does
// not write) for the pps and ndr tests, and the smallest and largest frame
// the generator builds (without FCS).
const (
	minFrame = 60
	maxFrame = 1514
	fcsLen   = 4
)

// wireOverhead is what a frame costs on an Ethernet wire besides its own
// bytes: preamble and start delimiter (8) and the inter-frame gap (12).
const wireOverhead = 20

// testFrameSize is the frame size (with FCS) of the pps and ndr tests.
func testFrameSize(test string) int {
	switch test {
	case TestPPS1518, TestNDR1518:
		return 1518
	}
	return 64
}

// udpFrame builds an Ethernet/IPv4/UDP frame of size bytes (minFrame to
// maxFrame, no FCS) from src to dst, with a valid IPv4 header checksum and
// no UDP checksum (zero: allowed over IPv4).
func udpFrame(srcMAC, dstMAC net.HardwareAddr, src, dst netip.AddrPort, size int) ([]byte, error) {
	const ethLen, ipLen, udpLen = 14, 20, 8
	if size < minFrame || size > maxFrame {
		return nil, fmt.Errorf("frame size %d out of range %d-%d", size, minFrame, maxFrame)
	}
	if len(srcMAC) != 6 || len(dstMAC) != 6 {
		return nil, fmt.Errorf("MACs %q and %q must be 6-byte Ethernet addresses", srcMAC, dstMAC)
	}
	if !src.Addr().Is4() || !dst.Addr().Is4() {
		return nil, fmt.Errorf("addresses %s and %s must be IPv4", src, dst)
	}
	b := make([]byte, size)
	copy(b[0:6], dstMAC)
	copy(b[6:12], srcMAC)
	binary.BigEndian.PutUint16(b[12:14], 0x0800)

	ip := b[ethLen : ethLen+ipLen]
	ip[0] = 0x45 // version 4, 5 words
	binary.BigEndian.PutUint16(ip[2:4], uint16(size-ethLen))
	binary.BigEndian.PutUint16(ip[6:8], 0x4000) // don't fragment
	ip[8] = 64                                  // TTL
	ip[9] = 17                                  // UDP
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	binary.BigEndian.PutUint16(ip[10:12], ipChecksum(ip))

	udp := b[ethLen+ipLen:]
	binary.BigEndian.PutUint16(udp[0:2], src.Port())
	binary.BigEndian.PutUint16(udp[2:4], dst.Port())
	binary.BigEndian.PutUint16(udp[4:6], uint16(len(udp)))
	return b, nil
}

// ipChecksum is the Internet checksum of an IPv4 header whose checksum
// field is zero.
func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
