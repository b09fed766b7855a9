package port

import (
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
