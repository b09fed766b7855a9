package frame

import (
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

type capFrame struct {
	name string // file#index
	data []byte
}

// captures returns every frame of testdata/pcaps/*.pcap.
func captures(tb testing.TB) []capFrame {
	tb.Helper()
	files, err := filepath.Glob("testdata/pcaps/*.pcap")
	if err != nil || len(files) == 0 {
		tb.Fatalf("no captures under testdata/pcaps: %v", err)
	}
	var out []capFrame
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			tb.Fatal(err)
		}
		r, err := pcapgo.NewReader(fh)
		if err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
		if r.LinkType() != layers.LinkTypeEthernet {
			tb.Fatalf("%s: link type %v, want Ethernet", f, r.LinkType())
		}
		for i := 0; ; i++ {
			data, ci, err := r.ReadPacketData()
			if err != nil {
				break
			}
			if ci.CaptureLength != ci.Length {
				tb.Fatalf("%s#%d: truncated capture", f, i)
			}
			out = append(out, capFrame{name: filepath.Base(f) + "#" + itoa(i), data: data})
		}
		fh.Close()
	}
	return out
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	return string(b[n:])
}

var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func addrOf(ip []byte) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a
}

// fromGopacket builds the Parsed that data should decode to from
// gopacket's decoding of the same bytes. clean is false when gopacket
// reported a decoding error.
func fromGopacket(data []byte) (w Parsed, clean bool) {
	pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.DecodeOptions{NoCopy: true})
	w.fromLayers(pkt.Layers(), 0)
	if w.Frag == FirstFragment && w.L4Off == w.PayloadOff && w.L4Off <= w.L3End && w.L3End <= len(data) {
		// gopacket leaves fragments undecoded; a first fragment starts with
		// the transport header, which Decode reads, so decode it alone.
		l4 := gopacket.NewPacket(data[w.L4Off:w.L3End], layers.IPProtocol(w.Proto).LayerType(), gopacket.DecodeOptions{NoCopy: true})
		w.fromLayers(l4.Layers(), w.L4Off)
	}
	// A failure past the transport header (gopacket guessing an
	// application protocol from a port) is none of ours.
	return w, pkt.ErrorLayer() == nil || pkt.TransportLayer() != nil
}

