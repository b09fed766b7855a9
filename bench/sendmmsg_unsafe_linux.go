package bench

import (
	"fmt"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsgSender sends batches of frames through a raw AF_PACKET socket with
// sendmmsg, bypassing the qdisc: message i of a batch is frames[i mod
// len(frames)]. The socket is bound with protocol 0, so it receives
// nothing.
type mmsgSender struct {
	fd     int
	frames [][]byte
	iov    []unix.Iovec
	hdrs   []unix.Mmsghdr
	sent   uint64
	errors uint64
}

// newMmsgSender opens the socket on ifname in the calling thread's
// namespace.
func newMmsgSender(ifname string, frames [][]byte, batch int) (*mmsgSender, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", ifname, err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("PACKET_QDISC_BYPASS: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind to %s: %w", ifname, err)
	}
	m := &mmsgSender{fd: fd, frames: frames, iov: make([]unix.Iovec, batch), hdrs: make([]unix.Mmsghdr, batch)}
	for i := range m.hdrs {
		f := m.frames[i%len(frames)]
		m.iov[i].Base = &f[0]
		m.iov[i].SetLen(len(f))
		m.hdrs[i].Hdr.Iov = &m.iov[i]
		m.hdrs[i].Hdr.SetIovlen(1)
	}
	return m, nil
}

// send sends n (at most the batch size) frames. A full device queue
// (ENOBUFS) is counted, not returned.
func (m *mmsgSender) send(n int) error {
	n = min(n, len(m.hdrs))
	r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(m.fd),
		uintptr(unsafe.Pointer(&m.hdrs[0])), uintptr(n), 0, 0, 0)
	switch errno {
	case 0:
		m.sent += uint64(r)
		return nil
	case unix.ENOBUFS, unix.EAGAIN, unix.EINTR:
		m.errors++
		return nil
	}
	return fmt.Errorf("sendmmsg: %w", errno)
}

func (m *mmsgSender) close() { unix.Close(m.fd) }
