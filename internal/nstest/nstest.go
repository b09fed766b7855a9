// Package nstest holds what tests that need network namespaces share: the
// privilege gate, unique names and the leak check.
package nstest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// RequirePriv skips t when the process cannot administer networks
// (CAP_NET_ADMIN and CAP_SYS_ADMIN, checked as euid 0), and fails it instead
// when SWITCHYARD_REQUIRE_PRIV=1, as CI sets it.
func RequirePriv(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 && canUnshare() {
		return
	}
	if os.Getenv("SWITCHYARD_REQUIRE_PRIV") == "1" {
		t.Fatal("test needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and SWITCHYARD_REQUIRE_PRIV=1 forbids skipping")
	}
	t.Skip("skipping: needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) for network namespaces; run as root to include it")
}

func canUnshare() bool {
	_, err := os.Stat("/proc/self/ns/net")
	return err == nil
}

// Name returns prefix followed by a random hex suffix, short enough for an
// interface name (at most 15 bytes) when prefix is at most 7 bytes.
func Name(prefix string) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	n := prefix + hex.EncodeToString(b[:])
	if len(n) > unix.IFNAMSIZ-1 {
		n = n[:unix.IFNAMSIZ-1]
	}
	return n
}

// Snapshot is the set of named namespaces and root-namespace links.
type Snapshot struct {
	Netns []string
	Links []string
}

// Take records the named namespaces (as ip netns sees them) and the links of
// the calling thread's namespace.
func Take(t testing.TB) Snapshot {
	t.Helper()
	var s Snapshot
	for _, dir := range []string{"/run/netns", "/var/run/netns"} {
		ents, err := os.ReadDir(dir)
		if err == nil {
			for _, e := range ents {
				s.Netns = append(s.Netns, e.Name())
			}
			break
		}
	}
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatalf("list links: %v", err)
	}
	for _, l := range links {
		s.Links = append(s.Links, l.Attrs().Name)
	}
	sort.Strings(s.Netns)
	sort.Strings(s.Links)
	return s
}

// lockPath is the file whose flock serialises namespace tests across test
// binaries: `go test ./...` runs packages in parallel, and one package's
// namespaces must not look like another's leaks.
const lockPath = "/run/switchyard-nstest.lock"

var (
	lockMu    sync.Mutex
	lockDepth int
	lockFile  *os.File
)

// acquire takes the cross-process test lock; nested calls in one process
// share it.
func acquire(t testing.TB) {
	t.Helper()
	lockMu.Lock()
	defer lockMu.Unlock()
	if lockDepth == 0 {
		f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			t.Fatalf("namespace test lock: %v", err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			f.Close()
			t.Fatalf("namespace test lock: %v", err)
		}
		lockFile = f
	}
	lockDepth++
}

func release() {
	lockMu.Lock()
	defer lockMu.Unlock()
	if lockDepth--; lockDepth == 0 {
		lockFile.Close() // drops the flock
		lockFile = nil
	}
}

// CheckLeaks takes a snapshot now and registers a cleanup, run after every
// cleanup registered later, that fails t if a namespace or link appeared
// in between and is still there. It also holds a lock, from now until that
// cleanup, that keeps the namespace tests of other test binaries from
// running at the same time, so what appears is this test's doing.
func CheckLeaks(t testing.TB) {
	t.Helper()
	acquire(t)
	before := Take(t)
	t.Cleanup(func() {
		defer release()
		after := Take(t)
		if d := added(before.Netns, after.Netns); len(d) > 0 {
			t.Errorf("leaked network namespaces: %s", strings.Join(d, ", "))
		}
		if d := added(before.Links, after.Links); len(d) > 0 {
			t.Errorf("leaked links in the root namespace: %s", strings.Join(d, ", "))
		}
	})
}

func added(before, after []string) []string {
	had := make(map[string]bool, len(before))
	for _, n := range before {
		had[n] = true
	}
	var out []string
	for _, n := range after {
		if !had[n] {
			out = append(out, n)
		}
	}
	return out
}
