package nat

import (
	"fmt"
	"net/netip"

	"github.com/switchyard-net/switchyard/switch/frame"
)

// Explanation is what Translate would do with a packet, found without
// changing anything: no flow is opened or refreshed, no counter moves.
type Explanation struct {
	// Verdict is Translate's, with the drop reason.
	Verdict Verdict
	// Rule is what decides: "flow" (an existing flow), "masquerade",
	// "published", "hairpin", or "" when no rule applies.
	Rule string
	// Kind and State describe an existing flow (Rule "flow").
	Kind, State string
	// Mapping is the published port range the packet hits, if any.
	Mapping *Mapping
	// Src and Dst are the packet's addresses after translation (Forward;
	// ports are 0 for protocols without them, the echo id for ICMP).
	Src, Dst netip.AddrPort
	// Note says what the rest does not: a port that would be reallocated,
	// a full table, a packet that cannot open a flow.
	Note string
}

// Explain says what Translate would do with the packet decoded in pr
// arriving from side, without doing it.
func (n *NAT) Explain(side Side, pr *frame.Parsed) Explanation {
	switch {
	case pr.IPVersion != 4 || pr.VLANTags != 0:
		return Explanation{Verdict: Pass, Note: "not IPv4: the NAT leaves it alone"}
	case pr.Reason != frame.OK:
		return Explanation{Verdict: Drop | Verdict(ReasonMalformed)<<verdictBits}
	case pr.Frag == frame.LaterFragment:
		return Explanation{Verdict: Pass, Note: "a later fragment: it takes its first fragment's translation, or is dropped without one"}
	}
	k, kind := keyOf(side, pr)
	switch kind {
	case keyICMPError:
		return Explanation{Verdict: Pass, Note: "an ICMP error: translated with the flow it quotes, dropped when there is none"}
	case keyNone:
		return Explanation{Verdict: Pass, Note: "an ICMP message of no flow: the gateway's own"}
	}
	if tgt, st, ok := n.peek(k); ok {
		return Explanation{Verdict: Forward, Rule: "flow", Kind: flowKind(st), State: stateName(k.proto, st),
			Src: netip.AddrPortFrom(addrOf(tgt.src), tgt.sport), Dst: netip.AddrPortFrom(addrOf(tgt.dst), tgt.dport)}
	}
	pl := n.plan(k)
	x := Explanation{Verdict: pl.verdict}
	if pl.m != nil {
		m := pl.m.Mapping
		x.Mapping = &m
	}
	switch pl.verdict {
	case Pass:
		return x
	case Drop:
		x.Verdict |= Verdict(pl.reason) << verdictBits
		x.Note = dropNotes[pl.reason]
		return x
	}
	x.Rule = flowKind(pl.flags)
	x.Src = netip.AddrPortFrom(addrOf(pl.to.src), pl.to.sport)
	x.Dst = netip.AddrPortFrom(addrOf(pl.to.dst), pl.to.dport)
	switch {
	case !opens(pr):
		x.Verdict = Drop | Verdict(ReasonNoFlow)<<verdictBits
		x.Note = "no flow, and only a TCP SYN, a UDP datagram or an echo request opens one"
	case n.t.len() >= int(n.t.limit):
		x.Note = "the table is full: an unreplied or expired flow would make room, or the packet is dropped (table-full)"
	}
	if pl.to.src != k.src && x.Note == "" {
		replySide := Outside
		if pl.flags&stHairpin != 0 {
			replySide = Inside
		}
		if _, _, taken := n.peek(pl.to.reverse(replySide)); taken {
			what := "port"
			if k.proto == frame.ProtoICMPv4 {
				what = "echo id"
			}
			x.Note = fmt.Sprintf("%s %d is taken: another from %d-%d would be used", what, pl.to.sport, n.portMin, n.portMax)
		}
	}
	return x
}

// dropNotes explain the drops a rule decides.
var dropNotes = [numReasons]string{
	ReasonDenied:       "the destination is another network's: networks do not reach each other",
	ReasonFiltered:     "the source is not on the published port's (or the network's) allow-list",
	ReasonNotOurs:      "the destination is not an external address",
	ReasonNoMasquerade: "the network does not masquerade: only published ports and their replies pass",
}

// peek finds k's live flow without touching it: what its packets become
// and its state.
func (n *NAT) peek(k key) (tgt key, st uint32, ok bool) {
	t := n.t
	h := t.hash(k)
	s := &t.shards[t.shardOf(h)]
	s.mu.Lock()
	defer s.mu.Unlock()
	i := t.findLocked(s, k, h)
	if i < 0 {
		return key{}, 0, false
	}
	idx, dir := slotRef(s.slots[i])
	e := &t.entries[idx]
	w := e.word.Load()
	if expired(wExp(w), t.now.Load()) {
		return key{}, 0, false
	}
	return e.key(1 - dir).reverse(0), wState(w), true
}
