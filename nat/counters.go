package nat

import "sync/atomic"

// addCounts adds a packet to *pkts and size to *bytes, one direction of one
// flow. Atomic adds: exact however many goroutines translate a direction.
// Unlocked adds (a plain ADD to memory) were tried and measured against
// them: 2-3 ns faster with one warm flow, no difference at 1,000,000 cold
// flows (79-82 ns per packet batched either way), for counts that could be
// lost under concurrency; they were not kept.
func addCounts(pkts *uint32, bytes *uint64, size uint64) {
	atomic.AddUint32(pkts, 1)
	atomic.AddUint64(bytes, size)
}
