//go:build linux

package tap

import (
	"unsafe"

	"github.com/switchyard-net/switchyard/switch/frame"
	"golang.org/x/sys/unix"
)

// writeFrame writes one frame, virtio-net header hdr then data, with a
// single writev on fd. It does not allocate: the iovecs live on the stack.
// data must not be empty.
func writeFrame(fd int, hdr *[frame.VNetHdrLen]byte, data []byte) (int, unix.Errno) {
	iov := [2]unix.Iovec{
		{Base: &hdr[0], Len: frame.VNetHdrLen},
		{Base: unsafe.SliceData(data), Len: uint64(len(data))},
	}
	n, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	return int(n), e
}
