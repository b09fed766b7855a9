package bench

import (
	"fmt"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsgSender sends batches of one frame through a raw AF_PACKET socket
// with sendmmsg, bypassing the qdisc. The socket is bound with protocol 0,
// so it receives nothing.
type mmsgSender struct {
	fd     int
	frame  []byte
	iov    []unix.Iovec
	hdrs   []unix.Mmsghdr
	sent   uint64
	errors uint64
}

// newMmsgSender opens the socket on ifname in the calling thread's
// namespace.
func newMmsgSender(ifname string, frame []byte, batch int) (*mmsgSender, error) {
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
	m := &mmsgSender{fd: fd, frame: frame, iov: make([]unix.Iovec, batch), hdrs: make([]unix.Mmsghdr, batch)}
	for i := range m.hdrs {
		m.iov[i].Base = &m.frame[0]
		m.iov[i].SetLen(len(m.frame))
		m.hdrs[i].Hdr.Iov = &m.iov[i]
		m.hdrs[i].Hdr.SetIovlen(1)
	}
	return m, nil
}

// send sends one batch. A full device queue (ENOBUFS) is counted, not
// returned.
func (m *mmsgSender) send() error {
	n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(m.fd),
		uintptr(unsafe.Pointer(&m.hdrs[0])), uintptr(len(m.hdrs)), 0, 0, 0)
	switch errno {
	case 0:
		m.sent += uint64(n)
		return nil
	case unix.ENOBUFS, unix.EAGAIN, unix.EINTR:
		m.errors++
		return nil
	}
	return fmt.Errorf("sendmmsg: %w", errno)
}

func (m *mmsgSender) close() { unix.Close(m.fd) }
