package port

import (
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
