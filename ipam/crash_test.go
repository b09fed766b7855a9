package ipam

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	crashEnvState = "SWITCHYARD_IPAM_CRASH_STATE" // set in the child: the state file
	crashEnvRun   = "SWITCHYARD_IPAM_CRASH_RUN"   // set in the child: its run number
	crashNetwork  = "crash"
)

// TestCrashKill9 re-executes the test binary as a child that allocates and
// releases addresses in a loop with real fsyncs, reporting each completed
// Allocate and each Release (before and after) on a pipe, and SIGKILLs it at
// a random moment, 20 times over the same state file. After every kill the
// file must load, no address may be held twice, every allocation the child
// reported must still be there, and no address may ever be handed out while
// the parent knows it is held.
func TestCrashKill9(t *testing.T) {
	if path := os.Getenv(crashEnvState); path != "" {
		crashChild(path, os.Getenv(crashEnvRun))
		os.Exit(0)
	}
	if testing.Short() {
		t.Skip("skipping subprocess crash test in -short mode")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "ipam.json")
	m, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	mustAdd(t, m, crashNetwork, Config{Subnets: []SubnetConfig{{Subnet: pp("198.18.0.0/27")}, {Subnet: pp("fd00:198:18::/122")}}})

	held := map[string][]string{} // owner -> addresses, as the parent knows them
	holder := map[string]string{} // address -> owner
	pending := map[string]bool{}  // owners whose release started but was not seen to end
	var nAlloc, nRelease, nAdopted, nPendingDone, nPendingUndone, nTemps int
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	start := time.Now()
	const kills = 40
	for run := 0; run < kills; run++ {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKill9$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnvState+"="+path, crashEnvRun+"="+strconv.Itoa(run))
		cmd.ExtraFiles = []*os.File{w}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		w.Close()
		first := make(chan struct{})
		done := make(chan []string)
		go func() {
			var lines []string
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				if lines = append(lines, sc.Text()); len(lines) == 1 {
					close(first)
				}
			}
			done <- lines
		}()
		// Mostly kill in the middle of the loop; every fifth run as soon as
		// possible (during start-up or the first save).
		if run%5 != 0 {
			select {
			case <-first:
			case <-time.After(10 * time.Second):
			}
			time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
		}
		cmd.Process.Kill()
		werr := cmd.Wait()
		lines := <-done
		r.Close()
		if ee := (*exec.ExitError)(nil); !errors.As(werr, &ee) && werr != nil {
			t.Fatalf("run %d: wait: %v", run, werr)
		}

		for _, ln := range lines {
			f := strings.Fields(ln)
			if len(f) < 2 {
				t.Fatalf("run %d: bad report line %q", run, ln)
			}
			o := f[1]
			switch f[0] {
			case "A":
				if _, ok := held[o]; ok {
					t.Fatalf("run %d: owner %s allocated twice", run, o)
				}
				for _, a := range f[2:] {
					if other, ok := holder[a]; ok {
						t.Fatalf("run %d: %s handed to %s while %s holds it", run, a, o, other)
					}
					holder[a] = o
				}
				held[o] = f[2:]
				nAlloc++
			case "r":
				if _, ok := held[o]; !ok {
					t.Fatalf("run %d: child releases %s, which the parent does not know", run, o)
				}
				pending[o] = true
			case "R":
				for _, a := range held[o] {
					delete(holder, a)
				}
				delete(held, o)
				delete(pending, o)
				nRelease++
			case "X":
				t.Fatalf("run %d: child failed: %s", run, strings.Join(f[1:], " "))
			default:
				t.Fatalf("run %d: bad report line %q", run, ln)
			}
		}

		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.Contains(e.Name(), ".tmp-") {
				nTemps++
			}
		}
		m, err := Open(path)
		if err != nil {
			t.Fatalf("run %d: state does not load after kill -9: %v (child stderr: %s)", run, err, stderr.String())
		}
		_, leases, err := m.Network(crashNetwork)
		if err != nil {
			t.Fatal(err)
		}
		inFile := map[string][]string{}
		seen := map[netip.Addr]string{}
		for _, l := range leases {
			if o, ok := seen[l.Addr]; ok {
				t.Fatalf("run %d: %s held by %s and %s", run, l.Addr, o, l.Owner)
			}
			seen[l.Addr] = l.Owner
			inFile[l.Owner] = append(inFile[l.Owner], l.Addr.String())
		}
		for o, as := range held {
			got, ok := inFile[o]
			switch {
			case pending[o] && !ok: // the release was saved before the kill
				for _, a := range as {
					delete(holder, a)
				}
				delete(held, o)
				nPendingDone++
			case pending[o]:
				nPendingUndone++
				fallthrough
			default:
				if !slices.Equal(got, as) {
					t.Fatalf("run %d: reported allocation %s=%v, file has %v", run, o, as, got)
				}
			}
		}
		clear(pending)
		for o, as := range inFile {
			if _, ok := held[o]; !ok { // saved, killed before reporting: still held
				for _, a := range as {
					if other, ok := holder[a]; ok {
						t.Fatalf("run %d: unreported %s=%s collides with %s", run, o, a, other)
					}
					holder[a] = o
				}
				held[o] = as
				nAdopted++
			}
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 1 {
			t.Errorf("run %d: directory holds %d entries after Open, want only the state file", run, len(ents))
		}
	}
	t.Logf("%d kills in %v: %d allocations and %d releases reported, %d saved but unreported allocations, releases cut by the kill: %d saved, %d not; %d temp files left by kills",
		kills, time.Since(start).Round(time.Millisecond), nAlloc, nRelease, nAdopted, nPendingDone, nPendingUndone, nTemps)
	if nAlloc < kills {
		t.Errorf("only %d allocations reported over %d runs: the test did not exercise anything", nAlloc, kills)
	}
}

// crashChild is the child side of TestCrashKill9: it runs until killed (or
// for at most 10 s).
func crashChild(path, run string) {
	report := os.NewFile(3, "report")
	say := func(format string, args ...any) {
		// One write per line: a pipe write under PIPE_BUF is atomic, so a
		// kill never leaves half a line.
		report.WriteString(fmt.Sprintf(format, args...) + "\n")
	}
	m, err := Open(path)
	if err != nil {
		say("X open: %v", err)
		os.Exit(3)
	}
	n, _ := strconv.Atoi(run)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(n)))
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		owners := m.Owners(crashNetwork)
		if len(owners) >= 20 || (len(owners) > 0 && rng.IntN(3) == 0) {
			o := owners[rng.IntN(len(owners))]
			say("r %s", o)
			if err := m.Release(crashNetwork, o); err != nil {
				say("X release %s: %v", o, err)
				os.Exit(3)
			}
			say("R %s", o)
			continue
		}
		o := fmt.Sprintf("r%s-%d", run, i)
		var want []netip.Addr
		if rng.IntN(5) == 0 {
			want = []netip.Addr{netip.AddrFrom4([4]byte{198, 18, 0, byte(2 + rng.IntN(29))})}
		}
		as, err := m.Allocate(crashNetwork, o, want)
		if errors.Is(err, ErrTaken) || errors.Is(err, ErrExhausted) {
			continue
		}
		if err != nil {
			say("X allocate %s: %v", o, err)
			os.Exit(3)
		}
		say("A %s %s", o, strings.ReplaceAll(addrList(as), ",", ""))
	}
}
