//go:build linux

package afpacket

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/switch/frame"
	"github.com/switchyard-net/switchyard/switch/port"
)

// Ring layout (include/uapi/linux/if_packet.h). A slot starts with the
// version's tpacket header, padded to TPACKET_ALIGNMENT; a struct
// sockaddr_ll follows it on receive; on transmit the frame data starts
// right after the padded header.
const (
	tp2HdrLen  = 32 // TPACKET_ALIGN(sizeof(struct tpacket2_hdr))
	tp3HdrLen  = 48 // TPACKET_ALIGN(sizeof(struct tpacket3_hdr))
	sllLen     = 20 // sizeof(struct sockaddr_ll)
	sllPktType = 10

	// struct tpacket2_hdr
	v2Status   = 0
	v2Len      = 4
	v2Snaplen  = 8
	v2Mac      = 12
	v2VlanTCI  = 24
	v2VlanTPID = 26

	// struct tpacket3_hdr
	v3NextOffset = 0
	v3Snaplen    = 12
	v3Len        = 16
	v3Status     = 20
	v3Mac        = 24
	v3VlanTCI    = 32
	v3VlanTPID   = 36

	// struct tpacket_block_desc with struct tpacket_hdr_v1
	blkStatus   = 8
	blkNumPkts  = 12
	blkFirstPkt = 16
	blkHdrLen   = 48

	ethHdrLen  = 14
	vlanHdrLen = 4
	// maxGSOFrame bounds a veth GSO super-frame: 64 KiB of IP packet plus
	// link headers, with some slack.
	maxGSOFrame = 65536 + 128

	downPollMillis = 100
	sendTimeout    = time.Second
)

// Port is an AF_PACKET port with mmap'd RX and TX rings on one interface.
type Port struct {
	name    string
	ifindex int
	mtu     int
	batch   int
	v3      bool
	vnet    bool
	hdr     int // padded tpacket header: sockaddr_ll (RX) or data (TX) starts here
	vlen    int // virtio-net header length, 0 without PACKET_VNET_HDR

	fd, efd int
	bfd     int    // RxSplit: the socket for frames longer than the MTU, or -1
	mem     []byte // both rings; RX first
	unsteer func() // puts back the receive steering Open changed (steer_linux.go)

	// life is held shared by every Read, Write and Stats while it uses
	// fd or mem, and exclusively by Close while it releases them.
	life   sync.RWMutex
	closed atomic.Bool

	// RX ring, used by the single Read caller only.
	rx       ringGeom
	rxHead   int           // next block (V3) or frame (V2) to look at
	rxHeld   int           // blocks/frames before rxHead handed out by the last Read
	rxOpen   bool          // V3: block rxHead is held and partly consumed
	rxLeft   int           // V3: packets left in block rxHead
	rxOff    int           // V3: offset of the next packet in block rxHead
	rxDown   bool          // the link went down; poll with a timeout to notice deletion
	viewsOut bool          // the last Read handed out views; Close must not unmap
	rxm      *mmsgRx       // RxRecvmmsg, RxSplit: the recvmmsg receive path
	ringMax  int           // RxSplit: the longest frame the ring takes whole
	owed     int           // RxSplit: markers read whose frames the second socket has
	stranded bool          // RxSplit: take every long frame the second socket has
	bfdWoke  bool          // RxSplit: the second socket woke the last wait
	spins    uint          // RxSplit: empty looks at the ring (see strandedCheck)
	lost     atomic.Bool   // RxSplit: the ring dropped frames, maybe markers
	busyPoll time.Duration // Config.BusyPoll
	// epf is an epoll instance watching fd, efd and bfd, made non-blocking and
	// handed to Go's netpoller: Read parks its goroutine on it instead of
	// sleeping in poll(2) on a thread that holds a P. With the switch on
	// one CPU (GOMAXPROCS 1), a thread blocked in a syscall keeps the
	// other ports' goroutines off the CPU until sysmon steps in, which
	// cost milliseconds per frame.
	epf     *os.File
	rc      syscall.RawConn
	evs     [4]unix.EpollEvent
	wk      int                // check's result: ready fds
	werr    error              // check's result: epoll_wait error
	checkFn func(uintptr) bool // p.check, bound once

	// TX ring, under txMu.
	txMu      sync.Mutex
	tx        ringGeom
	txBase    int // offset of the TX ring in mem
	txHead    int
	txStatus  int     // offset of tp_status in a TX slot
	txLenOff  int     // offset of tp_len in a TX slot
	txMaxData int     // largest frame a TX slot takes
	txIdx     []int   // frames index of each slot queued in this round
	mmsg      *mmsgTx // non-nil: transmit with sendmmsg instead of the TX ring

	statMu sync.Mutex // serialises PACKET_STATISTICS reads (they reset)
	ctr    port.Counters
}

