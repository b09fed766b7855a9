package frame

import (
	"net/netip"
	"testing"
)

func TestZeroAllocs(t *testing.T) {
	frames := captures(t)
	cs := gsoCases(t)
	out := make([][]byte, 16)
	for i := range out {
		out[i] = make([]byte, 0, 1600)
	}
	var p Parsed
	a4, b4 := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.1.1")
	a6, b6 := netip.MustParseAddr("fd00:198:18::1"), netip.MustParseAddr("fd00:198:18::99")
	ip := IPv4(make([]byte, 20))
	ip[0] = 0x45
	seg := TCP(make([]byte, 1500))
	seg[12] = 5 << 4
	u := UDP(make([]byte, 100))
	u[5] = 100
	var sink uint16
	var mac MAC
	tests := []struct {
		name string
		f    func()
	}{
		{"Decode", func() {
			for _, f := range frames {
				p.Decode(f.data)
			}
		}},
		{"Sum", func() { sink += Sum(seg, 0) }},
		{"PseudoHeaderSum", func() { sink += PseudoHeaderSum(ProtoTCP, a6, b6, 1500) + PseudoHeaderSum(ProtoUDP, a4, b4, 8) }},
		{"Update", func() { sink += Update16(sink, 1, 2) + Update32(sink, 1, 2) + UpdateAddr(sink, a6, b6) }},
		{"IPv4 setters", func() {
			ip.SetSrc(a4)
			ip.SetDst(b4)
			ip.DecTTL()
			ip.SetTotalLen(20)
			ip.SetID(9)
			_ = ip.VerifyChecksum()
		}},
		{"TCP/UDP setters", func() {
			seg.SetSrcPort(1)
			seg.SetDstPort(2)
			seg.UpdateAddr(a6, b6)
			seg.FillChecksum(a4, b4)
			u.SetSrcPort(3)
			u.UpdateAddr(a4, b4)
			_ = seg.Verify(a4, b4) && u.Verify(a4, b4)
		}},
		{"accessors", func() {
			e := Ethernet(frames[0].data)
			mac = e.Src()
			e.SetSrc(mac)
			_, _, _, _ = e.Untag()
		}},
		{"FinishChecksum", func() {
			h := VNetHdr{Flags: VNetNeedsCsum, CsumStart: 14 + 20, CsumOffset: 16}
			FinishChecksum(cs[0].frame, &h)
		}},
		{"Segment", func() {
			for _, c := range cs {
				h := c.hdr
				if _, err := Segment(c.frame, &h, out); err != nil {
					t.Fatal(err)
				}
			}
		}},
	}
	for _, tc := range tests {
		if n := testing.AllocsPerRun(100, tc.f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", tc.name, n)
		}
	}
}
