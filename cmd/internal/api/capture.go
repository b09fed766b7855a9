package api

// Capture, statistics and trace: routes added to those in types.go.
//
//	GET    /v1/networks/{name}/capture?port=P&filter=F&count=N&duration=D&snaplen=S
//	                                                  a pcapng stream (200), summary in trailers
//	DELETE /v1/networks/{name}/captures/{id}         204: ends a capture (its stream ends normally)
//	GET    /v1/networks/{name}/stats                  NetworkStats
//	POST   /v1/networks/{name}/trace                  TraceRequest -> Trace

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Capture stream trailers: the daemon sets them when the stream ends.
const (
	TrailerCaptured = "Switchyard-Captured" // frames written
	TrailerLost     = "Switchyard-Lost"     // frames lost: the reader was too slow
	TrailerEnd      = "Switchyard-End"      // why the capture ended (a sentence)
)

// HeaderCaptureID carries a capture's ID (for StopCapture) on the stream.
const HeaderCaptureID = "Switchyard-Capture-Id"

// PcapngType is the content type of a capture stream.
const PcapngType = "application/x-pcapng"

// CaptureRequest selects what a capture takes.
type CaptureRequest struct {
	Port     string        // one port (an endpoint's namespace, an interface, "gateway"); empty: all
	Filter   string        // pcap-filter subset; empty: all
	Count    int           // stop after this many frames; 0: no limit
	Duration time.Duration // stop after this long; 0: no limit
	SnapLen  int           // bytes kept per frame; 0: the default
}

// CaptureStream is a running capture's pcapng stream. Read it to the end,
// then Summary says how it ended.
type CaptureStream struct {
	io.Reader
	resp *http.Response
}

// Close stops reading (the daemon ends the capture).
func (s *CaptureStream) Close() error { return s.resp.Body.Close() }

// ID returns the capture's ID on its network.
func (s *CaptureStream) ID() string { return s.resp.Header.Get(HeaderCaptureID) }

// StopCapture asks the daemon to end a capture: its stream then ends with
// the frames taken so far and its trailers.
func (c *Client) StopCapture(ctx context.Context, network, id string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/networks/"+esc(network)+"/captures/"+esc(id), nil, nil)
}

// CaptureSummary is how a capture ended, from the stream's trailers.
type CaptureSummary struct {
	Captured, Lost uint64
	End            string
}

// Summary returns the stream's trailers; valid once the stream has been
// read to its end.
func (s *CaptureStream) Summary() (CaptureSummary, bool) {
	t := s.resp.Trailer
	if t.Get(TrailerEnd) == "" {
		return CaptureSummary{}, false
	}
	c, _ := strconv.ParseUint(t.Get(TrailerCaptured), 10, 64)
	l, _ := strconv.ParseUint(t.Get(TrailerLost), 10, 64)
	return CaptureSummary{Captured: c, Lost: l, End: t.Get(TrailerEnd)}, true
}

