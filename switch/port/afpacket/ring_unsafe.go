//go:build linux

package afpacket

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The ring memory is shared with the kernel. Only the status words are
// written by both sides; they are accessed with atomics so that reading a
// slot's contents happens after observing the kernel's hand-over, and
// handing a slot back happens after we are done with it. Everything else in
// a slot is owned by one side at a time and read with plain loads.

// loadStatus atomically reads the 32-bit status word at mem[off:].
func loadStatus(mem []byte, off int) uint32 {
	_ = mem[off+3]
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&mem[off])))
}

// storeStatus atomically writes the 32-bit status word at mem[off:].
func storeStatus(mem []byte, off int, v uint32) {
	_ = mem[off+3]
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&mem[off])), v)
}

// kernelDrops reads and resets the drop count of the packet socket fd
// (PACKET_STATISTICS; v3: the socket has TPACKET_V3, whose statistics are
// longer), without allocating: Read calls it while looking for lost
// markers. It returns 0 on error.
func kernelDrops(fd int, v3 bool) uint32 {
	var st unix.TpacketStatsV3 // starts as unix.TpacketStats does
	n := uint32(unsafe.Sizeof(unix.TpacketStats{}))
	if v3 {
		n = uint32(unsafe.Sizeof(st))
	}
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS,
		uintptr(unsafe.Pointer(&st)), uintptr(unsafe.Pointer(&n)), 0)
	if errno != 0 {
		return 0
	}
	return st.Drops
}

// mapRings maps both rings of fd: the RX ring first, then the TX ring.
func mapRings(fd, size int) ([]byte, error) {
	return unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
}

// unmapRings releases the mapping; no view into it may be used afterwards.
func unmapRings(mem []byte) error {
	return unix.Munmap(mem)
}
