package pmqos

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/internal/nstest"
)

// withPath points Path at a regular file for the test.
func withPath(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cpu_dma_latency")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	old := Path
	Path = p
	t.Cleanup(func() { Path = old })
	return p
}

func TestHoldWrites(t *testing.T) {
	for _, tc := range []struct {
		max  time.Duration
		want uint32 // microseconds written
	}{
		{0, 0},
		{999 * time.Nanosecond, 0},
		{10 * time.Microsecond, 10},
		{1500 * time.Microsecond, 1500},
		{Max, 1<<31 - 1},
	} {
		p := withPath(t)
		r, err := Hold(tc.max)
		if err != nil {
			t.Fatalf("Hold(%v): %v", tc.max, err)
		}
		b, _ := os.ReadFile(p)
		if len(b) != 4 || binary.NativeEndian.Uint32(b) != tc.want {
			t.Errorf("Hold(%v) wrote %x, want %d us", tc.max, b, tc.want)
		}
		if r.Max() != time.Duration(tc.want)*time.Microsecond {
			t.Errorf("Hold(%v).Max() = %v", tc.max, r.Max())
		}
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := r.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	}
}

func TestHoldBadInput(t *testing.T) {
	withPath(t)
	for _, d := range []time.Duration{-time.Microsecond, Max + time.Microsecond} {
		if r, err := Hold(d); err == nil || !strings.Contains(err.Error(), "out of range") {
			r.Close()
			t.Errorf("Hold(%v) = %v, want an out-of-range error", d, err)
		}
	}
	Path = filepath.Join(t.TempDir(), "missing", "cpu_dma_latency")
	if _, err := Hold(0); err == nil || !strings.Contains(err.Error(), "cpu latency request") {
		t.Errorf("Hold on a missing file = %v, want a cpu latency request error", err)
	}
}

// TestHoldKernel holds a real request: the kernel's bound in force drops
// to it, and comes back when it is withdrawn.
func TestHoldKernel(t *testing.T) {
	nstest.RequirePriv(t)
	if _, err := os.Stat(Path); err != nil {
		t.Skipf("no PM QoS CPU latency device: %v", err)
	}
	before, err := Current()
	if err != nil {
		t.Fatal(err)
	}
	r, err := Hold(0)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Current(); err != nil || got != 0 {
		t.Errorf("Current with a 0 request held = %v, %v; want 0", got, err)
	}
	r.Close()
	if got, err := Current(); err != nil || got != before {
		t.Errorf("Current after Close = %v, %v; want %v as before", got, err, before)
	}
}
