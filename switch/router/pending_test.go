package router

import (
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/switchyard-net/switchyard/switch/port"
)

func TestPendingQueue(t *testing.T) {
	var q pendingQueue
	var routed atomic.Uint64
	a, b := netip.MustParseAddr("198.18.0.9"), netip.MustParseAddr("198.18.0.10")
	fr := func(tag byte) *port.Frame { return &port.Frame{Data: []byte{tag, 1, 2, 3}} }
	// Per address the newest pendingPerHop are kept.
	for i := range pendingPerHop + 2 {
		d := len(q.hold(a, true, fr(byte(i)), &routed, 10))
		if want := 0; i >= pendingPerHop {
			want = 1
			if d != want {
				t.Fatalf("frame %d: %d dropped, want %d", i, d, want)
			}
		} else if d != want {
			t.Fatalf("frame %d: %d dropped", i, d)
		}
	}
	q.hold(b, true, fr(0xb), &routed, 10)
	q.hold(a, false, fr(0xc), &routed, 10) // same address, other side
	if got := q.release(a, false); len(got) != 1 || got[0].data[0] != 0xc {
		t.Fatalf("inside release: %+v", got)
	}
	got := q.release(a, true)
	if len(got) != pendingPerHop || got[0].data[0] != 2 || got[pendingPerHop-1].data[0] != pendingPerHop+1 {
		t.Fatalf("uplink release: %+v", got)
	}
	if q.release(a, true) != nil || q.n.Load() != 1 {
		t.Fatalf("after release: %d held", q.n.Load())
	}
	// The copy is the queue's own.
	f := fr(7)
	q.hold(a, true, f, &routed, 10)
	f.Data[0] = 99
	if got := q.release(a, true); got[0].data[0] != 7 {
		t.Fatal("held frame shares the caller's memory")
	}
	// Old frames go at the next hold; a full queue refuses the newest.
	if d := len(q.hold(a, true, fr(1), &routed, 10+pendingTimeout)); d != 1 || q.n.Load() != 1 {
		t.Fatalf("expiry: %d dropped, %d held", d, q.n.Load())
	}
	for i := 0; q.n.Load() < pendingMax; i++ {
		q.hold(netip.AddrFrom4([4]byte{198, 18, 1, byte(i)}), true, fr(0), &routed, 20)
	}
	if d := len(q.hold(b, true, fr(0), &routed, 20)); d != 1 || q.n.Load() != pendingMax {
		t.Fatalf("full queue: %d dropped, %d held", d, q.n.Load())
	}
}
