package nstest

import (
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"
)

// TCPTransfer sends n pseudo-random bytes over one TCP connection, from a
// socket opened by dialIn to a listener on addr opened by listenIn (each
// runs its function inside a network namespace, e.g. through netns.Do),
// checks that every byte arrives intact (SHA-256 over both ends) and
// returns how long the transfer took. addr may have port 0. The whole
// exchange is bounded to 60 s.
func TCPTransfer(t testing.TB, listenIn, dialIn func(func() error) error, addr string, n int64) time.Duration {
	t.Helper()
	var ln net.Listener
	if err := listenIn(func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	defer ln.Close()
	type result struct {
		n   int64
		sum [32]byte
		err error
	}
	res := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			res <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(60 * time.Second))
		h := sha256.New()
		var r result
		r.n, r.err = io.Copy(h, c)
		copy(r.sum[:], h.Sum(nil))
		res <- r
	}()
	var conn net.Conn
	if err := dialIn(func() (err error) { conn, err = net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second); return err }); err != nil {
		t.Fatalf("dial %s: %v", ln.Addr(), err)
	}
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	h := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{1, 2, 3}), n), h)
	start := time.Now()
	sent, err := io.CopyBuffer(conn, src, make([]byte, 256<<10))
	conn.Close()
	if err != nil {
		t.Fatalf("send after %d bytes: %v", sent, err)
	}
	r := <-res
	el := time.Since(start)
	if r.err != nil {
		t.Fatalf("receive: %v", r.err)
	}
	var want [32]byte
	copy(want[:], h.Sum(nil))
	if r.n != n || r.sum != want {
		t.Fatalf("received %d bytes (sha256 %x), sent %d (sha256 %x)", r.n, r.sum[:8], n, want[:8])
	}
	return el
}
