//go:build linux

package afpacket

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard-net/switchyard/internal/nstest"
	"github.com/switchyard-net/switchyard/switch/frame"
	"github.com/switchyard-net/switchyard/switch/port"
)

const testEtherType = 0x88b5 // IEEE local experimental

// ringCase is a ring version, transmit and receive path to run a test with.
type ringCase struct {
	name string
	v    Version
	tx   TxMode
	rx   RxMode
}

func (c ringCase) config() *Config { return &Config{Version: c.v, TxMode: c.tx, RxMode: c.rx} }

// versions are the ring versions with the default paths (sendmmsg, RxSplit).
var versions = []ringCase{{"V3", TPacketV3, TxSendmmsg, RxSplit}, {"V2", TPacketV2, TxSendmmsg, RxSplit}}

// rxModes adds the other receive paths, for the tests of what comes in.
var rxModes = append(versions[:len(versions):len(versions)],
	ringCase{"V2-rxring", TPacketV2, TxSendmmsg, RxRing}, ringCase{"V3-rxring", TPacketV3, TxSendmmsg, RxRing},
	ringCase{"rxmmsg", TPacketV2, TxSendmmsg, RxRecvmmsg})

// txModes adds the TX ring, for the tests of what goes out and comes in.
var txModes = append(rxModes[:len(rxModes):len(rxModes)],
	ringCase{"V2-txring", TPacketV2, TxRing, RxSplit}, ringCase{"V3-txring", TPacketV3, TxRing, RxSplit})

// testFrame builds an Ethernet frame of size bytes with our test EtherType
// and a payload derived from seq.
func testFrame(size int, seq uint32) []byte {
	b := make([]byte, max(size, 18))
	copy(b, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(b[12:], testEtherType)
	binary.BigEndian.PutUint32(b[14:], seq)
	for i := 18; i < size; i++ {
		b[i] = byte(uint32(i) * (seq + 7))
	}
	return b[:size]
}

func isTest(b []byte) bool {
	return len(b) >= 18 && binary.BigEndian.Uint16(b[12:]) == testEtherType
}

type got struct {
	Data []byte
	VNet frame.VNetHdr
}

// collect reads from p until want frames matching match arrived, copying
// them out; after timeout it closes p to stop the read and fails t.
func collect(t *testing.T, p *Port, want int, match func([]byte) bool, timeout time.Duration) []got {
	t.Helper()
	timer := time.AfterFunc(timeout, func() { p.Close() })
	defer timer.Stop()
	frames := make([]port.Frame, p.BatchSize())
	var out []got
	for len(out) < want {
		n, err := p.Read(frames)
		if err != nil {
			t.Fatalf("read after %d of %d frames: %v", len(out), want, err)
		}
		for _, f := range frames[:n] {
			if match(f.Data) {
				out = append(out, got{append([]byte(nil), f.Data...), f.VNet})
			}
		}
	}
	return out
}

// pair returns two ports on the ends of a fresh veth pair in a fresh
// namespace.
func pair(t *testing.T, cfg *Config) (p, q *Port, ns *testNS) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	ns = newNS(t)
	a, b := ns.veth(t, nil)
	return ns.open(t, a, cfg), ns.open(t, b, cfg), ns
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range txModes {
		t.Run(tc.name, func(t *testing.T) {
			p, q, _ := pair(t, tc.config())
			if p.Version() != tc.v || !p.Offloads() || p.MTU() != 1500 {
				t.Fatalf("version %v offloads %v mtu %d", p.Version(), p.Offloads(), p.MTU())
			}
			sizes := []int{60, 64, 128, 1000, 1514}
			var out []port.Frame
			var want []got
			var wantBytes uint64
			for i := 0; i < 120; i++ { // more than a batch and a TX ring, less than an RX ring
				d := testFrame(sizes[i%len(sizes)], uint32(i))
				out = append(out, port.Frame{Data: d})
				want = append(want, got{Data: d})
				wantBytes += uint64(len(d))
			}
			n, err := q.Write(out)
			if err != nil || n != len(out) {
				t.Fatalf("write: %d, %v", n, err)
			}
			gotFrames := collect(t, p, len(want), isTest, 5*time.Second)
			if d := cmp.Diff(want, gotFrames); d != "" {
				t.Errorf("received frames differ (-want +got):\n%s", d)
			}
			qs := q.Stats()
			if qs.TxFrames != uint64(len(out)) || qs.TxBytes != wantBytes || qs.TxDropped != 0 || qs.TxErrors != 0 {
				t.Errorf("sender stats %+v, want %d frames %d bytes", qs, len(out), wantBytes)
			}
			ps := p.Stats()
			if ps.RxFrames < uint64(len(out)) || ps.RxBytes < wantBytes || ps.RxErrors != 0 {
				t.Errorf("receiver stats %+v, want >= %d frames, >= %d bytes", ps, len(out), wantBytes)
			}

			// The way back: q must see p's frames, never its own.
			back := []port.Frame{{Data: testFrame(100, 1000)}}
			if n, err := p.Write(back); n != 1 || err != nil {
				t.Fatalf("write back: %d, %v", n, err)
			}
			g := collect(t, q, 1, isTest, 5*time.Second)
			if !bytes.Equal(g[0].Data, back[0].Data) {
				t.Errorf("q got %x, want p's frame (its own frames must not come back)", g[0].Data[:18])
			}
		})
	}
}