// ringGeom is the geometry of one ring: blocks of blockSize bytes, each
// holding framesPerBlock frames of frameSize bytes (V3 RX: one "frame" per
// block, frames packed inside by the kernel).
type ringGeom struct {
	blockSize, blockNr int
	frameSize, frameNr int
	perBlock           int
}

func (g ringGeom) size() int { return g.blockSize * g.blockNr }

// frameOff is the offset of frame i from the start of the ring; frames do
// not span blocks.
func (g ringGeom) frameOff(i int) int {
	return (i/g.perBlock)*g.blockSize + (i%g.perBlock)*g.frameSize
}

// frameRing lays out count frames of at least frameSize bytes in blocks of
// a power-of-two size holding at least four frames (so little is wasted).
func frameRing(frameSize, count int) ringGeom {
	fs := align(frameSize, unix.TPACKET_ALIGNMENT)
	bs := os.Getpagesize()
	for bs < 4*fs {
		bs <<= 1
	}
	per := bs / fs
	nb := (count + per - 1) / per
	return ringGeom{blockSize: bs, blockNr: nb, frameSize: fs, frameNr: nb * per, perBlock: per}
}

func align(n, a int) int { return (n + a - 1) &^ (a - 1) }

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Open opens an AF_PACKET socket bound to ifname in the calling thread's
// network namespace, with rings as cfg describes (nil: defaults). The port
// stays in that namespace and may be used from any goroutine.
func Open(ifname string, cfg *Config) (*Port, error) {
	p, err := open(ifname, cfg)
	if err != nil {
		return nil, fmt.Errorf("afpacket: open %s: %w", ifname, err)
	}
	return p, nil
}

