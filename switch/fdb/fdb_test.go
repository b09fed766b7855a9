package fdb

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	macA  = MAC{0x02, 0, 0, 0, 0, 0xa}
	macB  = MAC{0x02, 0, 0, 0, 0, 0xb}
	macC  = MAC{0x02, 0, 0, 0, 0, 0xc}
	bcast = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	mcast = MAC{0x01, 0x00, 0x5e, 0, 0, 1}
	zero  = MAC{}
)

const sec = int64(time.Second)

func TestLearnLookup(t *testing.T) {
	type step struct {
		mac  MAC
		port int
		now  int64
		want Result
	}
	tests := []struct {
		name    string
		cfg     *Config
		steps   []step
		at      int64
		lookups map[MAC]int // -1: miss
	}{
		{
			name:    "learn and find",
			steps:   []step{{macA, 1, 0, Learned}, {macB, 2, 0, Learned}, {macA, 1, 5 * sec, Refreshed}},
			at:      10 * sec,
			lookups: map[MAC]int{macA: 1, macB: 2, macC: -1},
		},
		{
			name:    "never learns broadcast, multicast or zero",
			steps:   []step{{bcast, 1, 0, Ignored}, {mcast, 1, 0, Ignored}, {zero, 1, 0, Ignored}},
			lookups: map[MAC]int{bcast: -1, mcast: -1, zero: -1},
		},
		{
			name:    "move between ports",
			steps:   []step{{macA, 1, 0, Learned}, {macA, 2, sec, Moved}},
			at:      sec,
			lookups: map[MAC]int{macA: 2},
		},
		{
			name:    "ageing at default 300 s",
			steps:   []step{{macA, 1, 0, Learned}, {macB, 1, 200 * sec, Learned}},
			at:      301 * sec,
			lookups: map[MAC]int{macA: -1, macB: 1},
		},
		{
			name:    "configured ageing",
			cfg:     &Config{Ageing: 10 * time.Second},
			steps:   []step{{macA, 1, 0, Learned}, {macB, 1, 5 * sec, Learned}},
			at:      11 * sec,
			lookups: map[MAC]int{macA: -1, macB: 1},
		},
		{
			name:    "refresh keeps an entry alive",
			cfg:     &Config{Ageing: 10 * time.Second},
			steps:   []step{{macA, 1, 0, Learned}, {macA, 1, 8 * sec, Refreshed}},
			at:      15 * sec,
			lookups: map[MAC]int{macA: 1},
		},
		{
			name:    "expired entry is learned anew",
			cfg:     &Config{Ageing: 10 * time.Second},
			steps:   []step{{macA, 1, 0, Learned}, {macA, 1, 20 * sec, Refreshed}},
			at:      20 * sec,
			lookups: map[MAC]int{macA: 1},
		},
		{
			name:    "global limit",
			cfg:     &Config{Limit: 2},
			steps:   []step{{macA, 1, 0, Learned}, {macB, 2, 0, Learned}, {macC, 3, 0, Limited}},
			lookups: map[MAC]int{macA: 1, macB: 2, macC: -1},
		},
		{
			name:  "per-port limit",
			cfg:   &Config{PortLimit: 1},
			steps: []step{{macA, 1, 0, Learned}, {macB, 1, 0, Limited}, {macC, 2, 0, Learned}, {macA, 2, 0, Limited}},
			// A refused move drops the stale entry: macA is flooded, not
			// sent to port 1 where it no longer is.
			lookups: map[MAC]int{macA: -1, macB: -1, macC: 2},
		},
		{
			name:    "never ages with negative ageing",
			cfg:     &Config{Ageing: -1},
			steps:   []step{{macA, 1, 0, Learned}},
			at:      1e6 * sec,
			lookups: map[MAC]int{macA: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := New(tt.cfg)
			for i, s := range tt.steps {
				if got := tb.Learn(s.mac, s.port, s.now); got != s.want {
					t.Errorf("step %d: Learn(%s, %d) = %v, want %v", i, FormatMAC(s.mac), s.port, got, s.want)
				}
			}
			for m, want := range tt.lookups {
				p, ok := tb.Lookup(m, tt.at)
				if want < 0 {
					if ok {
						t.Errorf("Lookup(%s) = %d, want miss", FormatMAC(m), p)
					}
					continue
				}
				if !ok || p != want {
					t.Errorf("Lookup(%s) = %d, %v; want %d", FormatMAC(m), p, ok, want)
				}
			}
		})
	}
}

func TestLimitCounterSaysSo(t *testing.T) {
	tb := New(&Config{Limit: 1})
	tb.Learn(macA, 1, 0)
	for i := 0; i < 3; i++ {
		if r := tb.Learn(macB, 1, 0); r != Limited {
			t.Fatalf("Learn over limit = %v, want Limited", r)
		}
	}
	if got := tb.Stats().LimitHits; got != 3 {
		t.Errorf("LimitHits = %d, want 3", got)
	}
	// Room again after the entry is flushed.
	tb.FlushPort(1)
	if r := tb.Learn(macB, 1, 0); r != Learned {
		t.Errorf("Learn after flush = %v, want Learned", r)
	}
}

