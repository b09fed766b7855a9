package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/cmd/internal/api"
	"github.com/switchyard-net/switchyard/switch/bridge"
	"github.com/switchyard-net/switchyard/switch/capture"
	"github.com/switchyard-net/switchyard/switch/router"
)

// captureRoutes adds the capture, stats and trace routes (see api/capture.go).
func (d *Daemon) captureRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/networks/{name}/capture", d.serveCapture)
	mux.HandleFunc("DELETE /v1/networks/{name}/captures/{id}", func(w http.ResponseWriter, r *http.Request) {
		d.reply(w, r, http.StatusNoContent, nil, d.StopCapture(r.PathValue("name"), r.PathValue("id")))
	})
	mux.HandleFunc("GET /v1/networks/{name}/stats", func(w http.ResponseWriter, r *http.Request) {
		out, err := d.Stats(r.PathValue("name"))
		d.reply(w, r, http.StatusOK, out, err)
	})
	mux.HandleFunc("POST /v1/networks/{name}/trace", withBody(d, http.StatusOK, func(r *http.Request, req api.TraceRequest) (any, error) {
		return d.Trace(r.PathValue("name"), req)
	}))
}

// newMirror returns a network's capture mirror: while a capture runs, and
// only then, it is hooked into br and into the gateway gw returns (nil
// without one), which shows the uplink's frames and NAT's translations.
func newMirror(br *bridge.Bridge, gw func() *router.Port) *capture.Mirror {
	var m *capture.Mirror
	m = capture.NewMirror(&capture.MirrorConfig{OnActive: func(on bool) {
		g := gw()
		if on {
			br.SetMirror(m)
			if g != nil {
				g.SetMirror(m)
			}
			return
		}
		br.SetMirror(nil)
		if g != nil {
			g.SetMirror(nil)
		}
	}})
	return m
}

// endCaptures ends the network's captures with reason; their streams end
// with it as the last word.
func (rn *runNet) endCaptures(reason string) {
	if rn.mir != nil {
		rn.mir.Close(reason)
	}
}

// EndCaptures ends every running capture (before a shutdown, so that
// streams do not hold it up).
func (d *Daemon) EndCaptures(reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, rn := range d.nets {
		rn.endCaptures(reason)
	}
}

// captureSpec is a validated capture request.
type captureSpec struct {
	rn       *runNet
	cfg      capture.Config
	ports    []string
	count    int
	duration time.Duration
}

func (d *Daemon) parseCapture(name string, r *http.Request) (*captureSpec, error) {
	q := r.URL.Query()
	s := &captureSpec{}
	var err error
	if v := q.Get("count"); v != "" {
		if s.count, err = strconv.Atoi(v); err != nil || s.count < 0 {
			return nil, invalid("count %q: want a number of frames, 0 or more", v)
		}
	}
	if v := q.Get("duration"); v != "" {
		if s.duration, err = time.ParseDuration(v); err != nil || s.duration < 0 {
			return nil, invalid("duration %q: want a duration like 10s", v)
		}
	}
	if v := q.Get("snaplen"); v != "" {
		if s.cfg.SnapLen, err = strconv.Atoi(v); err != nil || s.cfg.SnapLen < 64 || s.cfg.SnapLen > capture.MaxSnapLen {
			return nil, invalid("snaplen %q: want 64 to %d bytes", v, capture.MaxSnapLen)
		}
	}
	if s.cfg.Filter, err = capture.Compile(q.Get("filter")); err != nil {
		return nil, invalid("%v", err)
	}
	if err := d.lockOpen(); err != nil {
		return nil, err
	}
	defer d.mu.Unlock()
	_, rn, err := d.netLocked(name)
	if err != nil {
		return nil, err
	}
	s.rn = rn
	if p := q.Get("port"); p != "" {
		if _, err := rn.br.Port(p); err != nil {
			return nil, api.Errorf(api.CodeNotFound, "network %q has no port %q (an endpoint's port is named after its namespace)", name, p)
		}
		s.cfg.Port = p
		s.ports = []string{p}
	} else {
		for _, pi := range rn.br.Ports() {
			s.ports = append(s.ports, pi.Name)
		}
	}
	return s, nil
}