func open(ifname string, cfg *Config) (_ *Port, err error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	p := &Port{name: ifname, batch: c.BatchSize, fd: -1, efd: -1, bfd: -1, vnet: !c.DisableVNetHdr, busyPoll: c.BusyPoll}
	switch c.Version {
	case TPacketV3:
		p.v3, p.hdr = true, tp3HdrLen
	case VersionDefault, TPacketV2:
		p.hdr = tp2HdrLen
	default:
		return nil, fmt.Errorf("unknown ring version %d", c.Version)
	}
	if p.vnet {
		p.vlen = frame.VNetHdrLen
	}

	p.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	defer func() {
		if err != nil {
			p.release()
		}
	}()

	ifr, err := unix.NewIfreq(ifname)
	if err != nil {
		return nil, err
	}
	if err := unix.IoctlIfreq(p.fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return nil, fmt.Errorf("interface index: %w", err)
	}
	p.ifindex = int(ifr.Uint32())
	if err := unix.IoctlIfreq(p.fd, unix.SIOCGIFMTU, ifr); err != nil {
		return nil, fmt.Errorf("interface mtu: %w", err)
	}
	p.mtu = int(ifr.Uint32())

	ver := unix.TPACKET_V2
	if p.v3 {
		ver = unix.TPACKET_V3
	}
	if err := unix.SetsockoptInt(p.fd, unix.SOL_PACKET, unix.PACKET_VERSION, ver); err != nil {
		return nil, fmt.Errorf("PACKET_VERSION %v: %w", c.Version, err)
	}
	if p.vnet {
		if err := unix.SetsockoptInt(p.fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
			return nil, fmt.Errorf("PACKET_VNET_HDR: %w", err)
		}
	}
	// Our own transmissions are skipped by sll_pkttype as well, so an
	// old kernel without PACKET_IGNORE_OUTGOING is fine.
	_ = unix.SetsockoptInt(p.fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	if !c.DisableQdiscBypass {
		if err := unix.SetsockoptInt(p.fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return nil, fmt.Errorf("PACKET_QDISC_BYPASS: %w", err)
		}
	}

	maxFrame := p.mtu + ethHdrLen + vlanHdrLen
	if p.vnet && maxFrame < maxGSOFrame {
		maxFrame = maxGSOFrame
	}
	// The longest frame the RX ring must hold: with RxSplit, longer ones
	// come through the second socket.
	ringFrame := maxFrame
	switch c.RxMode {
	case RxSplit:
		ringFrame = p.mtu + ethHdrLen + vlanHdrLen
		if err := p.openSplit(ringFrame, maxFrame); err != nil {
			return nil, err
		}
	case RxRing:
	case RxRecvmmsg:
		if err := setupRecvmmsg(p.fd); err != nil {
			return nil, err
		}
		p.rxm = newMmsgRx(p.fd, p.batch, p.vlen, maxFrame)
	default:
		return nil, fmt.Errorf("unknown receive mode %d", c.RxMode)
	}
	// Where the kernel puts the MAC header in an RX slot (tpacket_rcv):
	// after the header, sockaddr_ll and at least 16 bytes of link header
	// room, aligned, plus the vnet header.
	rxNeed := align(p.hdr+sllLen+16, unix.TPACKET_ALIGNMENT) + p.vlen + ringFrame

	switch {
	case c.RxMode == RxRecvmmsg:
		// No RX ring.
	case p.v3:
		bs, nb := c.RxBlockSize, c.RxBlockCount
		if bs <= 0 {
			bs = DefaultRxBlockSize
			for bs < blkHdrLen+rxNeed {
				bs <<= 1
			}
		}
		if nb <= 0 {
			nb = DefaultRxBlockCount
		}
		if bs%os.Getpagesize() != 0 {
			return nil, fmt.Errorf("rx block size %d is not a multiple of the page size", bs)
		}
		tov := c.BlockTimeout
		if tov <= 0 {
			tov = DefaultBlockTimeout
		}
		p.rx = ringGeom{blockSize: bs, blockNr: nb, frameSize: bs, frameNr: nb, perBlock: 1}
		req := unix.TpacketReq3{
			Block_size:       uint32(bs),
			Block_nr:         uint32(nb),
			Frame_size:       uint32(bs),
			Frame_nr:         uint32(nb),
			Retire_blk_tov:   uint32((tov + time.Millisecond - 1) / time.Millisecond),
			Feature_req_word: 0,
		}
		if err := unix.SetsockoptTpacketReq3(p.fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
			return nil, fmt.Errorf("PACKET_RX_RING %d x %d: %w", nb, bs, err)
		}
	default:
		fs, nf := c.RxFrameSize, c.RxFrameCount
		if fs <= 0 {
			fs = rxNeed
		}
		if nf <= 0 {
			nf = DefaultRxFrameCount
			if c.RxMode == RxSplit {
				nf = DefaultSplitFrameCount
			}
		}
		p.rx = frameRing(fs, nf)
		if err := setFrameRing(p.fd, unix.PACKET_RX_RING, p.rx, false); err != nil {
			return nil, err
		}
	}

	fs, nf := c.TxFrameSize, c.TxFrameCount
	if fs <= 0 {
		fs = p.hdr + p.vlen + maxFrame
	}
	if nf <= 0 {
		nf = c.BatchSize
	}
	if c.TxMode == TxSendmmsg {
		// No TX ring: with one, the kernel sends every sendmsg from the
		// ring and ignores the message's own data.
		p.mmsg = newMmsgTx(p.batch)
		p.txMaxData = maxFrame
		// Room for a batch of GSO super-frames in flight to receivers
		// that have not taken them yet.
		_ = unix.SetsockoptInt(p.fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 8<<20)
	} else {
		p.tx = frameRing(fs, nf)
		if err := setFrameRing(p.fd, unix.PACKET_TX_RING, p.tx, p.v3); err != nil {
			return nil, err
		}
		p.txMaxData = p.tx.frameSize - p.hdr - p.vlen
		p.txIdx = make([]int, p.tx.frameNr)
		// Every frame sent from the ring is charged to the socket's send
		// buffer until its receiver frees it (a TCP receiver keeps it in
		// its queue until the application reads). At the default
		// (wmem_default, ~208 KiB: three GSO super-frames) the kernel
		// refuses a flush long before the ring is full, and the frames
		// are lost; measured through the bench's TCP test (receive
		// steering on, so more in flight toward B): 32 frames
		// dropped, 1352 segments retransmitted in 6 s. Let the ring
		// itself be the limit.
		_ = unix.SetsockoptInt(p.fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, p.tx.size())
	}
	p.txStatus, p.txLenOff = v2Status, v2Len
	if p.v3 {
		p.txStatus, p.txLenOff = v3Status, v3Len
	}

	if sz := p.rx.size() + p.tx.size(); sz > 0 {
		p.mem, err = mapRings(p.fd, sz)
		if err != nil {
			return nil, fmt.Errorf("mmap %d bytes: %w", sz, err)
		}
	}
	p.txBase = p.rx.size()

	// A flush waits for its frames to leave; never forever.
	tv := unix.NsecToTimeval(int64(sendTimeout))
	if err := unix.SetsockoptTimeval(p.fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv); err != nil {
		return nil, fmt.Errorf("SO_SNDTIMEO: %w", err)
	}

	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: p.ifindex}
	if err := unix.Bind(p.fd, sa); err != nil {
		return nil, fmt.Errorf("bind: %w", err)
	}
	if p.bfd >= 0 {
		// Bound last, so the kernel hands each frame to this socket
		// before it writes the frame's marker into the ring (a device's
		// newest packet handler comes first).
		if err := unix.Bind(p.bfd, sa); err != nil {
			return nil, fmt.Errorf("bind: %w", err)
		}
	}
	if c.RxSteering {
		// Best effort: without it frames still flow, a TCP sender only
		// sees more reordering.
		p.unsteer, _ = steerRx(ifname, p.ifindex)
	}
	p.efd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	for _, fd := range []int{p.fd, p.efd} {
		if err == nil {
			err = unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)})
		}
	}
	if err == nil && p.bfd >= 0 {
		// Edge-triggered: its frames are read where their markers stand
		// in the ring, so one waiting there must not keep waking Read.
		err = unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, p.bfd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(p.bfd)})
	}
	if err == nil {
		err = unix.SetNonblock(epfd, true)
	}
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("epoll setup: %w", err)
	}
	// Non-blocking before NewFile, so the runtime's poller takes it.
	p.epf = os.NewFile(uintptr(epfd), "afpacket-epoll-"+ifname)
	p.checkFn = p.check
	if p.rc, err = p.epf.SyscallConn(); err != nil {
		return nil, fmt.Errorf("epoll conn: %w", err)
	}
	return p, nil
}

