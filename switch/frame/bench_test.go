package frame

import (
	"net/netip"
	"testing"
)

func benchFrame(b *testing.B, pred func(*Parsed) bool) []byte {
	for _, f := range captures(b) {
		var p Parsed
		p.Decode(f.data)
		if pred(&p) {
			return f.data
		}
	}
	b.Fatal("no such frame in the captures")
	return nil
}

func BenchmarkDecode(b *testing.B) {
	cases := []struct {
		name string
		pred func(*Parsed) bool
	}{
		{"tcp4", func(p *Parsed) bool { return p.IPVersion == 4 && p.Proto == ProtoTCP }},
		{"tcp6", func(p *Parsed) bool { return p.IPVersion == 6 && p.Proto == ProtoTCP }},
		{"udp4", func(p *Parsed) bool { return p.IPVersion == 4 && p.Proto == ProtoUDP && p.Frag == NotFragment }},
		{"icmp6-hbh", func(p *Parsed) bool { return p.IPVersion == 6 && p.L4Off > p.L3Off+IPv6Len }},
		{"arp", func(p *Parsed) bool { return p.EtherType == EtherTypeARP }},
	}
	for _, c := range cases {
		data := benchFrame(b, c.pred)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var p Parsed
			for b.Loop() {
				p.Decode(data)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
		})
	}
}

func BenchmarkChecksum(b *testing.B) {
	for _, n := range []int{64, 1500, 65536} {
		buf := make([]byte, n)
		for i := range buf {
			buf[i] = byte(i * 7)
		}
		b.Run(itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			var s uint16
			for b.Loop() {
				s = Sum(buf, s)
			}
		})
	}
}

func BenchmarkIncremental(b *testing.B) {
	b.ReportAllocs()
	ip := IPv4(make([]byte, 20))
	ip[0], ip[3] = 0x45, 20
	ip.FillChecksum()
	seg := TCP(make([]byte, 40))
	seg[12] = 5 << 4
	x, y := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.9.9")
	for b.Loop() {
		ip.SetSrc(y)
		seg.UpdateAddr(x, y)
		seg.SetSrcPort(40000)
		ip.DecTTL()
		x, y = y, x
	}
}

func BenchmarkSegment(b *testing.B) {
	c := gsoCases(b)[0] // 10000 bytes of TCPv4 in 7 segments
	out := make([][]byte, 16)
	for i := range out {
		out[i] = make([]byte, 0, 1600)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(c.frame)))
	for b.Loop() {
		h := c.hdr
		if _, err := Segment(c.frame, &h, out); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFinishChecksum(b *testing.B) {
	data := benchFrame(b, func(p *Parsed) bool { return p.Proto == ProtoTCP && p.L3End-p.PayloadOff >= 1400 })
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		h := VNetHdr{Flags: VNetNeedsCsum, CsumStart: 14 + 20, CsumOffset: 16}
		FinishChecksum(data, &h)
	}
}
