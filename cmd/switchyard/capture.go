package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/spf13/cobra"

	"github.com/switchyard-net/switchyard/cmd/internal/api"
	"github.com/switchyard-net/switchyard/switch/capture"
)

func newCaptureCmd() *cobra.Command {
	var (
		endpoint, file, filter string
		count, snaplen         int
		duration               time.Duration
		socket                 string
	)
	cmd := &cobra.Command{
		Use:   "capture NAME",
		Short: "Capture a network's frames to pcapng, or print them",
		Long: `capture mirrors the frames a network's switch handles (or only those of one
endpoint's port) from the running daemon: with -w to a pcapng file (one
interface per switch port, direction flags, nanosecond time stamps, dropped
frames marked with their reason in a packet comment; on a network with an
uplink, the uplink's frames as on the wire and every packet the NAT
translates twice, commented pre-nat and post-nat), with -w - as pcapng on
stdout, and otherwise decoded, one line per frame. It stops after -c frames,
after --duration, when the network goes away, or on Ctrl-C, and then says
how many frames it took and how many it lost (a reader slower than the
switch loses frames; forwarding never waits for it).

Filters are a subset of pcap-filter(7): host, net, port, portrange, src/dst,
tcp, udp, icmp, icmp6, arp, ip, ip6, ether host, vlan, and/or/not and
parentheses.`,
		Example: `  switchyard capture lan --endpoint ns1 -w lan.pcapng -c 100
  switchyard capture lan -f 'icmp or arp' --duration 10s
  switchyard capture lan -w - | tshark -r -`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if count < 0 {
				return usagef(cmd, "-c %d: want a number of frames, 0 or more", count)
			}
			if duration < 0 {
				return usagef(cmd, "--duration %s: want a positive duration", duration)
			}
			if snaplen != 0 && (snaplen < 64 || snaplen > capture.MaxSnapLen) {
				return usagef(cmd, "-s %d: want 64 to %d bytes", snaplen, capture.MaxSnapLen)
			}
			if _, err := capture.Compile(filter); err != nil {
				return err
			}
			socket, _ = cmd.Flags().GetString("socket")
			return runCapture(cmd, api.NewClient(socket), args[0], api.CaptureRequest{
				Port: endpoint, Filter: filter, Count: count, Duration: duration, SnapLen: snaplen}, file)
		},
	}
	f := cmd.Flags()
	f.StringVar(&endpoint, "endpoint", "", "capture only the port of the endpoint of namespace `NETNS` (or an attached interface, or gateway)")
	f.StringVarP(&file, "write", "w", "", "write pcapng to `FILE` (- for stdout) instead of printing one line per frame")
	f.StringVarP(&filter, "filter", "f", "", "capture only frames matching the filter expression `FILTER`")
	f.IntVarP(&count, "count", "c", 0, "stop after `N` frames (default: no limit)")
	f.DurationVar(&duration, "duration", 0, "stop after `D`, a duration like 10s (default: no limit)")
	f.IntVarP(&snaplen, "snaplen", "s", 0, fmt.Sprintf("keep `N` bytes of each frame (default %d)", capture.DefaultSnapLen))
	return cmd
}