func TestStatic(t *testing.T) {
	tb := New(&Config{Ageing: time.Second, Limit: 1})
	if err := tb.AddStatic(macA, 7); err != nil {
		t.Fatal(err)
	}
	if err := tb.AddStatic(bcast, 7); err == nil {
		t.Error("AddStatic(broadcast) succeeded")
	}
	if r := tb.Learn(macA, 1, 0); r != Static {
		t.Errorf("Learn over static = %v, want Static", r)
	}
	// Static entries count against no limit and never age.
	if r := tb.Learn(macB, 1, 0); r != Learned {
		t.Errorf("Learn with a static entry present = %v, want Learned", r)
	}
	if p, ok := tb.Lookup(macA, 1000*sec); !ok || p != 7 {
		t.Errorf("static Lookup = %d, %v; want 7", p, ok)
	}
	if n := tb.Flush(); n != 1 {
		t.Errorf("Flush removed %d, want 1 (the learned one)", n)
	}
	if _, ok := tb.Lookup(macA, 0); !ok {
		t.Error("Flush removed the static entry")
	}
	if !tb.Delete(macA) || tb.Delete(macA) {
		t.Error("Delete of the static entry: want true then false")
	}
}

func TestFlushPortAndAge(t *testing.T) {
	tb := New(&Config{Ageing: 10 * time.Second})
	tb.Learn(macA, 1, 0)
	tb.Learn(macB, 1, 5*sec)
	tb.Learn(macC, 2, 0)
	if n := tb.FlushPort(1); n != 2 {
		t.Errorf("FlushPort(1) = %d, want 2", n)
	}
	if n := tb.Age(11 * sec); n != 1 {
		t.Errorf("Age = %d, want 1", n)
	}
	if n := tb.Len(); n != 0 {
		t.Errorf("Len = %d, want 0", n)
	}
	st := tb.Stats()
	if st.Aged != 1 || st.Learned != 3 {
		t.Errorf("Stats = %+v, want Aged 1, Learned 3", st)
	}
}

func TestEntries(t *testing.T) {
	tb := New(nil)
	tb.Learn(macB, 2, 0)
	tb.Learn(macA, 1, sec)
	if err := tb.AddStatic(macC, 1); err != nil {
		t.Fatal(err)
	}
	got := tb.Entries(3 * sec)
	want := []Entry{
		{MAC: macA, Port: 1, Age: 2 * time.Second},
		{MAC: macC, Port: 1, Static: true},
		{MAC: macB, Port: 2, Age: 3 * time.Second},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Entries (-want +got):\n%s", d)
	}
}

func TestConcurrentLearnRespectsLimit(t *testing.T) {
	tb := New(&Config{Limit: 100})
	done := make(chan struct{})
	for g := 0; g < 4; g++ {
		go func(g int) {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 1000; i++ {
				m := MAC{0x02, byte(g), 0, 0, byte(i >> 8), byte(i)}
				tb.Learn(m, g, 0)
				tb.Lookup(m, 0)
			}
		}(g)
	}
	for g := 0; g < 4; g++ {
		<-done
	}
	if n := tb.Len(); n != 100 {
		t.Errorf("Len = %d, want exactly the limit 100", n)
	}
}

func TestZeroAllocs(t *testing.T) {
	tb := New(nil)
	tb.Learn(macA, 1, 0)
	allocs := testing.AllocsPerRun(1000, func() {
		tb.Learn(macA, 1, 2*sec)
		tb.Lookup(macA, 2*sec)
		tb.Lookup(macB, 2*sec)
	})
	if allocs != 0 {
		t.Errorf("Learn/Lookup of known entries: %v allocs, want 0", allocs)
	}
}

func BenchmarkLookup(b *testing.B) {
	tb := New(nil)
	for i := 0; i < 1000; i++ {
		tb.Learn(MAC{2, 0, 0, 0, byte(i >> 8), byte(i)}, i%8, 0)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tb.Lookup(MAC{2, 0, 0, 0, byte(i >> 8 & 3), byte(i)}, 0)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
}

func BenchmarkLearnKnown(b *testing.B) {
	tb := New(nil)
	tb.Learn(macA, 1, 0)
	b.ReportAllocs()
	for b.Loop() {
		tb.Learn(macA, 1, 0)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
}

func TestExpiredEntriesFreeTheLimit(t *testing.T) {
	tb := New(&Config{Ageing: 10 * time.Second, Limit: 1})
	tb.Learn(macA, 1, 0)
	// macA has expired but no sweeper has run: it must not block macB.
	if r := tb.Learn(macB, 2, 11*sec); r != Learned {
		t.Fatalf("Learn with only an expired entry in the table = %v, want Learned", r)
	}
	if p, ok := tb.Lookup(macB, 11*sec); !ok || p != 2 {
		t.Errorf("Lookup(macB) = %d, %v", p, ok)
	}
	// A table full of live entries is not swept again within a second.
	if r := tb.Learn(macC, 3, 11*sec+1); r != Limited {
		t.Errorf("Learn over a live full table = %v, want Limited", r)
	}
}

func TestShortAgeingRefreshes(t *testing.T) {
	tb := New(&Config{Ageing: 400 * time.Millisecond})
	tb.Learn(macA, 1, 0)
	ms := int64(time.Millisecond)
	// Traffic every 150 ms keeps an entry with a 400 ms ageing time alive.
	for now := 150 * ms; now <= 3000*ms; now += 150 * ms {
		tb.Learn(macA, 1, now)
		if _, ok := tb.Lookup(macA, now+100*ms); !ok {
			t.Fatalf("active entry expired at %d ms", (now+100*ms)/ms)
		}
	}
}
