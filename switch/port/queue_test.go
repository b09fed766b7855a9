package port

import (
	"sync"
	"testing"
	"time"
)

func TestQueue(t *testing.T) {
	q := NewQueue(4, 16)
	frames := make([]Frame, 8)
	in := []Frame{{Data: []byte("a")}, {Data: []byte("bb")}, {Data: make([]byte, 17)}, {Data: []byte("ccc")}}
	if n, ok := q.Put(in); n != 3 || !ok {
		t.Fatalf("Put = %d, %v; want 3 (the 17-byte frame does not fit a slot)", n, ok)
	}
	n, ok := q.Get(frames)
	if !ok || n != 3 || string(frames[0].Data) != "a" || string(frames[2].Data) != "ccc" {
		t.Fatalf("Get = %d %v %q", n, ok, frames[0].Data)
	}
	// The views of the last Get stay reserved: only one slot is free.
	if n, _ := q.Put([]Frame{{Data: []byte("d")}, {Data: []byte("e")}}); n != 1 {
		t.Errorf("Put while 3 of 4 slots are held = %d, want 1", n)
	}
	if string(frames[0].Data) != "a" {
		t.Errorf("a held view was overwritten: %q", frames[0].Data)
	}
	// The next Get releases them.
	if n, _ := q.Get(frames); n != 1 || string(frames[0].Data) != "d" {
		t.Errorf("second Get = %d %q", n, frames[0].Data)
	}
	if n, _ := q.Put([]Frame{{Data: []byte("f")}, {Data: []byte("g")}, {Data: []byte("h")}}); n != 3 {
		t.Errorf("Put after release = %d, want 3", n)
	}
	if got := q.Drain(); len(got) != 3 || string(got[2]) != "h" {
		t.Errorf("Drain = %q", got)
	}
}

func TestQueueCloseWakesGet(t *testing.T) {
	q := NewQueue(2, 8)
	var wg sync.WaitGroup
	wg.Add(1)
	var ok bool
	go func() {
		defer wg.Done()
		_, ok = q.Get(make([]Frame, 1))
	}()
	time.Sleep(10 * time.Millisecond)
	q.Close()
	wg.Wait()
	if ok {
		t.Error("Get on a closed queue reported ok")
	}
	if _, ok := q.Put([]Frame{{Data: []byte("x")}}); ok {
		t.Error("Put on a closed queue reported ok")
	}
}

func TestQueueZeroAllocs(t *testing.T) {
	q := NewQueue(64, 128)
	in := []Frame{{Data: make([]byte, 64)}, {Data: make([]byte, 64)}}
	out := make([]Frame, 8)
	if a := testing.AllocsPerRun(100, func() { q.Put(in); q.Get(out) }); a != 0 {
		t.Errorf("Put+Get: %v allocs, want 0", a)
	}
}
