package port

import (
	"errors"
	"runtime"
	"time"
)

// MaxReadErrors is how many failed reads in a row make ReadLoop give a
// port up for gone.
const MaxReadErrors = 100

// ReadLoop is the body of an engine's RX goroutine for p: read a batch,
// hand it to fn, repeat. It returns nil once p is closed, and the error
// when p's link is gone or MaxReadErrors reads in a row failed. warn, if
// set, hears the first failure of a run of them; between failed reads it
// sleeps a millisecond.
//
// Between batches it yields: on a switch with one P, a port that always has
// frames would otherwise hold it until async preemption (10 ms), and the
// other direction of its flows (TCP's ACKs) would wait that long.
func ReadLoop(p Port, fn func(frames []Frame), warn func(error)) error {
	frames := make([]Frame, p.BatchSize())
	failed := 0
	for {
		n, err := p.Read(frames)
		if err != nil {
			if errors.Is(err, ErrClosed) {
				return nil
			}
			failed++
			if errors.Is(err, ErrLinkGone) || failed >= MaxReadErrors {
				return err
			}
			if failed == 1 && warn != nil {
				warn(err)
			}
			time.Sleep(time.Millisecond)
			continue
		}
		failed = 0
		fn(frames[:n])
		runtime.Gosched()
	}
}
