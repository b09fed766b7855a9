package port

import (
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

func TestKeepPolling(t *testing.T) {
	saved := lastBusy.Load()
	t.Cleanup(func() { lastBusy.Store(saved) })

	// Nothing read for an hour: nobody polls on.
	lastBusy.Store(int64(time.Since(epoch) - time.Hour))
	if KeepPolling(time.Millisecond) {
		t.Error("polling on an hour after the last frame with a 1 ms window")
	}
	if !KeepPolling(2 * time.Hour) {
		t.Error("not polling within a 2 h window")
	}
	// Any port reading keeps every port polling.
	MarkBusy()
	if !KeepPolling(time.Second) {
		t.Error("not polling right after a port read frames")
	}
	if KeepPolling(0) {
		t.Error("a zero window polls")
	}
}

type flagPender struct{ pending atomic.Bool }

func (f *flagPender) Pending() bool { return f.pending.Load() }

func TestParkRegistry(t *testing.T) {
	a, b := &flagPender{}, &flagPender{}
	if parkedPending() {
		t.Fatal("pending with nothing parked")
	}
	Park(a)
	Park(b)
	if parkedPending() {
		t.Error("pending while no parked port has frames")
	}
	b.pending.Store(true)
	if !parkedPending() {
		t.Error("not pending while a parked port has frames")
	}
	Unpark(b)
	if parkedPending() {
		t.Error("an unparked port still counts")
	}
	Unpark(a)
	Unpark(a) // unparking twice is harmless
	if n := parked.n.Load(); n != 0 {
		t.Errorf("%d ports still parked", n)
	}
}

// TestYieldWakesParked is the scheduling case Yield exists for: on one P,
// a goroutine spinning on Yield must let a goroutine parked in the
// netpoller run once its fd is readable and it says so, within a few
// yields. runtime.Gosched alone leaves it to sysmon's netpoll, ~10 ms of
// spinning later.
func TestYieldWakesParked(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	fp := &flagPender{}
	var woke atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		Park(fp)
		var b [1]byte
		_, _ = r.Read(b[:]) // parks in the netpoller
		Unpark(fp)
		woke.Store(true)
	}()
	// Let the reader park: it is parked once it is registered and the
	// spinner has run since (on one P, the reader ran up to its park).
	for i := 0; parked.n.Load() == 0; i++ {
		if i == 1_000_000 {
			t.Fatal("the reader never parked")
		}
		runtime.Gosched()
	}
	runtime.Gosched()
	if _, err := w.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	fp.pending.Store(true)
	const limit = 100
	yields := 0
	for !woke.Load() && yields < limit {
		Yield()
		yields++
	}
	if !woke.Load() {
		t.Fatalf("parked reader still asleep after %d yields", limit)
	}
	<-done
	t.Logf("woke after %d yields", yields)
}
