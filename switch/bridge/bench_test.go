package bridge

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/switch/capture"
	"github.com/switchyard-net/switchyard/switch/port/porttest"
)

// BenchmarkForward64 forwards 64-byte frames between learned ports through
// the whole engine: one RX goroutine reads batches from an in-memory source,
// learns, looks up and writes each batch to an in-memory sink, which copies
// every frame as a transmit ring would. One op is one frame.
func BenchmarkForward64(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) { benchForward64(b, batch, nil) })
	}
}

// BenchmarkForward64Capture is BenchmarkForward64 (batch 64) with the
// capture mirror: none installed (the fast path: one nil load per batch),
// a capture whose filter matches nothing (every frame decoded and
// filtered), and a capture of everything drained by a reader (every frame
// copied twice, RX and TX, into the ring; what the reader misses is lost).
func BenchmarkForward64Capture(b *testing.B) {
	for _, tc := range []struct {
		name   string
		filter string
		run    bool
	}{{"none", "", false}, {"filtered-out", "tcp port 80", true}, {"all", "", true}} {
		b.Run("capture="+tc.name, func(b *testing.B) {
			var c *capture.Capture
			benchForward64(b, 64, func(br *Bridge) {
				if !tc.run {
					return
				}
				flt, err := capture.Compile(tc.filter)
				if err != nil {
					b.Fatal(err)
				}
				var m *capture.Mirror
				m = capture.NewMirror(&capture.MirrorConfig{OnActive: func(on bool) {
					if on {
						br.SetMirror(m)
					} else {
						br.SetMirror(nil)
					}
				}})
				if c, err = m.Start(&capture.Config{Filter: flt}); err != nil {
					b.Fatal(err)
				}
				go func() {
					var r capture.Record
					for c.Read(context.Background(), &r) == nil {
					}
				}()
			})
			if c != nil {
				c.Close()
				b.ReportMetric(float64(c.Lost())/float64(2*b.N), "lost/copy")
			}
		})
	}
}

func benchForward64(b *testing.B, batch int, setup func(*Bridge)) {
	br := New(&Config{SweepInterval: -1})
	defer br.Close()
	sink := &porttest.Sink{}
	if err := br.AddPort("sink", sink, DefaultFlags()); err != nil {
		b.Fatal(err)
	}
	if err := br.AddStaticMAC("sink", mac(2)); err != nil {
		b.Fatal(err)
	}
	if setup != nil {
		setup(br)
	}
	frames := make([][]byte, 64)
	for i := range frames {
		frames[i] = append(eth(mac(2), mac(byte(10+i%8)), byte(i)), 0, 0, 0, 0) // 64 bytes
	}
	src := &porttest.Source{Frames: frames, Limit: b.N, Batch: batch}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if err := br.AddPort("src", src, DefaultFlags()); err != nil {
		b.Fatal(err)
	}
	<-src.Done()
	el := time.Since(start)
	b.StopTimer()
	for deadline := time.Now().Add(5 * time.Second); sink.Frames() < uint64(b.N) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if got := sink.Frames(); got != uint64(b.N) {
		b.Fatalf("sink got %d frames, want %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/el.Seconds()/1e6, "Mpps")
}
