package nat

import (
	"encoding/binary"
	"sync"

	"github.com/switchyard-net/switchyard/switch/frame"
)

// ICMPv4 error types.
const (
	icmpDestUnreach  = 3
	icmpSourceQuench = 4
	icmpTimeExceeded = 11
	icmpParamProblem = 12
)

// update16At applies an RFC 1624 update to the 16-bit checksum at b[off:].
func update16At(b []byte, off int, old, new uint16) {
	c := binary.BigEndian.Uint16(b[off:])
	binary.BigEndian.PutUint16(b[off:], frame.Update16(c, old, new))
}

// update32At is update16At for a 32-bit field.
func update32At(b []byte, off int, old, new uint32) {
	c := binary.BigEndian.Uint16(b[off:])
	binary.BigEndian.PutUint16(b[off:], frame.Update32(c, old, new))
}

// seedUpdate32At adjusts a partial checksum's pseudo-header seed (not
// complemented) for a 32-bit field that changed.
func seedUpdate32At(b []byte, off int, old, new uint32) {
	c := binary.BigEndian.Uint16(b[off:])
	binary.BigEndian.PutUint16(b[off:], ^frame.Update32(^c, old, new))
}

// rewrite turns the packet of key k into tgt in place.
func (n *NAT) rewrite(b []byte, pr *frame.Parsed, vnet *frame.VNetHdr, k, tgt pkey) {
	ip := b[pr.L3Off:]
	l4 := b[pr.L4Off:pr.L3End]
	partial := vnet != nil && vnet.Flags&frame.VNetNeedsCsum != 0 && int(vnet.CsumStart) == pr.L4Off
	// Where the transport checksum sits, -1 for none.
	csum := -1
	pseudo := false
	switch pr.Proto {
	case frame.ProtoTCP:
		csum, pseudo = 16, true
	case frame.ProtoUDP:
		if partial || binary.BigEndian.Uint16(l4[6:]) != 0 {
			csum, pseudo = 6, true
		}
	case frame.ProtoICMPv4:
		csum = 2
	}
	if k.src() != tgt.src() {
		update32At(ip, 10, k.src(), tgt.src())
		binary.BigEndian.PutUint32(ip[12:], tgt.src())
		if pseudo {
			if partial {
				seedUpdate32At(l4, csum, k.src(), tgt.src())
			} else {
				update32At(l4, csum, k.src(), tgt.src())
			}
		}
		pr.SrcIP = addrOf(tgt.src())
	}
	if k.dst() != tgt.dst() {
		update32At(ip, 10, k.dst(), tgt.dst())
		binary.BigEndian.PutUint32(ip[16:], tgt.dst())
		if pseudo {
			if partial {
				seedUpdate32At(l4, csum, k.dst(), tgt.dst())
			} else {
				update32At(l4, csum, k.dst(), tgt.dst())
			}
		}
		pr.DstIP = addrOf(tgt.dst())
	}
	switch pr.Proto {
	case frame.ProtoTCP, frame.ProtoUDP:
		if k.sport() != tgt.sport() {
			if csum >= 0 && !partial {
				update16At(l4, csum, k.sport(), tgt.sport())
			}
			binary.BigEndian.PutUint16(l4[0:], tgt.sport())
			pr.SrcPort = tgt.sport()
		}
		if k.dport() != tgt.dport() {
			if csum >= 0 && !partial {
				update16At(l4, csum, k.dport(), tgt.dport())
			}
			binary.BigEndian.PutUint16(l4[2:], tgt.dport())
			pr.DstPort = tgt.dport()
		}
		if pr.Proto == frame.ProtoUDP && csum >= 0 && !partial && binary.BigEndian.Uint16(l4[6:]) == 0 {
			binary.BigEndian.PutUint16(l4[6:], 0xffff) // 0 means "no checksum" in UDP
		}
	case frame.ProtoICMPv4:
		if k.sport() != tgt.sport() {
			if !partial {
				update16At(l4, 2, k.sport(), tgt.sport())
			}
			binary.BigEndian.PutUint16(l4[4:], tgt.sport())
			pr.ICMPEchoID = tgt.sport()
		}
	}
	if pr.Frag == frame.FirstFragment {
		n.frags.add(k.unpack(), tgt.unpack(), binary.BigEndian.Uint16(ip[4:]), n.t.now.Load())
	}
}

// Fragments. The first fragment of a translated packet records what its
// addresses became, keyed by the addresses, protocol and IP id it arrived
// with; later fragments carry no ports and take the same addresses.

const (
	fragSlots = 4096
	fragTTL   = 30 // seconds, as the kernel's ipfrag_time
)

type fragKey struct {
	src, dst uint32
	id       uint16
	proto    uint8
	side     Side
}

type fragSlot struct {
	k        fragKey
	src, dst uint32
	exp      uint32
	used     bool
}

type fragTable struct {
	mu    sync.Mutex
	slots [fragSlots]fragSlot
}

func (f *fragKey) slot() int {
	h := (f.src*0x9e3779b1 ^ f.dst) * 0x85ebca6b
	h ^= uint32(f.id)<<16 | uint32(f.proto)<<8 | uint32(f.side)
	h *= 0xc2b2ae35
	return int(h>>20) % fragSlots
}

func (f *fragTable) add(k, tgt key, id uint16, now uint32) {
	fk := fragKey{src: k.src, dst: k.dst, id: id, proto: k.proto, side: k.side}
	f.mu.Lock()
	f.slots[fk.slot()] = fragSlot{k: fk, src: tgt.src, dst: tgt.dst, exp: now + fragTTL, used: true}
	f.mu.Unlock()
}

