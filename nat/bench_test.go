package nat

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"unsafe"

	"github.com/switchyard-net/switchyard/switch/frame"
)

// flowFrames opens n masqueraded TCP flows from host2 (distinct source
// ports, spread over destinations so reply tuples stay unique) and returns
// one frame of each, an ACK from inside.
func flowFrames(tb testing.TB, n *NAT, count int) [][]byte {
	tb.Helper()
	frames := make([][]byte, count)
	// One array for all frames, as a ring holds them.
	arena := allocSlice[byte](count * 64)
	var pr frame.Parsed
	tmpl := build(tb, pkt{proto: frame.ProtoTCP, src: host2, dst: server, sport: 1, dport: 80, flags: tcpSYN})
	for i := range count {
		f := append([]byte(nil), tmpl...)
		dst := addr32(server) + uint32(i/60000)
		sport := uint16(1024 + i%60000)
		ip := frame.IPv4(f[14:])
		ip.SetDst(addrOf(dst))
		tcp := frame.TCP(f[34:54])
		tcp.UpdateAddr(server, addrOf(dst))
		tcp.SetSrcPort(sport)
		pr.Decode(f)
		if v := n.Translate(Inside, f, &pr, nil); v != Forward {
			tb.Fatalf("flow %d: %v (%+v)", i, v, n.Stats())
		}
		// Back to the inside form, now an ACK.
		g := arena[i*64 : i*64+len(tmpl) : i*64+len(tmpl)]
		copy(g, tmpl)
		frame.IPv4(g[14:]).SetDst(addrOf(dst))
		t2 := frame.TCP(g[34:54])
		t2.UpdateAddr(server, addrOf(dst))
		t2.SetSrcPort(sport)
		old := binary.BigEndian.Uint16(g[34+12:])
		g[34+13] = tcpACK
		t2[16], t2[17] = byte(frame.Update16(t2.Checksum(), old, binary.BigEndian.Uint16(g[34+12:]))>>8), byte(frame.Update16(t2.Checksum(), old, binary.BigEndian.Uint16(g[34+12:])))
		frames[i] = g
	}
	return frames
}

// swap turns a frame and its summary into the packet going the other way
// (addresses and ports swapped: checksums do not change).
func swap(f []byte, pr *frame.Parsed) {
	ip := f[pr.L3Off:]
	var a [4]byte
	copy(a[:], ip[12:16])
	copy(ip[12:16], ip[16:20])
	copy(ip[16:20], a[:])
	l4 := f[pr.L4Off:]
	p := binary.BigEndian.Uint16(l4[0:])
	copy(l4[0:2], l4[2:4])
	binary.BigEndian.PutUint16(l4[2:], p)
	pr.SrcIP, pr.DstIP = pr.DstIP, pr.SrcIP
	pr.SrcPort, pr.DstPort = pr.DstPort, pr.SrcPort
}

func TestEstablishedZeroAlloc(t *testing.T) {
	n := newTestNAT(t, nil)
	f := flowFrames(t, n, 1)[0]
	var pr frame.Parsed
	pr.Decode(f)
	allocs := testing.AllocsPerRun(1000, func() {
		if n.Translate(Inside, f, &pr, nil) != Forward {
			t.Fatal("out")
		}
		swap(f, &pr)
		if n.Translate(Outside, f, &pr, nil) != Forward {
			t.Fatal("back")
		}
		swap(f, &pr)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per established round trip, want 0", allocs)
	}
	if pr.SrcIP != host2 {
		t.Fatalf("round trip ended at %v", pr.SrcIP)
	}
	checkValid(t, f)
}

// tableBytes is the table's memory: entries, index slots, free lists.
func (t *table) bytes() int {
	b := len(t.entries) * int(unsafe.Sizeof(entry{}))
	for i := range t.shards {
		b += len(t.shards[i].slots)*8 + cap(t.shards[i].free)*4
	}
	return b
}

// BenchmarkEstablished measures the established-flow path, lookup and
// rewrite, one packet per op alternating the two directions, over 1 and
// 1,000,000 flows visited round robin: every round trip a different flow
// (the cache-cold worst case), or bursts of 16 packets per flow, as a
// TCP window arrives. It includes the decode (BenchmarkDecode) and reports the table's bytes per flow it was sized for.
func BenchmarkEstablished(b *testing.B) {
	for _, tc := range []struct{ count, burst int }{{1, 1}, {1_000_000, 1}, {1_000_000, 16}} {
		count, burst := tc.count, tc.burst
		name := fmt.Sprintf("flows=%d", count)
		if burst > 1 {
			name += fmt.Sprintf("/burst=%d", burst)
		}
		b.Run(name, func(b *testing.B) {
			n := newTestNAT(b, func(c *Config) { c.MaxFlows = max(count, 1024) })
			frames := flowFrames(b, n, count)
			var pr frame.Parsed
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				f := frames[(i/(2*burst))%count]
				pr.Decode(f)
				if i&1 == 1 {
					swap(f, &pr)
				}
				side := Side(i & 1)
				if n.Translate(side, f, &pr, nil) != Forward {
					b.Fatal("dropped")
				}
				if i&1 == 1 {
					swap(f, &pr)
				}
			}
			b.ReportMetric(float64(n.t.bytes())/float64(max(count, 1024)), "B/flow")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mpps")
		})
	}
}