func (w *Parsed) fromLayers(ls []gopacket.Layer, off int) {
	for _, l := range ls {
		switch l := l.(type) {
		case *layers.Ethernet:
			w.DstMAC, w.SrcMAC = MAC(l.DstMAC), MAC(l.SrcMAC)
			w.EtherType = uint16(l.EthernetType)
		case *layers.Dot1Q:
			if w.VLANTags == 0 {
				w.VLAN = l.VLANIdentifier
			}
			w.VLANTags++
			w.EtherType = uint16(l.Type)
		case *layers.ARP:
			w.L3Off, w.L3End = off, off+ARPLen
			w.ARPOp = l.Operation
			w.ARPSenderMAC, w.SrcIP = MAC(l.SourceHwAddress), addrOf(l.SourceProtAddress)
			w.ARPTargetMAC, w.DstIP = MAC(l.DstHwAddress), addrOf(l.DstProtAddress)
		case *layers.IPv4:
			w.L3Off, w.L3End = off, off+int(l.Length)
			w.IPVersion, w.Proto, w.TTL = 4, uint8(l.Protocol), l.TTL
			w.SrcIP, w.DstIP = addrOf(l.SrcIP), addrOf(l.DstIP)
			w.L4Off = off + int(l.IHL)*4
			w.PayloadOff = w.L4Off
			switch {
			case l.FragOffset != 0:
				w.Frag = LaterFragment
			case l.Flags&layers.IPv4MoreFragments != 0:
				w.Frag = FirstFragment
			}
		case *layers.IPv6:
			w.L3Off, w.L3End = off, off+IPv6Len+int(l.Length)
			w.IPVersion, w.Proto, w.TTL = 6, uint8(l.NextHeader), l.HopLimit
			w.SrcIP, w.DstIP = addrOf(l.SrcIP), addrOf(l.DstIP)
			w.L4Off, w.PayloadOff = off+IPv6Len, off+IPv6Len
		case *layers.IPv6HopByHop:
			w.Proto = uint8(l.NextHeader)
			w.L4Off = off + len(l.Contents)
			w.PayloadOff = w.L4Off
		case *layers.IPv6Destination:
			w.Proto = uint8(l.NextHeader)
			w.L4Off = off + len(l.Contents)
			w.PayloadOff = w.L4Off
		case *layers.IPv6Routing:
			w.Proto = uint8(l.NextHeader)
			w.L4Off = off + len(l.Contents)
			w.PayloadOff = w.L4Off
		case *layers.IPv6Fragment:
			w.Proto = uint8(l.NextHeader)
			w.L4Off = off + len(l.Contents)
			w.PayloadOff = w.L4Off
			switch {
			case l.FragmentOffset != 0:
				w.Frag = LaterFragment
			case l.MoreFragments:
				w.Frag = FirstFragment
			}
		case *layers.TCP:
			w.L4Off, w.PayloadOff = off, off+len(l.Contents)
			w.SrcPort, w.DstPort = uint16(l.SrcPort), uint16(l.DstPort)
			w.TCPFlags = l.Contents[13]
		case *layers.UDP:
			w.L4Off, w.PayloadOff = off, off+UDPLen
			w.SrcPort, w.DstPort = uint16(l.SrcPort), uint16(l.DstPort)
		case *layers.ICMPv4:
			w.L4Off, w.PayloadOff = off, off+ICMPLen
			w.ICMPType, w.ICMPCode = l.TypeCode.Type(), l.TypeCode.Code()
			if w.ICMPType == ICMPv4EchoRequest || w.ICMPType == ICMPv4EchoReply {
				w.ICMPEchoID, w.ICMPEchoSeq = l.Id, l.Seq
			}
		case *layers.ICMPv6:
			w.L4Off, w.PayloadOff = off, off+min(ICMPLen, len(l.Contents)+len(l.Payload))
			w.ICMPType, w.ICMPCode = l.TypeCode.Type(), l.TypeCode.Code()
		case *layers.ICMPv6Echo:
			w.ICMPEchoID, w.ICMPEchoSeq = l.Identifier, l.SeqNumber
		}
		off += len(l.LayerContents())
	}
}

func gpNetworkLayer(src, dst netip.Addr, proto layers.IPProtocol) gopacket.NetworkLayer {
	if src.Is4() {
		return &layers.IPv4{Version: 4, IHL: 5, Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	}
	return &layers.IPv6{Version: 6, NextHeader: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
}

// gpTCPChecksum is gopacket's TCP checksum of seg (its checksum field
// ignored).
func gpTCPChecksum(tb testing.TB, seg []byte, src, dst netip.Addr) uint16 {
	tb.Helper()
	c := append([]byte{}, seg...)
	c[16], c[17] = 0, 0
	var tcp layers.TCP
	if err := tcp.DecodeFromBytes(c, gopacket.NilDecodeFeedback); err != nil {
		tb.Fatal(err)
	}
	if err := tcp.SetNetworkLayerForChecksum(gpNetworkLayer(src, dst, layers.IPProtocolTCP)); err != nil {
		tb.Fatal(err)
	}
	cs, err := tcp.ComputeChecksum()
	if err != nil {
		tb.Fatal(err)
	}
	return cs
}

// gpUDPChecksum is gopacket's UDP checksum of seg, by re-serializing it.
func gpUDPChecksum(tb testing.TB, seg []byte, src, dst netip.Addr) uint16 {
	tb.Helper()
	var udp layers.UDP
	if err := udp.DecodeFromBytes(append([]byte{}, seg...), gopacket.NilDecodeFeedback); err != nil {
		tb.Fatal(err)
	}
	if err := udp.SetNetworkLayerForChecksum(gpNetworkLayer(src, dst, layers.IPProtocolUDP)); err != nil {
		tb.Fatal(err)
	}
	b := serialize(tb, &udp, gopacket.Payload(udp.Payload))
	return binary.BigEndian.Uint16(b[6:])
}

// gpIPv4Checksum is gopacket's checksum of an IPv4 header.
func gpIPv4Checksum(hdr []byte) uint16 {
	c := append([]byte{}, hdr...)
	c[10], c[11] = 0, 0
	return gopacket.FoldChecksum(gopacket.ComputeChecksum(c, 0))
}

func netipFrom4(a [4]byte) netip.Addr { return netip.AddrFrom4(a) }