func (f *fragTable) get(fk fragKey, now uint32) (src, dst uint32, ok bool) {
	f.mu.Lock()
	s := &f.slots[fk.slot()]
	if s.used && s.k == fk && !expired(s.exp, now) {
		src, dst, ok = s.src, s.dst, true
	}
	f.mu.Unlock()
	return src, dst, ok
}

func (n *NAT) laterFragment(side Side, b []byte, pr *frame.Parsed) Verdict {
	ip := b[pr.L3Off:]
	fk := fragKey{src: addr32(pr.SrcIP), dst: addr32(pr.DstIP), id: binary.BigEndian.Uint16(ip[4:]), proto: pr.Proto, side: side}
	src, dst, ok := n.frags.get(fk, n.t.now.Load())
	if !ok {
		if side == Inside && (fk.dst == n.gw || inAny(n.inside, fk.dst)) {
			return Pass
		}
		return n.drop(ReasonFragment)
	}
	if src != fk.src {
		update32At(ip, 10, fk.src, src)
		binary.BigEndian.PutUint32(ip[12:], src)
		pr.SrcIP = addrOf(src)
	}
	if dst != fk.dst {
		update32At(ip, 10, fk.dst, dst)
		binary.BigEndian.PutUint32(ip[16:], dst)
		pr.DstIP = addrOf(dst)
	}
	return Forward
}

// icmpError translates an ICMP error about a translated flow: the quoted
// packet is the flow's packet as it was on this side's far end, so the
// error matches the flow as if it were a reply; the outer destination and
// the quoted header become what the flow's other side knows.
func (n *NAT) icmpError(side Side, b []byte, pr *frame.Parsed, vnet *frame.VNetHdr) Verdict {
	msg := b[pr.L4Off:pr.L3End]
	if len(msg) < frame.ICMPLen+frame.IPv4MinLen+8 {
		return n.drop(ReasonMalformed)
	}
	in := msg[frame.ICMPLen:]
	ihl := int(in[0]&0xf) * 4
	if in[0]>>4 != 4 || ihl < frame.IPv4MinLen || len(in) < ihl+8 {
		return n.drop(ReasonMalformed)
	}
	if !frame.ICMPv4(msg).Verify() && (vnet == nil || vnet.Flags&frame.VNetNeedsCsum == 0) {
		return n.drop(ReasonBadChecksum)
	}
	ik := key{
		src: binary.BigEndian.Uint32(in[12:]), dst: binary.BigEndian.Uint32(in[16:]), proto: in[9],
	}
	il4 := in[ihl:]
	switch ik.proto {
	case frame.ProtoTCP, frame.ProtoUDP:
		ik.sport, ik.dport = binary.BigEndian.Uint16(il4[0:]), binary.BigEndian.Uint16(il4[2:])
	case frame.ProtoICMPv4:
		if il4[0] != frame.ICMPv4EchoRequest && il4[0] != frame.ICMPv4EchoReply {
			return n.drop(ReasonNoFlow)
		}
		id := binary.BigEndian.Uint16(il4[4:])
		ik.sport, ik.dport = id, id
	}
	var tgt key
	var as frame.Parsed
	as.Proto = ik.proto // lookup reads only the TCP flags, zero here: no state change
	if !n.lookup(ik.reverse(side), &as, len(b), &tgt) {
		if side == Inside && (addr32(pr.DstIP) == n.gw || inAny(n.inside, addr32(pr.DstIP))) {
			return Pass
		}
		return n.drop(ReasonNoFlow)
	}
	ip := b[pr.L3Off:]
	outerSrc, outerDst := addr32(pr.SrcIP), addr32(pr.DstIP)
	if outerSrc == ik.dst && tgt.src != outerSrc {
		update32At(ip, 10, outerSrc, tgt.src)
		binary.BigEndian.PutUint32(ip[12:], tgt.src)
		pr.SrcIP = addrOf(tgt.src)
	}
	if tgt.dst != outerDst {
		update32At(ip, 10, outerDst, tgt.dst)
		binary.BigEndian.PutUint32(ip[16:], tgt.dst)
		pr.DstIP = addrOf(tgt.dst)
	}
	// The quoted packet, reversed: it went from tgt.dst to tgt.src.
	nsrc, ndst, nsport, ndport := tgt.dst, tgt.src, tgt.dport, tgt.sport
	if nsrc != ik.src {
		update32At(in, 10, ik.src, nsrc)
		binary.BigEndian.PutUint32(in[12:], nsrc)
	}
	if ndst != ik.dst {
		update32At(in, 10, ik.dst, ndst)
		binary.BigEndian.PutUint32(in[16:], ndst)
	}
	switch ik.proto {
	case frame.ProtoTCP, frame.ProtoUDP:
		off := 16 // TCP checksum, if quoted
		if ik.proto == frame.ProtoUDP {
			off = 6
		}
		fix := len(il4) >= off+2 && (ik.proto == frame.ProtoTCP || binary.BigEndian.Uint16(il4[6:]) != 0)
		if fix {
			update32At(il4, off, ik.src, nsrc)
			update32At(il4, off, ik.dst, ndst)
			update16At(il4, off, ik.sport, nsport)
			update16At(il4, off, ik.dport, ndport)
		}
		binary.BigEndian.PutUint16(il4[0:], nsport)
		binary.BigEndian.PutUint16(il4[2:], ndport)
	case frame.ProtoICMPv4:
		update16At(il4, 2, ik.sport, nsport)
		binary.BigEndian.PutUint16(il4[4:], nsport)
	}
	frame.ICMPv4(msg).FillChecksum()
	if vnet != nil {
		vnet.Flags &^= frame.VNetNeedsCsum
	}
	return Forward
}
