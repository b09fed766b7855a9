package bench

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

func TestParseIperf3(t *testing.T) {
	real, err := os.ReadFile("testdata/iperf3-client.json")
	if err != nil {
		t.Fatal(err)
	}
	refused, err := os.ReadFile("testdata/iperf3-refused.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		in      string
		want    TCPResult
		wantErr string
	}{
		{
			name: "iperf 3.12 client over veth",
			in:   string(real),
			want: TCPResult{Tool: TCPIperf3, Gbps: 20.169273073609688, SenderGbps: 20.170928944796143, Retransmits: 5343, Seconds: 1.000602},
		},
		{
			name: "no retransmits field (not Linux)",
			in:   `{"end":{"sum_sent":{"seconds":1,"bits_per_second":2e9},"sum_received":{"seconds":1,"bits_per_second":1e9}}}`,
			want: TCPResult{Tool: TCPIperf3, Gbps: 1, SenderGbps: 2, Seconds: 1},
		},
		{name: "refused", in: string(refused), wantErr: "iperf3: unable to connect to server: Connection refused"},
		{name: "no summary", in: `{"end":{}}`, wantErr: "no receiver summary"},
		{name: "not JSON", in: "iperf3: error - unable to connect", wantErr: "parse iperf3 JSON"},
		{name: "empty", in: "", wantErr: "parse iperf3 JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseIperf3([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseIperf3() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseIperf3() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateApprox(1e-12, 0)); diff != "" {
				t.Errorf("parseIperf3() (-want +got):\n%s", diff)
			}
		})
	}
}