func runCapture(cmd *cobra.Command, client *api.Client, network string, req api.CaptureRequest, file string) (err error) {
	// The output first: an unwritable path fails before anything starts.
	// A file is written under a temporary name and renamed at the end, so
	// a failed capture leaves nothing behind.
	var out io.Writer
	var tmp *os.File
	if file == "-" {
		out = cmd.OutOrStdout()
	} else if file != "" {
		dir, base := filepath.Split(file)
		if dir == "" {
			dir = "."
		}
		if fi, serr := os.Stat(file); serr == nil && fi.IsDir() {
			return fmt.Errorf("cannot write %s: it is a directory", file)
		}
		tmp, err = os.CreateTemp(dir, "."+base+".*.partial")
		if err != nil {
			return fmt.Errorf("cannot write %s: %v", file, unwrapPath(err))
		}
		out = tmp
		defer func() {
			if tmp != nil {
				tmp.Close()
				os.Remove(tmp.Name())
			}
		}()
	}

	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	stream, err := client.Capture(ctx, network, req)
	if err != nil {
		return err
	}
	defer stream.Close()

	// Ctrl-C asks the daemon to end the capture, so that the stream ends
	// cleanly with its statistics; a second one cuts it.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		if _, ok := <-sigs; !ok {
			return
		}
		sctx, scancel := context.WithTimeout(context.Background(), 3*time.Second)
		if client.StopCapture(sctx, network, stream.ID()) != nil {
			cancel()
		}
		scancel()
		if _, ok := <-sigs; ok {
			cancel()
		}
	}()

	stderr := cmd.ErrOrStderr()
	var frames int
	if out != nil {
		frames, err = copyBlocks(out, stream)
	} else {
		frames, err = printFrames(cmd.OutOrStdout(), stream)
	}
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("capture on %s: %v", network, err)
	}
	if tmp != nil {
		if err := tmp.Sync(); err != nil {
			return fmt.Errorf("writing %s: %v", file, err)
		}
		if err := tmp.Close(); err != nil {
			return fmt.Errorf("writing %s: %v", file, err)
		}
		if err := os.Rename(tmp.Name(), file); err != nil {
			return fmt.Errorf("writing %s: %v", file, unwrapPath(err))
		}
		tmp = nil
	}
	sum, ok := stream.Summary()
	where := ""
	if file != "" && file != "-" {
		where = " to " + file
	}
	if !ok {
		fmt.Fprintf(stderr, "capture %s: %d frames%s; interrupted, lost frames unknown\n", network, frames, where)
		return nil
	}
	fmt.Fprintf(stderr, "capture %s: %d frames%s, %d lost; %s\n", network, sum.Captured, where, sum.Lost, sum.End)
	return nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// pcapng block types the copier counts.
const (
	blockSHB = 0x0a0d0d0a
	blockEPB = 0x00000006
)

// copyBlocks copies a pcapng stream block by block, so that whatever
// stops it leaves whole blocks behind, and counts the packet blocks.
// The daemon writes little-endian sections.
func copyBlocks(w io.Writer, r io.Reader) (packets int, err error) {
	var hdr [8]byte
	buf := make([]byte, 0, 4096)
	for first := true; ; first = false {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) && !first {
				return packets, nil
			}
			return packets, fmt.Errorf("reading the stream: %w", err)
		}
		typ, n := binary.LittleEndian.Uint32(hdr[0:]), binary.LittleEndian.Uint32(hdr[4:])
		if first && typ != blockSHB {
			return 0, errors.New("the daemon's stream is not pcapng")
		}
		if n < 12 || n%4 != 0 || n > 16<<20 {
			return packets, fmt.Errorf("the stream has a bad pcapng block length %d", n)
		}
		buf = append(buf[:0], hdr[:]...)
		buf = append(buf, make([]byte, n-8)...)
		if _, err := io.ReadFull(r, buf[8:]); err != nil {
			return packets, fmt.Errorf("reading the stream: %w", err)
		}
		if _, err := w.Write(buf); err != nil {
			return packets, fmt.Errorf("writing: %w", err)
		}
		if typ == blockEPB {
			packets++
		}
	}
}

// printFrames decodes the stream and prints one line per frame.
func printFrames(w io.Writer, r io.Reader) (int, error) {
	ng, err := pcapgo.NewNgReader(r, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return 0, nil
		}
		return 0, fmt.Errorf("reading the stream: %w", err)
	}
	n := 0
	for {
		data, ci, opts, err := ng.ReadPacketDataWithOptions()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("reading the stream: %w", err)
		}
		n++
		port := "?"
		if ifc, err := ng.Interface(ci.InterfaceIndex); err == nil {
			port = ifc.Name
		}
		dir := "  "
		if opts.Flags != nil {
			switch opts.Flags.Direction {
			case pcapgo.NgEpbFlagDirectionInbound:
				dir = "in"
			case pcapgo.NgEpbFlagDirectionOutbound:
				dir = "out"
			}
		}
		line := fmt.Sprintf("%s %s %-3s %s", ci.Timestamp.Format("15:04:05.000000000"), port, dir, describeFrame(data, ci.Length))
		if len(opts.Comments) > 0 {
			line += " [" + strings.Join(opts.Comments, "; ") + "]"
		}
		fmt.Fprintln(w, line)
	}
}