// TestRxOverflow fills the RX ring with nobody reading: what does not fit
// is counted in RxDropped (PACKET_STATISTICS, accumulated).
func TestRxOverflow(t *testing.T) {
	for _, tc := range versions {
		t.Run(tc.name, func(t *testing.T) {
			// V3: 4 blocks of 8 KiB hold ~60 frames of 1000 bytes.
			p, q, _ := pair(t, &Config{Version: tc.v, RxBlockSize: 8192, RxBlockCount: 4, RxFrameSize: 2048, RxFrameCount: 16, DisableVNetHdr: true})
			const total = 300
			batch := make([]port.Frame, 30)
			for i := 0; i < total; i += len(batch) {
				for j := range batch {
					batch[j] = port.Frame{Data: testFrame(1000, uint32(i+j))}
				}
				if n, err := q.Write(batch); n != len(batch) || err != nil {
					t.Fatalf("write: %d, %v", n, err)
				}
			}
			// Whatever fit arrives; read without blocking until every
			// frame is accounted for (the V3 block timer retires the last
			// block within a few ms), or 5 s pass.
			var rx uint64
			var s port.Stats
			frames := make([]port.Frame, p.BatchSize())
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
				var n int
				if p.v3 {
					n, _, _ = p.fillV3(frames)
				} else {
					n, _, _ = p.fillV2(frames)
				}
				for _, f := range frames[:n] {
					if isTest(f.Data) {
						rx++
					}
				}
				p.releaseRx()
				if s = p.Stats(); n == 0 && rx+s.RxDropped >= total {
					break
				}
				if n == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			// Stray frames the kernel drops too (none are expected on this
			// veth) may only add to the drop count, never hide a loss.
			if rx == 0 || rx >= total || s.RxDropped == 0 || rx+s.RxDropped < total || rx+s.RxDropped > total+2 {
				t.Errorf("received %d + dropped %d, want a split of %d (stats %+v)", rx, s.RxDropped, total, s)
			}
			if s2 := p.Stats(); s2.RxDropped != s.RxDropped {
				t.Errorf("RxDropped changed from %d to %d with no traffic", s.RxDropped, s2.RxDropped)
			}
		})
	}
}

func TestOversizeDropped(t *testing.T) {
	p, q, _ := pair(t, &Config{DisableVNetHdr: true})
	if p.Offloads() {
		t.Fatal("Offloads with DisableVNetHdr")
	}
	frames := []port.Frame{{Data: testFrame(9000, 1)}, {Data: testFrame(10, 2)}, {Data: testFrame(200, 3)}}
	n, err := q.Write(frames)
	if err != nil || n != 1 {
		t.Fatalf("write: %d, %v; want 1 frame taken", n, err)
	}
	if s := q.Stats(); s.TxDropped != 2 || s.TxFrames != 1 {
		t.Errorf("stats %+v, want 2 dropped 1 sent", s)
	}
	g := collect(t, p, 1, isTest, 5*time.Second)
	if !bytes.Equal(g[0].Data, frames[2].Data) || !g[0].VNet.IsZero() {
		t.Errorf("got %d bytes vnet %+v, want the 200-byte frame", len(g[0].Data), g[0].VNet)
	}
}

