package nat

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"

	"github.com/switchyard-net/switchyard/switch/frame"
)

// TestPackedKey checks that a packed key holds every field, and that the
// packed reverse and hash agree with the key's.
func TestPackedKey(t *testing.T) {
	tb := newTable(1024)
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		k := key{src: r.Uint32(), dst: r.Uint32(), sport: uint16(r.Uint32()), dport: uint16(r.Uint32()), proto: uint8(r.Uint32()), side: Side(r.IntN(2))}
		p := k.pack()
		if got := p.unpack(); got != k {
			t.Fatalf("unpack(pack(%+v)) = %+v", k, got)
		}
		for s := Inside; s <= Outside; s++ {
			if got, want := p.reverse(s).unpack(), k.reverse(s); got != want {
				t.Fatalf("reverse(%v) of %+v: %+v, want %+v", s, k, got, want)
			}
		}
		if tb.hashP(p) != tb.hash(k) {
			t.Fatalf("hash of %+v differs packed", k)
		}
	}
}

// TestLockFreeReuse translates one flow's packets both ways without
// pause while another goroutine keeps flushing that flow and filling the
// table with others, so the lock-free lookup keeps meeting slots of freed
// entries and entries reused by other flows. Every packet must come out
// exactly as the flow says (or, from outside while the flow is gone,
// pass untouched): a torn or stale read would rewrite it as another
// flow's packet.
func TestLockFreeReuse(t *testing.T) {
	n := newTestNAT(t, func(c *Config) { c.MaxFlows = 64 })
	const churn, maxRounds = 10000, 1_000_000
	out := build(t, pkt{proto: frame.ProtoUDP, src: host2, dst: server, sport: 5000, dport: 53})
	back := build(t, pkt{proto: frame.ProtoUDP, src: server, dst: ext1, sport: 53, dport: 5000})
	if v, _ := xlate(n, Inside, append([]byte(nil), out...), nil); v != Forward {
		t.Fatalf("opening the flow: %v", v)
	}
	// Other flows, to fill the table and take the freed entries.
	var others [][]byte
	for i := range 500 {
		dst := netip.AddrFrom4([4]byte{198, 19, 1, byte(i % 200)})
		others = append(others, build(t, pkt{proto: frame.ProtoUDP, src: host3, dst: dst, sport: uint16(6000 + i), dport: 53}))
	}
	errs := make(chan error, 2)
	stop := make(chan struct{})
	var rounds [2]int
	run := func(side Side, tmpl []byte, check func(Verdict, *frame.Parsed) error) {
		b := make([]byte, len(tmpl))
		var pr frame.Parsed
		for i := range maxRounds {
			select {
			case <-stop:
				errs <- nil
				return
			default:
			}
			copy(b, tmpl)
			pr.Decode(b)
			v := n.Translate(side, b, &pr, nil)
			if err := check(v, &pr); err != nil {
				errs <- fmt.Errorf("%v packet %d: %w", side, i, err)
				return
			}
			rounds[side]++
		}
		errs <- nil
	}
	go run(Inside, out, func(v Verdict, pr *frame.Parsed) error {
		if v != Forward || pr.SrcIP != ext1 || pr.SrcPort != 5000 || pr.DstIP != server || pr.DstPort != 53 {
			return fmt.Errorf("%v %v:%d -> %v:%d, want forward %v:5000 -> %v:53", v, pr.SrcIP, pr.SrcPort, pr.DstIP, pr.DstPort, ext1, server)
		}
		return nil
	})
	go run(Outside, back, func(v Verdict, pr *frame.Parsed) error {
		switch {
		case v == Pass && pr.DstIP == ext1 && pr.DstPort == 5000:
			return nil // the flow was flushed just then
		case v == Forward && pr.DstIP == host2 && pr.DstPort == 5000 && pr.SrcIP == server && pr.SrcPort == 53:
			return nil
		}
		return fmt.Errorf("%v %v:%d -> %v:%d, want forward to %v:5000 or pass", v, pr.SrcIP, pr.SrcPort, pr.DstIP, pr.DstPort, host2)
	})
	b := make([]byte, len(others[0]))
	var pr frame.Parsed
	for i := range churn {
		copy(b, others[i%len(others)])
		pr.Decode(b)
		n.Translate(Inside, b, &pr, nil)
		switch i % 50 {
		case 10:
			n.Flush(host2)
		case 40:
			n.Flush(host3)
		}
	}
	close(stop)
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if rounds[0] == 0 || rounds[1] == 0 {
		t.Fatalf("the flow's packets never ran: %v rounds", rounds)
	}
	t.Logf("%d churn packets against %v rounds, stats %+v", churn, rounds, n.Stats())
}

// flowOf returns the listed flow whose original source is src.
func flowOf(t *testing.T, n *NAT, src netip.AddrPort) Flow {
	t.Helper()
	for _, f := range n.Flows(0) {
		if f.OrigSrc == src {
			return f
		}
	}
	t.Fatalf("no flow from %v", src)
	return Flow{}
}

// TestCountersPerDirection: every packet and byte is counted, with one
// goroutine per direction of a flow (the gateway's case) and with two on
// the same direction.
func TestCountersPerDirection(t *testing.T) {
	n := newTestNAT(t, nil)
	f := flowFrames(t, n, 1)[0]
	src := netip.AddrPortFrom(host2, 1024)
	const per = 20000
	// The reply: what the ACK became, swapped (this counts one packet
	// inside before the base).
	reply := append([]byte(nil), f...)
	var pr frame.Parsed
	pr.Decode(reply)
	if n.Translate(Inside, reply, &pr, nil) != Forward {
		t.Fatal("the ACK was not forwarded")
	}
	swap(reply, &pr)
	tmpls := [2][]byte{f, reply}
	send := func(wg *sync.WaitGroup, side Side, fails *int) {
		defer wg.Done()
		b := make([]byte, len(tmpls[side]))
		var pr frame.Parsed
		for range per {
			copy(b, tmpls[side])
			pr.Decode(b)
			if n.Translate(side, b, &pr, nil) != Forward {
				*fails++
			}
		}
	}
	base := flowOf(t, n, src)
	var wg sync.WaitGroup
	var fails [2]int
	wg.Add(2)
	go send(&wg, Inside, &fails[0])
	go send(&wg, Outside, &fails[1])
	wg.Wait()
	if fails != [2]int{} {
		t.Fatalf("packets not forwarded: %v", fails)
	}
	got := flowOf(t, n, src)
	if want := base.Packets + 2*per; got.Packets != want {
		t.Errorf("one goroutine per direction: %d packets counted, want %d", got.Packets, want)
	}
	if want := base.Bytes + uint64(2*per)*uint64(len(f)); got.Bytes != want {
		t.Errorf("one goroutine per direction: %d bytes counted, want %d", got.Bytes, want)
	}

	// Two goroutines on the inside direction.
	base = got
	wg.Add(2)
	go send(&wg, Inside, &fails[0])
	go send(&wg, Inside, &fails[1])
	wg.Wait()
	got = flowOf(t, n, src)
	sent := uint64(2 * per)
	if d := got.Packets - base.Packets; d != sent {
		t.Errorf("two goroutines on one direction: %d packets counted of %d", d, sent)
	}
	if d := got.Bytes - base.Bytes; d != sent*uint64(len(f)) {
		t.Errorf("two goroutines on one direction: %d bytes counted of %d", d, sent*uint64(len(f)))
	}
}
