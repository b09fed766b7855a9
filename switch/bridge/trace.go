package bridge

import (
	"fmt"
	"sort"

	"github.com/switchyard-net/switchyard/switch/fdb"
)

// Decision is what the bridge would do with one frame arriving on a port,
// step by step, as Trace works it out.
type Decision struct {
	In     string `json:"in"`
	SrcMAC string `json:"src_mac,omitempty"`
	DstMAC string `json:"dst_mac,omitempty"`
	// Learn is what learning the source would do: learn, refresh, move
	// (from MovedFrom), static (a static entry of this port), looped (a
	// static entry of another port: dropped), ignored (not a unicast
	// source: dropped), off (the port does not learn).
	Learn     string `json:"learn,omitempty"`
	MovedFrom string `json:"moved_from,omitempty"`
	// Lookup is how the destination was found: hit (in the MAC table, on
	// HitPort), miss, broadcast or multicast.
	Lookup  string `json:"lookup,omitempty"`
	HitPort string `json:"hit_port,omitempty"`
	// Flood is set when the frame is flooded: unknown-unicast, broadcast
	// or multicast.
	Flood string `json:"flood,omitempty"`
	// Out lists the ports the frame would leave by, sorted.
	Out []string `json:"out,omitempty"`
	// Skipped lists flood candidates left out, as "PORT (why)".
	Skipped []string `json:"skipped,omitempty"`
	// Drop is the drop reason when the frame goes nowhere.
	Drop string `json:"drop,omitempty"`
}

// Trace works out what the bridge would do with data arriving on port in,
// without forwarding it, learning from it or counting it. Egress failures
// (tx_full, offload) cannot be foreseen and are not reported.
func (b *Bridge) Trace(in string, data []byte) (Decision, error) {
	set := b.set.Load()
	var ip *bport
	for _, p := range set.list {
		if p.name == in {
			ip = p
		}
	}
	if ip == nil {
		return Decision{}, fmt.Errorf("bridge: trace from %q: %w", in, ErrNoPort)
	}
	name := func(id int) string {
		if id < len(set.byID) && set.byID[id] != nil {
			return set.byID[id].name
		}
		return fmt.Sprintf("#%d", id)
	}
	d := Decision{In: in}
	if len(data) < 14 {
		d.Drop = DropMalformed.String()
		return d, nil
	}
	var dst, src fdb.MAC
	copy(dst[:], data[0:6])
	copy(src[:], data[6:12])
	d.SrcMAC, d.DstMAC = fdb.FormatMAC(src), fdb.FormatMAC(dst)
	now := b.clock().UnixNano()
	inFlags := ip.flags.Load()

	port, static, known := b.fdb.Peek(src, now)
	switch {
	case inFlags&fNoLearning != 0:
		d.Learn = "off"
	case !fdb.Learnable(src):
		d.Learn, d.Drop = "ignored", DropBadSource.String()
		return d, nil
	case known && static && port != ip.ID:
		d.Learn, d.MovedFrom, d.Drop = "looped", name(port), DropLooped.String()
		return d, nil
	case known && static:
		d.Learn = "static"
	case known && port == ip.ID:
		d.Learn = "refresh"
	case known:
		d.Learn, d.MovedFrom = "move", name(port)
	default:
		d.Learn = "learn"
	}

	if dst[0]&1 != 0 {
		kind := floodMulticast
		d.Lookup = "multicast"
		if dst == (fdb.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) {
			kind, d.Lookup = floodBroadcast, "broadcast"
		}
		b.traceFlood(&d, ip, inFlags, set, kind)
		return d, nil
	}
	id, ok := b.fdb.Lookup(dst, now)
	if dst == src && inFlags&fNoLearning == 0 {
		// Learning the source first would make this a hit on the
		// ingress port.
		id, ok = ip.ID, true
	}
	if !ok || id >= len(set.byID) || set.byID[id] == nil {
		d.Lookup = "miss"
		b.traceFlood(&d, ip, inFlags, set, floodUnknown)
		return d, nil
	}
	out := set.byID[id]
	d.Lookup, d.HitPort = "hit", out.name
	switch {
	case out == ip && inFlags&fHairpin == 0:
		d.Drop = DropSamePort.String()
	case inFlags&fIsolated != 0 && out.flags.Load()&fIsolated != 0:
		d.Drop = DropIsolated.String()
	default:
		d.Out = []string{out.name}
	}
	return d, nil
}

var floodNames = [...]string{floodUnknown: "unknown-unicast", floodMulticast: "multicast", floodBroadcast: "broadcast"}

// traceFlood fills d as flood would decide.
func (b *Bridge) traceFlood(d *Decision, in *bport, inFlags uint32, set *portSet, kind floodKind) {
	d.Flood = floodNames[kind]
	want := floodFlag[kind]
	for _, out := range set.list {
		if out == in && inFlags&fHairpin == 0 {
			continue
		}
		of := out.flags.Load()
		switch {
		case inFlags&fIsolated != 0 && of&fIsolated != 0:
			d.Skipped = append(d.Skipped, out.name+" (isolated)")
		case of&want == 0:
			d.Skipped = append(d.Skipped, out.name+" ("+d.Flood+" flooding off)")
		default:
			d.Out = append(d.Out, out.name)
		}
	}
	sort.Strings(d.Out)
	sort.Strings(d.Skipped)
	if len(d.Out) == 0 && len(d.Skipped) > 0 {
		if inFlags&fIsolated != 0 {
			d.Drop = DropIsolated.String()
		} else {
			d.Drop = DropFloodOff.String()
		}
	}
}
