package afpacket

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Receive steering.
//
// A TCP sender transmits from more than one CPU: from its process when
// the application writes, and from the softirq that takes an ACK, on
// whichever CPU the switch delivered that ACK from. On a veth each
// transmission is queued to the backlog of the CPU it happened on, and
// two CPUs drain their backlogs independently, so the ring sees segments
// out of order. The receiver reports the gaps, the sender retransmits
// segments that were never lost: through the bench's TCP test on two
// CPUs, 54 to 309 spurious retransmits in 6 s (every one D-SACKed),
// none with steering. The kernel bridge does not suffer from this because
// it forwards in the sender's own context.
//
// Receive packet steering (rps_cpus) queues each frame to a CPU chosen
// by its flow hash, whatever CPU it was sent from, so one flow's frames
// go through one queue in order. With Config.RxSteering, Open turns it on
// for the port's interface, over the CPUs the process may run on, unless
// an administrator set it already; Close puts the old masks back. It is
// off by default because of what it costs: every frame a sender on
// another CPU transmits now crosses to the switch's CPU (an IPI and a
// remote queue), and the copy into the ring is done there. The IPI is
// skipped when the switch's CPU is idle and polling (a PM QoS request of
// 0, internal/pmqos), so steering pays best when the ports sleep rather
// than busy-poll. Measured with the switch pinned to one CPU (bench
// --cpu-latency 0s --busy-poll 0 --rx-steering, against the defaults):
// single-stream TCP 0.98x the kernel bridge with no retransmits instead
// of 0.87x with ~200, and 64-byte frames 180 kpps instead of 1200.

// sysClassNet is where sysfs lists network interfaces (a variable for
// tests).
var sysClassNet = "/sys/class/net"

// steerRx sets rps_cpus on every RX queue of the interface to the
// process's CPUs. It does nothing (and returns nil) when sysfs does not
// show this namespace's interface under that name, when RPS is not built
// into the kernel, or when any queue already has a mask. The returned
// func restores the masks it changed.
func steerRx(ifname string, ifindex int) (restore func(), err error) {
	dir := filepath.Join(sysClassNet, ifname)
	// sysfs shows the namespace it was mounted in, which need not be the
	// one this socket lives in: check it is the same device.
	if b, err := os.ReadFile(filepath.Join(dir, "ifindex")); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(ifindex) {
		return nil, nil
	}
	files, _ := filepath.Glob(filepath.Join(dir, "queues", "rx-*", "rps_cpus"))
	if len(files) == 0 {
		return nil, nil
	}
	old := make([]string, len(files))
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, nil
		}
		old[i] = strings.TrimSpace(string(b))
		if !zeroMask(old[i]) {
			return nil, nil
		}
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("rps: %w", err)
	}
	mask := cpuMask(&set)
	var done []int
	restore = func() {
		for _, i := range done {
			_ = os.WriteFile(files[i], []byte(old[i]), 0)
		}
	}
	for i, f := range files {
		if err := os.WriteFile(f, []byte(mask), 0); err != nil {
			restore()
			return nil, fmt.Errorf("rps %s: %w", f, err)
		}
		done = append(done, i)
	}
	return restore, nil
}

// zeroMask reports whether an rps_cpus value ("0", "00000000,00000000")
// selects no CPU.
func zeroMask(s string) bool {
	return strings.Trim(s, "0,\n") == ""
}

// cpuMask formats a CPU set as the kernel's bitmap text: 32-bit groups in
// hex, most significant first, separated by commas.
func cpuMask(set *unix.CPUSet) string {
	var groups []uint32
	for cpu := range len(set) * 64 {
		if set.IsSet(cpu) {
			for len(groups) <= cpu/32 {
				groups = append(groups, 0)
			}
			groups[cpu/32] |= 1 << (cpu % 32)
		}
	}
	if len(groups) == 0 {
		return "0"
	}
	var b strings.Builder
	for i := len(groups) - 1; i >= 0; i-- {
		if i != len(groups)-1 {
			b.WriteByte(',')
			fmt.Fprintf(&b, "%08x", groups[i])
		} else {
			fmt.Fprintf(&b, "%x", groups[i])
		}
	}
	return b.String()
}
