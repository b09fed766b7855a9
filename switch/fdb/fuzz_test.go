package fdb

import (
	"testing"
	"time"
)

// FuzzTable drives a table with a stream of operations decoded from the
// input and checks it against a plain map model: same lookups, limits held.
func FuzzTable(f *testing.F) {
	f.Add([]byte{0, 1, 1, 0, 2, 1, 1, 1, 0, 3, 2, 5})
	f.Add([]byte{0, 1, 1, 0, 1, 2, 2, 0, 3, 0xff, 0xff, 0xff, 4, 2})
	f.Fuzz(func(t *testing.T, ops []byte) {
		const limit, portLimit = 6, 3
		tb := New(&Config{Ageing: 10 * time.Second, Limit: limit, PortLimit: portLimit})
		type ent struct {
			port   int
			seen   int64
			static bool
		}
		model := map[MAC]ent{}
		var now int64
		mac := func(b byte) MAC { return MAC{b & 0x03, 0, 0, 0, 0, b & 0x0f} } // some multicast, some zero
		for len(ops) >= 3 {
			op, a, b := ops[0]%6, ops[1], int(ops[2]%4)
			ops = ops[3:]
			m := mac(a)
			switch op {
			case 0, 1: // learn
				r := tb.Learn(m, b, now)
				e, had := model[m]
				switch {
				case !Learnable(m):
					if r != Ignored {
						t.Fatalf("Learn(%s) = %v, want Ignored", FormatMAC(m), r)
					}
				case had && e.static:
					if r != Static {
						t.Fatalf("Learn over static = %v", r)
					}
				case had && e.port == b:
					e.seen = now
					model[m] = e
				case r == Learned || r == Moved:
					model[m] = ent{port: b, seen: now}
				case r == Limited:
					if had {
						delete(model, m) // a refused move drops the stale entry
					}
				default:
					t.Fatalf("Learn(%s, %d) = %v, model had=%v %+v", FormatMAC(m), b, r, had, e)
				}
			case 2: // lookup checked below for all
			case 3:
				now += int64(a) * int64(100*time.Millisecond)
			case 4:
				tb.FlushPort(b)
				for k, e := range model {
					if e.port == b {
						delete(model, k)
					}
				}
			case 5:
				if tb.AddStatic(m, b) == nil {
					model[m] = ent{port: b, static: true}
				}
			}
			// Ageing the model.
			for k, e := range model {
				if !e.static && now-e.seen > int64(10*time.Second) {
					delete(model, k)
				}
			}
			tb.Age(now)
			learned, perPort := 0, map[int]int{}
			for k, e := range model {
				p, ok := tb.Lookup(k, now)
				if !ok || p != e.port {
					t.Fatalf("Lookup(%s) = %d,%v; model %+v", FormatMAC(k), p, ok, e)
				}
				if !e.static {
					learned++
					perPort[e.port]++
				}
			}
			if learned > limit {
				t.Fatalf("%d learned entries, limit %d", learned, limit)
			}
			for p, n := range perPort {
				if n > portLimit {
					t.Fatalf("port %d holds %d learned entries, limit %d", p, n, portLimit)
				}
			}
			if tb.Len() != len(model) {
				t.Fatalf("Len = %d, model %d", tb.Len(), len(model))
			}
		}
	})
}
