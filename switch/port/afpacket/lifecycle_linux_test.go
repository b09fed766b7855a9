//go:build linux

package afpacket

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/switch/frame"
	"github.com/switchyard-net/switchyard/switch/port"
	"github.com/vishvananda/netlink"
)

// TestCloseWhileReading closes a port under a blocked Read and concurrent
// Writes: they return ErrClosed, nothing touches the unmapped ring.
func TestCloseWhileReading(t *testing.T) {
	for _, tc := range versions {
		t.Run(tc.name, func(t *testing.T) {
			p, _, _ := pair(t, &Config{Version: tc.v})
			readErr := make(chan error, 1)
			go func() {
				frames := make([]port.Frame, p.BatchSize())
				for {
					if _, err := p.Read(frames); err != nil {
						readErr <- err
						return
					}
				}
			}()
			var wg sync.WaitGroup
			stop := make(chan struct{})
			for w := 0; w < 3; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					fr := []port.Frame{{Data: testFrame(300, 1)}, {Data: testFrame(1500, 2)}}
					for i := 0; i < 100000; i++ {
						if _, err := p.Write(fr); err != nil {
							if !errors.Is(err, port.ErrClosed) {
								t.Errorf("write: %v", err)
							}
							return
						}
						select {
						case <-stop:
							return
						default:
						}
					}
				}()
			}
			// Close only once writes are flowing.
			for deadline := time.Now().Add(5 * time.Second); p.Stats().TxFrames < 1000; {
				if time.Now().After(deadline) {
					t.Fatalf("writers sent only %d frames in 5 s", p.Stats().TxFrames)
				}
				time.Sleep(time.Millisecond)
			}
			if err := p.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			select {
			case err := <-readErr:
				if !errors.Is(err, port.ErrClosed) {
					t.Errorf("read after close: %v, want ErrClosed", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("read still blocked 5s after close")
			}
			close(stop)
			wg.Wait()
			if err := p.Close(); err != nil {
				t.Errorf("second close: %v", err)
			}
			if _, err := p.Read(make([]port.Frame, 1)); !errors.Is(err, port.ErrClosed) {
				t.Errorf("read on closed port: %v", err)
			}
			if _, err := p.Write([]port.Frame{{Data: testFrame(60, 0)}}); !errors.Is(err, port.ErrClosed) {
				t.Errorf("write on closed port: %v", err)
			}
			_ = p.Stats() // must not touch the closed socket
		})
	}
}

// TestLinkGone deletes the interface under a port blocked in Read.
func TestLinkGone(t *testing.T) {
	for _, tc := range versions {
		t.Run(tc.name, func(t *testing.T) {
			p, _, ns := pair(t, &Config{Version: tc.v})
			readErr := make(chan error, 1)
			go func() {
				frames := make([]port.Frame, p.BatchSize())
				for {
					if _, err := p.Read(frames); err != nil {
						readErr <- err
						return
					}
				}
			}()
			time.Sleep(20 * time.Millisecond)
			l, err := ns.nl.LinkByName(p.Name())
			if err != nil {
				t.Fatal(err)
			}
			if err := ns.nl.LinkDel(l); err != nil {
				t.Fatalf("delete %s: %v", p.Name(), err)
			}
			select {
			case err := <-readErr:
				if !errors.Is(err, port.ErrLinkGone) {
					t.Errorf("read: %v, want ErrLinkGone", err)
				}
			case <-time.After(5 * time.Second):
				p.Close()
				t.Fatal("read did not notice the deleted link in 5s")
			}
			if _, err := p.Write([]port.Frame{{Data: testFrame(60, 0)}}); !errors.Is(err, port.ErrLinkGone) {
				t.Errorf("write: %v, want ErrLinkGone", err)
			}
		})
	}
}

// TestLinkDownUp: a link that goes down and up again is not gone, and
// frames of both receive paths (RxSplit's ring and second socket, whose
// ENETDOWN is still pending) come in order after it.
func TestLinkDownUp(t *testing.T) {
	p, q, ns := pair(t, nil)
	l, err := ns.nl.LinkByName(p.Name())
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.nl.LinkSetDown(l); err != nil {
		t.Fatal(err)
	}
	waitOper(t, ns, p.Name(), netlink.OperDown)
	if err := ns.nl.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	waitOper(t, ns, p.Name(), netlink.OperUp)
	want := []port.Frame{{Data: testFrame(500, 9)}, gsoTestFrame(20000, 10), {Data: testFrame(500, 11)}}
	if n, err := q.Write(want); n != len(want) || err != nil {
		t.Fatalf("write: %d, %v", n, err)
	}
	g := collect(t, p, len(want), func(b []byte) bool { return seqOf(b) >= 0 }, 5*time.Second)
	for i := range want {
		if !bytes.Equal(g[i].Data, want[i].Data) {
			t.Errorf("frame %d after down/up: got seq %d, want %d", i, seqOf(g[i].Data), 9+i)
		}
	}
}