// Capture starts a capture on a network. The request carries no timeout:
// ctx ends it, as does reading it to the end.
func (c *Client) Capture(ctx context.Context, network string, req CaptureRequest) (*CaptureStream, error) {
	q := url.Values{}
	if req.Port != "" {
		q.Set("port", req.Port)
	}
	if req.Filter != "" {
		q.Set("filter", req.Filter)
	}
	if req.Count > 0 {
		q.Set("count", strconv.Itoa(req.Count))
	}
	if req.Duration > 0 {
		q.Set("duration", req.Duration.String())
	}
	if req.SnapLen > 0 {
		q.Set("snaplen", strconv.Itoa(req.SnapLen))
	}
	p := "/v1/networks/" + esc(network) + "/capture"
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://switchyard"+p, nil)
	if err != nil {
		return nil, &Error{Code: CodeInternal, Message: fmt.Sprintf("build request: %v", err), Err: err}
	}
	hc := *c.hc
	hc.Timeout = 0 // a stream: as long as it takes
	resp, err := hc.Do(hr)
	if err != nil {
		return nil, c.dialError(err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, errorFrom(resp)
	}
	return &CaptureStream{Reader: resp.Body, resp: resp}, nil
}

// errorFrom decodes an error answer.
func errorFrom(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var eb ErrorBody
	if json.Unmarshal(data, &eb) != nil || eb.Error == nil || eb.Error.Code == "" {
		return &Error{Code: CodeInternal, Status: resp.StatusCode,
			Message: fmt.Sprintf("daemon answered %s without an error body", resp.Status)}
	}
	eb.Error.Status = resp.StatusCode
	return eb.Error
}

// PortStats are one port's forwarding counters.
type PortStats struct {
	Name      string            `json:"name"`
	Kind      string            `json:"kind,omitempty"`
	RxFrames  uint64            `json:"rx_frames"`
	RxBytes   uint64            `json:"rx_bytes"`
	TxFrames  uint64            `json:"tx_frames"`
	TxBytes   uint64            `json:"tx_bytes"`
	TxFlooded uint64            `json:"tx_flooded"`
	Drops     map[string]uint64 `json:"drops,omitempty"`
}

// NetworkStats is the body of GET /v1/networks/{name}/stats.
type NetworkStats struct {
	Network string      `json:"network"`
	Ports   []PortStats `json:"ports"`
	// Tables maps a table's name to its size in entries: "mac" for the
	// MAC table (and "conntrack" once NAT tracks connections).
	Tables map[string]int `json:"tables"`
	// MAC table counters since the network started.
	MACLearned   uint64 `json:"mac_learned"`
	MACMoves     uint64 `json:"mac_moves"`
	MACLimitHits uint64 `json:"mac_limit_hits"`
	MACAged      uint64 `json:"mac_aged"`
	// Captures is the number of captures running.
	Captures int `json:"captures"`
	// DropReasons lists every reason the engine can drop a frame for.
	DropReasons []string `json:"drop_reasons"`
}

// Stats returns a network's counters and table sizes.
func (c *Client) Stats(ctx context.Context, network string) (NetworkStats, error) {
	var out NetworkStats
	err := c.Do(ctx, http.MethodGet, "/v1/networks/"+esc(network)+"/stats", nil, &out)
	return out, err
}

// TraceRequest is the body of POST /v1/networks/{name}/trace: a synthetic
// frame, sent by the endpoint (or port) From, described by Spec:
//
//	tcp SRC:PORT > DST:PORT [syn|ack|...]
//	udp SRC:PORT > DST:PORT
//	icmp SRC > DST             an echo request
//	arp who-has DST [tell SRC]
type TraceRequest struct {
	From string `json:"from"`
	Spec string `json:"spec"`
}

// TraceStep is one step of the decision path.
type TraceStep struct {
	Step   string `json:"step"`
	Detail string `json:"detail"`
}

// Trace is what the network would do with a frame, step by step.
type Trace struct {
	Network string      `json:"network"`
	From    string      `json:"from"`
	Steps   []TraceStep `json:"steps"`
	// Verdict: "forwarded", "flooded", "to gateway", "dropped" or
	// "nowhere" (no other port); through a gateway with an uplink also
	// "routed" (out of the uplink), "answered" (by the gateway itself)
	// or "ignored" (not for the gateway).
	Verdict string   `json:"verdict"`
	Out     []string `json:"out,omitempty"`
	Drop    string   `json:"drop,omitempty"`
}

// Trace runs a synthetic frame through a network's decision path.
func (c *Client) Trace(ctx context.Context, network string, req TraceRequest) (Trace, error) {
	var out Trace
	err := c.Do(ctx, http.MethodPost, "/v1/networks/"+esc(network)+"/trace", req, &out)
	return out, err
}

// Text renders a trace one step per line, the step names aligned.
func (t Trace) Text() string {
	w := 0
	for _, s := range t.Steps {
		w = max(w, len(s.Step))
	}
	var b strings.Builder
	for _, s := range t.Steps {
		fmt.Fprintf(&b, "%-*s  %s\n", w, s.Step, s.Detail)
	}
	return b.String()
}
