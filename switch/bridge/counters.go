package bridge

import "github.com/switchyard-net/switchyard/switch/port"

// Reason names why the bridge dropped a frame. The egress-side reasons
// (offload, tx_full, port_gone) are the ones every engine shares (see
// port.Stage); the others are the bridge's own.
type Reason uint8

const (
	DropOffload  Reason = port.DropOffload  // pending offloads the egress cannot take, not finishable
	DropTxFull   Reason = port.DropTxFull   // the egress port did not take the frame
	DropPortGone Reason = port.DropPortGone // the egress port went away while forwarding
)

const (
	DropMalformed Reason = port.NumCommonDrops + iota // shorter than an Ethernet header
	DropBadSource                                     // multicast, broadcast or zero source MAC
	DropLooped                                        // source MAC is a static address of another port
	DropSamePort                                      // destination is on the ingress port and hairpin is off
	DropIsolated                                      // both ports are isolated
	DropFloodOff                                      // flooding of this kind is off on every candidate port
	nReasons
)

var reasonNames = [nReasons]string{
	DropMalformed: "malformed",
	DropBadSource: "bad_source",
	DropLooped:    "looped",
	DropSamePort:  "same_port",
	DropIsolated:  "isolated",
	DropFloodOff:  "flood_off",
	DropOffload:   "offload",
	DropTxFull:    "tx_full",
	DropPortGone:  "port_gone",
}

func (r Reason) String() string {
	if r < nReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Counters is a snapshot of a port's forwarding counters. Drops are counted
// on the ingress port for decisions (malformed, same port, ...) and on the
// egress port for transmit failures (tx_full, offload).
type Counters port.FwdStats

// snapshotCounters returns bp's forwarding counters.
func (e *bport) snapshotCounters() Counters { return Counters(e.C.Snapshot(reasonNames[:])) }

// Dropped returns the count for one reason.
func (c Counters) Dropped(r Reason) uint64 { return c.Drops[r.String()] }
