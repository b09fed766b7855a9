package frame

import (
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func seedCaptures(f *testing.F) [][]byte {
	var out [][]byte
	for _, c := range captures(f) {
		out = append(out, c.data)
	}
	return out
}

// checkParsed asserts the invariants any Decode result must hold.
func checkParsed(t *testing.T, b []byte, p *Parsed) {
	t.Helper()
	if p.Reason >= numReasons {
		t.Fatalf("Reason %d out of range", p.Reason)
	}
	if p.Reason == ReasonShort || p.Reason == ReasonVLAN {
		if p.L3Off != 0 || p.IPVersion != 0 {
			t.Fatalf("fields set past a failed L2: %+v", p)
		}
		return
	}
	if p.L3Off < EthernetLen || p.L3Off > len(b) || p.VLANTags > 2 {
		t.Fatalf("L3Off %d of %d, tags %d", p.L3Off, len(b), p.VLANTags)
	}
	if p.L3End != 0 && (p.L3End < p.L3Off || p.L3End > len(b)) {
		t.Fatalf("L3End %d outside [%d, %d]", p.L3End, p.L3Off, len(b))
	}
	if p.L4Off != 0 {
		if p.L4Off < p.L3Off || p.L4Off > p.L3End || p.PayloadOff < p.L4Off || p.PayloadOff > p.L3End {
			t.Fatalf("L3 %d-%d L4 %d payload %d", p.L3Off, p.L3End, p.L4Off, p.PayloadOff)
		}
	}
	if p.IPVersion != 0 && p.IPVersion != 4 && p.IPVersion != 6 {
		t.Fatalf("IPVersion %d", p.IPVersion)
	}
	if p.Reason == OK && p.IsIP() && (p.L4Off == 0 || p.L3End == 0) {
		t.Fatalf("ok IP frame without offsets: %+v", p)
	}
}

// FuzzDecode: any bytes decode without panicking, offsets stay in bounds,
// and where gopacket decodes the frame cleanly we agree with it.
func FuzzDecode(f *testing.F) {
	for _, b := range seedCaptures(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Parsed
		p.Decode(b)
		checkParsed(t, b, &p)
		if p.Reason != OK {
			return
		}
		want, clean := fromGopacket(b)
		if !clean || want.L3End != p.L3End {
			// gopacket accepted something we do not (or the other way
			// round) on garbage: only well-formed frames are compared.
			return
		}
		if !comparable(b, &p) {
			return
		}
		if diff := cmp.Diff(want, p, addrCmp); diff != "" {
			t.Errorf("(-gopacket +ours):\n%s", diff)
		}
	})
}

// comparable reports whether b is a frame both decoders read the same way
// by design; elsewhere they differ on purpose (documented in Decode).
func comparable(b []byte, p *Parsed) bool {
	switch {
	case p.EtherType != EtherTypeIPv4 && p.EtherType != EtherTypeIPv6 && p.EtherType != EtherTypeARP:
		return false // gopacket decodes many more EtherTypes
	case p.IPVersion == 6 && p.Proto != ProtoTCP && p.Proto != ProtoUDP && p.Proto != ProtoICMPv6:
		return false // AH, ESP, unknown: gopacket's chain differs
	case p.IPVersion == 4 && p.Proto != ProtoTCP && p.Proto != ProtoUDP && p.Proto != ProtoICMPv4:
		return false
	case p.IPVersion == 6 && hasAtomicFragOrAH(b, p):
		return false
	case p.Frag == FirstFragment:
		return false // gopacket stops at fragments; covered by the capture table
	case p.Proto == ProtoICMPv6 && p.ICMPEchoID == 0 && p.ICMPEchoSeq == 0:
		return false // gopacket's ICMPv6 message layers have their own rules
	}
	return true
}

func hasAtomicFragOrAH(b []byte, p *Parsed) bool {
	ip := IPv6(b[p.L3Off:p.L3End])
	nh, off := ip.NextHeader(), IPv6Len
	for range maxIPv6Ext {
		switch nh {
		case ProtoFragment, ProtoAH:
			return true
		case ProtoHopByHop, ProtoRouting, ProtoDstOpts:
			nh, off = ip[off], off+(int(ip[off+1])+1)*8
		default:
			return false
		}
	}
	return false
}

// FuzzIPv4 exercises the IPv4 view: validity, and setters that keep a
// valid header's checksum right.
func FuzzIPv4(f *testing.F) {
	for _, b := range seedCaptures(f) {
		if len(b) > EthernetLen && Ethernet(b).EtherType() == EtherTypeIPv4 {
			f.Add(b[EthernetLen:], uint32(0xc6120063), uint8(3))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, addr uint32, ttl uint8) {
		ip := IPv4(b)
		if !ip.IsValid() {
			return
		}
		_ = ip.Payload()
		_ = ip.Options()
		if ip.FragOffset()%8 != 0 || ip.IsFragment() != (ip.MF() || ip.FragOffset() != 0) {
			t.Fatal("fragment fields inconsistent")
		}
		ip.FillChecksum()
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], addr)
		ip.SetSrc(netipFrom4(a))
		ip.SetDst(netipFrom4(a))
		ip.SetTTL(ttl)
		ip.DecTTL()
		if !ip.VerifyChecksum() {
			t.Fatal("incremental updates broke the header checksum")
		}
	})
}

