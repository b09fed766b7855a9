package daemon

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Metric descriptions. Counters come from the engine's per-port counters
// (drops by the engine's reason names); table sizes from runNet.tableSizes,
// so a new table (NAT's connection table) shows up as a new "table" label
// value without touching this file.
var (
	mRxPackets = prometheus.NewDesc("switchyard_port_rx_packets_total", "Frames the switch received on a port.", []string{"network", "port"}, nil)
	mRxBytes   = prometheus.NewDesc("switchyard_port_rx_bytes_total", "Bytes the switch received on a port.", []string{"network", "port"}, nil)
	mTxPackets = prometheus.NewDesc("switchyard_port_tx_packets_total", "Frames the switch sent out of a port.", []string{"network", "port"}, nil)
	mTxBytes   = prometheus.NewDesc("switchyard_port_tx_bytes_total", "Bytes the switch sent out of a port.", []string{"network", "port"}, nil)
	mTxFlooded = prometheus.NewDesc("switchyard_port_tx_flooded_total", "Of the frames sent out of a port, flood copies.", []string{"network", "port"}, nil)
	mDrops     = prometheus.NewDesc("switchyard_port_drops_total", "Frames dropped, by port and reason.", []string{"network", "port", "reason"}, nil)
	mTable     = prometheus.NewDesc("switchyard_table_entries", "Entries in a network's tables (mac: the MAC table).", []string{"network", "table"}, nil)
	mMACEvents = prometheus.NewDesc("switchyard_mac_events_total", "MAC table events: learned, moved, limit_hit, aged.", []string{"network", "event"}, nil)
	mCaptures  = prometheus.NewDesc("switchyard_captures", "Captures running on a network.", []string{"network"}, nil)
	mNetworks  = prometheus.NewDesc("switchyard_networks", "Networks the daemon runs.", nil, nil)
)

// collector exports the daemon's counters at scrape time.
type collector struct{ d *Daemon }

// Collector returns a Prometheus collector of the daemon's networks.
func (d *Daemon) Collector() prometheus.Collector { return collector{d} }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range []*prometheus.Desc{mRxPackets, mRxBytes, mTxPackets, mTxBytes, mTxFlooded, mDrops, mTable, mMACEvents, mCaptures, mNetworks} {
		ch <- m
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	c.d.mu.Lock()
	nets := map[string]*runNet{}
	if !c.d.closed {
		maps.Copy(nets, c.d.nets)
	}
	c.d.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(mNetworks, prometheus.GaugeValue, float64(len(nets)))
	for _, name := range slices.Sorted(maps.Keys(nets)) {
		rn := nets[name]
		for _, pi := range rn.br.Ports() {
			k := pi.Counters
			for _, m := range []struct {
				d *prometheus.Desc
				v uint64
			}{{mRxPackets, k.RxFrames}, {mRxBytes, k.RxBytes}, {mTxPackets, k.TxFrames}, {mTxBytes, k.TxBytes}, {mTxFlooded, k.TxFlooded}} {
				ch <- prometheus.MustNewConstMetric(m.d, prometheus.CounterValue, float64(m.v), name, pi.Name)
			}
			for _, r := range slices.Sorted(maps.Keys(k.Drops)) {
				ch <- prometheus.MustNewConstMetric(mDrops, prometheus.CounterValue, float64(k.Drops[r]), name, pi.Name, r)
			}
		}
		for t, n := range rn.tableSizes() {
			ch <- prometheus.MustNewConstMetric(mTable, prometheus.GaugeValue, float64(n), name, t)
		}
		fs := rn.br.FDBStats()
		for _, e := range []struct {
			ev string
			v  uint64
		}{{"learned", fs.Learned}, {"moved", fs.Moves}, {"limit_hit", fs.LimitHits}, {"aged", fs.Aged}} {
			ch <- prometheus.MustNewConstMetric(mMACEvents, prometheus.CounterValue, float64(e.v), name, e.ev)
		}
		ch <- prometheus.MustNewConstMetric(mCaptures, prometheus.GaugeValue, float64(rn.mir.Active()), name)
	}
}

// ListenMetrics opens the metrics listener (before the daemon starts, so
// that a bad address changes nothing).
func ListenMetrics(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: cannot listen on %s: %v", addr, unwrapOp(err))
	}
	return ln, nil
}

func unwrapOp(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Err
	}
	return err
}

// ServeMetrics serves /metrics (the daemon's collector and the Go
// runtime's) on ln until stop is called.
func (d *Daemon) ServeMetrics(ln net.Listener) (stop func()) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(d.Collector(), prometheus.NewGoCollector())
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: zap.NewStdLog(d.log)}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Warn("metrics server stopped", zap.Error(err))
		}
	}()
	d.log.Info("serving metrics", zap.String("addr", ln.Addr().String()))
	return func() { srv.Close() }
}
