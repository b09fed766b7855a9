package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/switchyard-net/switchyard/internal/nstest"
)

// runBG runs the CLI in the background; the result arrives on the channel.
type cliResult struct {
	out, errOut string
	code        int
}

func (e *env) bg(t *testing.T, args ...string) <-chan cliResult {
	ch := make(chan cliResult, 1)
	go func() {
		var o, er bytes.Buffer
		code := run(append([]string{"--socket", e.socket}, args...), &o, &er)
		ch <- cliResult{o.String(), er.String(), code}
	}()
	return ch
}

func (e *env) waitCaptures(t *testing.T, network string, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if st, err := e.d.Stats(network); err == nil && st.Captures == n {
			return
		}
	}
	t.Fatalf("network %s: %d captures never ran", network, n)
}

func wait(t *testing.T, ch <-chan cliResult) cliResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("the capture did not end")
	}
	return cliResult{}
}

// TestCaptureEndToEnd pings between two namespaces through the daemon's
// switch while two captures run: one writes pcapng, read back here (and by
// tshark when installed) with exact counts and contents, one decodes the
// port of one endpoint to text. Then stats, metrics and trace; then a
// capture outlived by its network ends with a message.
func TestCaptureEndToEnd(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	a, b := newNS(t), newNS(t)
	e := startDaemon(t)
	e.ok(t, "network", "create", "cap", "--subnet", "198.18.74.0/24")
	e.ok(t, "network", "connect", "cap", a, "--ip", "198.18.74.10")
	e.ok(t, "network", "connect", "cap", b, "--ip", "198.18.74.20")
	mustPing(t, a, "198.18.74.20") // ARP settled, MACs learned

	file := filepath.Join(e.dir, "cap.pcapng")
	full := e.bg(t, "capture", "cap", "-w", file, "-f", "icmp and host 198.18.74.10", "-c", "12", "--duration", "20s")
	text := e.bg(t, "capture", "cap", "--endpoint", a, "-f", "icmp", "-c", "6", "--duration", "20s")
	e.waitCaptures(t, "cap", 2)
	if out, err := inNS(a, "ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "1", "198.18.74.20"); err != nil || !strings.Contains(out, "3 received") {
		t.Fatalf("ping: %v: %s", err, out)
	}

	r := wait(t, full)
	if r.code != 0 || r.out != "" || r.errOut != fmt.Sprintf("capture cap: 12 frames to %s, 0 lost; 12 frames captured (count reached)\n", file) {
		t.Fatalf("capture -w: exit %d, stdout %q, stderr %q", r.code, r.out, r.errOut)
	}
	checkCaptureFile(t, file, a, b)

	r = wait(t, text)
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if r.code != 0 || len(lines) != 6 || !strings.Contains(r.errOut, "capture cap: 6 frames, 0 lost") {
		t.Fatalf("capture --endpoint: exit %d, stderr %q, stdout:\n%s", r.code, r.errOut, r.out)
	}
	for i, l := range lines {
		want := fmt.Sprintf(" %s in  ICMP 198.18.74.10 > 198.18.74.20 EchoRequest", a)
		if i%2 == 1 {
			want = fmt.Sprintf(" %s out ICMP 198.18.74.20 > 198.18.74.10 EchoReply", a)
		}
		if !strings.Contains(l, want) || !strings.Contains(l, fmt.Sprintf("seq %d, 98 bytes", i/2+1)) {
			t.Errorf("line %d: %q, want %q ... seq %d", i, l, want, i/2+1)
		}
	}
	if ents, _ := filepath.Glob(filepath.Join(e.dir, ".cap.pcapng.*")); len(ents) != 0 {
		t.Errorf("temporary files left: %v", ents)
	}

	// stats, metrics, trace.
	st := e.ok(t, "stats", "cap")
	for _, want := range []string{"tables    mac 3 entries", "captures  0 running"} {
		if !strings.Contains(st, want) {
			t.Errorf("stats lacks %q:\n%s", want, st)
		}
	}
	rows := map[string][]string{}
	for _, l := range strings.Split(st, "\n") {
		if f := strings.Fields(l); len(f) == 8 {
			rows[f[0]] = f
		}
	}
	// 2 pings and 3 more, each a request and a reply, plus ARP: at least
	// 5 frames each way on each endpoint's port.
	for _, p := range []string{a, b} {
		if f := rows[p]; len(f) != 8 || f[1] != "veth" || atoi(f[2]) < 5 || atoi(f[4]) < 5 || f[7] != "0" {
			t.Errorf("stats row of %s: %v\n%s", p, f, st)
		}
	}
	if f := rows["gateway"]; len(f) != 8 || f[1] != "gateway" {
		t.Errorf("stats row of the gateway: %v\n%s", f, st)
	}
	checkMetrics(t, e, a)
	tr := e.ok(t, "trace", "cap", "--from", a, "tcp", "198.18.74.10:40000", ">", "198.18.74.20:80")
	for _, want := range []string{"endpoint " + b, "MAC table hit, port " + b, "verdict  forwarded"} {
		if !strings.Contains(tr, want) {
			t.Errorf("trace lacks %q:\n%s", want, tr)
		}
	}

	// A capture whose network goes away ends with a message.
	gone := e.bg(t, "capture", "cap", "-w", filepath.Join(e.dir, "gone.pcapng"), "--duration", "30s")
	e.waitCaptures(t, "cap", 1)
	e.ok(t, "network", "rm", "cap")
	r = wait(t, gone)
	if r.code != 0 || !strings.Contains(r.errOut, `network "cap" was removed`) || strings.Count(r.errOut, "\n") != 1 {
		t.Errorf("capture of a removed network: exit %d, stderr %q", r.code, r.errOut)
	}
	if out, err := exec.Command("tshark", "-r", filepath.Join(e.dir, "gone.pcapng")).CombinedOutput(); err == nil {
		if strings.Contains(string(out), "cut short") || strings.Contains(string(out), "appears to be damaged") {
			t.Errorf("tshark on the ended capture: %s", out)
		}
	}
}

