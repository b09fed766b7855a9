package nat

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/switch/frame"
)

// twinNATs returns two NATs that decide alike: the same configuration,
// mappings, hash seed and port allocator.
func twinNATs(t testing.TB, maxFlows int) (*NAT, *NAT) {
	t.Helper()
	mk := func() *NAT {
		n := newTestNAT(t, func(c *Config) { c.MaxFlows = maxFlows })
		err := n.AddMappings(Mapping{Proto: frame.ProtoTCP, ExtPort: 8080, ExtEnd: 8082, CtrIP: host3, CtrPort: 80},
			Mapping{Proto: frame.ProtoUDP, ExtIP: ext2, ExtPort: 53, ExtEnd: 53, CtrIP: host2, CtrPort: 53,
				AllowFrom: []netip.Prefix{netip.MustParsePrefix("198.19.0.0/25")}})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	a, b := mk(), mk()
	b.t.seed = a.t.seed
	b.rnd.Store(a.rnd.Load())
	return a, b
}

// mixedPacket returns a random packet from a small world, so that flows
// repeat and replies find them: new and established TCP, UDP and ICMP
// echo flows both ways, published ports (allowed and filtered), hairpin,
// denied and foreign destinations, ICMP errors about flows and about
// nothing, first and later fragments, bad and partial checksums,
// truncated frames, and frames that are not IPv4.
func mixedPacket(t testing.TB, r *rand.Rand) (Side, []byte, *frame.VNetHdr) {
	pick := func(as ...netip.Addr) netip.Addr { return as[r.IntN(len(as))] }
	flagSets := []uint8{tcpSYN, tcpACK, tcpACK, tcpACK, tcpFIN | tcpACK, tcpRST, tcpSYN | tcpACK}
	side := Side(r.IntN(2))
	var p pkt
	inPort := uint16(1000 + r.IntN(6))
	switch side {
	case Inside:
		p = pkt{src: pick(host2, host3), dst: pick(server, server, client, ext1, gwIP, netip.MustParseAddr("198.18.2.5")), sport: inPort, dport: uint16(pick2(r, 80, 8080))}
	default:
		p = pkt{src: pick(server, client, netip.MustParseAddr("198.19.0.200"), netip.MustParseAddr("198.19.0.201")), dst: pick(ext1, ext1, ext2, netip.MustParseAddr("198.19.0.77")), sport: uint16(pick2(r, 80, 8080)), dport: pick16(r, inPort, 8080, 8081, 53)}
	}
	var vnet *frame.VNetHdr
	switch c := r.IntN(20); {
	case c < 8:
		p.proto = frame.ProtoTCP
		p.flags = flagSets[r.IntN(len(flagSets))]
	case c < 12:
		p.proto = frame.ProtoUDP
		p.noUDPCsum = r.IntN(4) == 0
		if side == Inside {
			p.dport = 53
		} else if r.IntN(2) == 0 {
			p.sport = 53 // a reply
		}
	case c < 14:
		p.proto = frame.ProtoICMPv4
		p.icmpType = frame.ICMPv4EchoRequest
		if r.IntN(2) == 0 {
			p.icmpType = frame.ICMPv4EchoReply
		}
		p.sport = uint16(1000 + r.IntN(3))
	case c < 16:
		// An ICMP error quoting a packet of a flow (or of none).
		var q pkt
		if side == Outside {
			q = pkt{proto: frame.ProtoUDP, src: ext1, dst: server, sport: inPort, dport: 53}
		} else {
			q = pkt{proto: frame.ProtoTCP, src: client, dst: p.src, sport: 6000, dport: 80, flags: tcpSYN}
		}
		p = pkt{proto: frame.ProtoICMPv4, icmpType: icmpDestUnreach, src: p.src, dst: p.dst, inner: build(t, q)[14:]}
	case c < 18:
		// Fragments of a UDP datagram: the first carries the ports.
		p.proto = frame.ProtoUDP
		p.id = uint16(1 + r.IntN(3))
		if r.IntN(2) == 0 {
			udp := make([]byte, 8+16)
			binary.BigEndian.PutUint16(udp[0:], p.sport)
			binary.BigEndian.PutUint16(udp[2:], 53)
			binary.BigEndian.PutUint16(udp[4:], 8+32)
			p.moreFrags, p.rawL4 = true, udp
		} else {
			p.fragOff, p.rawL4 = 3, make([]byte, 16)
		}
	default:
		p.proto = frame.ProtoTCP
		p.flags = tcpSYN
	}
	if p.rawL4 == nil && p.inner == nil {
		switch r.IntN(8) {
		case 0:
			p.badCsum = true
		case 1:
			p.partial = true
			vnet = partialHdr(p.proto)
		}
	}
	b := build(t, p)
	switch r.IntN(25) {
	case 0:
		b = b[:14+r.IntN(len(b)-14)] // truncated
	case 1:
		binary.BigEndian.PutUint16(b[12:], frame.EtherTypeIPv6) // not IPv4
	case 2:
		b[14] = 0x46 // a header length the packet does not have
	}
	return side, b, vnet
}

func pick2(r *rand.Rand, a, b int) int {
	if r.IntN(2) == 0 {
		return a
	}
	return b
}

func pick16(r *rand.Rand, ps ...uint16) uint16 { return ps[r.IntN(len(ps))] }

type batchPkt struct {
	side Side
	b    []byte
	vnet frame.VNetHdr
}

// compareBatch runs ps through one with Translate, one packet at a time,
// and through bat in a batch (single-side runs with TranslateBatch, or
// the stages with sides mixed, as r picks), and fails unless verdicts,
// bytes, vnet headers and summaries agree.
func compareBatch(t *testing.T, one, bat *NAT, l *Lookahead, r *rand.Rand, ps []batchPkt) {
	t.Helper()
	m := len(ps)
	want := make([]batchPkt, m)
	wantV := make([]Verdict, m)
	wantPr := make([]frame.Parsed, m)
	for i, p := range ps {
		want[i] = batchPkt{side: p.side, b: bytes.Clone(p.b), vnet: p.vnet}
		wantPr[i].Decode(want[i].b)
		wantV[i] = one.Translate(p.side, want[i].b, &wantPr[i], &want[i].vnet)
	}
	prs := make([]frame.Parsed, m)
	vnets := make([]frame.VNetHdr, m)
	bufs := make([][]byte, m)
	got := make([]Verdict, m)
	for i, p := range ps {
		bufs[i], vnets[i] = p.b, p.vnet
		prs[i].Decode(bufs[i])
	}
	if r.IntN(2) == 0 {
		// The stages, sides mixed, as the gateway calls them.
		for lo := 0; lo < m; lo += BatchMax {
			hi := min(m, lo+BatchMax)
			l.Reset(hi - lo)
			for i := lo; i < hi; i++ {
				if r.IntN(4) > 0 { // some packets are never looked at
					bat.Look(l, i-lo, ps[i].side, bufs[i], &prs[i])
				}
			}
			bat.TouchFirst(l, hi-lo)
			for i := lo; i < hi; i++ {
				bat.Step(l, i-lo)
				got[i] = bat.TranslateAt(l, i-lo, ps[i].side, bufs[i], &prs[i], &vnets[i])
			}
		}
	} else {
		for lo := 0; lo < m; {
			hi := lo + 1
			for hi < m && ps[hi].side == ps[lo].side {
				hi++
			}
			bat.TranslateBatch(l, ps[lo].side, bufs[lo:hi], prs[lo:hi], vnets[lo:hi], got[lo:hi])
			lo = hi
		}
	}
	for i := range ps {
		if got[i] != wantV[i] {
			t.Fatalf("packet %d (%v): batch %v, one at a time %v", i, ps[i].side, got[i], wantV[i])
		}
		if !bytes.Equal(bufs[i], want[i].b) || vnets[i] != want[i].vnet {
			t.Fatalf("packet %d (%v, %v): bytes differ\nbatch  %x\nsingle %x", i, ps[i].side, got[i], bufs[i], want[i].b)
		}
		if !reflect.DeepEqual(prs[i], wantPr[i]) {
			t.Fatalf("packet %d: summaries differ\nbatch  %+v\nsingle %+v", i, prs[i], wantPr[i])
		}
	}
}

// TestBatchMatchesTranslate runs the same traffic through two twin NATs,
// one packet at a time with Translate and in batches of 1 to 100, and
// wants the same verdicts, bytes, summaries, counters and flows. First
// UDP flows answered both ways fill the small table until new ones are
// refused (table-full), then random mixed traffic (mixedPacket) evicts
// unanswered flows, and time moves between batches, so flows expire.
func TestBatchMatchesTranslate(t *testing.T) {
	for seed := range uint64(8) {
		r := rand.New(rand.NewPCG(seed, 1))
		one, bat := twinNATs(t, 24)
		now := t0
		var l Lookahead
		var fill []batchPkt
		for i := range uint16(40) {
			fill = append(fill,
				batchPkt{side: Inside, b: build(t, pkt{proto: frame.ProtoUDP, src: host2, dst: server, sport: 2000 + i, dport: 53})},
				batchPkt{side: Outside, b: build(t, pkt{proto: frame.ProtoUDP, src: server, dst: ext1, sport: 53, dport: 2000 + i})})
		}
		for len(fill) > 0 {
			k := min(len(fill), 1+r.IntN(40))
			compareBatch(t, one, bat, &l, r, fill[:k])
			fill = fill[k:]
		}
		if one.Dropped(ReasonTableFull) == 0 {
			t.Fatalf("the table never filled: %+v", one.Stats())
		}
		for round := 0; round < 60; round++ {
			ps := make([]batchPkt, 1+r.IntN(100))
			for i := range ps {
				side, b, vnet := mixedPacket(t, r)
				ps[i] = batchPkt{side: side, b: b}
				if vnet != nil {
					ps[i].vnet = *vnet
				}
			}
			compareBatch(t, one, bat, &l, r, ps)
			now = now.Add(time.Duration(r.IntN(20)) * time.Second)
			one.Tick(now)
			bat.Tick(now)
		}
		if a, b := one.Stats(), bat.Stats(); !reflect.DeepEqual(a, b) {
			t.Fatalf("seed %d: stats differ\nsingle %+v\nbatch  %+v", seed, a, b)
		}
		if a, b := one.Flows(0), bat.Flows(0); !reflect.DeepEqual(a, b) {
			t.Fatalf("seed %d: flows differ\nsingle %+v\nbatch  %+v", seed, a, b)
		}
		if seed == 0 {
			t.Logf("stats after seed 0: %+v", one.Stats())
		}
	}
}

// TestBatchCoverage checks that the mixed traffic of
// TestBatchMatchesTranslate reaches what it claims to: every verdict
// kind, the drop reasons, evictions and ICMP errors translated (a full
// table it checks itself).
func TestBatchCoverage(t *testing.T) {
	r := rand.New(rand.NewPCG(0, 1))
	n, _ := twinNATs(t, 24)
	seen := map[Verdict]int{}
	icmpErrFwd := 0
	for range 6000 {
		side, b, vnet := mixedPacket(t, r)
		v, pr := xlate(n, side, b, vnet)
		seen[v]++
		if v == Forward && pr.Proto == frame.ProtoICMPv4 && pr.ICMPType == icmpDestUnreach {
			icmpErrFwd++
		}
	}
	for _, v := range []Verdict{Pass, Forward} {
		if seen[v] == 0 {
			t.Errorf("no %v", v)
		}
	}
	for _, why := range []Reason{ReasonMalformed, ReasonBadChecksum, ReasonNoFlow, ReasonFragment, ReasonFiltered, ReasonDenied, ReasonNotOurs} {
		if n.Dropped(why) == 0 {
			t.Errorf("no drop for %v", why)
		}
	}
	if n.Stats().Evicted == 0 {
		t.Error("no evictions")
	}
	if seen[Forward] > 0 && icmpErrFwd == 0 {
		t.Error("no ICMP error translated")
	}
	t.Logf("verdicts %v stats %+v", seen, n.Stats())
}

func TestBatchZeroAlloc(t *testing.T) {
	n := newTestNAT(t, func(c *Config) { c.MaxFlows = 4096 })
	frames := flowFrames(t, n, 64)
	var (
		prs      [64]frame.Parsed
		verdicts [64]Verdict
		l        Lookahead
	)
	allocs := testing.AllocsPerRun(100, func() {
		for side := Inside; side <= Outside; side++ {
			for i, f := range frames {
				prs[i].Decode(f)
			}
			n.TranslateBatch(&l, side, frames, prs[:], nil, verdicts[:])
			for i, f := range frames {
				if verdicts[i] != Forward {
					t.Fatalf("frame %d from %v: %v", i, side, verdicts[i])
				}
				swap(f, &prs[i])
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per batch round trip, want 0", allocs)
	}
	for _, f := range frames {
		if pr := checkValid(t, f); pr.SrcIP != host2 {
			t.Fatalf("round trip ended at %v", pr.SrcIP)
		}
	}
}

// TestBatchConcurrent runs TranslateBatch on established flows in two
// goroutines while a third opens, flushes and expires flows in the same
// shards: under the race detector this checks that the stages' unlocked
// slot reads are only ever atomic. Every established packet must still
// be forwarded.
func TestBatchConcurrent(t *testing.T) {
	n := newTestNAT(t, func(c *Config) { c.MaxFlows = 4096 })
	frames := flowFrames(t, n, 128)
	done := make(chan struct{})
	errs := make(chan error, 2)
	for w := range 2 {
		mine := frames[w*64 : (w+1)*64]
		go func() {
			var (
				prs      [64]frame.Parsed
				verdicts [64]Verdict
				l        Lookahead
			)
			for range 200 {
				for side := Inside; side <= Outside; side++ {
					for i, f := range mine {
						prs[i].Decode(f)
					}
					n.TranslateBatch(&l, side, mine, prs[:], nil, verdicts[:])
					for i, f := range mine {
						if verdicts[i] != Forward {
							errs <- fmt.Errorf("worker %d frame %d from %v: %v", w, i, side, verdicts[i])
							return
						}
						swap(f, &prs[i])
					}
				}
			}
			errs <- nil
		}()
	}
	go func() {
		defer close(done)
		for i := range 2000 {
			b := build(t, pkt{proto: frame.ProtoUDP, src: host3, dst: server, sport: uint16(1024 + i%500), dport: 53})
			xlate(n, Inside, b, nil)
			if i%300 == 299 {
				n.Flush(host3)
			}
		}
	}()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	<-done
}

// FuzzTranslateBatch cuts its input into frames and translates them on
// twin NATs with flows and mappings in place, one at a time and as one
// batch (from one side, or the stages with sides from the input): the
// verdicts and bytes must be the same.
func FuzzTranslateBatch(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 16 {
		var in []byte
		for range 1 + r.IntN(8) {
			side, b, _ := mixedPacket(f, r)
			in = append(in, byte(len(b)), byte(side))
			in = append(in, b...)
		}
		f.Add(in, uint8(r.IntN(4)))
	}
	f.Fuzz(func(t *testing.T, in []byte, mode uint8) {
		var ps []batchPkt
		for len(in) >= 2 && len(ps) < 80 {
			k := min(int(in[0]), len(in)-2)
			b := bytes.Clone(in[2 : 2+k])
			ps = append(ps, batchPkt{side: Side(in[1] & 1), b: b[:k:k]})
			if mode&1 == 0 {
				ps[len(ps)-1].side = Side(mode >> 1 & 1)
			}
			in = in[2+k:]
		}
		if len(ps) == 0 {
			return
		}
		one, bat := twinNATs(t, 32)
		for _, n := range []*NAT{one, bat} {
			for _, p := range []pkt{
				{proto: frame.ProtoTCP, src: host2, dst: server, sport: 1000, dport: 80, flags: tcpSYN},
				{proto: frame.ProtoUDP, src: host2, dst: server, sport: 1001, dport: 53},
				{proto: frame.ProtoICMPv4, icmpType: frame.ICMPv4EchoRequest, src: host2, dst: server, sport: 1000},
			} {
				xlate(n, Inside, build(t, p), nil)
			}
		}
		var l Lookahead
		compareBatch(t, one, bat, &l, rand.New(rand.NewPCG(uint64(mode), 0)), ps)
	})
}