func setFrameRing(fd, opt int, g ringGeom, v3 bool) error {
	name := "PACKET_RX_RING"
	if opt == unix.PACKET_TX_RING {
		name = "PACKET_TX_RING"
	}
	var err error
	if v3 {
		req := unix.TpacketReq3{
			Block_size: uint32(g.blockSize), Block_nr: uint32(g.blockNr),
			Frame_size: uint32(g.frameSize), Frame_nr: uint32(g.frameNr),
		}
		err = unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, opt, &req)
	} else {
		req := unix.TpacketReq{
			Block_size: uint32(g.blockSize), Block_nr: uint32(g.blockNr),
			Frame_size: uint32(g.frameSize), Frame_nr: uint32(g.frameNr),
		}
		err = unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, opt, &req)
	}
	if err != nil {
		return fmt.Errorf("%s %d x %d bytes: %w", name, g.frameNr, g.frameSize, err)
	}
	return nil
}

// release frees what open or Close acquired.
func (p *Port) release() {
	p.unmap()
	p.closeFDs()
	if p.unsteer != nil {
		p.unsteer()
		p.unsteer = nil
	}
}

func (p *Port) unmap() {
	if p.mem != nil {
		_ = unmapRings(p.mem)
		p.mem = nil
	}
}

func (p *Port) closeFDs() {
	if p.fd >= 0 {
		_ = unix.Close(p.fd)
		p.fd = -1
	}
	if p.bfd >= 0 {
		_ = unix.Close(p.bfd)
		p.bfd = -1
	}
	if p.efd >= 0 {
		_ = unix.Close(p.efd)
		p.efd = -1
	}
	if p.epf != nil {
		_ = p.epf.Close()
		p.epf = nil
	}
}

// enter registers an operation that uses fd or mem; false once closed.
func (p *Port) enter() bool {
	p.life.RLock()
	if p.closed.Load() {
		p.life.RUnlock()
		return false
	}
	return true
}

func (p *Port) leave() { p.life.RUnlock() }

// Name returns the interface name the port was opened on.
func (p *Port) Name() string { return p.name }

// BatchSize is the most frames one Read returns.
func (p *Port) BatchSize() int { return p.batch }

// MTU is the interface's MTU when the port was opened.
func (p *Port) MTU() int { return p.mtu }

// Offloads reports whether frames carry a virtio-net header both ways, so
// GSO super-frames and partial checksums are taken on Write.
func (p *Port) Offloads() bool { return p.vnet }

// Ifindex is the interface index in the port's namespace.
func (p *Port) Ifindex() int { return p.ifindex }

// Version is the ring format in use.
func (p *Port) Version() Version {
	if p.v3 {
		return TPacketV3
	}
	return TPacketV2
}

// Close wakes a blocked Read, waits for in-flight Read and Write calls to
// leave the rings, then unmaps them and closes the socket. It is safe to
// call more than once and from any goroutine.
func (p *Port) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(p.efd, one[:])
	p.life.Lock()
	defer p.life.Unlock()
	p.foldKernelStats()
	if p.viewsOut {
		// The reader still holds views into the RX ring from its last
		// Read (the bridge may be forwarding them right now). The
		// mapping outlives the socket; the reader's next Read unmaps it.
		p.closeFDs()
		return nil
	}
	p.release()
	return nil
}

// finishClose unmaps the rings once the reader is done with its views: it
// runs in the reader's Read after Close.
func (p *Port) finishClose() {
	p.life.Lock()
	defer p.life.Unlock()
	p.viewsOut = false
	p.unmap()
}

// Stats returns the port's counters, with the kernel's ring drops folded in.
func (p *Port) Stats() port.Stats {
	if p.enter() {
		p.foldKernelStats()
		p.leave()
	}
	return p.ctr.Snapshot()
}

