//go:build linux

package afpacket

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/internal/nstest"
	"github.com/switchyard-net/switchyard/switch/port"
)

// fwdTopo is ns A (198.18.0.1) -veth- ns S -veth- ns B (198.18.0.2), with
// two ports in S forwarding every frame to each other.
type fwdTopo struct {
	a, b     *testNS
	pa, pb   *Port
	maxFrame atomic.Int64 // largest frame forwarded
	gso      atomic.Int64 // frames with a GSO vnet header
}

func newFwdTopo(t *testing.T, cfg *Config) *fwdTopo {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	f := &fwdTopo{a: newNS(t), b: newNS(t)}
	s := newNS(t)
	sa, a0 := s.veth(t, f.a)
	sb, b0 := s.veth(t, f.b)
	f.a.addr(t, a0, "198.18.0.1/24")
	f.b.addr(t, b0, "198.18.0.2/24")
	f.pa, f.pb = s.open(t, sa, cfg), s.open(t, sb, cfg)
	var wg sync.WaitGroup
	fwd := func(src, dst *Port) {
		defer wg.Done()
		frames := make([]port.Frame, src.BatchSize())
		for {
			n, err := src.Read(frames)
			if err != nil {
				if !errors.Is(err, port.ErrClosed) {
					t.Errorf("forwarder read %s: %v", src.Name(), err)
				}
				return
			}
			for _, fr := range frames[:n] {
				if l := int64(len(fr.Data)); l > f.maxFrame.Load() {
					f.maxFrame.Store(l)
				}
				if fr.VNet.GSO() {
					f.gso.Add(1)
				}
			}
			if _, err := dst.Write(frames[:n]); err != nil && !errors.Is(err, port.ErrClosed) {
				t.Errorf("forwarder write %s: %v", dst.Name(), err)
				return
			}
		}
	}
	wg.Add(2)
	go fwd(f.pa, f.pb)
	go fwd(f.pb, f.pa)
	t.Cleanup(func() { f.pa.Close(); f.pb.Close(); wg.Wait() })
	return f
}

// TestTCPThroughForwarder moves 50 MB over TCP from A to B through the
// forwarder: bytes arrive intact and GSO super-frames pass whole.
func TestTCPThroughForwarder(t *testing.T) {
	f := newFwdTopo(t, nil)
	const total = 50 << 20
	el := nstest.TCPTransfer(t, f.b.do, f.a.do, "198.18.0.2:5001", total)
	t.Logf("TCP %d MB in %v: %.2f Gbit/s; largest frame %d bytes, %d GSO frames; A side %+v, B side %+v",
		total>>20, el.Round(time.Millisecond), float64(total)*8/el.Seconds()/1e9, f.maxFrame.Load(), f.gso.Load(), f.pa.Stats(), f.pb.Stats())
	if f.maxFrame.Load() <= 1514 || f.gso.Load() == 0 {
		t.Errorf("largest frame %d, %d GSO frames: want super-frames larger than the MTU", f.maxFrame.Load(), f.gso.Load())
	}
}
