package nat

import (
	"fmt"
	"time"
)

// Entry state word: the TCP state in the low byte, then flags.
const (
	stMask      = 0xff
	stFin0      = 1 << 8  // FIN seen in the original direction
	stFin1      = 1 << 9  // FIN seen in the reply direction
	stSeenReply = 1 << 10 // a packet matched the reply key
	stAssured   = 1 << 11 // TCP handshake completed, or UDP seen both ways
	stLive      = 1 << 12
	stDNAT      = 1 << 13 // the flow was created by a published port
	stHairpin   = 1 << 14 // a published port reached from inside
)

// TCP states, as netfilter names them.
const (
	tcpNone uint32 = iota
	tcpSynSent
	tcpSynRecv
	tcpEstablished
	tcpFinWait
	tcpCloseWait
	tcpLastAck
	tcpTimeWait
	tcpClose
	numTCPStates
)

var tcpStateNames = [numTCPStates]string{
	"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE",
}

// TCP flag bits.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

// Timeouts are the idle timeouts of flows by protocol and state. The zero
// value of a field means netfilter's default, given in brackets.
type Timeouts struct {
	TCPSynSent     time.Duration // [2m]
	TCPSynRecv     time.Duration // [1m]
	TCPEstablished time.Duration // [120h]
	TCPFinWait     time.Duration // [2m]
	TCPCloseWait   time.Duration // [1m]
	TCPLastAck     time.Duration // [30s]
	TCPTimeWait    time.Duration // [2m]
	TCPClose       time.Duration // [10s]
	UDP            time.Duration // [30s] until a reply is seen
	UDPStream      time.Duration // [2m] once it has been seen both ways
	ICMP           time.Duration // [30s]
	Other          time.Duration // [10m] other protocols (generic)
}

// DefaultTimeouts are netfilter's defaults.
var DefaultTimeouts = Timeouts{
	TCPSynSent: 2 * time.Minute, TCPSynRecv: time.Minute, TCPEstablished: 120 * time.Hour,
	TCPFinWait: 2 * time.Minute, TCPCloseWait: time.Minute, TCPLastAck: 30 * time.Second,
	TCPTimeWait: 2 * time.Minute, TCPClose: 10 * time.Second,
	UDP: 30 * time.Second, UDPStream: 2 * time.Minute, ICMP: 30 * time.Second, Other: 10 * time.Minute,
}

// TimeoutNames are the names SetTimeout and the CLI accept, in order.
var TimeoutNames = []string{
	"tcp-syn-sent", "tcp-syn-recv", "tcp-established", "tcp-fin-wait", "tcp-close-wait",
	"tcp-last-ack", "tcp-time-wait", "tcp-close", "udp", "udp-stream", "icmp", "other",
}

func (t *Timeouts) field(name string) *time.Duration {
	switch name {
	case "tcp-syn-sent":
		return &t.TCPSynSent
	case "tcp-syn-recv":
		return &t.TCPSynRecv
	case "tcp-established":
		return &t.TCPEstablished
	case "tcp-fin-wait":
		return &t.TCPFinWait
	case "tcp-close-wait":
		return &t.TCPCloseWait
	case "tcp-last-ack":
		return &t.TCPLastAck
	case "tcp-time-wait":
		return &t.TCPTimeWait
	case "tcp-close":
		return &t.TCPClose
	case "udp":
		return &t.UDP
	case "udp-stream":
		return &t.UDPStream
	case "icmp":
		return &t.ICMP
	case "other":
		return &t.Other
	}
	return nil
}

// Set sets the timeout called name (one of TimeoutNames) to d, which must
// be at least a second.
func (t *Timeouts) Set(name string, d time.Duration) error {
	f := t.field(name)
	if f == nil {
		return fmt.Errorf("unknown timeout %q; want one of %v", name, TimeoutNames)
	}
	if d < time.Second || d > 1<<30*time.Second {
		return fmt.Errorf("timeout %s=%v out of range; want 1s to 34y", name, d)
	}
	*f = d
	return nil
}

// Get returns the timeout called name (0 for an unknown name or an unset
// field).
func (t *Timeouts) Get(name string) time.Duration {
	if f := t.field(name); f != nil {
		return *f
	}
	return 0
}

// withDefaults fills zero fields from DefaultTimeouts.
func (t Timeouts) withDefaults() Timeouts {
	for _, n := range TimeoutNames {
		if f := t.field(n); *f == 0 {
			*f = *DefaultTimeouts.field(n)
		}
	}
	return t
}

// secs is a Timeouts in whole seconds, indexed for the fast path.
type secs struct {
	tcp                         [numTCPStates]uint32
	udp, udpStream, icmp, other uint32
}

func (t Timeouts) secs() secs {
	s := func(d time.Duration) uint32 { return uint32(d / time.Second) }
	var o secs
	o.tcp = [numTCPStates]uint32{
		tcpNone: s(t.TCPSynSent), tcpSynSent: s(t.TCPSynSent), tcpSynRecv: s(t.TCPSynRecv),
		tcpEstablished: s(t.TCPEstablished), tcpFinWait: s(t.TCPFinWait), tcpCloseWait: s(t.TCPCloseWait),
		tcpLastAck: s(t.TCPLastAck), tcpTimeWait: s(t.TCPTimeWait), tcpClose: s(t.TCPClose),
	}
	o.udp, o.udpStream, o.icmp, o.other = s(t.UDP), s(t.UDPStream), s(t.ICMP), s(t.Other)
	return o
}

// tcpNext returns the state after a packet with flags fl in direction dir
// (0 original, 1 reply), given state word st. It follows netfilter's
// state machine closely enough for timeouts: handshake, the two FINs, the
// last ACK, RST, and a new SYN reopening a closed or TIME_WAIT flow.
func tcpNext(st uint32, dir int, fl uint8) uint32 {
	s := st & stMask
	flags := st &^ stMask
	switch {
	case fl&tcpRST != 0:
		s = tcpClose
	case fl&tcpSYN != 0 && fl&tcpACK == 0:
		if dir == 0 && (s == tcpNone || s == tcpTimeWait || s == tcpClose) {
			s = tcpSynSent
			flags &^= stFin0 | stFin1
		}
	case fl&tcpSYN != 0: // SYN+ACK
		if dir == 1 && (s == tcpSynSent || s == tcpSynRecv) {
			s = tcpSynRecv
		}
	case fl&tcpFIN != 0:
		if dir == 0 {
			flags |= stFin0
		} else {
			flags |= stFin1
		}
		switch {
		case flags&(stFin0|stFin1) == stFin0|stFin1:
			if s != tcpTimeWait && s != tcpClose {
				s = tcpLastAck
			}
		case s == tcpEstablished || s == tcpSynRecv:
			if dir == 0 {
				s = tcpFinWait
			} else {
				s = tcpCloseWait
			}
		}
	case fl&tcpACK != 0:
		switch s {
		case tcpSynRecv:
			if dir == 0 {
				s = tcpEstablished
				flags |= stAssured
			}
		case tcpLastAck:
			s = tcpTimeWait
		}
	}
	return flags | s
}

// now and expiry: the table clock counts seconds from the NAT's start.

func expired(exp, now uint32) bool { return int32(now-exp) >= 0 }

func nowOf(t *table) uint32 { return t.now.Load() }
