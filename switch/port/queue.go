package port

import (
	"sync"

	"github.com/switchyard-net/switchyard/switch/frame"
)

// Queue is a bounded in-memory frame queue for ports without a kernel
// object: frames are copied in by Put from any goroutine and handed out by
// Get as views, valid until the next Get, as Port.Read promises.
type Queue struct {
	mu     sync.Mutex
	cond   sync.Cond
	slots  [][]byte
	lens   []int
	vnet   []frame.VNetHdr
	r, w   uint64 // next to read, next to write
	held   uint64 // slots handed out by the last Get, reserved until the next
	closed bool
}

// NewQueue returns a queue of n slots of size bytes each.
func NewQueue(n, size int) *Queue {
	q := &Queue{slots: make([][]byte, n), lens: make([]int, n), vnet: make([]frame.VNetHdr, n)}
	for i := range q.slots {
		q.slots[i] = make([]byte, size)
	}
	q.cond.L = &q.mu
	return q
}

// SlotSize is the largest frame the queue holds.
func (q *Queue) SlotSize() int { return len(q.slots[0]) }

// Put copies frames in and returns how many fit; frames larger than a slot
// and frames beyond the free space are left out. It returns false once the
// queue is closed.
func (q *Queue) Put(frames []Frame) (int, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return 0, false
	}
	n := 0
	size := len(q.slots[0])
	for _, f := range frames {
		if q.w-(q.r-q.held) >= uint64(len(q.slots)) || len(f.Data) > size {
			continue
		}
		i := q.w % uint64(len(q.slots))
		q.lens[i] = copy(q.slots[i], f.Data)
		q.vnet[i] = f.VNet
		q.w++
		n++
	}
	if n > 0 {
		q.cond.Signal()
	}
	return n, true
}

// Get blocks until frames are queued or the queue is closed, then fills
// frames with views of up to len(frames) of them. It returns false once the
// queue is closed.
func (q *Queue) Get(frames []Frame) (int, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.held = 0
	for q.r == q.w && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return 0, false
	}
	n := 0
	for q.r < q.w && n < len(frames) {
		i := q.r % uint64(len(q.slots))
		frames[n] = Frame{Data: q.slots[i][:q.lens[i]], VNet: q.vnet[i]}
		q.r++
		n++
	}
	q.held = uint64(n)
	return n, true
}

// Drain returns copies of every queued frame without blocking.
func (q *Queue) Drain() [][]byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.held = 0
	var out [][]byte
	for q.r < q.w {
		i := q.r % uint64(len(q.slots))
		out = append(out, append([]byte(nil), q.slots[i][:q.lens[i]]...))
		q.r++
	}
	return out
}

// Close wakes a blocked Get; later calls report the queue closed.
func (q *Queue) Close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}
