// Package pmqos bounds how long the CPUs take to wake from idle while the
// process runs: the kernel's PM QoS CPU latency request
// (/dev/cpu_dma_latency, Documentation/power/pm_qos_interface.rst).
//
// An idle CPU normally halts. Waking a halted CPU costs an interrupt and,
// in a virtual machine, a trip through the hypervisor: on the bench's VM
// each wakeup of the endpoints' CPU adds about 20 us to a UDP round trip
// through a switch on another CPU. With a bound of zero the kernel keeps
// idle CPUs polling instead (the cpuidle POLL state), and a remote CPU
// wakes one with a store to its flags rather than an IPI. The price is
// that idle CPUs never sleep: power on bare metal, host CPU time in a VM.
// This is what tuned's latency-performance profiles and DPDK-style
// dataplanes do; it is opt-in everywhere switchyard offers it.
package pmqos

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"
)

// Path is the kernel's CPU latency request file (a variable for tests).
var Path = "/dev/cpu_dma_latency"

// Max is the largest bound the kernel accepts (an int32 of microseconds).
const Max = time.Duration(math.MaxInt32) * time.Microsecond

// Request is a CPU latency request in force until Close.
type Request struct {
	f   *os.File
	max time.Duration
}

// Hold asks the kernel to keep every CPU's wakeup latency at or under
// max, rounded down to whole microseconds, until Close or until the
// process exits (the kernel drops the request with the file). Zero keeps
// idle CPUs polling.
func Hold(max time.Duration) (*Request, error) {
	if max < 0 || max > Max {
		return nil, fmt.Errorf("cpu latency %v out of range: want 0 to %v", max, Max)
	}
	f, err := os.OpenFile(Path, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("cpu latency request: %w", err)
	}
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], uint32(max/time.Microsecond))
	if _, err := f.Write(b[:]); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu latency request: write %s: %w", Path, err)
	}
	return &Request{f: f, max: max.Truncate(time.Microsecond)}, nil
}

// Max returns the bound this request asked for.
func (r *Request) Max() time.Duration { return r.max }

// Close withdraws the request.
func (r *Request) Close() error {
	if r == nil || r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// Current returns the bound in force: the tightest of every process's
// requests, or the kernel's default (about 2000 s: none) when there is
// none.
func Current() (time.Duration, error) {
	f, err := os.Open(Path)
	if err != nil {
		return 0, fmt.Errorf("cpu latency: %w", err)
	}
	defer f.Close()
	var b [4]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return 0, fmt.Errorf("cpu latency: read %s: %w", Path, err)
	}
	v := int32(binary.NativeEndian.Uint32(b[:]))
	if v < 0 {
		return 0, errors.New("cpu latency: negative bound in force")
	}
	return time.Duration(v) * time.Microsecond, nil
}
