// Package tap is a port backend over TAP devices opened with
// IFF_TAP|IFF_NO_PI|IFF_VNET_HDR.
//
// Every frame carries the 10-byte virtio-net header (TUNSETVNETHDRSZ 10),
// and TUNSETOFFLOAD asks the kernel for partial checksums and TCP (and,
// where the kernel has it, UDP) segmentation offload, so the device hands
// over GSO super-frames up to 64 KiB with their offload metadata in
// Frame.VNet, and takes them back the same way on Write.
//
// One Queue is one queue file descriptor of the device; a multiqueue device
// has several, each a port.Port of its own, read by its own goroutine. A
// TAP fd moves one frame per read or write syscall, so a batch costs one
// syscall per frame; what batching saves is the wake-ups: Read blocks in
// Go's netpoller for the first frame, then keeps reading without blocking
// until the batch is full or the queue is empty.
//
// Only Linux is supported; elsewhere New and Open return ErrUnsupported.
package tap

import (
	"errors"

	"github.com/switchyard-net/switchyard/switch/frame"
	"github.com/switchyard-net/switchyard/switch/port"
)

// ErrUnsupported is returned by New and Open on systems without TAP devices.
var ErrUnsupported = errors.New("tap: TAP devices are only supported on Linux")

// Config tunes the queues of a device. A nil *Config means defaults.
type Config struct {
	// BatchSize is the most frames one Read returns; default
	// DefaultBatchSize. Each queue holds BatchSize receive buffers of
	// BufSize bytes.
	BatchSize int
	// MTU is what the queues report from MTU(): the device's MTU, which
	// the caller set up; default 1500.
	MTU int
	// DisableOffload clears the device's offloads (TUNSETOFFLOAD 0): the
	// kernel then hands over complete frames. Writes still take frames
	// with pending offloads.
	DisableOffload bool
}

// Defaults.
const (
	DefaultBatchSize = 32
	DefaultMTU       = 1500
	// BufSize is the size of one receive buffer: the virtio-net header
	// and the largest GSO frame (64 KiB of L3 packet plus an Ethernet
	// header with a VLAN tag), with some room to tell a frame that filled
	// the buffer (dropped as possibly truncated).
	BufSize = frame.VNetHdrLen + 65536 + 18 + 46
	// MaxFrameLen is the longest frame Write takes.
	MaxFrameLen = 65536 + 18
)

// Offload flags as TUNSETOFFLOAD takes them (linux/if_tun.h).
const (
	OffloadCsum   = 0x01 // TUN_F_CSUM
	OffloadTSO4   = 0x02 // TUN_F_TSO4
	OffloadTSO6   = 0x04 // TUN_F_TSO6
	OffloadTSOECN = 0x08 // TUN_F_TSO_ECN
	OffloadUSO4   = 0x20 // TUN_F_USO4
	OffloadUSO6   = 0x40 // TUN_F_USO6
)

func (c *Config) withDefaults() Config {
	var out Config
	if c != nil {
		out = *c
	}
	if out.BatchSize <= 0 {
		out.BatchSize = DefaultBatchSize
	}
	if out.MTU <= 0 {
		out.MTU = DefaultMTU
	}
	return out
}

var (
	_ port.Port      = (*Queue)(nil)
	_ port.Offloader = (*Queue)(nil)
	_ port.Statser   = (*Queue)(nil)
	_ port.Namer     = (*Queue)(nil)
)
