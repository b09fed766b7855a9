package tap

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/switchyard-net/switchyard/switch/frame"
	"github.com/switchyard-net/switchyard/switch/port"
	"golang.org/x/sys/unix"
)

// Queue is one queue file descriptor of a TAP device, as a port.Port.
//
// Read has one caller at a time. Write may be called from many goroutines
// at once. Close may be called at any time; it wakes a blocked Read.
type Queue struct {
	name     string
	batch    int
	mtu      int
	offloads uint // what TUNSETOFFLOAD accepted (set on every queue's device)

	f  *os.File        // the queue fd, non-blocking, registered with the netpoller
	rc syscall.RawConn // f's, for reads through the netpoller
	fd int             // f's fd, for writes; valid while closed is false under mu

	// mu orders writers (read-locked around their syscalls on fd) against
	// Close (write-locked while it marks the queue closed), so that no
	// write uses fd after the file is closed and the number reused.
	mu     sync.RWMutex
	closed atomic.Bool

	// Receive buffers and the state of the read in flight, owned by the
	// single reader. readFn is q.readBatch, bound once so that Read does
	// not allocate a closure per call.
	bufs   [][]byte
	lens   []int
	rdN    int
	rdMax  int
	rdErr  error
	readFn func(fd uintptr) bool

	ctr port.Counters
}

// New wraps the queue file descriptors of a TAP device opened with
// IFF_TAP|IFF_NO_PI|IFF_VNET_HDR (as netns.AddTap returns them) as Queues
// named name. It takes ownership of files: they are closed, on success and
// on failure (the Queues hold duplicates of their fds). It sets the virtio
// header size to 10 bytes and the device's offloads.
func New(name string, files []*os.File, cfg *Config) ([]*Queue, error) {
	c := cfg.withDefaults()
	fds := make([]int, 0, len(files))
	var err error
	for _, f := range files {
		if err == nil {
			var fd int
			fd, err = dupFile(f)
			if err == nil {
				fds = append(fds, fd)
			}
		}
		f.Close()
	}
	if err == nil && len(fds) == 0 {
		err = errors.New("no queue files")
	}
	if err != nil {
		closeAll(fds)
		return nil, fmt.Errorf("tap %s: %w", name, err)
	}
	return newQueues(name, fds, c)
}

// Open creates the TAP device name (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, and
// IFF_MULTI_QUEUE when queues > 1) in the network namespace of the calling
// thread, or attaches to the existing device of that name if its flags
// match, and returns its queues. Run it inside netns.Do to choose the
// namespace. A device Open creates is not persistent: it goes away with
// its last queue. Open leaves the link's state (up, addresses) alone.
func Open(name string, queues int, cfg *Config) ([]*Queue, error) {
	c := cfg.withDefaults()
	if queues <= 0 {
		queues = 1
	}
	fds := make([]int, 0, queues)
	for i := 0; i < queues; i++ {
		fd, err := openQueue(name, queues > 1)
		if err != nil {
			closeAll(fds)
			return nil, fmt.Errorf("tap %s: open queue %d: %w", name, i, err)
		}
		fds = append(fds, fd)
	}
	return newQueues(name, fds, c)
}

func openQueue(name string, multi bool) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return -1, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if multi {
		flags |= unix.IFF_MULTI_QUEUE
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("TUNSETIFF: %w", err)
	}
	return fd, nil
}

