package afpacket

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/switch/frame"
	"github.com/switchyard-net/switchyard/switch/port"
)

// The recvmmsg receive path (RxRecvmmsg, and RxSplit's long frames).
//
// A socket without an RX ring does not copy what it receives: the kernel
// queues a reference to the sender's own buffer (packet_rcv), and one
// recvmmsg copies a batch out, on the reader's CPU. A ring is filled by a
// copy (tpacket_rcv) wherever the frame was sent, and on a veth that is in
// the sending endpoint's system call, on the endpoint's CPU: for a TCP
// sender's 64 KiB super-frames, a copy as costly as its own.
//
// RxSplit keeps the ring for frames up to the MTU, where it is fastest,
// and opens a second socket for the longer ones (GSO super-frames). Two
// socket filters on the frame's length divide the traffic: the ring takes
// the short frames whole and, for each long one, a marker (its first
// markerSnap bytes) that tells Read, in order, when to fetch from the
// second socket, so Read makes no system call for it otherwise and a flow
// mixing short and long frames keeps its order. A marker the full ring
// drops is counted in RxDropped although its frame arrives.

// markerSnap is how much of a long frame the ring holds as its marker.
const markerSnap = 16

// strandedCheck: Read, finding the ring empty, checks for lost markers
// every strandedCheck times, besides when the second socket wakes it.
const strandedCheck = 64

// lookStranded is called by Read when the ring is empty. A long frame
// whose marker the full ring dropped would wait in the second socket until
// the next marker; so when the second socket has woken Read (or every
// strandedCheck looks), it reads the ring's drop count and, if the ring has
// dropped anything since it last looked, has fill take everything the
// second socket holds. Its frames are otherwise left where they are, for
// their markers: on a V3 ring a block is only seen once retired, and the
// frames in it go first.
//
// After such a drop the order of long frames against short ones may be off
// for a while: on V3, the drain can take frames whose markers are in the
// block being filled, and then each of those markers takes the next long
// frame early. It ends when a marker finds the socket empty, at the next
// pause in the long frames.
func (p *Port) lookStranded() bool {
	p.spins++
	if !p.bfdWoke && p.spins%strandedCheck != 0 {
		return false
	}
	p.bfdWoke = false
	p.foldKernelStats()
	if !p.lost.Swap(false) {
		return false
	}
	p.stranded = true
	return true
}

// openSplit sets up RxSplit: filters that give the ring (p.fd) frames up to
// ringFrame bytes and markers for the others, and a second socket (p.bfd)
// that receives frames longer than ringFrame, up to maxFrame. The caller
// binds both, p.bfd last.
func (p *Port) openSplit(ringFrame, maxFrame int) (err error) {
	p.ringMax = ringFrame
	if err := attachFilter(p.fd, lenFilter(ringFrame, markerSnap, ^uint32(0))); err != nil {
		return err
	}
	if p.bfd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	if p.vnet {
		if err := unix.SetsockoptInt(p.bfd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
			return fmt.Errorf("PACKET_VNET_HDR: %w", err)
		}
	}
	_ = unix.SetsockoptInt(p.bfd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	if err := attachFilter(p.bfd, lenFilter(ringFrame, ^uint32(0), 0)); err != nil {
		return err
	}
	if err := setupRecvmmsg(p.bfd); err != nil {
		return err
	}
	p.rxm = newMmsgRx(p.bfd, p.batch, p.vlen, maxFrame)
	return nil
}

// lenFilter is a classic BPF socket filter: it keeps the first long
// bytes of a frame longer than limit, and the first short bytes of the
// others (0: drop, ^0: all).
func lenFilter(limit int, long, short uint32) []unix.SockFilter {
	return []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_LEN},
		{Code: unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K, Jt: 0, Jf: 1, K: uint32(limit)},
		{Code: unix.BPF_RET | unix.BPF_K, K: long},
		{Code: unix.BPF_RET | unix.BPF_K, K: short},
	}
}

func attachFilter(fd int, f []unix.SockFilter) error {
	prog := unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		return fmt.Errorf("SO_ATTACH_FILTER: %w", err)
	}
	return nil
}

// setupRecvmmsg readies fd for the recvmmsg path.
func setupRecvmmsg(fd int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		return fmt.Errorf("PACKET_AUXDATA: %w", err)
	}
	// Queued frames are charged to the receive buffer at their truesize
	// (about 70 KiB for a GSO super-frame): room for a few batches. Past
	// rmem_max only with CAP_NET_ADMIN; up to it otherwise.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rxSockBuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rxSockBuf)
	}
	return nil
}

// rxSockBuf is the receive buffer of a recvmmsg socket.
const rxSockBuf = 16 << 20

// mmsgRx holds the recvmmsg path's messages. Each has one buffer: room
// to put back a VLAN tag the kernel took out, the virtio-net header, and
// the longest frame. A PACKET_AUXDATA control message carries the tag;
// the source address tells outgoing frames (on kernels without
// PACKET_IGNORE_OUTGOING). Used by the single Read caller only.
type mmsgRx struct {
	fd   int // the port's socket (RxRecvmmsg) or its second one (RxSplit)
	hdrs []unix.Mmsghdr
	iov  []unix.Iovec
	name []unix.RawSockaddrLinklayer
	ctl  [][rxCtlLen]byte
	buf  []byte // len(hdrs) slots of slot bytes
	slot int
	used int // messages filled since the last Read began

	// The last fillMmsg's result: messages taken (frames, bad ones and
	// skipped ones) and whether the socket ran out before the request.
	took int
	dry  bool
}