// BenchmarkDecode is the decode that BenchmarkEstablished includes, alone.
func BenchmarkDecode(b *testing.B) {
	f := build(b, pkt{proto: frame.ProtoTCP, src: host2, dst: server, sport: 1, dport: 80, flags: tcpACK})
	var pr frame.Parsed
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		pr.Decode(f)
	}
}

// BenchmarkNewFlow measures opening masquerade flows (UDP, a new source
// port each time), table kept below its limit.
func BenchmarkNewFlow(b *testing.B) {
	n := newTestNAT(b, func(c *Config) { c.MaxFlows = 1 << 20 })
	tmpl := build(b, pkt{proto: frame.ProtoUDP, src: host2, dst: server, sport: 1, dport: 53})
	f := make([]byte, len(tmpl))
	var pr frame.Parsed
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if i%60000 == 0 {
			n.Flush(netip.Addr{})
		}
		copy(f, tmpl)
		frame.UDP(f[34:42]).SetSrcPort(uint16(1024 + i%60000))
		pr.Decode(f)
		if n.Translate(Inside, f, &pr, nil) != Forward {
			b.Fatal("dropped")
		}
	}
}

// BenchmarkEstablishedBatch measures the established-flow path as the
// gateway runs it: batches of 32 frames, laid out one after another as a
// ring hands them, decoded first and then translated, every frame of a
// batch a different flow. It passes over all the flows in order, all from
// inside, then all their replies from outside, and so on, so that with
// 1,000,000 flows nothing a packet needs is in the cache when its batch
// starts. api=single translates the batch with Translate one frame at a
// time, api=batch with TranslateBatch. ns/op is per packet.
func BenchmarkEstablishedBatch(b *testing.B) {
	const batch = 32
	for _, count := range []int{1, 1_000_000} {
		for _, api := range []string{"single", "batch"} {
			b.Run(fmt.Sprintf("flows=%d/api=%s", count, api), func(b *testing.B) {
				n := newTestNAT(b, func(c *Config) { c.MaxFlows = max(count, 1024) })
				frames := flowFrames(b, n, count)
				if count < batch {
					// One frame per flow is not a batch: copies, each its own buffer.
					arena := make([]byte, batch*64)
					var more [][]byte
					for i := range batch {
						f := frames[i%count]
						more = append(more, arena[i*64:i*64+len(f):i*64+len(f)])
						copy(more[i], f)
					}
					frames = more
				}
				var (
					prs      [batch]frame.Parsed
					verdicts [batch]Verdict
					l        Lookahead
				)
				b.ReportAllocs()
				b.ResetTimer()
				pos := 0
				side := Inside
				for done := 0; done < b.N; done += batch {
					bufs := frames[pos : pos+batch]
					for i, f := range bufs {
						prs[i].Decode(f)
					}
					if api == "batch" {
						n.TranslateBatch(&l, side, bufs, prs[:], nil, verdicts[:])
					} else {
						for i, f := range bufs {
							verdicts[i] = n.Translate(side, f, &prs[i], nil)
						}
					}
					for i, f := range bufs {
						if verdicts[i] != Forward {
							b.Fatalf("frame %d: %v", pos+i, verdicts[i])
						}
						swap(f, &prs[i])
					}
					if pos += batch; pos+batch > len(frames) {
						pos, side = 0, 1-side
					}
				}
				b.ReportMetric(float64(n.t.bytes())/float64(max(count, 1024)), "B/flow")
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/1e6, "Mpps")
			})
		}
	}
}
