package port

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Busy polling.
//
// A port that busy-polls checks its ring, finds it empty and yields
// (runtime.Gosched) instead of parking its goroutine in the netpoller. It
// must not park while another port of the process is busy: with the
// switch on one CPU (GOMAXPROCS 1) a goroutine that always has work or
// yields keeps the scheduler from reaching the netpoller, so a parked port
// is woken only by sysmon, up to 10 ms later. A port's own quiet spell is
// no guide: during a TCP transfer through the bench the ACK port's reads
// were more than 1 ms apart 3288 times in 6 s while the data port read
// every 50 us. So the ports of a process poll as one: every port keeps
// polling while any of them has read frames within its busy-poll window,
// and they all park once the whole process has been idle that long.
//
// The window makes the ports park together, but not at the same instant: a
// port that found the process idle parks in the netpoller, and a frame on
// another port a moment later starts the spinning again. The parked port
// would then wait for the scheduler to poll the network, which with a
// spinning goroutine always runnable is sysmon's 10 ms tick, or the end of
// the burst. Measured in the bench's TCP test before this was handled: the
// ACKs waited 0.25-4 ms in their ring (p50 0.8 ms) while the data port
// read every 50 us, and the sender's window went by that delay. So a port
// that parks while busy-polling is on says so (Park), and a spinning port
// yields with Yield, which, when a parked port has frames waiting, idles
// the scheduler for a moment so that it polls the network and wakes it.

// A Pender is a parked port: Pending reports, without blocking or
// allocating, whether frames are waiting to be read.
type Pender interface {
	Pending() bool
}

var parked struct {
	n     atomic.Int32 // len(ports), read without the lock
	mu    sync.Mutex
	ports []Pender
}

// Park records that p's reader is about to park in the netpoller while
// busy polling is on; Unpark, which must follow, that it is back.
func Park(p Pender) {
	parked.mu.Lock()
	parked.ports = append(parked.ports, p)
	parked.n.Store(int32(len(parked.ports)))
	parked.mu.Unlock()
}

// Unpark undoes Park.
func Unpark(p Pender) {
	parked.mu.Lock()
	if i := slices.Index(parked.ports, p); i >= 0 {
		parked.ports = slices.Delete(parked.ports, i, i+1)
	}
	parked.n.Store(int32(len(parked.ports)))
	parked.mu.Unlock()
}

// parkedPending reports whether a parked port has frames waiting.
func parkedPending() bool {
	if parked.n.Load() == 0 {
		return false
	}
	parked.mu.Lock()
	defer parked.mu.Unlock()
	for _, p := range parked.ports {
		if p.Pending() {
			return true
		}
	}
	return false
}

// Yield is what a busy-polling port does when its ring is empty and
// KeepPolling says to look again: it lets the other goroutines run and,
// when a parked port has frames waiting, sleeps for a microsecond instead,
// which lets the scheduler, with nothing else to run, poll the network
// (it returns at once: that port's socket is readable) and wake it.
func Yield() {
	if parkedPending() {
		time.Sleep(time.Microsecond)
		return
	}
	runtime.Gosched()
}

// epoch is the origin of lastBusy's clock (monotonic).
var epoch = time.Now()

// lastBusy is when a busy-polling port last read frames, in nanoseconds
// since epoch.
var lastBusy atomic.Int64

// MarkBusy records that a busy-polling port just read frames.
func MarkBusy() {
	lastBusy.Store(int64(time.Since(epoch)))
}

// KeepPolling reports whether a busy-polling port whose ring is empty
// should yield and look again rather than park: whether any busy-polling
// port of the process read frames within window.
func KeepPolling(window time.Duration) bool {
	return time.Since(epoch)-time.Duration(lastBusy.Load()) < window
}