// foldKernelStats adds the drops PACKET_STATISTICS reports (reading resets
// them) to RxDropped. fd must be open.
func (p *Port) foldKernelStats() {
	p.statMu.Lock()
	defer p.statMu.Unlock()
	d := kernelDrops(p.fd, p.v3)
	if d > 0 && p.bfd >= 0 {
		p.lost.Store(true)
	}
	if p.bfd >= 0 {
		d += kernelDrops(p.bfd, false)
	}
	p.ctr.RxDropped.Add(uint64(d))
}

// linkGone reports whether the interface under the port has been
// unregistered: the kernel then sets the socket's bound ifindex to -1.
func (p *Port) linkGone() bool {
	sa, err := unix.Getsockname(p.fd)
	if err != nil {
		return errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO)
	}
	ll, ok := sa.(*unix.SockaddrLinklayer)
	return !ok || ll.Ifindex != p.ifindex
}

func (p *Port) errLinkGone(op string) error {
	return fmt.Errorf("afpacket: %s %s: %w", op, p.name, port.ErrLinkGone)
}

// Read blocks until at least one frame has arrived and fills frames[:n]
// with views into the RX ring (or the recvmmsg buffers), valid until the
// next Read. The ring space behind the previous batch goes back to the
// kernel when Read is called.
func (p *Port) Read(frames []port.Frame) (int, error) {
	if !p.enter() {
		p.finishClose()
		return 0, port.ErrClosed
	}
	defer p.leave()
	p.viewsOut = false
	if len(frames) > p.batch {
		frames = frames[:p.batch]
	}
	if len(frames) == 0 {
		return 0, nil
	}
	for {
		p.releaseRx()
		n, bytes, bad := p.fill(frames)
		if bad > 0 {
			p.ctr.RxErrors.Add(uint64(bad))
		}
		if n > 0 {
			if p.busyPoll > 0 {
				port.MarkBusy()
			}
			p.viewsOut = true
			p.rxDown = false
			p.ctr.RxFrames.Add(uint64(n))
			p.ctr.RxBytes.Add(uint64(bytes))
			return n, nil
		}
		if p.bfd >= 0 && p.lookStranded() {
			continue
		}
		if p.busyPoll > 0 && !p.rxDown && !p.closed.Load() && port.KeepPolling(p.busyPoll) {
			// Let the other ports' goroutines spin or forward too.
			port.Yield()
			continue
		}
		if p.busyPoll > 0 {
			port.Park(p)
		}
		sockEv, closing, k, err := p.wait()
		if p.busyPoll > 0 {
			port.Unpark(p)
		}
		if err != nil {
			return 0, fmt.Errorf("afpacket: wait %s: %w", p.name, err)
		}
		if closing || p.closed.Load() {
			return 0, port.ErrClosed
		}
		if sockEv&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			// ENETDOWN: the link went down (or is being deleted); reading
			// SO_ERROR clears it. Deletion is told by the bound ifindex.
			soerr, _ := unix.GetsockoptInt(p.fd, unix.SOL_SOCKET, unix.SO_ERROR)
			if p.linkGone() || unix.Errno(soerr) == unix.ENXIO || unix.Errno(soerr) == unix.ENODEV {
				return 0, p.errLinkGone("read")
			}
			p.rxDown = true
		} else if k == 0 && p.rxDown && p.linkGone() {
			return 0, p.errLinkGone("read")
		}
	}
}

// wait parks the caller until the socket or the close eventfd is ready
// (or, while the link is down, until a timeout so deletion is noticed) and
// returns the socket's events, whether Close was signalled, and how many
// fds were ready.
func (p *Port) wait() (sockEv uint32, closing bool, k int, err error) {
	if p.rxDown {
		_ = p.epf.SetReadDeadline(time.Now().Add(downPollMillis * time.Millisecond))
		defer p.epf.SetReadDeadline(time.Time{})
	}
	err = p.rc.Read(p.checkFn)
	k = p.wk
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, false, 0, nil
	}
	if err == nil {
		err = p.werr
	}
	for _, ev := range p.evs[:max(k, 0)] {
		switch int(ev.Fd) {
		case p.fd:
			sockEv |= ev.Events
		case p.bfd:
			sockEv |= ev.Events
			p.bfdWoke = true
		case p.efd:
			closing = true
		}
	}
	return sockEv, closing, k, err
}

// check is what the netpoller calls to see whether Read can go on: it
// collects the ready fds without blocking. Bound once to checkFn, so the
// wait allocates nothing.
func (p *Port) check(fd uintptr) bool {
	p.wk, p.werr = unix.EpollWait(int(fd), p.evs[:], 0)
	if p.werr == unix.EINTR {
		p.wk, p.werr = 0, nil
	}
	return p.wk != 0 || p.werr != nil
}

