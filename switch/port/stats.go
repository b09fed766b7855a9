package port

import "sync/atomic"

// Stats is a snapshot of a port's counters.
type Stats struct {
	RxFrames  uint64 `json:"rx_frames"`
	RxBytes   uint64 `json:"rx_bytes"`
	TxFrames  uint64 `json:"tx_frames"`
	TxBytes   uint64 `json:"tx_bytes"`
	RxDropped uint64 `json:"rx_dropped"` // lost before we saw them: ring full, kernel drops
	TxDropped uint64 `json:"tx_dropped"` // handed to Write but not sent: ring full, too large
	RxErrors  uint64 `json:"rx_errors"`  // malformed offload headers, truncated reads
	TxErrors  uint64 `json:"tx_errors"`  // failed send syscalls
}

// Counters is what a port embeds to keep Stats. The fields are updated with
// atomics, so RX and TX goroutines can bump them without a lock; update
// them once per batch, not per frame, where the backend allows.
type Counters struct {
	RxFrames, RxBytes, TxFrames, TxBytes atomic.Uint64
	RxDropped, TxDropped                 atomic.Uint64
	RxErrors, TxErrors                   atomic.Uint64
}

// Snapshot returns the current values.
func (c *Counters) Snapshot() Stats {
	return Stats{
		RxFrames:  c.RxFrames.Load(),
		RxBytes:   c.RxBytes.Load(),
		TxFrames:  c.TxFrames.Load(),
		TxBytes:   c.TxBytes.Load(),
		RxDropped: c.RxDropped.Load(),
		TxDropped: c.TxDropped.Load(),
		RxErrors:  c.RxErrors.Load(),
		TxErrors:  c.TxErrors.Load(),
	}
}
