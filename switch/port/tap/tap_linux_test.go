package tap_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/internal/nstest"
	"github.com/switchyard-net/switchyard/netns"
	"github.com/switchyard-net/switchyard/switch/frame"
	"github.com/switchyard-net/switchyard/switch/port"
	"github.com/switchyard-net/switchyard/switch/port/tap"
)

// waitErr waits up to d for an error from c.
func waitErr(t *testing.T, c <-chan error, d time.Duration, what string) error {
	t.Helper()
	select {
	case err := <-c:
		return err
	case <-time.After(d):
		t.Fatalf("%s: nothing within %v", what, d)
		return nil
	}
}

// TestPingFromNamespace answers ARP and ping from the Go side: the
// namespace pings 198.18.1.1, which only exists as this test's replies.
func TestPingFromNamespace(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	ns, qs := tapIn(t, "198.18.1.2/24", 1, nil)
	q := qs[0]
	if q.Name() != "eth0" || q.BatchSize() != tap.DefaultBatchSize || q.MTU() != tap.DefaultMTU || !q.Offloads() {
		t.Errorf("Name %q BatchSize %d MTU %d Offloads %v; want eth0, %d, %d, true",
			q.Name(), q.BatchSize(), q.MTU(), q.Offloads(), tap.DefaultBatchSize, tap.DefaultMTU)
	}
	gw := netip.MustParseAddr("198.18.1.1")
	var arps, echoes int
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 2048)
		out := make([]port.Frame, 1)
		reply := func(n int) {
			out[0] = port.Frame{Data: buf[:n]}
			if w, err := q.Write(out); w != 1 || err != nil {
				t.Errorf("Write reply: %d, %v", w, err)
			}
		}
		done <- readLoop(q, func(f port.Frame) {
			if n := arpReply(f.Data, gw, buf); n > 0 {
				arps++
				reply(n)
			} else if isEcho(f.Data, 8, gw) {
				echoes++
				reply(echoReply(f.Data, buf))
			}
		})
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns,
		"ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", gw.String()).CombinedOutput()
	q.Close()
	if rerr := waitErr(t, done, 5*time.Second, "reader after Close"); !errors.Is(rerr, port.ErrClosed) {
		t.Errorf("Read after Close: %v, want ErrClosed", rerr)
	}
	if err != nil || !strings.Contains(string(out), "3 received") {
		t.Fatalf("ping from the namespace failed: %v\n%s", err, out)
	}
	if arps < 1 || echoes != 3 {
		t.Errorf("answered %d ARP requests and %d echo requests, want >= 1 and 3", arps, echoes)
	}
	st := q.Stats()
	if st.RxFrames < 4 || st.TxFrames < 4 || st.RxBytes < 4*42 || st.TxBytes < 4*42 || st.TxErrors != 0 || st.TxDropped != 0 {
		t.Errorf("stats %+v: want >= 4 frames each way and no errors", st)
	}
}

// TestGSOBetweenNamespaces forwards frames between two TAPs, each in its
// own namespace, and runs TCP across: the sender's TAP hands over GSO
// super-frames with partial checksums, and the receiver's takes them back
// whole.
func TestGSOBetweenNamespaces(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	nsA, qa := tapIn(t, "198.18.2.1/24", 1, nil)
	nsB, qb := tapIn(t, "198.18.2.2/24", 1, nil)
	a, b := qa[0], qb[0]
	if want := uint(tap.OffloadCsum | tap.OffloadTSO4 | tap.OffloadTSO6); a.KernelOffloads()&want != want {
		t.Fatalf("kernel offloads %#x, want at least %#x", a.KernelOffloads(), want)
	}
	var gso, needsCsum, maxLen atomic.Int64
	forward := func(src, dst *tap.Queue, count bool) error {
		frames := make([]port.Frame, src.BatchSize())
		for {
			n, err := src.Read(frames)
			if err != nil {
				return err
			}
			for _, f := range frames[:n] {
				if !count {
					break
				}
				if f.VNet.GSO() {
					gso.Add(1)
					if int64(len(f.Data)) > maxLen.Load() {
						maxLen.Store(int64(len(f.Data)))
					}
				}
				if f.VNet.Flags&frame.VNetNeedsCsum != 0 {
					needsCsum.Add(1)
				}
			}
			if _, err := dst.Write(frames[:n]); err != nil {
				return err
			}
		}
	}
	fwd := make(chan error, 2)
	go func() { fwd <- forward(a, b, true) }()
	go func() { fwd <- forward(b, a, false) }()

	const total = 32 << 20
	in := func(ns string) func(func() error) error {
		return func(fn func() error) error { return netns.Do(ns, fn) }
	}
	elapsed := nstest.TCPTransfer(t, in(nsB), in(nsA), "198.18.2.2:5001", total)
	t.Logf("%d MiB in %v (%.2f Gbit/s); %d GSO frames (largest %d bytes), %d with NEEDS_CSUM",
		total>>20, elapsed.Round(time.Millisecond), float64(total)*8/elapsed.Seconds()/1e9, gso.Load(), maxLen.Load(), needsCsum.Load())
	if gso.Load() == 0 || maxLen.Load() <= 1514 {
		t.Errorf("no GSO super-frames from the sender's TAP (largest GSO frame %d bytes)", maxLen.Load())
	}
	if needsCsum.Load() == 0 {
		t.Error("no frame with NEEDS_CSUM from the sender's TAP")
	}
	if st := b.Stats(); st.TxErrors != 0 || st.TxDropped != 0 {
		t.Errorf("receiver TAP refused frames: %+v", st)
	}
	a.Close()
	b.Close()
	for i := 0; i < 2; i++ {
		if err := waitErr(t, fwd, 5*time.Second, "forwarder after Close"); !errors.Is(err, port.ErrClosed) {
			t.Errorf("forwarder stopped with %v, want ErrClosed", err)
		}
	}
}