func us(v ...float64) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x * float64(time.Microsecond))
	}
	return out
}

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Microsecond // 1..100 us
	}
	ten := us(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"p50 of 1..100", hundred, 50, 50 * time.Microsecond},
		{"p90 of 1..100", hundred, 90, 90 * time.Microsecond},
		{"p99 of 1..100", hundred, 99, 99 * time.Microsecond},
		{"p100 of 1..100", hundred, 100, 100 * time.Microsecond},
		{"p50 of 1..10", ten, 50, 5 * time.Microsecond},
		{"p90 of 1..10", ten, 90, 9 * time.Microsecond},
		{"p99 of 1..10 is the maximum", ten, 99, 10 * time.Microsecond},
		{"p91 of 1..10 rounds up", ten, 91, 10 * time.Microsecond},
		{"tiny p is the minimum", ten, 0.001, 1 * time.Microsecond},
		{"one sample", us(7), 50, 7 * time.Microsecond},
		{"two samples p50", us(1, 9), 50, 1 * time.Microsecond},
		{"two samples p51", us(1, 9), 51, 9 * time.Microsecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile(%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	// Unsorted on purpose: summarize sorts.
	got := summarize(us(30, 10, 20, 40, 100, 50, 60, 70, 80, 90), 3)
	want := RRResult{Count: 10, Lost: 3, P50: 50, P90: 90, P99: 100, P999: 100, Min: 10, Max: 100, Mean: 55}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("summarize() (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(RRResult{Lost: 5}, summarize(nil, 5)); diff != "" {
		t.Errorf("summarize(nil) (-want +got):\n%s", diff)
	}
}

func TestUDPFrame(t *testing.T) {
	src := netip.MustParseAddrPort("198.18.0.1:9999")
	dst := netip.MustParseAddrPort("198.18.0.2:9")
	for _, size := range []int{minFrame, 128, 1514} {
		b, err := udpFrame(epMAC(0), epMAC(1), src, dst, size)
		if err != nil {
			t.Fatalf("udpFrame(%d): %v", size, err)
		}
		if len(b) != size {
			t.Fatalf("udpFrame(%d) is %d bytes", size, len(b))
		}
		pkt := gopacket.NewPacket(b, layers.LayerTypeEthernet, gopacket.Default)
		if el := pkt.ErrorLayer(); el != nil {
			t.Fatalf("udpFrame(%d) does not decode: %v", size, el.Error())
		}
		eth := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if ip == nil || udp == nil {
			t.Fatalf("udpFrame(%d): layers %v, want Ethernet/IPv4/UDP", size, pkt.Layers())
		}
		if !bytes.Equal(eth.SrcMAC, epMAC(0)) || !bytes.Equal(eth.DstMAC, epMAC(1)) {
			t.Errorf("MACs %s -> %s, want %s -> %s", eth.SrcMAC, eth.DstMAC, epMAC(0), epMAC(1))
		}
		if !ip.SrcIP.Equal(net.IP(src.Addr().AsSlice())) || !ip.DstIP.Equal(net.IP(dst.Addr().AsSlice())) {
			t.Errorf("IPs %s -> %s", ip.SrcIP, ip.DstIP)
		}
		if int(ip.Length) != size-14 || int(udp.Length) != size-34 {
			t.Errorf("lengths IP %d UDP %d for a %d-byte frame", ip.Length, udp.Length, size)
		}
		if udp.SrcPort != 9999 || udp.DstPort != 9 || ip.TTL == 0 {
			t.Errorf("ports %d -> %d, TTL %d", udp.SrcPort, udp.DstPort, ip.TTL)
		}
		// The header with its checksum sums to 0xffff.
		var sum uint32
		for i := 14; i < 34; i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		for sum > 0xffff {
			sum = sum&0xffff + sum>>16
		}
		if sum != 0xffff {
			t.Errorf("IPv4 header checksum %#04x does not verify (sum %#x)", ip.Checksum, sum)
		}
	}
	for _, bad := range []int{minFrame - 1, 1515} {
		if _, err := udpFrame(epMAC(0), epMAC(1), src, dst, bad); err == nil {
			t.Errorf("udpFrame(%d) = nil error, want out of range", bad)
		}
	}
	if _, err := udpFrame(epMAC(0), epMAC(1), netip.MustParseAddrPort("[fd00::1]:1"), dst, minFrame); err == nil {
		t.Error("udpFrame with an IPv6 source: nil error")
	}
}

func TestResolve(t *testing.T) {
	one := 1
	tests := []struct {
		name    string
		cfg     *Config
		ncpu    int
		wantErr string
		check   func(t *testing.T, r resolved)
	}{
		{name: "nil is defaults", cfg: nil, ncpu: 2, check: func(t *testing.T, r resolved) {
			if r.duration != DefaultDuration || r.epCPU != 0 || r.swCPU != 1 {
				t.Errorf("got duration %v CPUs %d/%d", r.duration, r.epCPU, r.swCPU)
			}
			if diff := cmp.Diff(AllTests, r.tests); diff != "" {
				t.Errorf("tests (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(DefaultPeers, r.peers); diff != "" {
				t.Errorf("peers (-want +got):\n%s", diff)
			}
			if len(r.worker) != 2 || r.worker[1] != "bench-worker" {
				t.Errorf("worker %q", r.worker)
			}
		}},
		{name: "one CPU shares it", cfg: &Config{}, ncpu: 1, check: func(t *testing.T, r resolved) {
			if r.swCPU != 0 {
				t.Errorf("switch CPU %d on a one-CPU machine", r.swCPU)
			}
		}},
		{name: "dedup and order kept", cfg: &Config{Tests: []string{"rr", " tcp", "rr"}, Peers: []string{"switchyard", "ovs"}}, ncpu: 2,
			check: func(t *testing.T, r resolved) {
				if diff := cmp.Diff([]string{"rr", "tcp"}, r.tests); diff != "" {
					t.Errorf("tests (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff([]string{"switchyard", "ovs"}, r.peers); diff != "" {
					t.Errorf("peers (-want +got):\n%s", diff)
				}
			}},
		{name: "aliases", cfg: &Config{Tests: []string{"pps", "pps64", "ndr"}}, ncpu: 2, check: func(t *testing.T, r resolved) {
			if diff := cmp.Diff([]string{TestPPS64, TestNDR64}, r.tests); diff != "" {
				t.Errorf("tests (-want +got):\n%s", diff)
			}
		}},
		{name: "quick", cfg: &Config{Quick: true}, ncpu: 2, check: func(t *testing.T, r resolved) {
			if r.duration != quickDuration || r.reps != 1 || r.trials != quickTrials || r.tcpDuration != quickTCP {
				t.Errorf("quick: duration %v reps %d trials %d tcp %v", r.duration, r.reps, r.trials, r.tcpDuration)
			}
		}},
		{name: "defaults", cfg: &Config{Duration: 2500 * time.Millisecond}, ncpu: 2, check: func(t *testing.T, r resolved) {
			if r.reps != DefaultReps || r.trials != DefaultTrials || r.eps != 2 || r.tcpTool != TCPAuto || r.tcpDuration != 3*time.Second {
				t.Errorf("reps %d trials %d endpoints %d tcp %s %v", r.reps, r.trials, r.eps, r.tcpTool, r.tcpDuration)
			}
		}},
		{name: "unknown test", cfg: &Config{Tests: []string{"udp"}}, ncpu: 2, wantErr: `unknown test "udp"`},
		{name: "reps", cfg: &Config{Reps: -1}, ncpu: 2, wantErr: "reps -1"},
		{name: "endpoints", cfg: &Config{Endpoints: 1}, ncpu: 2, wantErr: "endpoints 1"},
		{name: "too many endpoints", cfg: &Config{Endpoints: MaxEndpoints + 1}, ncpu: 2, wantErr: "out of range"},
		{name: "trials", cfg: &Config{Trials: 31}, ncpu: 2, wantErr: "trials 31"},
		{name: "tcp tool", cfg: &Config{TCPTool: "netperf"}, ncpu: 2, wantErr: `tcp tool "netperf"`},
		{name: "unknown peer", cfg: &Config{Peers: []string{"dpdk"}}, ncpu: 2, wantErr: `unknown peer "dpdk"`},
		{name: "tpacket", cfg: &Config{TPacket: "v4"}, ncpu: 2, wantErr: `tpacket "v4"`},
		{name: "short", cfg: &Config{Duration: time.Millisecond}, ncpu: 2, wantErr: "out of range"},
		{name: "cpu out of range", cfg: &Config{SwitchCPU: &one}, ncpu: 1, wantErr: "CPU 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := tt.cfg.resolve(tt.ncpu)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("resolve() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("resolve() error = %v", err)
			}
			tt.check(t, r)
		})
	}
}
