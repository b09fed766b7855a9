package bench

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/internal/pmqos"
	"github.com/switchyard-net/switchyard/netns"
)

// userHZ is the unit of the times in /proc/stat (USER_HZ, 100 on every
// Linux architecture Go supports).
const userHZ = 100

// procCPUSeconds is the CPU time of every thread of process pid so far,
// from the first field of /proc/PID/task/*/schedstat (nanoseconds on the
// CPU). Threads that have exited are no longer counted.
func procCPUSeconds(pid int) (float64, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("bench: CPU time of PID %d: no /proc entry", pid)
	}
	var ns uint64
	for _, t := range tasks {
		f := strings.Fields(readFileString(t))
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: %s: %w", t, err)
		}
		ns += v
	}
	return float64(ns) / 1e9, nil
}

// softirqSeconds is the softirq time of all CPUs so far, from the cpu line
// of /proc/stat.
func softirqSeconds() (float64, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// cpu user nice system idle iowait irq softirq ...
		fields := strings.Fields(sc.Text())
		if len(fields) > 7 && fields[0] == "cpu" {
			v, err := strconv.ParseUint(fields[7], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("bench: /proc/stat softirq: %w", err)
			}
			return float64(v) / userHZ, nil
		}
	}
	return 0, fmt.Errorf("bench: /proc/stat has no cpu line")
}

// machine describes the machine the run is on.
func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	const idle = "/sys/devices/system/cpu/cpuidle/"
	if d := readFileString(idle + "current_driver"); d != "" {
		g := readFileString(idle + "current_governor")
		if g == "" {
			g = readFileString(idle + "current_governor_ro")
		}
		m.CPUIdle = d + "/" + orUnknown(g)
	}
	if d, err := pmqos.Current(); err == nil {
		m.CPULatency = "none"
		if d < time.Second {
			m.CPULatency = d.String()
		}
	}
	return m
}

// congestionControl is the TCP congestion control of namespace ns.
func congestionControl(ns string) string {
	var cc string
	_ = netns.Do(ns, func() error {
		cc = readFileString("/proc/sys/net/ipv4/tcp_congestion_control")
		return nil
	})
	return cc
}

// offloads describes the offloads of link name in namespace ns, as
// ethtool -k names them ("tx-checksumming on, tso on, ...").
func offloads(ns, name string) string {
	var out []string
	err := netns.Do(ns, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		for _, o := range ethtoolOffloads {
			v, err := ethtoolGet(fd, name, o.cmd)
			if err != nil {
				out = append(out, o.name+" ?")
				continue
			}
			state := "off"
			if v != 0 {
				state = "on"
			}
			out = append(out, o.name+" "+state)
		}
		return nil
	})
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return strings.Join(out, ", ")
}

// The legacy ethtool get commands (linux/ethtool.h), each answered with a
// struct ethtool_value.
var ethtoolOffloads = []struct {
	name string
	cmd  uint32
}{
	{"tx-checksumming", 0x16}, // ETHTOOL_GTXCSUM
	{"scatter-gather", 0x18},  // ETHTOOL_GSG
	{"tso", 0x1e},             // ETHTOOL_GTSO
	{"gso", 0x23},             // ETHTOOL_GGSO
	{"gro", 0x2b},             // ETHTOOL_GGRO
}

// offloadsOff turns checksum offload, TSO and GSO off on link name in
// namespace ns, as `ethtool -K name tx off tso off gso off` does.
func offloadsOff(ns, name string) error {
	return netns.Do(ns, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		// ETHTOOL_STSO, ETHTOOL_SGSO, then ETHTOOL_STXCSUM (TSO needs
		// checksum offload, so it goes first).
		for _, cmd := range []uint32{0x1f, 0x24, 0x17} {
			if err := ethtoolSet(fd, name, cmd, 0); err != nil {
				return fmt.Errorf("turn offloads off on %s (ethtool command %#x): %w", name, cmd, err)
			}
		}
		return nil
	})
}

// IsTerminal reports whether f is a terminal (where a progress bar
// belongs).
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
