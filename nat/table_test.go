package nat

import (
	"math/rand/v2"
	"testing"
)

// TestTableModel runs random inserts, lookups and removals against a map
// and checks the table agrees, in a table small enough for long probe
// runs, so the backward-shift deletion is exercised.
func TestTableModel(t *testing.T) {
	for _, limit := range []int{8, 100, 5000} {
		tb := newTable(limit)
		type ref struct{ idx, gen uint32 }
		model := map[key]ref{} // key[0] -> entry
		rng := rand.New(rand.NewPCG(1, uint64(limit)))
		randKey := func() key {
			return key{src: rng.Uint32N(4), dst: rng.Uint32N(4), sport: uint16(rng.Uint32N(64)), dport: 80, proto: 6}
		}
		find := func(k key) (uint32, int, bool) {
			h := tb.hash(k)
			s := &tb.shards[tb.shardOf(h)]
			s.mu.Lock()
			defer s.mu.Unlock()
			i := tb.findLocked(s, k, h)
			if i < 0 {
				return 0, 0, false
			}
			idx, dir := slotRef(s.slots[i])
			return idx, dir, true
		}
		for op := 0; op < 20000; op++ {
			k := randKey()
			r := k.reverse(Outside)
			r.dport ^= 0x8000 // a translated reply key
			switch rng.IntN(3) {
			case 0, 1:
				idx, code, _ := tb.insert(k, r, stSeenReply, 1<<30, 60)
				_, exists := model[k]
				switch {
				case exists && code != insExistsOrig:
					t.Fatalf("limit %d op %d: insert of a present key gave %d", limit, op, code)
				case !exists && len(model) >= limit && code != insFull:
					t.Fatalf("limit %d op %d: insert into a full table gave %d", limit, op, code)
				case !exists && code == insOK:
					model[k] = ref{idx, tb.entries[idx].gen()}
				case !exists && code == insFull && len(model) < limit:
					// a shard can fill before the table does; allowed
				case !exists && code != insOK && code != insFull:
					t.Fatalf("limit %d op %d: insert gave %d", limit, op, code)
				}
			case 2:
				rf, ok := model[k]
				if !ok {
					continue
				}
				if !tb.remove(rf.idx, rf.gen) {
					t.Fatalf("limit %d op %d: remove failed", limit, op)
				}
				delete(model, k)
			}
			if tb.len() != len(model) {
				t.Fatalf("limit %d op %d: len %d, model %d", limit, op, tb.len(), len(model))
			}
		}
		// Every key in the model is found both ways; nothing else is.
		for k, rf := range model {
			idx, dir, ok := find(k)
			if !ok || idx != rf.idx || dir != 0 {
				t.Fatalf("limit %d: key %+v lost", limit, k)
			}
			e := &tb.entries[idx]
			if idx2, dir2, ok := find(e.key(1)); !ok || idx2 != idx || dir2 != 1 {
				t.Fatalf("limit %d: reply key of %+v lost", limit, k)
			}
		}
		for range 1000 {
			k := randKey()
			if _, ok := model[k]; ok {
				continue
			}
			if _, _, ok := find(k); ok {
				t.Fatalf("limit %d: removed key %+v still found", limit, k)
			}
		}
	}
}
