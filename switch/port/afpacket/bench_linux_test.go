//go:build linux

package afpacket

import (
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/internal/nstest"
	"github.com/switchyard-net/switchyard/switch/port"
)

// BenchmarkForward moves batches of 64-byte frames q -> p through a veth
// pair: one TX ring flush and the RX reads per batch.
func BenchmarkForward(b *testing.B) {
	for _, tc := range versions {
		b.Run(tc.name, func(b *testing.B) {
			nstest.RequirePriv(b)
			ns := newNS(b)
			a, c := ns.veth(b, nil)
			p, q := ns.open(b, a, &Config{Version: tc.v}), ns.open(b, c, &Config{Version: tc.v})
			out := make([]port.Frame, 32)
			for i := range out {
				out[i] = port.Frame{Data: testFrame(64, uint32(i))}
			}
			in := make([]port.Frame, p.BatchSize())
			timer := time.AfterFunc(time.Minute, func() { p.Close() })
			defer timer.Stop()
			b.ReportAllocs()
			b.SetBytes(int64(64 * len(out)))
			b.ResetTimer()
			for b.Loop() {
				q.Write(out)
				for got := 0; got < len(out); {
					n, err := p.Read(in)
					if err != nil {
						b.Fatal(err)
					}
					got += n
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(out)), "ns/frame")
		})
	}
}
