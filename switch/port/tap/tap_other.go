//go:build !linux

package tap

import (
	"os"

	"github.com/switchyard-net/switchyard/switch/port"
)

// Queue is one queue of a TAP device. It cannot be opened on this system.
type Queue struct{}

// New returns ErrUnsupported: TAP devices exist only on Linux. It closes
// files, which it owns.
func New(name string, files []*os.File, cfg *Config) ([]*Queue, error) {
	for _, f := range files {
		f.Close()
	}
	return nil, ErrUnsupported
}

// Open returns ErrUnsupported: TAP devices exist only on Linux.
func Open(name string, queues int, cfg *Config) ([]*Queue, error) { return nil, ErrUnsupported }

func (q *Queue) Read([]port.Frame) (int, error)  { return 0, ErrUnsupported }
func (q *Queue) Write([]port.Frame) (int, error) { return 0, ErrUnsupported }
func (q *Queue) BatchSize() int                  { return 0 }
func (q *Queue) MTU() int                        { return 0 }
func (q *Queue) Close() error                    { return nil }
func (q *Queue) Offloads() bool                  { return false }
func (q *Queue) KernelOffloads() uint            { return 0 }
func (q *Queue) Stats() port.Stats               { return port.Stats{} }
func (q *Queue) Name() string                    { return "" }
