// Package afpacket is a port backend over an AF_PACKET socket with mmap'd
// TPACKET_V3 (or TPACKET_V2) receive and transmit rings.
//
// Read hands out views into the RX ring, valid until the next Read, when
// the blocks (V3) or slots (V2) behind them go back to the kernel; frames
// longer than the MTU come by default through a second socket without a
// ring (RxSplit). Write sends a batch with one sendmmsg straight from the
// callers' buffers (or through a TX ring: TxRing). With the virtio-net header on (the default),
// veth's GSO super-frames up to 64 KiB pass whole in both directions and
// Frame.VNet carries their offload metadata.
//
// Only Linux is supported; elsewhere Open returns ErrUnsupported.
package afpacket

import (
	"errors"
	"time"

	"github.com/switchyard-net/switchyard/switch/port"
)

// ErrUnsupported is returned by Open on systems without AF_PACKET rings.
var ErrUnsupported = errors.New("afpacket: AF_PACKET rings are only supported on Linux")

// Version selects the TPACKET ring format.
type Version int

const (
	// VersionDefault is TPACKET_V2 for the RX ring. TPACKET_V3 wakes the
	// reader only when a block retires, and the kernel's retire timer
	// has a 1 ms floor: every lone frame (a ping, a request, an ACK on an
	// idle flow) would wait up to 1 ms at each hop. Measured here through
	// the switch: UDP round trip p50 999 us with V3, 55-130 us with V2.
	VersionDefault Version = 0
	// TPacketV2 rings have one fixed-size slot per frame and wake the
	// reader per frame: lowest latency, but every slot must hold a 64 KiB
	// GSO frame, so the ring is memory-hungry and shallow.
	TPacketV2 Version = 2
	// TPacketV3 rings pack frames into blocks and wake the reader only
	// when a block is retired: full, or when BlockTimeout expires. A lone
	// frame therefore waits up to BlockTimeout (at least 1 ms).
	TPacketV3 Version = 3
)

func (v Version) String() string {
	switch v {
	case TPacketV2:
		return "TPACKET_V2"
	case TPacketV3:
		return "TPACKET_V3"
	case VersionDefault:
		return "TPACKET_V2"
	}
	return "TPACKET_?"
}

// Config tunes a Port. The zero value (or a nil *Config) means defaults.
// Sizes are in bytes; block sizes must be multiples of the page size.
type Config struct {
	// Version is the ring format; default TPACKET_V2 (see VersionDefault).
	Version Version

	// RxBlockSize and RxBlockCount size the V3 RX ring. A block must
	// hold the largest frame the ring takes (with RxRing and the vnet
	// header on, a 64 KiB GSO frame and headers). Defaults: 128 KiB x 32.
	RxBlockSize  int
	RxBlockCount int
	// RxFrameSize and RxFrameCount size the V2 RX ring (one frame per
	// slot). Defaults: with RxSplit, an MTU-sized frame and 512 slots;
	// with RxRing, a 64 KiB GSO frame with the vnet header on (MTU-sized
	// without it) and 128 slots.
	RxFrameSize  int
	RxFrameCount int
	// TxFrameSize and TxFrameCount size the TX ring (one frame per slot,
	// both versions). Defaults: a 64 KiB GSO frame with the vnet header
	// on (MTU-sized without it); BatchSize slots.
	TxFrameSize  int
	TxFrameCount int

	// BlockTimeout is the V3 block-retire timeout, rounded up to whole
	// milliseconds; default (and minimum) 1 ms.
	BlockTimeout time.Duration

	// DisableVNetHdr turns PACKET_VNET_HDR off: frames are then complete
	// (the kernel segments GSO and finishes checksums) and Offloads
	// reports false.
	DisableVNetHdr bool
	// RxSteering has Open steer each flow's frames to one of the CPUs the
	// process may run on (the interface's rps_cpus), when no mask is set
	// yet; Close restores it. It keeps a TCP sender's segments in order
	// (no spurious retransmits) but moves the copy into the ring onto the
	// switch's CPUs, which costs small-frame rate: see steer_linux.go.
	RxSteering bool
	// DisableQdiscBypass sends through the interface's qdisc instead of
	// straight to the driver (PACKET_QDISC_BYPASS, on by default).
	DisableQdiscBypass bool

	// BatchSize is the most frames one Read returns; default 64.
	BatchSize int

	// TxMode is how frames are transmitted; default TxSendmmsg.
	TxMode TxMode

	// RxMode is how frames are received; default RxSplit.
	RxMode RxMode

	// BusyPoll is how long Read keeps checking the ring before it sleeps
	// in poll(2) when the ring is empty. Zero (the default) sleeps at
	// once. On a CPU the switch has to itself, a few tens of microseconds
	// save the wakeup on every frame of a request/response exchange.
	BusyPoll time.Duration
}

// TxMode selects the transmit path.
type TxMode int

const (
	// TxSendmmsg (the default) sends a batch with one sendmmsg straight
	// from the callers' buffers: no copy in user space, one in the
	// kernel. A batch the socket has no room for is dropped and counted,
	// never waited for.
	TxSendmmsg TxMode = iota
	// TxRing copies each frame into a slot of the mmap'd TX ring and
	// flushes a batch with one sendto. It costs a second copy on a veth
	// or any other device that must not hold on to user pages: the
	// kernel copies the ring's pages again before the frame can reach a
	// receiver (skb_copy_ubufs). Measured through the bench's TCP test
	// (switch on its own CPU): 10.9 Gbit/s against 13.8 with sendmmsg,
	// the same 64-byte frame rate and round-trip time.
	TxRing
)

// RxMode selects the receive path.
type RxMode int

const (
	// RxSplit (the default) receives frames up to the MTU into the RX
	// ring and longer ones (GSO super-frames) with recvmmsg from a second
	// socket, which takes them without a copy in the sender's context: on
	// a veth, the ring's copy of a TCP sender's 64 KiB frames runs on the
	// sending endpoint's CPU, as costly as the sender's own. The ring
	// marks where each long frame stands, so order is kept and Read makes
	// no extra system call while none comes (see rxmmsg_unsafe_linux.go).
	// Measured through the bench's TCP test (switch on its own CPU):
	// 14.6-15.5 Gbit/s against 12.8-13.5 with RxRing, the same round trip, and 3-4%
	// fewer 64-byte frames per second (the second socket's filter).
	RxSplit RxMode = iota
	// RxRing receives every frame into the RX ring, whose slots must then
	// each hold a 64 KiB GSO frame.
	RxRing
	// RxRecvmmsg receives every frame with recvmmsg, without a ring: the
	// least work for the senders, but one system call per batch, which
	// halves the 64-byte frame rate.
	RxRecvmmsg
)

// Defaults.
const (
	DefaultBatchSize    = 64
	DefaultRxBlockSize  = 128 << 10
	DefaultRxBlockCount = 32
	DefaultRxFrameCount = 128
	// DefaultSplitFrameCount is RxSplit's: its slots are MTU-sized.
	DefaultSplitFrameCount = 512
	DefaultBlockTimeout    = time.Millisecond
)

var (
	_ port.Port      = (*Port)(nil)
	_ port.Offloader = (*Port)(nil)
	_ port.Statser   = (*Port)(nil)
	_ port.Namer     = (*Port)(nil)
)
