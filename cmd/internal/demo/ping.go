package demo

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/switchyard-net/switchyard/netns"
	"github.com/switchyard-net/switchyard/switch/frame"
)

// ICMPv4 message types of an echo exchange.
const (
	icmpEchoReply   = 0
	icmpEchoRequest = 8
)

// echoLen is the length of the echo messages sent: 8 bytes of header and
// 16 of payload.
const echoLen = 24

// ping sends count ICMP echo requests to dst from a raw socket opened in
// namespace ns, one after the other, each waiting up to timeout for its
// reply. It needs no ping binary.
func ping(ctx context.Context, ns string, dst netip.Addr, count int, timeout time.Duration) Ping {
	p := Ping{From: ns, To: dst}
	var conn net.PacketConn
	err := netns.Do(ns, func() error {
		var err error
		conn, err = net.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	})
	if err != nil {
		p.Err = fmt.Errorf("opening an ICMP socket in %s: %w", ns, err)
		return p
	}
	defer conn.Close()
	id := nextPingID()
	to := &net.IPAddr{IP: dst.AsSlice()}
	req := make([]byte, echoLen)
	buf := make([]byte, 1500)
	for seq := 1; seq <= count && ctx.Err() == nil; seq++ {
		encodeEcho(req, icmpEchoRequest, id, uint16(seq))
		start := time.Now()
		if _, err := conn.WriteTo(req, to); err != nil {
			p.Err = fmt.Errorf("sending an echo request to %s: %w", dst, err)
			return p
		}
		p.Sent++
		if rtt, ok := awaitReply(ctx, conn, buf, dst, id, uint16(seq), start, timeout); ok {
			p.RTTs = append(p.RTTs, rtt)
		}
	}
	return p
}

// awaitReply reads from conn until the echo reply from dst with id and seq
// arrives (true) or timeout has passed since start, or ctx is done.
func awaitReply(ctx context.Context, conn net.PacketConn, buf []byte, dst netip.Addr, id, seq uint16, start time.Time, timeout time.Duration) (time.Duration, bool) {
	deadline := start.Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetReadDeadline(deadline)
	// A raw socket sees every ICMP message of the namespace; read until
	// ours comes or the deadline passes (each read is bounded by it).
	for ctx.Err() == nil {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return 0, false
			}
			continue
		}
		ip, ok := from.(*net.IPAddr)
		if !ok {
			continue
		}
		src, ok := netip.AddrFromSlice(ip.IP)
		if !ok || src.Unmap() != dst {
			continue
		}
		if typ, rid, rseq, ok := decodeEcho(buf[:n]); ok && typ == icmpEchoReply && rid == id && rseq == seq {
			return time.Since(start), true
		}
	}
	return 0, false
}

// encodeEcho writes an ICMPv4 echo message of type typ into b (echoLen
// bytes), with its checksum.
func encodeEcho(b []byte, typ uint8, id, seq uint16) {
	b[0], b[1] = typ, 0
	binary.BigEndian.PutUint16(b[2:], 0)
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	copy(b[8:], "switchyard demo.")
	binary.BigEndian.PutUint16(b[2:], frame.Checksum(b, 0))
}

// decodeEcho reads an ICMPv4 echo message with a valid checksum.
func decodeEcho(b []byte) (typ uint8, id, seq uint16, ok bool) {
	if len(b) < 8 || frame.Checksum(b, 0) != 0 {
		return 0, 0, 0, false
	}
	return b[0], binary.BigEndian.Uint16(b[4:]), binary.BigEndian.Uint16(b[6:]), true
}

// The ICMP echo identifier: random at first, then counting, so that runs
// in one process do not share one.
var (
	pingMu sync.Mutex
	pingID uint16
)

func nextPingID() uint16 {
	pingMu.Lock()
	defer pingMu.Unlock()
	if pingID == 0 {
		var b [2]byte
		_, _ = rand.Read(b[:])
		pingID = binary.BigEndian.Uint16(b[:])
	}
	pingID++
	return pingID
}