// serveCapture streams a capture as pcapng. Errors found before the stream
// starts are ordinary API errors; afterwards the trailers say how it ended.
func (d *Daemon) serveCapture(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	spec, err := d.parseCapture(name, r)
	if err == nil && spec.rn.mir == nil {
		err = api.Errorf(api.CodeNotSupported, "capture works on bridge networks; %q is a macvlan network", name)
	}
	if err != nil {
		d.reply(w, r, 0, nil, err)
		return
	}
	c, err := spec.rn.mir.Start(&spec.cfg)
	if err != nil {
		d.reply(w, r, 0, nil, api.Errorf(api.CodeNotFound, "network %q is going away", name))
		return
	}
	defer c.Close()
	log := d.log.With(zap.String("network", name), zap.String("port", spec.cfg.Port), zap.String("filter", spec.cfg.Filter.String()))
	log.Info("capture started")

	w.Header().Set("Content-Type", api.PcapngType)
	w.Header().Set(api.HeaderCaptureID, strconv.FormatUint(c.ID(), 10))
	w.Header().Set("Trailer", api.TrailerCaptured+", "+api.TrailerLost+", "+api.TrailerEnd)
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	pw, err := capture.NewWriter(w, capture.WriterConfig{Network: name, Ports: spec.ports, SnapLen: c.SnapLen(), Filter: spec.cfg.Filter.String()})
	if err != nil {
		log.Warn("capture: writing the stream header failed", zap.Error(err))
		return
	}
	// The header goes out at once: a client sees the capture running
	// as soon as its request returns.
	if err := pw.Flush(); err == nil {
		_ = rc.Flush()
	}
	ctx := r.Context()
	var deadline <-chan time.Time
	if spec.duration > 0 {
		t := time.NewTimer(spec.duration)
		defer t.Stop()
		deadline = t.C
	}
	var (
		rec     capture.Record
		written int
		end     string
		werr    error
	)
	flush := func() {
		if werr == nil {
			if werr = pw.Flush(); werr == nil {
				werr = rc.Flush()
			}
		}
	}
	// Frames are written as they come and flushed when the ring runs dry
	// (or every 256 frames), so a slow trickle is seen at once.
	pending := 0
loop:
	for end == "" && werr == nil {
		if spec.count > 0 && written >= spec.count {
			end = fmt.Sprintf("%d frames captured (count reached)", written)
			break
		}
		select {
		case <-deadline:
			end = fmt.Sprintf("duration %s reached", spec.duration)
			break loop
		default:
		}
		if c.TryRead(&rec) {
			werr = pw.Write(&rec)
			written++
			if pending++; pending >= 256 {
				flush()
				pending = 0
			}
			continue
		}
		if pending > 0 {
			flush()
			pending = 0
		}
		wait, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		err := c.Read(wait, &rec)
		cancel()
		var ee *capture.EndError
		switch {
		case err == nil:
			werr = pw.Write(&rec)
			written++
			pending++
		case errors.As(err, &ee):
			end = ee.Reason
		case ctx.Err() != nil:
			break loop // the client went away
		case spec.cfg.Port != "":
			// Nothing for a while: is the port still there?
			if _, err := spec.rn.br.Port(spec.cfg.Port); err != nil {
				end = fmt.Sprintf("port %q left network %q", spec.cfg.Port, name)
			}
		}
	}
	c.Close()
	if werr == nil && ctx.Err() == nil {
		werr = pw.Close(c.Lost())
		if werr == nil {
			werr = rc.Flush()
		}
	}
	w.Header().Set(api.TrailerCaptured, strconv.Itoa(written))
	w.Header().Set(api.TrailerLost, strconv.FormatUint(c.Lost(), 10))
	if end == "" {
		end = "the reader went away"
	}
	w.Header().Set(api.TrailerEnd, end)
	log.Info("capture ended", zap.Int("frames", written), zap.Uint64("lost", c.Lost()), zap.String("why", end), zap.NamedError("write_error", werr))
}

// StopCapture ends a running capture: its stream ends with what it has
// taken, the statistics and the trailers.
func (d *Daemon) StopCapture(name, id string) error {
	if err := d.lockOpen(); err != nil {
		return err
	}
	_, rn, err := d.netLocked(name)
	d.mu.Unlock()
	if err != nil {
		return err
	}
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil || rn.mir == nil || !rn.mir.Stop(n, "stopped by the reader") {
		return api.Errorf(api.CodeNotFound, "network %q has no capture %q running", name, id)
	}
	return nil
}

// Stats returns a network's per-port counters, table sizes and capture
// count.
func (d *Daemon) Stats(name string) (api.NetworkStats, error) {
	if err := d.lockOpen(); err != nil {
		return api.NetworkStats{}, err
	}
	n, rn, err := d.netLocked(name)
	kinds := map[string]string{}
	if err == nil {
		if n.hasGateway() {
			kinds[api.GatewayPort] = api.KindGateway
		}
		for _, ep := range n.Endpoints {
			kinds[ep.Netns] = ep.Kind
		}
		for _, at := range n.Attachments {
			kinds[at.Iface] = api.KindAttached
		}
	}
	d.mu.Unlock()
	if err != nil {
		return api.NetworkStats{}, err
	}
	out := api.NetworkStats{Network: name, Ports: []api.PortStats{}, Tables: rn.tableSizes(),
		Captures: rn.mir.Active(), DropReasons: bridge.Reasons()}
	for _, pi := range rn.br.Ports() {
		c := pi.Counters
		out.Ports = append(out.Ports, api.PortStats{Name: pi.Name, Kind: kinds[pi.Name], RxFrames: c.RxFrames, RxBytes: c.RxBytes,
			TxFrames: c.TxFrames, TxBytes: c.TxBytes, TxFlooded: c.TxFlooded, Drops: c.Drops})
	}
	fs := rn.br.FDBStats()
	out.MACLearned, out.MACMoves, out.MACLimitHits, out.MACAged = fs.Learned, fs.Moves, fs.LimitHits, fs.Aged
	return out, nil
}

// tableSizes returns the sizes of the network's tables by name: "mac" for
// the MAC table. NAT adds "conntrack" here (the metrics and `switchyard
// stats` show whatever this returns).
func (rn *runNet) tableSizes() map[string]int {
	m := map[string]int{"mac": rn.br.FDBStats().Entries}
	if rn.nat != nil {
		m["conntrack"] = rn.nat.Stats().Flows
	}
	return m
}