// releaseRx hands the blocks (V3) or frames (V2) behind the previous batch
// back to the kernel.
func (p *Port) releaseRx() {
	if p.rxm != nil {
		p.rxm.used = 0
	}
	n := p.rx.frameNr
	for i := p.rxHeld; i > 0; i-- {
		idx := (p.rxHead - i + n) % n
		if p.v3 {
			storeStatus(p.mem, idx*p.rx.blockSize+blkStatus, unix.TP_STATUS_KERNEL)
		} else {
			storeStatus(p.mem, p.rx.frameOff(idx)+v2Status, unix.TP_STATUS_KERNEL)
		}
	}
	p.rxHeld = 0
}

// Pending reports whether the RX ring has a frame (V2) or a retired block
// (V3) at its head, for port.Yield while this port's reader is parked.
func (p *Port) Pending() bool {
	if p.rx.size() == 0 {
		return p.pendingMmsg() // RxRecvmmsg
	}
	if p.v3 {
		return loadStatus(p.mem, p.rxHead*p.rx.blockSize+blkStatus)&unix.TP_STATUS_USER != 0
	}
	return loadStatus(p.mem, p.rx.frameOff(p.rxHead)+v2Status)&unix.TP_STATUS_USER != 0
}

// fillV3 walks retired blocks from rxHead, filling frames. A block whose
// packets have all been looked at counts as held until the next Read; a
// block the batch ends in stays open.
func (p *Port) fillV3(frames []port.Frame) (n, bytes, bad int) {
	bs := p.rx.blockSize
	for n+p.owed < len(frames) && p.rxHeld < p.rx.blockNr-1 {
		base := p.rxHead * bs
		if !p.rxOpen {
			if loadStatus(p.mem, base+blkStatus)&unix.TP_STATUS_USER == 0 {
				break
			}
			p.rxOpen = true
			p.rxLeft = int(binary.NativeEndian.Uint32(p.mem[base+blkNumPkts:]))
			p.rxOff = int(binary.NativeEndian.Uint32(p.mem[base+blkFirstPkt:]))
		}
		for p.rxLeft > 0 && n+p.owed < len(frames) {
			if p.rxOff < blkHdrLen || p.rxOff+p.hdr+sllLen > bs {
				bad++
				p.rxLeft = 0
				break
			}
			off := base + p.rxOff
			if p.bfd >= 0 && p.isMarker(off) {
				p.owed++
			} else if p.owed > 0 {
				break // the long frames marked before this one go first
			} else {
				switch p.frameAt(&frames[n], off, base+bs) {
				case slotFrame:
					bytes += len(frames[n].Data)
					n++
				case slotBad:
					bad++
				}
			}
			next := int(binary.NativeEndian.Uint32(p.mem[off+v3NextOffset:]))
			p.rxLeft--
			if p.rxLeft > 0 && next == 0 {
				bad++
				p.rxLeft = 0
			}
			p.rxOff += next
		}
		if p.rxLeft > 0 {
			break // the rest of this block goes to the next fill
		}
		p.rxOpen = false
		p.rxHeld++
		p.rxHead = (p.rxHead + 1) % p.rx.blockNr
	}
	return n, bytes, bad
}

// fillV2 takes frames from rxHead while the kernel has handed them over.
func (p *Port) fillV2(frames []port.Frame) (n, bytes, bad int) {
	for n+p.owed < len(frames) && p.rxHeld < p.rx.frameNr {
		off := p.rx.frameOff(p.rxHead)
		if loadStatus(p.mem, off+v2Status)&unix.TP_STATUS_USER == 0 {
			break
		}
		if p.bfd >= 0 && p.isMarker(off) {
			p.owed++
		} else if p.owed > 0 {
			break // the long frames marked before this one go first
		} else {
			switch p.frameAt(&frames[n], off, off+p.rx.frameSize) {
			case slotFrame:
				bytes += len(frames[n].Data)
				n++
			case slotBad:
				bad++
			}
		}
		p.rxHeld++
		p.rxHead = (p.rxHead + 1) % p.rx.frameNr
	}
	return n, bytes, bad
}

// isMarker reports whether the RX slot at off holds the marker of a long
// frame (RxSplit), which the second socket has.
func (p *Port) isMarker(off int) bool {
	snapAt, lenAt := v2Snaplen, v2Len
	if p.v3 {
		snapAt, lenAt = v3Snaplen, v3Len
	}
	return binary.NativeEndian.Uint32(p.mem[off+snapAt:]) == markerSnap &&
		int(binary.NativeEndian.Uint32(p.mem[off+lenAt:])) > p.ringMax
}

