package api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// serve answers on a unix socket in a temp dir with h.
func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return p
}

func TestClientErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   *Error
	}{
		{"coded", 409, `{"error":{"code":"subnet_overlap","message":"subnet x overlaps"}}`,
			&Error{Code: CodeSubnetOverlap, Message: "subnet x overlaps", Status: 409}},
		{"not json", 502, `bad gateway`,
			&Error{Code: CodeInternal, Message: "daemon answered 502 Bad Gateway without an error body", Status: 502}},
		{"no code", 400, `{"error":{}}`,
			&Error{Code: CodeInternal, Message: "daemon answered 400 Bad Request without an error body", Status: 400}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := serve(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			})
			_, err := NewClient(sock).Networks(context.Background())
			var got *Error
			if !errors.As(err, &got) {
				t.Fatalf("error %v is not an *Error", err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "Err" }, cmp.Ignore())); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestClientRequest(t *testing.T) {
	var gotMethod, gotPath, gotBody string
	sock := serve(t, func(w http.ResponseWriter, r *http.Request) {
		gotMethod, gotPath = r.Method, r.URL.RequestURI()
		b := new(strings.Builder)
		buf := make([]byte, 512)
		n, _ := r.Body.Read(buf)
		b.Write(buf[:n])
		gotBody = b.String()
		w.WriteHeader(201)
		w.Write([]byte(`{"name":"web","kind":"veth","flags":{"hairpin":true}}`))
	})
	c := NewClient(sock)
	p, err := c.Connect(context.Background(), "a b", EndpointCreate{Netns: "web", IPs: []string{"none"}})
	if err != nil {
		t.Fatal(err)
	}
	if gotMethod != "POST" || gotPath != "/v1/networks/a%20b/endpoints" || gotBody != `{"netns":"web","ips":["none"]}` {
		t.Errorf("request %s %s %s", gotMethod, gotPath, gotBody)
	}
	if p.Name != "web" || !p.Flags.Hairpin {
		t.Errorf("port = %+v", p)
	}
	if err := c.Detach(context.Background(), "n", "eth1", "ns 1"); err != nil {
		t.Fatal(err)
	}
	if gotMethod != "DELETE" || gotPath != "/v1/networks/n/attachments/eth1?netns=ns+1" {
		t.Errorf("detach request %s %s", gotMethod, gotPath)
	}
}

func TestClientNoDaemon(t *testing.T) {
	p := filepath.Join(t.TempDir(), "missing.sock")
	_, err := NewClient(p).Ping(context.Background())
	if CodeOf(err) != CodeDaemonUnavailable || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "running?") {
		t.Errorf("missing socket: %v", err)
	}
	// A socket file nobody listens on: connection refused.
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "dead.sock"))
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := NewClient(dead).Ping(context.Background()); CodeOf(err) != CodeDaemonUnavailable || !strings.Contains(err.Error(), "running?") {
		t.Errorf("dead socket: %v", err)
	}
}

func TestHTTPStatus(t *testing.T) {
	for code, want := range map[string]int{
		CodeInvalidJSON: 400, CodeInvalidArgument: 400, CodeOutsideSubnet: 400, CodeRangeOutsideSubnet: 400,
		CodeNotFound: 404, CodeSubnetOverlap: 409, CodeAuxCollision: 409, CodeAddressTaken: 409, CodePoolExhausted: 409,
		CodeConflict: 409, CodeNotSupported: 501, CodeStateCorrupt: 500, CodeInternal: 500,
	} {
		if got := HTTPStatus(code); got != want {
			t.Errorf("HTTPStatus(%s) = %d, want %d", code, got, want)
		}
	}
}