// describeFrame is a one-line summary of an Ethernet frame.
func describeFrame(data []byte, length int) string {
	p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
	var b strings.Builder
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if eth == nil {
		return fmt.Sprintf("malformed frame, %d bytes", length)
	}
	if d, ok := p.Layer(layers.LayerTypeDot1Q).(*layers.Dot1Q); ok {
		fmt.Fprintf(&b, "vlan %d ", d.VLANIdentifier)
	}
	var src, dst string
	switch ip := p.NetworkLayer().(type) {
	case *layers.IPv4:
		src, dst = ip.SrcIP.String(), ip.DstIP.String()
	case *layers.IPv6:
		src, dst = ip.SrcIP.String(), ip.DstIP.String()
	}
	switch {
	case p.Layer(layers.LayerTypeARP) != nil:
		a := p.Layer(layers.LayerTypeARP).(*layers.ARP)
		if a.Operation == layers.ARPRequest {
			fmt.Fprintf(&b, "ARP who-has %s tell %s", ipString(a.DstProtAddress), ipString(a.SourceProtAddress))
		} else {
			fmt.Fprintf(&b, "ARP %s is-at %s", ipString(a.SourceProtAddress), macString(a.SourceHwAddress))
		}
	case p.Layer(layers.LayerTypeTCP) != nil:
		t := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		fmt.Fprintf(&b, "TCP %s:%d > %s:%d [%s] seq %d", src, t.SrcPort, dst, t.DstPort, tcpFlagString(t), t.Seq)
		if t.ACK {
			fmt.Fprintf(&b, " ack %d", t.Ack)
		}
		fmt.Fprintf(&b, " len %d", len(t.Payload))
	case p.Layer(layers.LayerTypeUDP) != nil:
		u := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		fmt.Fprintf(&b, "UDP %s:%d > %s:%d len %d", src, u.SrcPort, dst, u.DstPort, len(u.Payload))
	case p.Layer(layers.LayerTypeICMPv4) != nil:
		i := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		fmt.Fprintf(&b, "ICMP %s > %s %s", src, dst, i.TypeCode)
		if t := i.TypeCode.Type(); t == layers.ICMPv4TypeEchoRequest || t == layers.ICMPv4TypeEchoReply {
			fmt.Fprintf(&b, " id %d seq %d", i.Id, i.Seq)
		}
	case p.Layer(layers.LayerTypeICMPv6) != nil:
		i := p.Layer(layers.LayerTypeICMPv6).(*layers.ICMPv6)
		fmt.Fprintf(&b, "ICMPv6 %s > %s %s", src, dst, i.TypeCode)
	case src != "":
		fmt.Fprintf(&b, "IP %s > %s proto %s", src, dst, p.NetworkLayer().LayerType())
	default:
		fmt.Fprintf(&b, "%s > %s ethertype %s", eth.SrcMAC, eth.DstMAC, eth.EthernetType)
	}
	fmt.Fprintf(&b, ", %d bytes", length)
	return b.String()
}

func ipString(b []byte) string {
	if len(b) == 4 {
		return fmt.Sprintf("%d.%d.%d.%d", b[0], b[1], b[2], b[3])
	}
	return fmt.Sprintf("%x", b)
}

func macString(b []byte) string {
	s := make([]string, len(b))
	for i, x := range b {
		s[i] = fmt.Sprintf("%02x", x)
	}
	return strings.Join(s, ":")
}

func tcpFlagString(t *layers.TCP) string {
	var s string
	for _, f := range []struct {
		on bool
		c  string
	}{{t.FIN, "F"}, {t.SYN, "S"}, {t.RST, "R"}, {t.PSH, "P"}, {t.ACK, "."}, {t.URG, "U"}, {t.ECE, "E"}, {t.CWR, "W"}} {
		if f.on {
			s += f.c
		}
	}
	return s
}