// checkCaptureFile reads the pcapng file back: three pings from a to b,
// each seen four times (request in on a and out on b, reply in on b and
// out on a), the same bytes on both sides of the switch.
func checkCaptureFile(t *testing.T, file, a, b string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ng, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	frames := map[string][]byte{}
	last := time.Time{}
	for {
		data, ci, opts, err := ng.ReadPacketDataWithOptions()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ifc, _ := ng.Interface(ci.InterfaceIndex)
		dir := "?"
		if opts.Flags != nil && opts.Flags.Direction == pcapgo.NgEpbFlagDirectionInbound {
			dir = "in"
		} else if opts.Flags != nil && opts.Flags.Direction == pcapgo.NgEpbFlagDirectionOutbound {
			dir = "out"
		}
		p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		icmp, _ := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
		if icmp == nil {
			t.Fatalf("frame %d is not ICMP: %v", len(got), p)
		}
		port := map[string]string{a: "a", b: "b"}[ifc.Name]
		k := fmt.Sprintf("%s-%s-%d-%d", port, dir, icmp.TypeCode.Type(), icmp.Seq)
		got = append(got, k)
		frames[k] = data
		if ci.Timestamp.Before(last) {
			t.Errorf("frame %d goes back in time: %v after %v", len(got), ci.Timestamp, last)
		}
		last = ci.Timestamp
	}
	var want []string
	for seq := 1; seq <= 3; seq++ {
		want = append(want, fmt.Sprintf("a-in-8-%d", seq), fmt.Sprintf("b-out-8-%d", seq), fmt.Sprintf("b-in-0-%d", seq), fmt.Sprintf("a-out-0-%d", seq))
	}
	// Two RX goroutines feed the capture: the reply can be seen coming in
	// before the switch has noted the request going out. The file is in
	// time order; the set of frames is exact.
	slices.Sort(got)
	slices.Sort(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("capture file:\n got %v\nwant %v", got, want)
	}
	for seq := 1; seq <= 3; seq++ {
		for _, pair := range [][2]string{{"a-in-8", "b-out-8"}, {"b-in-0", "a-out-0"}} {
			x, y := frames[fmt.Sprintf("%s-%d", pair[0], seq)], frames[fmt.Sprintf("%s-%d", pair[1], seq)]
			if !bytes.Equal(x, y) {
				t.Errorf("%s %d changed crossing the switch:\n%x\n%x", pair[0], seq, x, y)
			}
		}
	}
	if n := ng.NInterfaces(); n != 3 {
		t.Errorf("%d interface blocks, want 3 (gateway and the two endpoints)", n)
	}
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Log("tshark not installed: skipping its check")
		return
	}
	cmd := exec.Command("tshark", "-r", file, "-T", "fields", "-e", "frame.interface_name", "-e", "frame.p2p_dir", "-e", "icmp.seq")
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Run(); err != nil {
		t.Fatalf("tshark: %v: %s", err, se.String())
	}
	tl := strings.Split(strings.TrimSpace(so.String()), "\n")
	var tw []string
	for seq := 1; seq <= 3; seq++ {
		tw = append(tw, fmt.Sprintf("%s\t1\t%d", a, seq), fmt.Sprintf("%s\t0\t%d", b, seq), fmt.Sprintf("%s\t1\t%d", b, seq), fmt.Sprintf("%s\t0\t%d", a, seq))
	}
	slices.Sort(tl)
	slices.Sort(tw)
	if strings.Join(tl, "|") != strings.Join(tw, "|") {
		t.Errorf("tshark read (interface, direction, seq):\n%s", so.String())
	}
	for _, l := range strings.Split(strings.TrimSpace(se.String()), "\n") {
		if l != "" && !strings.HasPrefix(l, "Running as user") {
			t.Errorf("tshark: %s", l)
		}
	}
}

// checkMetrics scrapes the daemon's metrics over a unix socket (nothing
// on the root namespace's network).
func checkMetrics(t *testing.T, e *env, a string) {
	t.Helper()
	sock := filepath.Join(e.dir, "metrics.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stop := e.d.ServeMetrics(ln)
	defer stop()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}, Timeout: 10 * time.Second}
	resp, err := hc.Get("http://metrics/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		fmt.Sprintf(`switchyard_port_rx_packets_total{network="cap",port="%s"}`, a),
		fmt.Sprintf(`switchyard_port_tx_bytes_total{network="cap",port="%s"}`, a),
		`switchyard_table_entries{network="cap",table="mac"} 3`,
		`switchyard_captures{network="cap"} 0`,
		`switchyard_mac_events_total{event="learned",network="cap"}`,
		`switchyard_networks 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}
