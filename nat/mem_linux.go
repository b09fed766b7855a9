package nat

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugeThreshold is the size from which the table's arrays are mapped
// directly and advised to use huge pages: a million-flow table spans
// ~100 MiB, and with 4 KiB pages nearly every lookup in it would also miss
// the TLB.
const hugeThreshold = 8 << 20

// allocSlice returns a zeroed []T of n elements. T must hold no pointers.
// Large slices are mmap'd with MADV_HUGEPAGE and never freed: a NAT lives
// as long as its network, and the memory is returned on exit.
func allocSlice[T any](n int) []T {
	var z T
	size := int(unsafe.Sizeof(z)) * n
	if size < hugeThreshold {
		return make([]T, n)
	}
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return make([]T, n)
	}
	_ = unix.Madvise(mem, unix.MADV_HUGEPAGE)
	return unsafe.Slice((*T)(unsafe.Pointer(&mem[0])), n)
}