// TestWrongFormat sends a frame the kernel rejects (an unknown GSO type)
// between good ones: it counts as a TX error, the ring stays in step and
// the frames around it go out.
func TestWrongFormat(t *testing.T) {
	for _, tc := range versions {
		t.Run(tc.name, func(t *testing.T) {
			p, q, _ := pair(t, &Config{Version: tc.v})
			fr := []port.Frame{
				{Data: testFrame(100, 1)},
				{Data: testFrame(100, 2), VNet: frame.VNetHdr{GSOType: 2, GSOSize: 100, HdrLen: 14}},
				{Data: testFrame(100, 3)},
				{Data: testFrame(100, 4)},
			}
			for round := 0; round < 3; round++ { // several rounds: ring heads stay in step
				n, err := q.Write(fr)
				if err != nil || n != 3 {
					t.Fatalf("round %d: write: %d, %v; want 3 sent", round, n, err)
				}
				g := collect(t, p, 3, isTest, 5*time.Second)
				for i, seq := range []uint32{1, 3, 4} {
					if s := binary.BigEndian.Uint32(g[i].Data[14:]); s != seq {
						t.Errorf("round %d: frame %d has seq %d, want %d", round, i, s, seq)
					}
				}
			}
			if s := q.Stats(); s.TxErrors != 3 || s.TxFrames != 9 {
				t.Errorf("stats %+v, want 3 errors 9 frames", s)
			}
		})
	}
}

// TestVLANTag: the kernel strips a VLAN tag on receive and reports it in
// the ring header; Read puts it back.
func TestVLANTag(t *testing.T) {
	for _, tc := range rxModes {
		t.Run(tc.name, func(t *testing.T) {
			p, q, _ := pair(t, tc.config())
			d := testFrame(200, 5)
			tagged := append(append(append([]byte{}, d[:12]...), 0x81, 0x00, 0x20, 0x2a), d[12:]...)
			if n, err := q.Write([]port.Frame{{Data: tagged}}); n != 1 || err != nil {
				t.Fatalf("write: %d, %v", n, err)
			}
			g := collect(t, p, 1, func(b []byte) bool {
				return len(b) > 18 && binary.BigEndian.Uint16(b[12:]) == 0x8100
			}, 5*time.Second)
			if !bytes.Equal(g[0].Data, tagged) {
				t.Errorf("got\n%x\nwant\n%x", g[0].Data[:24], tagged[:24])
			}
		})
	}
}

// TestZeroAllocs: a Write+Read batch, of short frames and super-frames,
// allocates nothing in steady state.
func TestZeroAllocs(t *testing.T) {
	for _, tc := range rxModes {
		t.Run(tc.name, func(t *testing.T) {
			p, q, _ := pair(t, tc.config())
			out := make([]port.Frame, 32)
			for i := range out {
				out[i] = port.Frame{Data: testFrame(200, uint32(i))}
				if i%8 == 7 {
					out[i] = gsoTestFrame(9000, uint32(i))
				}
			}
			in := make([]port.Frame, p.BatchSize())
			round := func() {
				if n, err := q.Write(out); n != len(out) || err != nil {
					t.Fatalf("write: %d, %v", n, err)
				}
				got := 0
				for got < len(out) {
					n, err := p.Read(in)
					if err != nil {
						t.Fatalf("read: %v", err)
					}
					for _, f := range in[:n] {
						if seqOf(f.Data) >= 0 {
							got++
						}
					}
				}
			}
			timer := time.AfterFunc(10*time.Second, func() { p.Close() })
			defer timer.Stop()
			round()
			if a := testing.AllocsPerRun(50, round); a != 0 {
				t.Errorf("%v allocations per Write+Read batch, want 0", a)
			}
		})
	}
}

// waitOper waits up to 5 s for the named link's operational state.
func waitOper(t *testing.T, ns *testNS, name string, want netlink.LinkOperState) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		l, err := ns.nl.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if l.Attrs().OperState == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: operstate %v after 5 s, want %v", name, l.Attrs().OperState, want)
		}
		time.Sleep(time.Millisecond)
	}
}