// FuzzIPv6 exercises the extension header walk.
func FuzzIPv6(f *testing.F) {
	for _, b := range seedCaptures(f) {
		if len(b) > EthernetLen && Ethernet(b).EtherType() == EtherTypeIPv6 {
			f.Add(b[EthernetLen:])
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ip := IPv6(b)
		if !ip.IsValid() {
			return
		}
		tr, ok := ip.Transport()
		if !ok {
			return
		}
		if tr.Off < IPv6Len || tr.Off > IPv6Len+int(ip.PayloadLen()) {
			t.Fatalf("transport offset %d outside the payload (%d)", tr.Off, ip.PayloadLen())
		}
		if tr.FragOffset%8 != 0 {
			t.Fatalf("fragment offset %d", tr.FragOffset)
		}
	})
}

// FuzzARP: the view never reads past its length once valid.
func FuzzARP(f *testing.F) {
	for _, b := range seedCaptures(f) {
		if len(b) > EthernetLen && Ethernet(b).EtherType() == EtherTypeARP {
			f.Add(b[EthernetLen:])
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a := ARP(b)
		if !a.IsValid() {
			return
		}
		if a.SenderIP().AsSlice()[0] != b[14] || a.TargetMAC() != MAC(b[18:24]) || a.Op() != binary.BigEndian.Uint16(b[6:]) {
			t.Fatal("accessor mismatch")
		}
	})
}

// FuzzChecksum: the fast Sum equals the word-at-a-time reference, and an
// incremental update equals a full recompute.
func FuzzChecksum(f *testing.F) {
	f.Add([]byte{1, 2, 3}, uint16(0), 0, uint16(9))
	for _, b := range seedCaptures(f) {
		f.Add(b, uint16(0x1234), 20, uint16(0xffff))
	}
	f.Fuzz(func(t *testing.T, b []byte, init uint16, at int, v uint16) {
		if got, want := Sum(b, init), refSum(b, init); got != want {
			t.Fatalf("Sum %#x, reference %#x", got, want)
		}
		if len(b) < 2 {
			return
		}
		c := Checksum(b, 0)
		i := (at & 0x7fffffff) % (len(b) / 2) * 2
		old := binary.BigEndian.Uint16(b[i:])
		binary.BigEndian.PutUint16(b[i:], v)
		inc := Update16(c, old, v)
		if Sum(b, inc) != 0xffff && !(inc == 0xffff && Sum(b, 0) == 0xffff) {
			// inc verifies unless the data sums to -0 and the checksum
			// is represented the other way (0xffff vs 0).
			t.Fatalf("Update16 %#x does not verify (full %#x)", inc, Checksum(b, 0))
		}
	})
}

// FuzzSegment: arbitrary frames and headers never panic, never write past
// the buffers, and every produced segment decodes and verifies.
func FuzzSegment(f *testing.F) {
	for _, c := range gsoCases(f) {
		f.Add(c.frame, c.hdr.GSOType, c.hdr.GSOSize)
	}
	out := make([][]byte, 8)
	f.Fuzz(func(t *testing.T, b []byte, typ uint8, size uint16) {
		for i := range out {
			out[i] = make([]byte, 0, 2048)
		}
		h := VNetHdr{GSOType: typ, GSOSize: size}
		n, err := Segment(b, &h, out)
		if err != nil {
			return
		}
		if n < 1 || n > len(out) {
			t.Fatalf("n = %d", n)
		}
		for i, s := range out[:n] {
			var p Parsed
			p.Decode(s)
			if p.Reason != OK || p.L3End != len(s) {
				t.Fatalf("segment %d: %v", i, p.Reason)
			}
			l4 := s[p.L4Off:]
			ok := false
			switch p.Proto {
			case ProtoTCP:
				ok = TCP(l4).Verify(p.SrcIP, p.DstIP)
			case ProtoUDP:
				ok = UDP(l4).Verify(p.SrcIP, p.DstIP)
			}
			if !ok || (p.IPVersion == 4 && !IPv4(s[p.L3Off:]).VerifyChecksum()) {
				t.Fatalf("segment %d: checksum does not verify", i)
			}
		}
	})
}

// FuzzFinishChecksum: arbitrary offsets never panic or write out of range.
func FuzzFinishChecksum(f *testing.F) {
	for _, b := range seedCaptures(f) {
		f.Add(b, uint16(34), uint16(16))
	}
	f.Fuzz(func(t *testing.T, b []byte, start, off uint16) {
		h := VNetHdr{Flags: VNetNeedsCsum, CsumStart: start, CsumOffset: off}
		field := int(start) + int(off)
		var seed uint16
		end := ipEnd(b) // before: garbage offsets may point into the IP header
		if field+2 <= len(b) {
			seed = binary.BigEndian.Uint16(b[field:])
		}
		if FinishChecksum(b, &h) {
			if h.Flags&VNetNeedsCsum != 0 {
				t.Fatal("flag not cleared")
			}
			// The field held a seed (the pseudo-header sum); the finished
			// range plus that seed must verify.
			if off%2 == 0 && Sum(b[start:end], seed) != 0xffff {
				t.Fatal("finished range does not verify with its seed")
			}
		} else if h.Flags != VNetNeedsCsum {
			t.Fatal("refused but changed the header")
		}
	})
}
