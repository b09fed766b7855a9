// Package port defines how the switch engines move frames in and out: a
// batched Port interface, its optional capabilities, per-port counters and
// the errors ports return. Backends live in sub-packages: afpacket (mmap
// rings), tap (TAP devices) and porttest (in-memory, for tests and benchmarks).
package port

import (
	"errors"

	"github.com/switchyard-net/switchyard/switch/frame"
)

// Frame is one frame as a port hands it over or takes it.
type Frame struct {
	// Data is the Ethernet frame, from the destination MAC on. On Read it
	// is a view into the port's own memory (a ring slot or a pooled
	// buffer), valid until the next Read on that port; the engine may
	// rewrite it in place. On Write it is copied before Write returns.
	Data []byte
	// VNet is the frame's offload metadata. The zero value is a complete
	// frame: no segmentation pending, checksums final.
	VNet frame.VNetHdr
}

// Port is a batched frame endpoint.
//
// Read has a single caller at a time (the port's RX goroutine). Write may be
// called from several goroutines at once: every ingress goroutine of a
// switch can forward to the same port. Close may be called at any time,
// from any goroutine, also while a Read or Write is in flight: those return
// ErrClosed, and no memory the port hands out is released while they run.
type Port interface {
	// Read blocks until at least one frame is available and fills
	// frames[:n] with views. It returns (0, ErrClosed) once the port is
	// closed, and an error wrapping ErrLinkGone when the interface under
	// the port has disappeared. The views stay valid until the next Read.
	Read(frames []Frame) (n int, err error)
	// Write queues frames for transmission, one syscall for the batch
	// where the backend allows it, and returns how many it took. Frames
	// it could not take (transmit ring full, frame too large) are dropped
	// and counted in the port's TxDropped, not retried.
	Write(frames []Frame) (n int, err error)
	// BatchSize is the most frames one Read returns; a fixed number.
	BatchSize() int
	// MTU is the largest L3 payload the port carries in one ordinary
	// (non-GSO) frame.
	MTU() int
	// Close releases the port. It is safe to call more than once.
	Close() error
}

// Offloader is implemented by ports that take frames with pending offloads
// (GSO super-frames and partial checksums, as described by Frame.VNet) on
// Write. A frame with pending offloads must not go to a port that does not
// take them without being finished in software first.
type Offloader interface {
	Offloads() bool
}

// Statser is implemented by ports that keep counters.
type Statser interface {
	Stats() Stats
}

// Namer is implemented by ports that sit on a named interface.
type Namer interface {
	Name() string
}

var (
	// ErrClosed is returned by Read and Write on a closed port.
	ErrClosed = errors.New("port closed")
	// ErrLinkGone is wrapped by errors from a port whose interface has
	// disappeared or gone down for good.
	ErrLinkGone = errors.New("link gone")
)
