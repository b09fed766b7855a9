package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"
)

// Client talks to a daemon over its unix socket. Every method returns an
// *Error on failure: the daemon's own, or one with a client-side code
// (CodeDaemonUnavailable, CodePermissionDenied) when the socket cannot be
// reached.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a client for the daemon listening on socket (empty:
// DefaultSocket).
func NewClient(socket string) *Client {
	if socket == "" {
		socket = DefaultSocket
	}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		DisableCompression: true,
		MaxIdleConns:       2,
		IdleConnTimeout:    10 * time.Second,
	}
	return &Client{socket: socket, hc: &http.Client{Transport: tr, Timeout: 2 * time.Minute}}
}

// Socket returns the socket path the client connects to.
func (c *Client) Socket() string { return c.socket }

// Do sends a request with body (nil: none) marshalled as JSON and decodes a
// successful answer into out (nil: ignored).
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return &Error{Code: CodeInvalidArgument, Message: fmt.Sprintf("encode request: %v", err), Err: err}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://switchyard"+path, rd)
	if err != nil {
		return &Error{Code: CodeInternal, Message: fmt.Sprintf("build request: %v", err), Err: err}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.dialError(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return &Error{Code: CodeDaemonUnavailable, Message: fmt.Sprintf("reading the daemon's answer on %s: %v", c.socket, err), Err: err}
	}
	if resp.StatusCode >= 300 {
		var eb ErrorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error == nil || eb.Error.Code == "" {
			return &Error{Code: CodeInternal, Status: resp.StatusCode,
				Message: fmt.Sprintf("daemon answered %s without an error body", resp.Status)}
		}
		eb.Error.Status = resp.StatusCode
		return eb.Error
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return &Error{Code: CodeInternal, Message: fmt.Sprintf("decoding the daemon's answer: %v", err), Err: err}
		}
	}
	return nil
}

// dialError turns a transport error into a one-line *Error saying whether
// the daemon is not running or access was denied.
func (c *Client) dialError(err error) error {
	switch {
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return &Error{Code: CodePermissionDenied, Err: err,
			Message: fmt.Sprintf("permission denied on %s; run as root (or as a member of the socket's group)", c.socket)}
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
		return &Error{Code: CodeDaemonUnavailable, Err: err,
			Message: fmt.Sprintf("cannot connect to the daemon on %s: is `switchyard daemon` running?", c.socket)}
	}
	return &Error{Code: CodeDaemonUnavailable, Err: err,
		Message: fmt.Sprintf("talking to the daemon on %s: %v", c.socket, unwrapURL(err))}
}

func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func esc(s string) string { return url.PathEscape(s) }

// Ping checks that the daemon answers.
func (c *Client) Ping(ctx context.Context) (Ping, error) {
	var p Ping
	err := c.Do(ctx, http.MethodGet, "/v1/ping", nil, &p)
	return p, err
}

// Networks lists the networks, sorted by name.
func (c *Client) Networks(ctx context.Context) ([]Network, error) {
	var out []Network
	err := c.Do(ctx, http.MethodGet, "/v1/networks", nil, &out)
	return out, err
}

// Network returns one network.
func (c *Client) Network(ctx context.Context, name string) (Network, error) {
	var out Network
	err := c.Do(ctx, http.MethodGet, "/v1/networks/"+esc(name), nil, &out)
	return out, err
}

// CreateNetwork creates a network.
func (c *Client) CreateNetwork(ctx context.Context, req NetworkCreate) (Network, error) {
	var out Network
	err := c.Do(ctx, http.MethodPost, "/v1/networks", req, &out)
	return out, err
}

// UpdateNetwork changes a network's settings.
func (c *Client) UpdateNetwork(ctx context.Context, name string, req NetworkUpdate) (Network, error) {
	var out Network
	err := c.Do(ctx, http.MethodPatch, "/v1/networks/"+esc(name), req, &out)
	return out, err
}

// RemoveNetwork removes a network with its endpoints and attachments.
func (c *Client) RemoveNetwork(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/networks/"+esc(name), nil, nil)
}

// Connect connects a namespace to a network.
func (c *Client) Connect(ctx context.Context, network string, req EndpointCreate) (Port, error) {
	var out Port
	err := c.Do(ctx, http.MethodPost, "/v1/networks/"+esc(network)+"/endpoints", req, &out)
	return out, err
}

// Disconnect removes a namespace's endpoint from a network.
func (c *Client) Disconnect(ctx context.Context, network, netns string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/networks/"+esc(network)+"/endpoints/"+esc(netns), nil, nil)
}

// Attach makes an existing interface a port of a network.
func (c *Client) Attach(ctx context.Context, network string, req AttachmentCreate) (Port, error) {
	var out Port
	err := c.Do(ctx, http.MethodPost, "/v1/networks/"+esc(network)+"/attachments", req, &out)
	return out, err
}

// Detach removes an attached interface from a network; netns, when not
// empty, must be the namespace it was attached from.
func (c *Client) Detach(ctx context.Context, network, iface, netns string) error {
	p := "/v1/networks/" + esc(network) + "/attachments/" + esc(iface)
	if netns != "" {
		p += "?netns=" + url.QueryEscape(netns)
	}
	return c.Do(ctx, http.MethodDelete, p, nil, nil)
}

// SetPort changes a port's flags.
func (c *Client) SetPort(ctx context.Context, network, port string, req PortUpdate) (Port, error) {
	var out Port
	err := c.Do(ctx, http.MethodPatch, "/v1/networks/"+esc(network)+"/ports/"+esc(port), req, &out)
	return out, err
}

// FDB lists a network's MAC table.
func (c *Client) FDB(ctx context.Context, network string) ([]FDBEntry, error) {
	var out []FDBEntry
	err := c.Do(ctx, http.MethodGet, "/v1/networks/"+esc(network)+"/fdb", nil, &out)
	return out, err
}

// FlushFDB removes a network's learned MAC entries.
func (c *Client) FlushFDB(ctx context.Context, network string) (int, error) {
	var out FDBFlushed
	err := c.Do(ctx, http.MethodDelete, "/v1/networks/"+esc(network)+"/fdb", nil, &out)
	return out.Flushed, err
}

// NAT returns a network's connection table, at most max flows (0: the
// daemon's default).
func (c *Client) NAT(ctx context.Context, network string, max int) (NATTable, error) {
	var out NATTable
	path := "/v1/networks/" + esc(network) + "/nat"
	if max > 0 {
		path += "?max=" + strconv.Itoa(max)
	}
	err := c.Do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}
