//go:build !linux

package bench

import (
	"context"
	"io"
)

// Run returns ErrUnsupported: the harness needs Linux network namespaces.
func Run(ctx context.Context, cfg *Config) (*Report, error) { return nil, ErrUnsupported }

// Worker returns ErrUnsupported: the harness needs Linux network namespaces.
func Worker(args []string, stdout io.Writer) error { return ErrUnsupported }