// putVLAN puts a VLAN tag the kernel took out of the frame at b[start:]
// back in front of its EtherType, in the 4 bytes of headroom before start,
// moves f's offload offsets with it and returns the frame's new start.
func putVLAN(b []byte, start int, f *port.Frame, st uint32, tci, tpid uint16) int {
	if st&unix.TP_STATUS_VLAN_TPID_VALID == 0 || tpid == 0 {
		tpid = 0x8100
	}
	copy(b[start-vlanHdrLen:start+2*6-vlanHdrLen], b[start:start+2*6])
	start -= vlanHdrLen
	binary.BigEndian.PutUint16(b[start+12:], tpid)
	binary.BigEndian.PutUint16(b[start+14:], tci)
	if f.VNet.Flags&frame.VNetNeedsCsum != 0 {
		f.VNet.CsumStart += vlanHdrLen
	}
	if f.VNet.HdrLen != 0 {
		f.VNet.HdrLen += vlanHdrLen
	}
	return start
}

type slotKind int

const (
	slotFrame slotKind = iota
	slotSkip           // our own outgoing frame
	slotBad            // truncated or malformed
)

// frameAt decodes the received packet whose tpacket header is at off (and
// which must end by end) into f. A VLAN tag the kernel took out of the
// frame (TP_STATUS_VLAN_VALID) is put back in front of the EtherType, in
// the headroom before the MAC header.
func (p *Port) frameAt(f *port.Frame, off, end int) slotKind {
	m := p.mem
	var st uint32
	if p.v3 {
		st = binary.NativeEndian.Uint32(m[off+v3Status:])
	} else {
		st = loadStatus(m, off+v2Status)
	}
	if m[off+p.hdr+sllPktType] == unix.PACKET_OUTGOING {
		return slotSkip
	}
	var snap, length, mac int
	var tci, tpid uint16
	if p.v3 {
		snap = int(binary.NativeEndian.Uint32(m[off+v3Snaplen:]))
		length = int(binary.NativeEndian.Uint32(m[off+v3Len:]))
		mac = int(binary.NativeEndian.Uint16(m[off+v3Mac:]))
		tci = uint16(binary.NativeEndian.Uint32(m[off+v3VlanTCI:]))
		tpid = binary.NativeEndian.Uint16(m[off+v3VlanTPID:])
	} else {
		snap = int(binary.NativeEndian.Uint32(m[off+v2Snaplen:]))
		length = int(binary.NativeEndian.Uint32(m[off+v2Len:]))
		mac = int(binary.NativeEndian.Uint16(m[off+v2Mac:]))
		tci = binary.NativeEndian.Uint16(m[off+v2VlanTCI:])
		tpid = binary.NativeEndian.Uint16(m[off+v2VlanTPID:])
	}
	start, stop := off+mac, off+mac+snap
	if mac < p.hdr+sllLen+p.vlen+vlanHdrLen || stop > end || snap < ethHdrLen || snap < length {
		return slotBad
	}
	f.VNet = frame.VNetHdr{}
	if p.vnet {
		f.VNet.Decode(m[start-p.vlen : start])
	}
	if st&unix.TP_STATUS_VLAN_VALID != 0 {
		start = putVLAN(m, start, f, st, tci, tpid)
	}
	f.Data = m[start:stop:stop]
	return slotFrame
}

// Write copies frames into free TX slots and flushes them with one sendto
// per ring-full (one per batch normally). It returns how many frames were
// handed to the interface; the others are counted in TxDropped (too large,
// ring full, link down) or TxErrors (rejected by the kernel).
func (p *Port) Write(frames []port.Frame) (int, error) {
	if !p.enter() {
		return 0, port.ErrClosed
	}
	defer p.leave()
	p.txMu.Lock()
	defer p.txMu.Unlock()

	if p.mmsg != nil {
		sent, bytes, dropped, errs, err := p.writeMmsgLocked(frames)
		p.ctr.TxFrames.Add(uint64(sent))
		p.ctr.TxBytes.Add(uint64(bytes))
		p.ctr.TxDropped.Add(uint64(dropped))
		p.ctr.TxErrors.Add(uint64(errs))
		return sent, err
	}

	var res txResult
	var err error
	for i := 0; i < len(frames) && err == nil; {
		first, q := p.txHead, 0
		for i < len(frames) && q < p.tx.frameNr {
			d := frames[i].Data
			if len(d) < ethHdrLen || len(d) > p.txMaxData {
				res.dropped++
				i++
				continue
			}
			off := p.txBase + p.tx.frameOff(p.txHead)
			if loadStatus(p.mem, off+p.txStatus) != unix.TP_STATUS_AVAILABLE {
				if q > 0 || !p.waitSlotLocked(off) {
					break // the ring is full: send what is queued, or give up
				}
			}
			dst := off + p.hdr
			if p.vnet {
				frames[i].VNet.Encode(p.mem[dst : dst+p.vlen])
				dst += p.vlen
			}
			copy(p.mem[dst:dst+len(d)], d)
			if p.v3 {
				binary.NativeEndian.PutUint32(p.mem[off+v3NextOffset:], 0)
			}
			binary.NativeEndian.PutUint32(p.mem[off+p.txLenOff:], uint32(p.vlen+len(d)))
			storeStatus(p.mem, off+p.txStatus, unix.TP_STATUS_SEND_REQUEST)
			p.txHead = (p.txHead + 1) % p.tx.frameNr
			p.txIdx[q] = i
			q++
			i++
		}
		if q == 0 {
			res.dropped += len(frames) - i
			break
		}
		var bad int
		bad, err = p.flushLocked(first, q, &res)
		if bad >= 0 {
			// The kernel rejected the frame in slot bad and stopped
			// there; the frames after it go again.
			i = p.txIdx[bad] + 1
		}
	}
	p.ctr.TxFrames.Add(uint64(res.sent))
	p.ctr.TxBytes.Add(uint64(res.bytes))
	if res.dropped > 0 {
		p.ctr.TxDropped.Add(uint64(res.dropped))
	}
	if res.errors > 0 {
		p.ctr.TxErrors.Add(uint64(res.errors))
	}
	return res.sent, err
}