// tcpGSOFrame builds an IPv4/TCP super-frame with a partial checksum, as a
// local TCP sender hands it to veth.
func tcpGSOFrame(payload int) ([]byte, frame.VNetHdr) {
	const ipOff, tcpOff, hdrEnd = 14, 34, 54
	b := make([]byte, hdrEnd+payload)
	copy(b, []byte{0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00})
	ip := b[ipOff:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(b)-ipOff))
	ip[8] = 64
	ip[9] = 6
	copy(ip[12:], []byte{198, 18, 0, 1, 198, 18, 0, 2})
	var s uint32
	for i := 0; i < 20; i += 2 {
		s += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(s))
	tcp := b[tcpOff:]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 5001)
	tcp[12] = 5 << 4
	tcp[13] = 0x18
	binary.BigEndian.PutUint16(tcp[14:], 65535)
	for i := hdrEnd; i < len(b); i++ {
		b[i] = byte(i)
	}
	return b, frame.VNetHdr{
		Flags: frame.VNetNeedsCsum, GSOType: frame.GSOTCPv4, HdrLen: hdrEnd,
		GSOSize: 1448, CsumStart: tcpOff, CsumOffset: 16,
	}
}

// TestVNetOnRings checks that the kernel takes a virtio-net header from the
// TX ring and fills it on the RX ring: a 64 KiB TCP super-frame crosses the
// veth whole, with its offload metadata.
func TestVNetOnRings(t *testing.T) {
	for _, tc := range txModes {
		t.Run(tc.name, func(t *testing.T) {
			p, q, _ := pair(t, tc.config())
			d, vh := tcpGSOFrame(65000)
			if n, err := q.Write([]port.Frame{{Data: d, VNet: vh}}); n != 1 || err != nil {
				t.Fatalf("write GSO frame: %d, %v (stats %+v)", n, err, q.Stats())
			}
			g := collect(t, p, 1, func(b []byte) bool { return len(b) > 14 && b[12] == 8 && b[13] == 0 }, 5*time.Second)
			if len(g[0].Data) != len(d) || !bytes.Equal(g[0].Data[54:], d[54:]) {
				t.Fatalf("got a %d-byte frame, want the %d-byte super-frame whole", len(g[0].Data), len(d))
			}
			want := frame.VNetHdr{Flags: frame.VNetNeedsCsum, GSOType: frame.GSOTCPv4, HdrLen: vh.HdrLen, GSOSize: 1448, CsumStart: 34, CsumOffset: 16}
			if diff := cmp.Diff(want, g[0].VNet); diff != "" {
				t.Errorf("vnet header (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPending: Pending, which port.Yield asks of a parked port, turns true
// when a frame is waiting in the ring (for V3, once its block is retired)
// and false once it is read.
func TestPending(t *testing.T) {
	for _, tc := range rxModes {
		t.Run(tc.name, func(t *testing.T) {
			p, q, _ := pair(t, tc.config())
			if p.Pending() {
				t.Fatal("pending before anything was sent")
			}
			if n, err := q.Write([]port.Frame{{Data: testFrame(100, 1)}}); n != 1 || err != nil {
				t.Fatalf("write: %d, %v", n, err)
			}
			deadline := time.Now().Add(2 * time.Second)
			for !p.Pending() && time.Now().Before(deadline) {
				time.Sleep(100 * time.Microsecond)
			}
			if !p.Pending() {
				t.Fatal("not pending 2 s after a frame was sent")
			}
			collect(t, p, 1, isTest, 5*time.Second)
			// The reader has moved its head past the frame's slot (V2)
			// or block (V3).
			if p.Pending() {
				t.Error("pending after the frame was read")
			}
		})
	}
}

// gsoTestFrame is a TCP super-frame of payload bytes carrying seq, and its
// virtio-net header.
func gsoTestFrame(payload int, seq uint32) port.Frame {
	d, vh := tcpGSOFrame(payload)
	binary.BigEndian.PutUint32(d[54:], seq)
	return port.Frame{Data: d, VNet: vh}
}

// seqOf is the sequence number testFrame or gsoTestFrame put in a frame,
// or -1 for another frame.
func seqOf(b []byte) int {
	switch {
	case isTest(b):
		return int(binary.BigEndian.Uint32(b[14:]))
	case len(b) > 1514 && b[12] == 8 && b[13] == 0:
		return int(binary.BigEndian.Uint32(b[54:]))
	}
	return -1
}

// TestMixedOrder sends short frames and GSO super-frames interleaved, in
// runs of each: with RxSplit they come through different sockets, and Read
// must still give them back in the order they were sent, whole, with the
// super-frames' offload metadata.
func TestMixedOrder(t *testing.T) {
	for _, tc := range rxModes {
		t.Run(tc.name, func(t *testing.T) {
			p, q, _ := pair(t, tc.config())
			var out []port.Frame
			for i := 0; i < 90; i++ {
				// runs: 1 short, 1 long, 2 short, 2 long, 3 short, 3 long, ...
				if (i/3)%2 == 1 || i%7 == 3 {
					out = append(out, gsoTestFrame(20000+i*100, uint32(i)))
				} else {
					out = append(out, port.Frame{Data: testFrame(100+i, uint32(i))})
				}
			}
			for i := 0; i < len(out); i += 30 {
				if n, err := q.Write(out[i : i+30]); n != 30 || err != nil {
					t.Fatalf("write: %d, %v (stats %+v)", n, err, q.Stats())
				}
			}
			g := collect(t, p, len(out), func(b []byte) bool { return seqOf(b) >= 0 }, 5*time.Second)
			for i, f := range g {
				if !bytes.Equal(f.Data, out[i].Data) || f.VNet.GSOType != out[i].VNet.GSOType {
					t.Fatalf("frame %d: got seq %d (%d bytes, vnet %+v), want seq %d (%d bytes)",
						i, seqOf(f.Data), len(f.Data), f.VNet, i, len(out[i].Data))
				}
			}
			if s := p.Stats(); s.RxDropped != 0 || s.RxErrors != 0 {
				t.Errorf("stats %+v, want no drops or errors", s)
			}
		})
	}
}

// TestSplitMarkerLost: with RxSplit, super-frames whose markers did not
// fit in the full ring, more than a batch of them, are still delivered, in
// order, from the second socket, and the lost markers and short frames are
// counted as drops.
func TestSplitMarkerLost(t *testing.T) {
	for _, tc := range versions {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.config()
			cfg.RxFrameCount, cfg.RxBlockSize, cfg.RxBlockCount = 8, 8192, 2
			p, q, _ := pair(t, cfg)
			var out []port.Frame
			for i := 0; i < 200; i++ { // far more than the ring holds
				out = append(out, port.Frame{Data: testFrame(1000, uint32(i))})
			}
			const longs = 100
			for i := 0; i < longs; i++ {
				out = append(out, gsoTestFrame(20000, uint32(1000+i)))
			}
			for i := 0; i < len(out); i += 34 {
				if n, err := q.Write(out[i:min(i+34, len(out))]); n != min(34, len(out)-i) || err != nil {
					t.Fatalf("write: %d, %v", n, err)
				}
			}
			var short, long int
			timer := time.AfterFunc(5*time.Second, func() { p.Close() })
			defer timer.Stop()
			frames := make([]port.Frame, p.BatchSize())
			for long < longs {
				n, err := p.Read(frames)
				if err != nil {
					t.Fatalf("read after %d short and %d long frames: %v", short, long, err)
				}
				for _, f := range frames[:n] {
					switch s := seqOf(f.Data); {
					case s >= 1000:
						if s != 1000+long || !bytes.Equal(f.Data, out[200+s-1000].Data) {
							t.Fatalf("super-frame %d (%d bytes) came as number %d", s, len(f.Data), long)
						}
						long++
					case s >= 0:
						short++
					}
				}
			}
			st := p.Stats()
			if short == 0 || short >= 200 || st.RxDropped < uint64(200-short+longs) {
				t.Errorf("%d short frames of 200 read, %d drops counted: want some read and the rest, and the %d lost markers, dropped", short, st.RxDropped, longs)
			}
		})
	}
}
