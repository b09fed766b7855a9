package afpacket

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCPUMask(t *testing.T) {
	for _, tc := range []struct {
		cpus []int
		want string
	}{
		{nil, "0"},
		{[]int{0}, "1"},
		{[]int{1}, "2"},
		{[]int{0, 1}, "3"},
		{[]int{4, 31}, "80000010"},
		{[]int{32}, "1,00000000"},
		{[]int{0, 33, 64}, "1,00000002,00000001"},
	} {
		var set unix.CPUSet
		for _, c := range tc.cpus {
			set.Set(c)
		}
		if got := cpuMask(&set); got != tc.want {
			t.Errorf("cpuMask(%v) = %q, want %q", tc.cpus, got, tc.want)
		}
	}
}

func TestZeroMask(t *testing.T) {
	for s, want := range map[string]bool{"0": true, "00000000,00000000\n": true, "": true, "2": false, "00000000,00000001": false, "10": false} {
		if got := zeroMask(s); got != want {
			t.Errorf("zeroMask(%q) = %v, want %v", s, got, want)
		}
	}
}

// fakeSysfs makes an interface directory with an ifindex and RX queues
// holding the given rps_cpus masks, and points steerRx at it.
func fakeSysfs(t *testing.T, ifindex string, masks ...string) (files []string) {
	t.Helper()
	root := t.TempDir()
	old := sysClassNet
	sysClassNet = root
	t.Cleanup(func() { sysClassNet = old })
	dir := filepath.Join(root, "p0")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ifindex"), []byte(ifindex+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, m := range masks {
		q := filepath.Join(dir, "queues", "rx-"+string(rune('0'+i)))
		if err := os.MkdirAll(q, 0o755); err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(q, "rps_cpus")
		if err := os.WriteFile(f, []byte(m+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return files
}

func read(t *testing.T, f string) string {
	t.Helper()
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestSteerRx(t *testing.T) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	want := cpuMask(&set)

	t.Run("sets every queue and restores", func(t *testing.T) {
		files := fakeSysfs(t, "7", "0", "00000000")
		restore, err := steerRx("p0", 7)
		if err != nil || restore == nil {
			t.Fatalf("steerRx: restore %v, err %v", restore != nil, err)
		}
		for _, f := range files {
			if got := read(t, f); got != want {
				t.Errorf("%s = %q, want %q", f, got, want)
			}
		}
		restore()
		if a, b := read(t, files[0]), read(t, files[1]); a != "0" || b != "00000000" {
			t.Errorf("after restore: %q %q, want the old masks", a, b)
		}
	})
	t.Run("leaves an administrator's mask alone", func(t *testing.T) {
		files := fakeSysfs(t, "7", "0", "1")
		restore, err := steerRx("p0", 7)
		if err != nil || restore != nil {
			t.Fatalf("steerRx changed something: restore %v, err %v", restore != nil, err)
		}
		if got := read(t, files[0]); got != "0" {
			t.Errorf("rx-0 = %q, want it untouched", got)
		}
	})
	t.Run("another namespace's interface of that name", func(t *testing.T) {
		files := fakeSysfs(t, "8", "0")
		if restore, err := steerRx("p0", 7); err != nil || restore != nil {
			t.Fatalf("steerRx changed something: restore %v, err %v", restore != nil, err)
		}
		if got := read(t, files[0]); got != "0" {
			t.Errorf("rx-0 = %q, want it untouched", got)
		}
	})
	t.Run("no such interface", func(t *testing.T) {
		fakeSysfs(t, "7")
		if restore, err := steerRx("nope", 7); err != nil || restore != nil {
			t.Fatalf("restore %v, err %v", restore != nil, err)
		}
	})
}
