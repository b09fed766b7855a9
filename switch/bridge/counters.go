package bridge

import "sync/atomic"

// Reason names why the bridge dropped a frame.
type Reason uint8

const (
	DropMalformed Reason = iota // shorter than an Ethernet header
	DropBadSource               // multicast, broadcast or zero source MAC
	DropLooped                  // source MAC is a static address of another port
	DropSamePort                // destination is on the ingress port and hairpin is off
	DropIsolated                // both ports are isolated
	DropFloodOff                // flooding of this kind is off on every candidate port
	DropOffload                 // pending offloads the egress cannot take, not finishable
	DropTxFull                  // the egress port did not take the frame
	DropPortGone                // the egress port went away while forwarding
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

// counters are a port's forwarding counters, kept by the engine (the port
// keeps its own I/O counters). RX counts are bumped by the port's own RX
// goroutine; TX counts by whichever RX goroutine forwards to the port.
type counters struct {
	rxFrames, rxBytes atomic.Uint64
	txFrames, txBytes atomic.Uint64
	txFlooded         atomic.Uint64 // of txFrames: unknown unicast, broadcast, multicast copies
	txUnicast         atomic.Uint64 // of txFrames: known unicast
	drops             [nReasons]atomic.Uint64
}

// Counters is a snapshot of a port's forwarding counters. Drops are counted
// on the ingress port for decisions (malformed, same port, ...) and on the
// egress port for transmit failures (tx_full, offload).
type Counters struct {
	RxFrames  uint64            `json:"rx_frames"`
	RxBytes   uint64            `json:"rx_bytes"`
	TxFrames  uint64            `json:"tx_frames"`
	TxBytes   uint64            `json:"tx_bytes"`
	TxFlooded uint64            `json:"tx_flooded"`
	TxUnicast uint64            `json:"tx_unicast"`
	Drops     map[string]uint64 `json:"drops,omitempty"`
}

func (c *counters) snapshot() Counters {
	s := Counters{
		RxFrames:  c.rxFrames.Load(),
		RxBytes:   c.rxBytes.Load(),
		TxFrames:  c.txFrames.Load(),
		TxBytes:   c.txBytes.Load(),
		TxFlooded: c.txFlooded.Load(),
		TxUnicast: c.txUnicast.Load(),
	}
	for r := Reason(0); r < nReasons; r++ {
		if v := c.drops[r].Load(); v > 0 {
			if s.Drops == nil {
				s.Drops = make(map[string]uint64)
			}
			s.Drops[r.String()] = v
		}
	}
	return s
}

// Dropped returns the count for one reason.
func (c Counters) Dropped(r Reason) uint64 { return c.Drops[r.String()] }
