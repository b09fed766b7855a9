package capture

import (
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// WriterConfig describes the capture a Writer writes.
type WriterConfig struct {
	// Network names the switch; it goes into the interface descriptions.
	Network string
	// Ports are the switch ports known when the capture starts: each
	// gets an interface block up front, in this order. Ports met later
	// get one when their first frame is written. With none, an interface
	// named after the network stands in until then.
	Ports []string
	// SnapLen is the capture's snap length (0: unlimited).
	SnapLen int
	// Filter is the capture's filter expression, recorded on every
	// interface.
	Filter string
}

// Writer writes records as pcapng: a section header, one interface
// description block per switch port, and one enhanced packet block per
// frame with its direction in epb_flags, nanosecond time stamps, and a
// comment for dropped or marked frames.
type Writer struct {
	cfg    WriterConfig
	w      *pcapgo.NgWriter
	ifaces map[string]int
	counts []uint64 // frames written, by interface
	start  time.Time
}

// NewWriter writes the section header and the first interface blocks to w.
func NewWriter(w io.Writer, cfg WriterConfig) (*Writer, error) {
	pw := &Writer{cfg: cfg, ifaces: map[string]int{}, start: time.Now()}
	first := cfg.Network
	if len(cfg.Ports) > 0 {
		first = cfg.Ports[0]
	}
	if first == "" {
		first = "switch"
	}
	ng, err := pcapgo.NewNgWriterInterface(w, pw.iface(first), pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{
		Hardware: runtime.GOARCH, OS: runtime.GOOS, Application: "switchyard",
		Comment: "switchyard capture of network " + cfg.Network,
	}})
	if err != nil {
		return nil, fmt.Errorf("pcapng: %w", err)
	}
	pw.w = ng
	pw.ifaces[first] = 0
	pw.counts = append(pw.counts, 0)
	for _, p := range cfg.Ports {
		if _, err := pw.ifaceID(p); err != nil {
			return nil, err
		}
	}
	return pw, nil
}

func (pw *Writer) iface(name string) pcapgo.NgInterface {
	return pcapgo.NgInterface{
		Name:                name,
		Description:         fmt.Sprintf("switchyard network %s, port %s", pw.cfg.Network, name),
		Filter:              pw.cfg.Filter,
		OS:                  runtime.GOOS,
		LinkType:            layers.LinkTypeEthernet,
		SnapLength:          uint32(pw.cfg.SnapLen),
		TimestampResolution: 9,
	}
}

func (pw *Writer) ifaceID(name string) (int, error) {
	if id, ok := pw.ifaces[name]; ok {
		return id, nil
	}
	id, err := pw.w.AddInterface(pw.iface(name))
	if err != nil {
		return 0, fmt.Errorf("pcapng: %w", err)
	}
	pw.ifaces[name] = id
	pw.counts = append(pw.counts, 0)
	return id, nil
}

// Comment returns the packet comment a record gets: its drop reason or its
// note, or "".
func (r *Record) Comment() string {
	switch {
	case r.Drop != "" && r.Note != "":
		return "dropped: " + r.Drop + "; " + r.Note
	case r.Drop != "":
		return "dropped: " + r.Drop
	}
	return r.Note
}

// Write writes one record.
func (pw *Writer) Write(r *Record) error {
	id, err := pw.ifaceID(r.Port)
	if err != nil {
		return err
	}
	ci := gopacket.CaptureInfo{
		Timestamp:      time.Unix(0, r.Time),
		CaptureLength:  len(r.Data),
		Length:         max(r.OrigLen, len(r.Data)),
		InterfaceIndex: id,
	}
	var opts pcapgo.NgPacketOptions
	switch r.Dir {
	case In:
		opts.Flags = &pcapgo.NgEpbFlags{Direction: pcapgo.NgEpbFlagDirectionInbound}
	case Out:
		opts.Flags = &pcapgo.NgEpbFlags{Direction: pcapgo.NgEpbFlagDirectionOutbound}
	}
	if c := r.Comment(); c != "" {
		opts.Comments = []string{c}
	}
	if err := pw.w.WritePacketWithOptions(ci, r.Data, opts); err != nil {
		return fmt.Errorf("pcapng: %w", err)
	}
	pw.counts[id]++
	return nil
}

// Flush writes out what is buffered.
func (pw *Writer) Flush() error { return pw.w.Flush() }

// Close writes an interface statistics block per interface (frames
// written; lost frames, which a capture counts as a whole, on the first
// interface) and flushes. It does not close the underlying writer.
func (pw *Writer) Close(lost uint64) error {
	now := time.Now()
	for id, n := range pw.counts {
		st := pcapgo.NgInterfaceStatistics{
			LastUpdate: now, StartTime: pw.start, EndTime: now,
			PacketsReceived: n, PacketsDropped: pcapgo.NgNoValue64,
		}
		if id == 0 {
			st.PacketsDropped = lost
		}
		if err := pw.w.WriteInterfaceStats(id, st); err != nil {
			return fmt.Errorf("pcapng: %w", err)
		}
	}
	return pw.w.Flush()
}
