//go:build !amd64

package nat

import "sync/atomic"

// addCounts adds a packet to *pkts and size to *bytes. Where there is no
// assembly version of the relaxed increments (see counters_amd64.go) it
// uses atomic adds: exact, and dearer.
func addCounts(pkts *uint32, bytes *uint64, size uint64) {
	atomic.AddUint32(pkts, 1)
	atomic.AddUint64(bytes, size)
}
