package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a child process of the harness: its stdout is kept and split
// into lines, the tail of its stderr kept for error messages. Every proc is
// stopped by its PID and waited for.
type proc struct {
	name string
	cmd  *exec.Cmd

	mu     sync.Mutex
	out    bytes.Buffer
	errOut tailBuffer

	lines chan string   // stdout lines as they come; extra ones dropped
	done  chan struct{} // closed once the process has been waited for
	err   error         // from Wait, valid after done
}

// startProc starts argv. The child gets its own process group, so that a
// terminal's ^C reaches only the harness, which then stops it in order; and
// it is killed if the harness dies.
func startProc(name string, argv []string) (*proc, error) {
	return startProcEnv(name, argv, nil)
}

// startProcEnv is startProc with env added to the harness's environment.
func startProcEnv(name string, argv, env []string) (*proc, error) {
	p := &proc{name: name, lines: make(chan string, 64), done: make(chan struct{})}
	p.errOut.max = 4 << 10
	p.cmd = exec.Command(argv[0], argv[1:]...)
	if len(env) > 0 {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p.cmd.Stderr = &lockedWriter{mu: &p.mu, w: &p.errOut}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("bench: start %s: %w", name, err)
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start %s: %w", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.out.Write(sc.Bytes())
			p.out.WriteByte('\n')
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// stdout returns everything the process printed so far.
func (p *proc) stdout() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.out.Bytes())
}

// lastLine returns the last non-empty line the process printed.
func (p *proc) lastLine() string {
	lines := strings.Split(strings.TrimSpace(string(p.stdout())), "\n")
	return lines[len(lines)-1]
}

// failure describes how the process ended, with the tail of its stderr.
func (p *proc) failure(err error) error {
	p.mu.Lock()
	tail := strings.TrimSpace(string(p.errOut.b))
	p.mu.Unlock()
	if i := strings.LastIndexByte(tail, '\n'); i >= 0 {
		tail = tail[i+1:]
	}
	if tail != "" {
		return fmt.Errorf("%s: %w: %s", p.name, err, tail)
	}
	return fmt.Errorf("%s: %w", p.name, err)
}

// waitLine waits up to timeout for a stdout line equal to want.
func (p *proc) waitLine(ctx context.Context, want string, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case l := <-p.lines:
			if strings.TrimSpace(l) == want {
				return nil
			}
		case <-p.done:
			// Lines printed just before exiting may still be queued.
			for {
				select {
				case l := <-p.lines:
					if strings.TrimSpace(l) == want {
						return nil
					}
				default:
					return p.failure(fmt.Errorf("exited before printing %q (%v)", want, p.err))
				}
			}
		case <-t.C:
			return p.failure(fmt.Errorf("did not print %q within %v", want, timeout))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// wait waits up to timeout for the process to exit by itself; after that,
// or when ctx ends, it stops it. It returns the exit error.
func (p *proc) wait(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		if p.err != nil {
			return p.failure(p.err)
		}
		return nil
	case <-t.C:
		p.stop(time.Second)
		return p.failure(fmt.Errorf("still running after %v, killed", timeout))
	case <-ctx.Done():
		p.stop(time.Second)
		return ctx.Err()
	}
}

// running reports whether the process has not exited yet.
func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM to the process, waits up to grace, then kills it and
// waits for it. It returns the exit error, nil for an exit on SIGTERM.
func (p *proc) stop(grace time.Duration) error {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(grace)
		select {
		case <-p.done:
			t.Stop()
		case <-t.C:
			_ = p.cmd.Process.Kill()
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
				// Killed but its stdout is still held open (by a
				// grandchild?): give up on waiting.
				return p.failure(errors.New("killed, but did not finish"))
			}
		}
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil
		}
	}
	if p.err != nil {
		return p.failure(p.err)
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	b   []byte
	max int
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.b = append(t.b, b...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(b), nil
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *tailBuffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
