package porttest

import (
	"sync"
	"sync/atomic"

	"github.com/switchyard-net/switchyard/switch/port"
)

// Source is a port whose Read hands out the same prepared frames again and
// again, without copying, until Limit frames have been read. Then it reports
// Done and blocks until closed. Writes to it are counted and discarded.
type Source struct {
	Frames [][]byte // the frames to cycle through
	Limit  int      // total frames to hand out
	Batch  int      // frames per Read; default 64

	once   sync.Once
	done   chan struct{}
	closed chan struct{}
	next   int
	sent   int
	port.Counters
}

var _ port.Port = (*Source)(nil)

func (s *Source) init() {
	s.once.Do(func() {
		s.done = make(chan struct{})
		s.closed = make(chan struct{})
		if s.Batch <= 0 {
			s.Batch = 64
		}
	})
}

// Done is closed when Limit frames have been read.
func (s *Source) Done() <-chan struct{} { s.init(); return s.done }

func (s *Source) BatchSize() int    { s.init(); return s.Batch }
func (s *Source) MTU() int          { return 1500 }
func (s *Source) Offloads() bool    { return true }
func (s *Source) Stats() port.Stats { return s.Snapshot() }

// Read implements port.Port.
func (s *Source) Read(frames []port.Frame) (int, error) {
	s.init()
	if s.sent >= s.Limit {
		select {
		case <-s.done:
		default:
			close(s.done)
		}
		<-s.closed
		return 0, port.ErrClosed
	}
	n := min(len(frames), s.Batch, s.Limit-s.sent)
	for i := 0; i < n; i++ {
		frames[i] = port.Frame{Data: s.Frames[s.next]}
		if s.next++; s.next == len(s.Frames) {
			s.next = 0
		}
	}
	s.sent += n
	return n, nil
}

// Write discards frames.
func (s *Source) Write(frames []port.Frame) (int, error) {
	s.TxFrames.Add(uint64(len(frames)))
	return len(frames), nil
}

// Close implements port.Port.
func (s *Source) Close() error {
	s.init()
	select {
	case <-s.closed:
	default:
		close(s.closed)
	}
	return nil
}

// Sink is a port that never receives and counts what is written to it,
// copying each frame into a scratch buffer as a real transmit would.
type Sink struct {
	closed  chan struct{}
	once    sync.Once
	scratch [65536 + 64]byte
	mu      sync.Mutex
	frames  atomic.Uint64
	bytes   atomic.Uint64
}

var _ port.Port = (*Sink)(nil)

func (s *Sink) init() { s.once.Do(func() { s.closed = make(chan struct{}) }) }

func (s *Sink) BatchSize() int { return 64 }
func (s *Sink) MTU() int       { return 1500 }
func (s *Sink) Offloads() bool { return true }

// Frames returns how many frames were written.
func (s *Sink) Frames() uint64 { return s.frames.Load() }

// Stats implements port.Statser.
func (s *Sink) Stats() port.Stats {
	return port.Stats{TxFrames: s.frames.Load(), TxBytes: s.bytes.Load()}
}

// Read blocks until Close.
func (s *Sink) Read([]port.Frame) (int, error) {
	s.init()
	<-s.closed
	return 0, port.ErrClosed
}

// Write implements port.Port.
func (s *Sink) Write(frames []port.Frame) (int, error) {
	s.mu.Lock()
	var b uint64
	for _, f := range frames {
		b += uint64(copy(s.scratch[:], f.Data))
	}
	s.mu.Unlock()
	s.frames.Add(uint64(len(frames)))
	s.bytes.Add(b)
	return len(frames), nil
}

// Close implements port.Port.
func (s *Sink) Close() error {
	s.init()
	select {
	case <-s.closed:
	default:
		close(s.closed)
	}
	return nil
}
