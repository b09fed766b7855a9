package frame

import (
	"encoding/binary"
	"errors"
)

// Errors from Segment. They are fixed values: returning one allocates
// nothing.
var (
	ErrSegmentType    = errors.New("frame: segment: unsupported GSO type")
	ErrSegmentHeader  = errors.New("frame: segment: headers do not match the GSO type")
	ErrSegmentBuffers = errors.New("frame: segment: too few or too small output buffers")
)

// FinishChecksum completes a partial (VNetNeedsCsum) transport checksum in
// software, as a device without checksum offload would: the field at
// CsumStart+CsumOffset holds the pseudo-header sum, and the checksum runs
// from CsumStart to the end of the IP packet (the end of data when data
// holds no parsable IP header). It clears VNetNeedsCsum and returns true; a
// frame without the flag is left alone. It returns false, changing nothing,
// when the offsets do not fit in data.
func FinishChecksum(data []byte, h *VNetHdr) bool {
	if h.Flags&VNetNeedsCsum == 0 {
		return true
	}
	start, field := int(h.CsumStart), int(h.CsumStart)+int(h.CsumOffset)
	end := ipEnd(data)
	if field+2 > end {
		return false
	}
	c := Checksum(data[start:end], 0)
	if c == 0 {
		c = 0xffff // as the kernel does: 0 would mean "none" to UDP
	}
	binary.BigEndian.PutUint16(data[field:], c)
	h.Flags &^= VNetNeedsCsum
	return true
}

// ipEnd returns the end of the IP packet in the Ethernet frame data, or
// len(data).
func ipEnd(data []byte) int {
	_, _, _, off := Ethernet(data).Untag()
	if off < 0 || off >= len(data) {
		return len(data)
	}
	switch data[off] >> 4 {
	case 4:
		if ip := IPv4(data[off:]); ip.IsValid() {
			return off + int(ip.TotalLen())
		}
	case 6:
		if ip := IPv6(data[off:]); ip.IsValid() {
			return off + IPv6Len + int(ip.PayloadLen())
		}
	}
	return len(data)
}

// Segment performs GSO in software: it splits the super-frame data (an
// Ethernet frame, without the virtio-net header) described by h into
// frames of at most h.GSOSize payload bytes each, for an egress that takes
// no offloads. Types GSOTCPv4, GSOTCPv6 (with or without GSOECN) and
// GSOUDPL4 are supported.
//
// Segment i is written into out[i][:cap(out[i])] and out[i] is resliced to
// its length; the caller provides the buffers, so nothing is allocated.
// Every segment has complete IP and transport checksums and needs no
// virtio-net header. TCP segments get consecutive sequence numbers, FIN and
// PSH only on the last, CWR only on the first; IPv4 IDs count up from the
// super-frame's. data is not modified.
//
// A frame that is not GSO (h.GSO() false) is not Segment's business:
// finish its checksum with FinishChecksum instead.
func Segment(data []byte, h *VNetHdr, out [][]byte) (n int, err error) {
	var isTCP bool
	var wantV uint8
	switch h.GSOType &^ GSOECN {
	case GSOTCPv4:
		isTCP, wantV = true, 4
	case GSOTCPv6:
		isTCP, wantV = true, 6
	case GSOUDPL4:
	default:
		return 0, ErrSegmentType
	}
	if h.GSOSize == 0 {
		return 0, ErrSegmentHeader
	}
	var p Parsed
	p.Decode(data)
	if p.Reason != OK || p.Frag != NotFragment ||
		(wantV != 0 && p.IPVersion != wantV) || (wantV == 0 && p.IPVersion == 0) ||
		(isTCP && p.Proto != ProtoTCP) || (!isTCP && p.Proto != ProtoUDP) {
		return 0, ErrSegmentHeader
	}
	hdrLen := p.PayloadOff
	payload := data[hdrLen:p.L3End]
	mss := int(h.GSOSize)
	n = (len(payload) + mss - 1) / mss
	if n == 0 {
		n = 1 // a header-only frame still goes out, once
	}
	if n > len(out) {
		return 0, ErrSegmentBuffers
	}
	for i := range n {
		if cap(out[i]) < hdrLen+min(mss, len(payload)) {
			return 0, ErrSegmentBuffers
		}
	}

	var seq uint32
	var flags uint8
	var id uint16
	if isTCP {
		t := TCP(data[p.L4Off:])
		seq, flags = t.Seq(), t.Flags()
	}
	if p.IPVersion == 4 {
		id = IPv4(data[p.L3Off:]).ID()
	}
	for i := range n {
		chunk := payload[min(i*mss, len(payload)):min((i+1)*mss, len(payload))]
		s := out[i][:hdrLen+len(chunk)]
		copy(s, data[:hdrLen])
		copy(s[hdrLen:], chunk)
		out[i] = s

		l3 := s[p.L3Off:]
		if p.IPVersion == 4 {
			ip := IPv4(l3)
			binary.BigEndian.PutUint16(ip[2:], uint16(len(l3)))
			binary.BigEndian.PutUint16(ip[4:], id+uint16(i))
			ip.FillChecksum()
		} else {
			binary.BigEndian.PutUint16(l3[4:], uint16(len(l3)-IPv6Len))
		}
		src, dst := p.SrcIP, p.DstIP
		l4 := s[p.L4Off:]
		if isTCP {
			t := TCP(l4)
			binary.BigEndian.PutUint32(t[4:], seq+uint32(i*mss))
			f := flags
			if i != n-1 {
				f &^= TCPFin | TCPPsh
			}
			if i != 0 {
				f &^= TCPCwr
			}
			t[13] = f
			t.FillChecksum(src, dst)
		} else {
			u := UDP(l4)
			binary.BigEndian.PutUint16(u[4:], uint16(len(l4)))
			u.FillChecksum(src, dst)
		}
	}
	return n, nil
}
