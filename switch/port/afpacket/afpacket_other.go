//go:build !linux

package afpacket

import "github.com/switchyard-net/switchyard/switch/port"

// Port is an AF_PACKET ring port. It cannot be opened on this system.
type Port struct{}

// Open returns ErrUnsupported: AF_PACKET exists only on Linux.
func Open(ifname string, cfg *Config) (*Port, error) {
	return nil, &openError{ifname}
}

type openError struct{ ifname string }

func (e *openError) Error() string {
	return "afpacket: open " + e.ifname + ": " + ErrUnsupported.Error()
}
func (e *openError) Unwrap() error { return ErrUnsupported }

func (p *Port) Read([]port.Frame) (int, error)  { return 0, ErrUnsupported }
func (p *Port) Write([]port.Frame) (int, error) { return 0, ErrUnsupported }
func (p *Port) BatchSize() int                  { return 0 }
func (p *Port) MTU() int                        { return 0 }
func (p *Port) Close() error                    { return nil }
func (p *Port) Offloads() bool                  { return false }
func (p *Port) Stats() port.Stats               { return port.Stats{} }
func (p *Port) Name() string                    { return "" }