// TestMultiqueue opens a two-queue TAP: flows from the namespace spread
// over both queues, and frames written to either reach the namespace.
func TestMultiqueue(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	ns, qs := tapIn(t, "198.18.3.2/24", 2, nil)
	if len(qs) != 2 {
		t.Fatalf("%d queues, want 2", len(qs))
	}
	staticNeigh(t, ns, "198.18.3.1")
	peer, local := netip.MustParseAddr("198.18.3.1"), netip.MustParseAddr("198.18.3.2")
	const flows = 64
	var udp [2]atomic.Int64
	var replies, csumFlag atomic.Int64
	done := make(chan error, 2)
	for i, q := range qs {
		go func() {
			done <- readLoop(q, func(f port.Frame) {
				d := f.Data
				if len(d) >= ethLen+ipv4Len+8 && etherType(d) == 0x0800 && d[ethLen+9] == 17 &&
					netip.AddrFrom4([4]byte(d[ethLen+16:ethLen+20])) == peer {
					udp[i].Add(1)
					if f.VNet.Flags&frame.VNetNeedsCsum != 0 {
						csumFlag.Add(1)
					}
				}
				if isEcho(d, 0, peer) {
					replies.Add(1)
				}
			})
		}()
	}
	if err := netns.Do(ns, func() error {
		for p := 0; p < flows; p++ {
			c, err := net.DialUDP("udp4", &net.UDPAddr{IP: local.AsSlice(), Port: 20000 + p}, &net.UDPAddr{IP: peer.AsSlice(), Port: 9})
			if err != nil {
				return err
			}
			_, err = c.Write([]byte("flow"))
			c.Close()
			if err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mac := linkMAC(t, ns)
	buf := make([]byte, 128)
	for i, q := range qs {
		n := echoRequest(buf, mac, peer, local, 0x5359, uint16(i))
		if w, err := q.Write([]port.Frame{{Data: buf[:n]}}); w != 1 || err != nil {
			t.Errorf("write on queue %d: %d, %v", i, w, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && (udp[0].Load()+udp[1].Load() < flows || replies.Load() < 2) {
		time.Sleep(10 * time.Millisecond)
	}
	for _, q := range qs {
		q.Close()
	}
	for range qs {
		if err := waitErr(t, done, 5*time.Second, "reader after Close"); !errors.Is(err, port.ErrClosed) {
			t.Errorf("reader stopped with %v, want ErrClosed", err)
		}
	}
	t.Logf("UDP flows per queue: %d, %d; echo replies %d", udp[0].Load(), udp[1].Load(), replies.Load())
	if udp[0].Load()+udp[1].Load() != flows || udp[0].Load() == 0 || udp[1].Load() == 0 {
		t.Errorf("UDP frames per queue %d and %d, want %d spread over both", udp[0].Load(), udp[1].Load(), flows)
	}
	if replies.Load() != 2 {
		t.Errorf("%d echo replies to requests written on each queue, want 2", replies.Load())
	}
	if csumFlag.Load() != flows {
		t.Errorf("%d of %d UDP frames flagged NEEDS_CSUM, want all (checksum offload on)", csumFlag.Load(), flows)
	}
}

func TestCloseWakesRead(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	_, qs := tapIn(t, "198.18.5.2/24", 1, nil)
	q := qs[0]
	errc := make(chan error, 1)
	go func() { errc <- readLoop(q, func(port.Frame) {}) }()
	time.Sleep(100 * time.Millisecond) // let Read park in the netpoller
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := waitErr(t, errc, 3*time.Second, "blocked Read after Close"); !errors.Is(err, port.ErrClosed) {
		t.Errorf("blocked Read returned %v, want ErrClosed", err)
	}
	frames := make([]port.Frame, 4)
	if _, err := q.Read(frames); !errors.Is(err, port.ErrClosed) {
		t.Errorf("Read after Close: %v, want ErrClosed", err)
	}
	if _, err := q.Write([]port.Frame{{Data: make([]byte, 60)}}); !errors.Is(err, port.ErrClosed) {
		t.Errorf("Write after Close: %v, want ErrClosed", err)
	}
	if err := q.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestLinkGone(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	ns, qs := tapIn(t, "198.18.6.2/24", 1, nil)
	q := qs[0]
	errc := make(chan error, 1)
	go func() { errc <- readLoop(q, func(port.Frame) {}) }()
	time.Sleep(100 * time.Millisecond)
	if err := netns.DelLink(ns, "eth0"); err != nil {
		t.Fatal(err)
	}
	err := waitErr(t, errc, 3*time.Second, "blocked Read after the link was deleted")
	if !errors.Is(err, port.ErrLinkGone) {
		t.Errorf("Read after link deletion: %v, want ErrLinkGone", err)
	}
	t.Logf("Read: %v", err)
	f := make([]byte, 60)
	copy(f, "\xff\xff\xff\xff\xff\xff")
	_, err = q.Write([]port.Frame{{Data: f}})
	if !errors.Is(err, port.ErrLinkGone) {
		t.Errorf("Write after link deletion: %v, want ErrLinkGone", err)
	}
	t.Logf("Write: %v", err)
}

func TestWriteLinkDown(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	ns, qs := tapIn(t, "198.18.7.2/24", 1, nil)
	q := qs[0]
	h, err := netns.NetlinkHandle(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetDown(l); err != nil {
		t.Fatal(err)
	}
	f := make([]byte, 60)
	copy(f, "\xff\xff\xff\xff\xff\xff")
	n, err := q.Write([]port.Frame{{Data: f}, {Data: f}})
	if n != 0 || err != nil {
		t.Errorf("Write on a down link: %d, %v; want 0 taken, no error", n, err)
	}
	if st := q.Stats(); st.TxDropped != 2 {
		t.Errorf("TxDropped %d, want 2", st.TxDropped)
	}
}

func TestWriteRejects(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	ns, qs := tapIn(t, "198.18.8.2/24", 1, nil)
	q := qs[0]
	staticNeigh(t, ns, "198.18.8.1")
	good := make([]byte, 128)
	n := echoRequest(good, linkMAC(t, ns), netip.MustParseAddr("198.18.8.1"), netip.MustParseAddr("198.18.8.2"), 1, 1)
	frames := []port.Frame{
		{Data: nil},                             // empty: dropped
		{Data: make([]byte, tap.MaxFrameLen+1)}, // too long: dropped
		// A GSO header the kernel refuses (TCP GSO on an ICMP frame with
		// a header length beyond the frame): an error, counted.
		{Data: good[:n], VNet: frame.VNetHdr{GSOType: frame.GSOTCPv4, GSOSize: 100, HdrLen: 2000}},
		{Data: good[:n]},
	}
	w, err := q.Write(frames)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	st := q.Stats()
	t.Logf("taken %d, stats %+v", w, st)
	if w != 1 || st.TxFrames != 1 || st.TxDropped != 2 || st.TxErrors != 1 {
		t.Errorf("Write took %d, stats %+v; want 1 taken, 2 dropped, 1 error", w, st)
	}
}

// TestZeroAllocs checks that a batch written and a batch read allocate
// nothing: the namespace answers echo requests we write, and we read the
// replies.
func TestZeroAllocs(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	ns, qs := tapIn(t, "198.18.4.2/24", 1, nil)
	q := qs[0]
	staticNeigh(t, ns, "198.18.4.1")
	peer, local := netip.MustParseAddr("198.18.4.1"), netip.MustParseAddr("198.18.4.2")
	mac := linkMAC(t, ns)
	const k = 4
	out := make([]port.Frame, k)
	for i := range out {
		b := make([]byte, 128)
		out[i].Data = b[:echoRequest(b, mac, peer, local, 7, uint16(i))]
	}
	frames := make([]port.Frame, q.BatchSize())
	// If replies stop coming, unblock Read rather than hang.
	watchdog := time.AfterFunc(30*time.Second, func() { q.Close() })
	defer watchdog.Stop()
	var failed error
	round := func() {
		if failed != nil {
			return
		}
		if w, err := q.Write(out); w != k || err != nil {
			failed = errors.New("write failed")
			return
		}
		for got := 0; got < k; {
			n, err := q.Read(frames)
			if err != nil {
				failed = err
				return
			}
			for _, f := range frames[:n] {
				if isEcho(f.Data, 0, peer) {
					got++
				}
			}
		}
	}
	round()
	allocs := testing.AllocsPerRun(100, round)
	if failed != nil {
		t.Fatalf("round trip: %v", failed)
	}
	if allocs != 0 {
		t.Errorf("%v allocations per write+read batch, want 0", allocs)
	}
}

func TestOpen(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	ns := newNS(t)
	name := nstest.Name("syopen")
	var qs []*tap.Queue
	if err := netns.Do(ns, func() (err error) {
		qs, err = tap.Open(name, 2, &tap.Config{BatchSize: 8, MTU: 9000})
		return err
	}); err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer func() {
		for _, q := range qs {
			q.Close()
		}
	}()
	if len(qs) != 2 {
		t.Fatalf("%d queues, want 2", len(qs))
	}
	for _, q := range qs {
		if q.Name() != name || q.BatchSize() != 8 || q.MTU() != 9000 {
			t.Errorf("Name %q BatchSize %d MTU %d, want %s, 8, 9000", q.Name(), q.BatchSize(), q.MTU(), name)
		}
	}
	if ok, err := netns.LinkExists(ns, name); !ok || err != nil {
		t.Errorf("device %s in the namespace: %v, %v", name, ok, err)
	}
	if ok, _ := netns.LinkExists("", name); ok {
		t.Errorf("device %s created in the original namespace", name)
	}
	for _, q := range qs {
		q.Close()
	}
	if ok, err := netns.LinkExists(ns, name); ok || err != nil {
		t.Errorf("device still there after closing its queues: %v, %v", ok, err)
	}
}

func TestDisableOffload(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	_, qs := tapIn(t, "198.18.9.2/24", 1, &tap.Config{DisableOffload: true})
	if got := qs[0].KernelOffloads(); got != 0 {
		t.Errorf("KernelOffloads %#x with DisableOffload, want 0", got)
	}
	if !qs[0].Offloads() {
		t.Error("Offloads() false: writes still take offloads")
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := tap.New("x", nil, nil); err == nil {
		t.Error("New with no files succeeded")
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tap.New("x", []*os.File{f}, nil); err == nil {
		t.Fatal("New took /dev/null as a TAP queue")
	}
	if err := f.Close(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("New did not close the file it owns: Close = %v", err)
	}
}

// TestConcurrentWrite writes echo requests from several goroutines at once
// and counts the namespace's replies.
func TestConcurrentWrite(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	ns, qs := tapIn(t, "198.18.10.2/24", 1, nil)
	q := qs[0]
	staticNeigh(t, ns, "198.18.10.1")
	peer, local := netip.MustParseAddr("198.18.10.1"), netip.MustParseAddr("198.18.10.2")
	mac := linkMAC(t, ns)
	var replies atomic.Int64
	done := make(chan error, 1)
	go func() {
		done <- readLoop(q, func(f port.Frame) {
			if isEcho(f.Data, 0, peer) {
				replies.Add(1)
			}
		})
	}()
	const writers, each = 4, 25
	werr := make(chan error, writers)
	for w := 0; w < writers; w++ {
		go func() {
			buf := make([]byte, 128)
			for i := 0; i < each; i++ {
				n := echoRequest(buf, mac, peer, local, uint16(w), uint16(i))
				if k, err := q.Write([]port.Frame{{Data: buf[:n]}}); k != 1 || err != nil {
					werr <- errors.New("write failed")
					return
				}
			}
			werr <- nil
		}()
	}
	for w := 0; w < writers; w++ {
		if err := waitErr(t, werr, 5*time.Second, "writer"); err != nil {
			t.Error(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && replies.Load() < writers*each {
		time.Sleep(10 * time.Millisecond)
	}
	q.Close()
	if err := waitErr(t, done, 5*time.Second, "reader after Close"); !errors.Is(err, port.ErrClosed) {
		t.Errorf("reader stopped with %v", err)
	}
	if got := replies.Load(); got != writers*each {
		t.Errorf("%d echo replies, want %d", got, writers*each)
	}
	if st := q.Stats(); st.TxFrames != writers*each {
		t.Errorf("TxFrames %d, want %d", st.TxFrames, writers*each)
	}
}
