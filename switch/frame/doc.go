// Package frame holds header views over raw frames (Ethernet, 802.1Q, ARP,
// IPv4, IPv6, TCP, UDP, ICMPv4, ICMPv6), checksums, the virtio-net offload
// header, and Parsed, the in-place L2-L4 summary that forwarding, NAT and
// capture filters share. Nothing here allocates on the packet path.
//
// # Views
//
// A header is a named byte slice (Ethernet, ARP, IPv4, IPv6, TCP, UDP,
// ICMPv4, ICMPv6) whose accessors read it in place. Check IsValid before
// using the accessors; they do not bound-check beyond what IsValid promises.
// Addresses come back as MAC (a [6]byte value) and netip.Addr, built without
// allocating.
//
// # Parsed
//
// Parsed.Decode reads an Ethernet frame once: VLAN tags (up to two,
// 0x8100/0x88a8), ARP, IPv4 (options, fragments), IPv6 (extension headers up
// to the transport), TCP, UDP, ICMP. It accepts any bytes, never panics and
// never reads out of bounds; Parsed.Reason names the first malformed layer
// and serves as a drop reason. The transport header of a first fragment is
// decoded (it is there); later fragments have no ports.
//
// # Checksums
//
// Sum returns the folded ones' complement sum (not inverted); a checksum
// field holds its complement, Checksum. PseudoHeaderSum covers the TCP, UDP
// and ICMPv6 pseudo-header. Update16, Update32 and UpdateAddr apply RFC 1624
// to a checksum field after a rewrite; the view setters (IPv4.SetSrc,
// TCP.SetDstPort, TCP.UpdateAddr, ...) use them.
//
// A frame flagged VNetNeedsCsum carries in its transport checksum field the
// pseudo-header sum (the "seed"), not a checksum. Rewriting a pseudo-header
// field (address, or a length) of such a frame updates the seed, which is
// not complemented: seed' = ^Update16(^seed, old, new). Ports are not in the
// pseudo-header, so a port rewrite leaves the seed alone.
//
// # Offloads in software
//
// FinishChecksum completes a NEEDS_CSUM checksum and Segment splits a GSO
// super-frame (TCPv4, TCPv6, UDP L4) into caller-provided buffers, for
// egress ports that take no offloads.
//
// # Test data
//
// testdata/pcaps holds real captures made between two network namespaces
// by testdata/pcaps/capture.sh (see its README.md); the tests compare
// Decode with gopacket on every captured frame and seed the fuzz targets
// with them. testdata/fuzz holds corpus entries found by go test -fuzz.
package frame