// dupFile duplicates f's descriptor (close-on-exec).
func dupFile(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	nfd := -1
	var derr error
	if err := rc.Control(func(fd uintptr) {
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, fmt.Errorf("dup %s: %w", f.Name(), derr)
	}
	return nfd, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// newQueues configures the device through fds and wraps them. It owns fds.
func newQueues(name string, fds []int, c Config) ([]*Queue, error) {
	offl, err := configure(fds)
	if err != nil {
		closeAll(fds)
		return nil, fmt.Errorf("tap %s: %w", name, err)
	}
	if c.DisableOffload {
		if err := unix.IoctlSetInt(fds[0], unix.TUNSETOFFLOAD, 0); err != nil {
			closeAll(fds)
			return nil, fmt.Errorf("tap %s: TUNSETOFFLOAD 0: %w", name, err)
		}
		offl = 0
	}
	qs := make([]*Queue, 0, len(fds))
	for i, fd := range fds {
		q, err := newQueue(name, fd, c, offl)
		if err != nil {
			closeAll(fds[i+1:])
			for _, q := range qs {
				q.Close()
			}
			return nil, fmt.Errorf("tap %s: queue %d: %w", name, i, err)
		}
		qs = append(qs, q)
	}
	return qs, nil
}

// configure checks that fds are TAP queues with the virtio-net header on,
// sets its size on each and negotiates the offloads on the device. It
// returns the offloads the kernel accepted.
func configure(fds []int) (uint, error) {
	for _, fd := range fds {
		ifr, err := unix.NewIfreq("")
		if err != nil {
			return 0, err
		}
		if err := unix.IoctlIfreq(fd, unix.TUNGETIFF, ifr); err != nil {
			return 0, fmt.Errorf("not a TAP queue (TUNGETIFF): %w", err)
		}
		const want = unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR
		if fl := ifr.Uint16(); fl&want != want {
			return 0, fmt.Errorf("device flags %#x lack IFF_TAP|IFF_NO_PI|IFF_VNET_HDR", fl)
		}
		if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, frame.VNetHdrLen); err != nil {
			return 0, fmt.Errorf("TUNSETVNETHDRSZ: %w", err)
		}
	}
	// The offloads belong to the device; any queue sets them. Newer
	// kernels take UDP segmentation too; older ones refuse unknown bits
	// with EINVAL, so step down.
	for _, offl := range []uint{
		OffloadCsum | OffloadTSO4 | OffloadTSO6 | OffloadTSOECN | OffloadUSO4 | OffloadUSO6,
		OffloadCsum | OffloadTSO4 | OffloadTSO6 | OffloadTSOECN,
		OffloadCsum | OffloadTSO4 | OffloadTSO6,
		OffloadCsum,
	} {
		err := unix.IoctlSetInt(fds[0], unix.TUNSETOFFLOAD, int(offl))
		if err == nil {
			return offl, nil
		}
		if !errors.Is(err, unix.EINVAL) {
			return 0, fmt.Errorf("TUNSETOFFLOAD: %w", err)
		}
	}
	return 0, nil
}

func newQueue(name string, fd int, c Config, offl uint) (*Queue, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("set non-blocking: %w", err)
	}
	// A non-blocking fd makes os.NewFile register it with the netpoller.
	f := os.NewFile(uintptr(fd), "tap:"+name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	q := &Queue{
		name:     name,
		batch:    c.BatchSize,
		mtu:      c.MTU,
		offloads: offl,
		f:        f,
		rc:       rc,
		fd:       fd,
		bufs:     make([][]byte, c.BatchSize),
		lens:     make([]int, c.BatchSize),
	}
	slab := make([]byte, c.BatchSize*BufSize)
	for i := range q.bufs {
		q.bufs[i] = slab[i*BufSize : (i+1)*BufSize : (i+1)*BufSize]
	}
	q.readFn = q.readBatch
	return q, nil
}

// Read blocks until at least one frame has arrived, then reads on without
// blocking until frames (up to BatchSize) is full or the queue is empty.
// The views in frames[:n] stay valid until the next Read.
func (q *Queue) Read(frames []port.Frame) (int, error) {
	max := min(len(frames), q.batch)
	if max == 0 {
		return 0, nil
	}
	for {
		if q.closed.Load() {
			return 0, port.ErrClosed
		}
		q.rdN, q.rdMax, q.rdErr = 0, max, nil
		err := q.rc.Read(q.readFn)
		got := q.rdN
		if got == 0 {
			if q.closed.Load() {
				return 0, port.ErrClosed
			}
			if err == nil {
				err = q.rdErr
			}
			if err == nil {
				continue
			}
			return 0, q.ioError("read", err)
		}
		n, bytes, bad := 0, 0, 0
		for i := 0; i < got; i++ {
			b := q.bufs[i][:q.lens[i]]
			if len(b) < frame.VNetHdrLen+14 || len(b) == BufSize {
				bad++ // runt, or filled the buffer: possibly truncated
				continue
			}
			fr := &frames[n]
			fr.VNet.Decode(b)
			fr.Data = b[frame.VNetHdrLen:]
			bytes += len(fr.Data)
			n++
		}
		if bad > 0 {
			q.ctr.RxErrors.Add(uint64(bad))
		}
		if n > 0 {
			q.ctr.RxFrames.Add(uint64(n))
			q.ctr.RxBytes.Add(uint64(bytes))
			return n, nil
		}
	}
}

// readBatch is the netpoller callback of Read: it reads frames until the
// batch is full (done), the queue is empty (done if it has frames, else
// wait), or an error (done; reported only when no frame was read).
func (q *Queue) readBatch(fd uintptr) bool {
	for q.rdN < q.rdMax {
		m, err := unix.Read(int(fd), q.bufs[q.rdN])
		switch err {
		case nil:
			q.lens[q.rdN] = m
			q.rdN++
		case unix.EINTR:
		case unix.EAGAIN:
			return q.rdN > 0
		default:
			q.rdErr = err
			return true
		}
	}
	return true
}

// Write writes frames, one writev each with the virtio-net header built
// from Frame.VNet, and returns how many the device took. Frames that are
// empty, too long, or refused while the link is down are counted as
// TxDropped; frames the kernel rejects (a bad offload header) as TxErrors.
// Once the device is gone, Write stops with an error wrapping
// port.ErrLinkGone.
func (q *Queue) Write(frames []port.Frame) (int, error) {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed.Load() {
		return 0, port.ErrClosed
	}
	var (
		hdr           [frame.VNetHdrLen]byte
		sent, bytes   int
		dropped, errs int
		fatal         unix.Errno
	)
	for i := range frames {
		fr := &frames[i]
		if len(fr.Data) == 0 || len(fr.Data) > MaxFrameLen {
			dropped++
			continue
		}
		fr.VNet.Encode(hdr[:])
		var e unix.Errno
		for {
			_, e = writeFrame(q.fd, &hdr, fr.Data)
			if e != unix.EINTR {
				break
			}
		}
		switch e {
		case 0:
			sent++
			bytes += len(fr.Data)
		case unix.EAGAIN, unix.ENOBUFS, unix.EIO:
			// Queue full, or the link is down (EIO): drop.
			dropped++
		case unix.EBADFD, unix.ENXIO, unix.ENODEV:
			fatal = e
		default:
			errs++
		}
		if fatal != 0 {
			break
		}
	}
	if sent > 0 {
		q.ctr.TxFrames.Add(uint64(sent))
		q.ctr.TxBytes.Add(uint64(bytes))
	}
	if dropped > 0 {
		q.ctr.TxDropped.Add(uint64(dropped))
	}
	if errs > 0 {
		q.ctr.TxErrors.Add(uint64(errs))
	}
	if fatal != 0 {
		q.ctr.TxErrors.Add(1)
		return sent, q.ioError("write", fatal)
	}
	return sent, nil
}

// ioError wraps a syscall error of op; a device that is gone gives an
// error wrapping port.ErrLinkGone.
func (q *Queue) ioError(op string, err error) error {
	if errors.Is(err, unix.EBADFD) || errors.Is(err, unix.ENXIO) || errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("tap %s: %s: %w (%w)", q.name, op, port.ErrLinkGone, err)
	}
	return fmt.Errorf("tap %s: %s: %w", q.name, op, err)
}

// Close closes the queue, waking a blocked Read, which returns
// port.ErrClosed. Closing the last queue of a device that is not
// persistent removes the device. Safe to call more than once.
func (q *Queue) Close() error {
	q.mu.Lock()
	already := q.closed.Swap(true)
	q.mu.Unlock()
	if already {
		return nil
	}
	if err := q.f.Close(); err != nil {
		return fmt.Errorf("tap %s: close: %w", q.name, err)
	}
	return nil
}

// BatchSize is the most frames one Read returns.
func (q *Queue) BatchSize() int { return q.batch }

// MTU is the device MTU given in Config.
func (q *Queue) MTU() int { return q.mtu }

// Offloads reports true: with the virtio-net header on, the device takes
// GSO super-frames and partial checksums on Write.
func (q *Queue) Offloads() bool { return true }

// KernelOffloads returns the TUNSETOFFLOAD flags (Offload*) the kernel
// accepted: what kinds of pending offloads Read may hand over.
func (q *Queue) KernelOffloads() uint { return q.offloads }

// Stats returns the queue's counters.
func (q *Queue) Stats() port.Stats { return q.ctr.Snapshot() }

// Name is the name given to New or Open.
func (q *Queue) Name() string { return q.name }
