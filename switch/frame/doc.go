// Package frame holds header views over raw frames (Ethernet, 802.1Q, ARP,
// IPv4, IPv6, TCP, UDP, ICMPv4, ICMPv6), checksums, the virtio-net offload
// header, and Parsed, the in-place L2-L4 summary that forwarding, NAT and
// capture filters share. Nothing here allocates on the packet path.
package frame
