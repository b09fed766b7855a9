package frame

import "encoding/binary"

// VNetHdrLen is the size of the virtio-net header (struct virtio_net_hdr,
// without num_buffers) that AF_PACKET with PACKET_VNET_HDR and a TAP with
// IFF_VNET_HDR put before every frame.
const VNetHdrLen = 10

// Virtio-net header flags.
const (
	// VNetNeedsCsum: the transport checksum is partial. The checksum field
	// at CsumStart+CsumOffset holds the pseudo-header sum only; whoever
	// puts the frame on a wire without offloads must finish it.
	VNetNeedsCsum uint8 = 1
	// VNetDataValid: the checksum has been verified already.
	VNetDataValid uint8 = 2
)

// Virtio-net GSO types.
const (
	GSONone  uint8 = 0
	GSOTCPv4 uint8 = 1
	GSOUDP   uint8 = 3
	GSOTCPv6 uint8 = 4
	GSOUDPL4 uint8 = 5
	GSOECN   uint8 = 0x80
)

// VNetHdr is the decoded virtio-net header: the offload metadata that
// travels with a frame between the kernel and us. The zero value describes
// a complete frame with valid checksums and no segmentation pending.
type VNetHdr struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16
	GSOSize    uint16
	CsumStart  uint16
	CsumOffset uint16
}

// IsZero reports whether h carries no offload work.
func (h VNetHdr) IsZero() bool { return h == VNetHdr{} }

// GSO reports whether the frame is a super-frame still to be segmented.
func (h VNetHdr) GSO() bool { return h.GSOType&^GSOECN != GSONone }

// Decode fills h from the first VNetHdrLen bytes of b. The header is in
// host byte order (legacy virtio, as the kernel uses it for packet sockets
// and TAP devices without TUNSETVNETLE). b must hold VNetHdrLen bytes.
func (h *VNetHdr) Decode(b []byte) {
	_ = b[VNetHdrLen-1]
	h.Flags = b[0]
	h.GSOType = b[1]
	h.HdrLen = binary.NativeEndian.Uint16(b[2:])
	h.GSOSize = binary.NativeEndian.Uint16(b[4:])
	h.CsumStart = binary.NativeEndian.Uint16(b[6:])
	h.CsumOffset = binary.NativeEndian.Uint16(b[8:])
}

// Encode writes h into the first VNetHdrLen bytes of b.
func (h *VNetHdr) Encode(b []byte) {
	_ = b[VNetHdrLen-1]
	b[0] = h.Flags
	b[1] = h.GSOType
	binary.NativeEndian.PutUint16(b[2:], h.HdrLen)
	binary.NativeEndian.PutUint16(b[4:], h.GSOSize)
	binary.NativeEndian.PutUint16(b[6:], h.CsumStart)
	binary.NativeEndian.PutUint16(b[8:], h.CsumOffset)
}
