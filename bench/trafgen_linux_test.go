package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/internal/nstest"
	"github.com/switchyard-net/switchyard/netns"
)

// TestGeneratorAgainstTrafgen checks the harness's frame generator against
// trafgen (netsniff-ng), the reference: over a direct veth from A to B,
// each sends the same 64-byte frame, and B must receive the very same
// bytes from both. Their rates at B are logged side by side (a figure to
// read, not an assertion: this machine is shared). It also checks that the
// paced generator never runs ahead of its rate.
func TestGeneratorAgainstTrafgen(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the generator check in -short mode")
	}
	nstest.RequirePriv(t)
	trafgen, err := exec.LookPath("trafgen")
	if err != nil {
		t.Skip("trafgen not installed (apt-get install netsniff-ng)")
	}
	nstest.CheckLeaks(t)
	topo, err := newTopology("tg", 2, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := topo.Close(); err != nil {
			t.Error(err)
		}
	})
	a, b := topo.Eps[0], topo.Eps[1]
	// B's eth0 is the veth's inner end, A's its host end renamed eth0.
	if err := netns.AddVeth(netns.Endpoint{Netns: b.Netns, IfName: epIfName, HostName: epIfName, HostNetns: a.Netns,
		MAC: b.MAC, Addrs: []netip.Prefix{b.Addr}}); err != nil {
		t.Fatal(err)
	}
	frame, err := udpFrame(a.MAC, b.MAC, netip.AddrPortFrom(a.Addr.Addr(), genSrc), netip.AddrPortFrom(b.Addr.Addr(), genDst), minFrame)
	if err != nil {
		t.Fatal(err)
	}
	ts := []target{{Netns: b.Netns, Listen: b.Addr.Addr(), Dst: b.Addr.Addr(), DstMAC: b.MAC}}
	closeSinks, err := sinks(ts)
	if err != nil {
		t.Fatal(err)
	}
	defer closeSinks()
	bb := &bencher{r: resolved{worker: testWorker(t), epCPU: 0, duration: time.Second}}
	in := &instance{topo: &topology{S: a.Netns, Eps: []endpoint{a}}, targets: ts}

	// ours: one second at full speed, a frame captured at B.
	capture := captureAt(t, b.Netns)
	n1, _ := rxPackets([]string{b.Netns})
	start := time.Now()
	gen, err := startProc("generator", bb.genArgs(in, 64, time.Second, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := gen.wait(context.Background(), 20*time.Second); err != nil {
		t.Fatal(err)
	}
	n2, _ := rxPackets([]string{b.Netns})
	oursPPS := float64(n2-n1) / time.Since(start).Seconds()
	got := capture()
	if string(got) != string(frame) {
		t.Errorf("our generator's frame at B:\n%x\nwant:\n%x", got, frame)
	}

	// trafgen: the same frame, a bounded count, one process on CPU 0,
	// no system-wide socket-memory tuning.
	var cfg strings.Builder
	cfg.WriteString("{ ")
	for i, c := range frame {
		if i > 0 {
			cfg.WriteString(", ")
		}
		fmt.Fprintf(&cfg, "0x%02x", c)
	}
	cfg.WriteString(" }\n")
	capture = captureAt(t, b.Netns)
	const count = 500000
	n1, _ = rxPackets([]string{b.Netns})
	start = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", a.Netns, "taskset", "-c", "0",
		trafgen, "--dev", epIfName, "--in", "-", "--cpus", "1", "--num", fmt.Sprint(count),
		"--no-sock-mem", "--notouch-irq", "--no-cpu-stats")
	cmd.Stdin = strings.NewReader(cfg.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("trafgen: %v\n%s", err, out)
	}
	el := time.Since(start)
	n2, _ = rxPackets([]string{b.Netns})
	trafgenPPS := float64(n2-n1) / el.Seconds()
	got = capture()
	if string(got) != string(frame) {
		t.Errorf("trafgen's frame at B:\n%x\nwant (ours):\n%x", got, frame)
	}
	if n2-n1 < count*9/10 {
		t.Errorf("B received %d of trafgen's %d frames", n2-n1, count)
	}
	t.Logf("64-byte frames at B over a direct veth: ours %.0f kpps, trafgen %.0f kpps (ours/trafgen %.2f)",
		oursPPS/1e3, trafgenPPS/1e3, oursPPS/trafgenPPS)

	// Paced: never ahead of the schedule by more than a burst.
	const rate = 50000
	gen, err = startProc("generator", bb.genArgs(in, 64, time.Second, rate))
	if err != nil {
		t.Fatal(err)
	}
	if err := gen.wait(context.Background(), 20*time.Second); err != nil {
		t.Fatal(err)
	}
	var g genReport
	if err := json.Unmarshal([]byte(gen.lastLine()), &g); err != nil {
		t.Fatal(err)
	}
	if limit := rate*g.Seconds + 2; float64(g.Sent) > limit {
		t.Errorf("paced at %d/s for %.3fs, sent %d (> %.0f)", rate, g.Seconds, g.Sent, limit)
	}
	t.Logf("paced at %d/s: offered %.0f/s", rate, float64(g.Sent)/g.Seconds)
}

// testWorker is the command line that runs this test binary as the
// bench-worker (see TestMain).
func testWorker(t *testing.T) []string {
	r, err := (&Config{}).resolve(2)
	if err != nil {
		t.Fatal(err)
	}
	return r.worker
}

// captureAt opens a packet socket on eth0 in ns and returns a function
// that waits (up to 5 s) for the first UDP frame to the generator's port
// received after it was opened, and returns it.
func captureAt(t *testing.T, ns string) func() []byte {
	t.Helper()
	var fd int
	err := netns.Do(ns, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	h, err := netns.NetlinkHandle(ns)
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	l, err := h.LinkByName(epIfName)
	h.Close()
	if err == nil {
		err = unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: l.Attrs().Index})
	}
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	return func() []byte {
		defer unix.Close(fd)
		buf := make([]byte, 2048)
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue
			}
			f := buf[:n]
			// IPv4/UDP to port genDst.
			if n >= 42 && f[12] == 0x08 && f[13] == 0 && f[23] == 17 && int(f[36])<<8|int(f[37]) == genDst {
				return append([]byte(nil), f...)
			}
		}
		t.Errorf("no generator frame captured at B within 5s")
		return nil
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