const (
	rxCtlLen = 48 // a cmsghdr and a struct tpacket_auxdata, aligned
	// struct tpacket_auxdata
	auxStatus  = 0
	auxVlanTCI = 16
	auxTPID    = 18
	auxLen     = 20
)

func newMmsgRx(fd, n, vlen, maxFrame int) *mmsgRx {
	slot := align(vlanHdrLen+vlen+maxFrame, 64)
	m := &mmsgRx{
		fd:   fd,
		hdrs: make([]unix.Mmsghdr, n),
		iov:  make([]unix.Iovec, n),
		name: make([]unix.RawSockaddrLinklayer, n),
		ctl:  make([][rxCtlLen]byte, n),
		buf:  make([]byte, n*slot),
		slot: slot,
	}
	for i := range m.hdrs {
		m.iov[i].Base = &m.buf[i*slot+vlanHdrLen]
		m.iov[i].SetLen(slot - vlanHdrLen)
		h := &m.hdrs[i].Hdr
		h.Iov = &m.iov[i]
		h.SetIovlen(1)
		h.Name = (*byte)(unsafe.Pointer(&m.name[i]))
		h.Control = &m.ctl[i][0]
	}
	return m
}

// fill takes frames from the ring and, with RxSplit, the long frames from
// the second socket where their markers stand; with RxRecvmmsg, from the
// socket alone.
func (p *Port) fill(frames []port.Frame) (n, bytes, bad int) {
	if p.rx.size() == 0 {
		return p.fillMmsg(frames)
	}
	for {
		var k, b, x int
		if p.v3 {
			k, b, x = p.fillV3(frames[n:])
		} else {
			k, b, x = p.fillV2(frames[n:])
		}
		n, bytes, bad = n+k, bytes+b, bad+x
		if p.owed == 0 {
			break
		}
		want := min(p.owed, len(frames)-n)
		k, b, x = p.fillMmsg(frames[n : n+want])
		n, bytes, bad = n+k, bytes+b, bad+x
		if p.rxm.dry {
			// The socket ran out: it dropped the rest (its buffer was
			// full). Every marker read so far is accounted for.
			p.owed = 0
		} else {
			p.owed -= p.rxm.took
		}
		if n == len(frames) || (p.rxm.took == 0 && !p.rxm.dry) {
			break
		}
	}
	if p.stranded && n < len(frames) {
		k, b, x := p.fillMmsg(frames[n:])
		n, bytes, bad = n+k, bytes+b, bad+x
		p.stranded = !p.rxm.dry // more than a batch may be waiting
	}
	return n, bytes, bad
}

// fillMmsg receives up to len(frames) frames without blocking, into the
// message buffers the current Read has not used yet.
func (p *Port) fillMmsg(frames []port.Frame) (n, bytes, bad int) {
	m := p.rxm
	first := m.used
	q := min(len(frames), len(m.hdrs)-first)
	m.took, m.dry = 0, false
	if q <= 0 {
		return 0, 0, 0
	}
	for i := first; i < first+q; i++ {
		h := &m.hdrs[i].Hdr
		h.Namelen = unix.SizeofSockaddrLinklayer
		h.SetControllen(rxCtlLen)
		h.Flags = 0
	}
	var r uintptr
	for try := 0; ; try++ {
		var errno unix.Errno
		r, _, errno = unix.Syscall6(unix.SYS_RECVMMSG, uintptr(m.fd),
			uintptr(unsafe.Pointer(&m.hdrs[first])), uintptr(q), unix.MSG_DONTWAIT, 0, 0)
		if errno == 0 {
			break
		}
		// EAGAIN: nothing queued. Another error (ENETDOWN after the link
		// went down, or one a partial batch left) is the socket's
		// pending error, which this call has cleared: once more.
		if errno == unix.EAGAIN || try > 0 {
			m.dry = true
			return 0, 0, 0
		}
	}
	m.used += int(r)
	m.took, m.dry = int(r), int(r) < q
	for i := first; i < first+int(r); i++ {
		h := &m.hdrs[i]
		if m.name[i].Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		got := int(h.Len)
		if h.Hdr.Flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 || got < p.vlen+ethHdrLen {
			bad++
			continue
		}
		f := &frames[n]
		base := i*m.slot + vlanHdrLen
		start, stop := base+p.vlen, base+got
		f.VNet = frame.VNetHdr{}
		if p.vnet {
			f.VNet.Decode(m.buf[base:start])
		}
		if c := (*unix.Cmsghdr)(unsafe.Pointer(&m.ctl[i][0])); int(h.Hdr.Controllen) >= unix.SizeofCmsghdr+auxLen &&
			c.Level == unix.SOL_PACKET && c.Type == unix.PACKET_AUXDATA {
			aux := m.ctl[i][unix.SizeofCmsghdr:]
			st := binary.NativeEndian.Uint32(aux[auxStatus:])
			if st&unix.TP_STATUS_VLAN_VALID != 0 {
				start = putVLAN(m.buf, start, f, st, binary.NativeEndian.Uint16(aux[auxVlanTCI:]), binary.NativeEndian.Uint16(aux[auxTPID:]))
			}
		}
		f.Data = m.buf[start:stop:stop]
		bytes += stop - start
		n++
	}
	return n, bytes, bad
}

// pendingMmsg reports whether the recvmmsg socket has a frame queued.
func (p *Port) pendingMmsg() bool {
	fds := [1]unix.PollFd{{Fd: int32(p.rxm.fd), Events: unix.POLLIN}}
	k, err := unix.Poll(fds[:], 0)
	return err == nil && k > 0 && fds[0].Revents&unix.POLLIN != 0
}
