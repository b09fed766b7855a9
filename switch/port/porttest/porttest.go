// Package porttest provides in-memory ports for engine tests and benchmarks:
// Pipe, a connected pair of ports, and Source and Sink, a frame generator
// and a counting drain that cost next to nothing per frame.
package porttest

import (
	"sync/atomic"

	"github.com/switchyard-net/switchyard/switch/port"
)

// Config sets up an in-memory port. Zero fields take defaults.
type Config struct {
	BatchSize int  // frames per Read; default 64
	Slots     int  // receive queue depth in frames; default 1024
	SlotSize  int  // bytes per frame slot; default 2048 (GSO tests need 65536+)
	MTU       int  // default 1500
	Offloads  bool // whether Write takes frames with pending offloads
}

func (c *Config) withDefaults() Config {
	var d Config
	if c != nil {
		d = *c
	}
	if d.BatchSize <= 0 {
		d.BatchSize = 64
	}
	if d.Slots <= 0 {
		d.Slots = 1024
	}
	if d.SlotSize <= 0 {
		d.SlotSize = 2048
	}
	if d.MTU <= 0 {
		d.MTU = 1500
	}
	return d
}

// Port is one end of a Pipe.
type Port struct {
	name   string
	cfg    Config
	rx     *port.Queue // frames for us
	peer   *Port
	closed atomic.Bool
	port.Counters
}

var (
	_ port.Port      = (*Port)(nil)
	_ port.Offloader = (*Port)(nil)
	_ port.Statser   = (*Port)(nil)
	_ port.Namer     = (*Port)(nil)
)

// Pipe returns two connected ports: what is written to one is read from the
// other. Closing either closes both directions for the closed end only: the
// other end's writes are dropped and counted.
func Pipe(nameA, nameB string, cfg *Config) (*Port, *Port) {
	c := cfg.withDefaults()
	a := &Port{name: nameA, cfg: c, rx: port.NewQueue(c.Slots, c.SlotSize)}
	b := &Port{name: nameB, cfg: c, rx: port.NewQueue(c.Slots, c.SlotSize)}
	a.peer, b.peer = b, a
	return a, b
}

func (p *Port) Name() string      { return p.name }
func (p *Port) BatchSize() int    { return p.cfg.BatchSize }
func (p *Port) MTU() int          { return p.cfg.MTU }
func (p *Port) Offloads() bool    { return p.cfg.Offloads }
func (p *Port) Stats() port.Stats { return p.Snapshot() }

// Read implements port.Port.
func (p *Port) Read(frames []port.Frame) (int, error) {
	if len(frames) > p.cfg.BatchSize {
		frames = frames[:p.cfg.BatchSize]
	}
	n, ok := p.rx.Get(frames)
	if !ok {
		return 0, port.ErrClosed
	}
	var bytes uint64
	for _, f := range frames[:n] {
		bytes += uint64(len(f.Data))
	}
	p.RxFrames.Add(uint64(n))
	p.RxBytes.Add(bytes)
	return n, nil
}

// Write implements port.Port: frames go to the peer's receive queue.
func (p *Port) Write(frames []port.Frame) (int, error) {
	if p.closed.Load() {
		return 0, port.ErrClosed
	}
	n, ok := p.peer.rx.Put(frames)
	if !ok {
		n = 0
	}
	var bytes uint64
	for _, f := range frames[:n] {
		bytes += uint64(len(f.Data))
	}
	p.TxFrames.Add(uint64(n))
	p.TxBytes.Add(bytes)
	p.TxDropped.Add(uint64(len(frames) - n))
	return n, nil
}

// Close implements port.Port.
func (p *Port) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	p.rx.Close()
	return nil
}

// Inject puts frames into p's receive queue as if the peer had sent them,
// and returns how many fit.
func (p *Port) Inject(frames ...[]byte) int {
	n := 0
	for _, f := range frames {
		if k, _ := p.rx.Put([]port.Frame{{Data: f}}); k == 1 {
			n++
		}
	}
	return n
}

// Drain returns copies of the frames queued for p without blocking.
func (p *Port) Drain() [][]byte { return p.rx.Drain() }
