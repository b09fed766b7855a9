//go:build !linux

package bench

import (
	"context"
	"io"
	"os"
)

// Run returns ErrUnsupported: the harness needs Linux network namespaces.
func Run(ctx context.Context, cfg *Config) (*Report, error) { return nil, ErrUnsupported }

// Worker returns ErrUnsupported: the harness needs Linux network namespaces.
func Worker(args []string, stdout io.Writer) error { return ErrUnsupported }

// IsTerminal reports false: no progress bar where the harness cannot run.
func IsTerminal(f *os.File) bool { return false }
