package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// parseIperf3 reads the output of `iperf3 -c ... -J`: the throughput the
// receiver counted, the sender's, and the sender's retransmits.
func parseIperf3(out []byte) (TCPResult, error) {
	var doc struct {
		Error string `json:"error"`
		End   struct {
			SumSent struct {
				Seconds       float64 `json:"seconds"`
				BitsPerSecond float64 `json:"bits_per_second"`
				Retransmits   *int64  `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived struct {
				Seconds       float64 `json:"seconds"`
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return TCPResult{}, fmt.Errorf("parse iperf3 JSON: %w", err)
	}
	if doc.Error != "" {
		return TCPResult{}, fmt.Errorf("iperf3: %s", doc.Error)
	}
	s, r := doc.End.SumSent, doc.End.SumReceived
	if r.Seconds <= 0 || r.BitsPerSecond <= 0 {
		return TCPResult{}, errors.New("iperf3 JSON has no receiver summary (end.sum_received)")
	}
	res := TCPResult{Tool: TCPIperf3, Gbps: r.BitsPerSecond / 1e9, SenderGbps: s.BitsPerSecond / 1e9, Seconds: r.Seconds}
	if s.Retransmits != nil {
		res.Retransmits = *s.Retransmits
	}
	return res, nil
}

// summarize computes the round-trip statistics of samples (which it
// sorts). Percentiles use the nearest-rank method: the p-th percentile is
// the smallest sample with at least p% of the samples at or below it.
func summarize(samples []time.Duration, lost int) RRResult {
	r := RRResult{Count: len(samples), Lost: lost}
	if len(samples) == 0 {
		return r
	}
	slices.Sort(samples)
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	var sum time.Duration
	for _, s := range samples {
		sum += s
	}
	r.P50 = us(percentile(samples, 50))
	r.P90 = us(percentile(samples, 90))
	r.P99 = us(percentile(samples, 99))
	r.P999 = us(percentile(samples, 99.9))
	r.Min = us(samples[0])
	r.Max = us(samples[len(samples)-1])
	r.Mean = us(sum / time.Duration(len(samples)))
	return r
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted, which must not be empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p * float64(len(sorted)) / 100))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}