type txResult struct{ sent, bytes, dropped, errors int }

// flushLocked has the kernel send the q slots queued from first and
// accounts for them. The kernel walks the ring from its own head, which
// must stay equal to ours. A frame it rejects (TP_STATUS_WRONG_FORMAT)
// stops it there, with its head on that slot: the slot and those after it
// are reset to AVAILABLE, txHead goes back to it, and flushLocked returns
// its position so that Write requeues the frames after it. Otherwise it
// returns -1; slots the kernel did not reach are taken back and dropped.
// txSlotWait bounds how long Write waits for a transmit slot to come back
// from the kernel before it drops the frame.
const txSlotWait = 2 * time.Millisecond

// waitSlotLocked waits, yielding the CPU, until the TX slot at off is
// AVAILABLE again, for at most txSlotWait. txMu is held.
func (p *Port) waitSlotLocked(off int) bool {
	deadline := time.Now().Add(txSlotWait)
	for loadStatus(p.mem, off+p.txStatus) != unix.TP_STATUS_AVAILABLE {
		if p.closed.Load() || time.Now().After(deadline) {
			return false
		}
		runtime.Gosched()
	}
	return true
}

func (p *Port) flushLocked(first, q int, res *txResult) (bad int, err error) {
	k := 0 // slots [0,k) are accounted for
	for attempt := 0; k < q; attempt++ {
		// Without MSG_DONTWAIT the kernel waits until every skb sent from
		// the ring is freed, and a receiver that holds its socket lock
		// keeps them (un-orphaned, in its backlog) for as long as it
		// likes: the switch would run at the pace of the slowest reader.
		// Slots still in flight stay SENDING and are reused once the
		// kernel marks them AVAILABLE.
		serr := unix.Sendto(p.fd, nil, unix.MSG_DONTWAIT, nil)
		for k < q {
			off := p.txBase + p.tx.frameOff((first+k)%p.tx.frameNr)
			st := loadStatus(p.mem, off+p.txStatus)
			if st == unix.TP_STATUS_SEND_REQUEST {
				break
			}
			if st == unix.TP_STATUS_WRONG_FORMAT {
				res.errors++
				p.rewindLocked(first, k, q)
				return k, nil
			}
			// AVAILABLE (done) or SENDING (in flight).
			res.sent++
			res.bytes += int(binary.NativeEndian.Uint32(p.mem[off+p.txLenOff:])) - p.vlen
			k++
		}
		if k == q {
			return -1, nil
		}
		if (serr == nil || serr == unix.EINTR || serr == unix.EAGAIN || serr == unix.ENOBUFS) && attempt < 4 {
			continue
		}
		// The kernel gave up before the end: take the rest back.
		p.rewindLocked(first, k, q)
		res.dropped += q - k
		if serr != nil {
			res.errors++
			if serr == unix.ENXIO || serr == unix.ENODEV || (serr == unix.ENETDOWN && p.linkGone()) {
				return -1, p.errLinkGone("write")
			}
		}
		return -1, nil
	}
	return -1, nil
}

// rewindLocked returns slots [k,q) from first to AVAILABLE and moves
// txHead back to slot k, where the kernel's head stopped.
func (p *Port) rewindLocked(first, k, q int) {
	for j := k; j < q; j++ {
		off := p.txBase + p.tx.frameOff((first+j)%p.tx.frameNr)
		storeStatus(p.mem, off+p.txStatus, unix.TP_STATUS_AVAILABLE)
	}
	p.txHead = (first + k) % p.tx.frameNr
}
