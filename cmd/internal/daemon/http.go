package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/cmd/internal/api"
)

// maxBody is the largest request body taken.
const maxBody = 1 << 20

// Handler returns the HTTP handler of the API (see package api for the
// routes).
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ping", func(w http.ResponseWriter, r *http.Request) {
		d.reply(w, r, http.StatusOK, api.Ping{Version: Version, StateDir: d.dir}, nil)
	})
	mux.HandleFunc("GET /v1/networks", func(w http.ResponseWriter, r *http.Request) {
		out, err := d.Networks()
		d.reply(w, r, http.StatusOK, out, err)
	})
	mux.HandleFunc("POST /v1/networks", withBody(d, http.StatusCreated, func(r *http.Request, req api.NetworkCreate) (any, error) {
		return d.CreateNetwork(req)
	}))
	mux.HandleFunc("GET /v1/networks/{name}", func(w http.ResponseWriter, r *http.Request) {
		out, err := d.Network(r.PathValue("name"))
		d.reply(w, r, http.StatusOK, out, err)
	})
	mux.HandleFunc("PATCH /v1/networks/{name}", withBody(d, http.StatusOK, func(r *http.Request, req api.NetworkUpdate) (any, error) {
		return d.UpdateNetwork(r.PathValue("name"), req)
	}))
	mux.HandleFunc("DELETE /v1/networks/{name}", func(w http.ResponseWriter, r *http.Request) {
		d.reply(w, r, http.StatusNoContent, nil, d.RemoveNetwork(r.PathValue("name")))
	})
	mux.HandleFunc("POST /v1/networks/{name}/endpoints", withBody(d, http.StatusCreated, func(r *http.Request, req api.EndpointCreate) (any, error) {
		return d.Connect(r.PathValue("name"), req)
	}))
	mux.HandleFunc("DELETE /v1/networks/{name}/endpoints/{netns}", func(w http.ResponseWriter, r *http.Request) {
		d.reply(w, r, http.StatusNoContent, nil, d.Disconnect(r.PathValue("name"), r.PathValue("netns")))
	})
	mux.HandleFunc("POST /v1/networks/{name}/attachments", withBody(d, http.StatusCreated, func(r *http.Request, req api.AttachmentCreate) (any, error) {
		return d.Attach(r.PathValue("name"), req)
	}))
	mux.HandleFunc("DELETE /v1/networks/{name}/attachments/{iface}", func(w http.ResponseWriter, r *http.Request) {
		err := d.Detach(r.PathValue("name"), r.PathValue("iface"), r.URL.Query().Get("netns"))
		d.reply(w, r, http.StatusNoContent, nil, err)
	})
	mux.HandleFunc("PATCH /v1/networks/{name}/ports/{port}", withBody(d, http.StatusOK, func(r *http.Request, req api.PortUpdate) (any, error) {
		return d.SetPort(r.PathValue("name"), r.PathValue("port"), req)
	}))
	mux.HandleFunc("GET /v1/networks/{name}/fdb", func(w http.ResponseWriter, r *http.Request) {
		out, err := d.FDB(r.PathValue("name"))
		d.reply(w, r, http.StatusOK, out, err)
	})
	mux.HandleFunc("DELETE /v1/networks/{name}/fdb", func(w http.ResponseWriter, r *http.Request) {
		k, err := d.FlushFDB(r.PathValue("name"))
		d.reply(w, r, http.StatusOK, api.FDBFlushed{Flushed: k}, err)
	})
	mux.HandleFunc("GET /v1/networks/{name}/nat", func(w http.ResponseWriter, r *http.Request) {
		max := 1000
		if s := r.URL.Query().Get("max"); s != "" {
			v, err := strconv.Atoi(s)
			if err != nil || v < 1 {
				d.reply(w, r, 0, nil, invalid("max %q: want a positive number", s))
				return
			}
			max = v
		}
		out, err := d.NATTable(r.PathValue("name"), max)
		d.reply(w, r, http.StatusOK, out, err)
	})
	d.captureRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		d.reply(w, r, 0, nil, api.Errorf(api.CodeNotFound, "no route %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// decode reads a JSON body into v, strictly: one document, no unknown
// fields. On failure it answers invalid_json and returns false.
// withBody is the handler of a request with a JSON body: it decodes the
// body into a T, calls do with the request and it, and replies status
// with what do returns (or its error).
func withBody[T any](d *Daemon, status int, do func(r *http.Request, req T) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req T
		if !d.decode(w, r, &req) {
			return
		}
		out, err := do(r, req)
		d.reply(w, r, status, out, err)
	}
}

func (d *Daemon) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			d.reply(w, r, 0, nil, api.Errorf(api.CodeInvalidJSON, "request body larger than %d bytes", maxBody))
		} else {
			d.reply(w, r, 0, nil, api.Errorf(api.CodeInvalidJSON, "reading request body: %v", err))
		}
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = fmt.Errorf("data after the JSON document at offset %d", dec.InputOffset())
		}
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("empty body")
		}
		d.reply(w, r, 0, nil, api.Errorf(api.CodeInvalidJSON, "malformed JSON body: %v", err))
		return false
	}
	return true
}

// reply writes v with status, or err as a coded error.
func (d *Daemon) reply(w http.ResponseWriter, r *http.Request, status int, v any, err error) {
	if err != nil {
		e := asAPI(err)
		msg := err.Error() // keeps context added by wrapping
		status = api.HTTPStatus(e.Code)
		lvl := d.log.Info
		if status >= 500 {
			lvl = d.log.Warn
		}
		lvl("request failed", zap.String("method", r.Method), zap.String("path", r.URL.Path),
			zap.String("code", e.Code), zap.String("error", msg))
		v = api.ErrorBody{Error: &api.Error{Code: e.Code, Message: msg}}
	} else {
		d.log.Debug("request", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Int("status", status))
	}
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	b, merr := json.Marshal(v)
	if merr != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(api.ErrorBody{Error: &api.Error{Code: api.CodeInternal, Message: merr.Error()}})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
