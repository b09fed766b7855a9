package bridge

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/switch/port/porttest"
)

// BenchmarkForward64 forwards 64-byte frames between learned ports through
// the whole engine: one RX goroutine reads batches from an in-memory source,
// learns, looks up and writes each batch to an in-memory sink, which copies
// every frame as a transmit ring would. One op is one frame.
func BenchmarkForward64(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			br := New(&Config{SweepInterval: -1})
			defer br.Close()
			sink := &porttest.Sink{}
			if err := br.AddPort("sink", sink, DefaultFlags()); err != nil {
				b.Fatal(err)
			}
			if err := br.AddStaticMAC("sink", mac(2)); err != nil {
				b.Fatal(err)
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
		})
	}
}
