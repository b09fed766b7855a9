package daemon

import (
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/internal/nstest"
	"github.com/switchyard-net/switchyard/internal/testns"
	"github.com/switchyard-net/switchyard/netns"
	"github.com/switchyard-net/switchyard/switch/frame"
)

func TestParseDevMcast(t *testing.T) {
	const proc = `1    lo              1     0     01005e000001
1    lo              1     0     333300000001
7    eth0            1     0     01005e000001
7    eth0            2     0     01005e010203
7    eth0            1     0     3333ff000011
7    eth0            1     0     01005e010203
7    eth0            1     0     zz005e010203
7    eth0            1     0     01005e0102
12   eth1            1     0     01005e0000fb
garbage
`
	want := []frame.MAC{{0x01, 0, 0x5e, 0, 0, 1}, {0x01, 0, 0x5e, 1, 2, 3}, {0x33, 0x33, 0xff, 0, 0, 0x11}}
	if diff := cmp.Diff(want, parseDevMcast([]byte(proc), 7)); diff != "" {
		t.Errorf("eth0's groups (-want +got):\n%s", diff)
	}
	if got := parseDevMcast([]byte(proc), 99); got != nil {
		t.Errorf("a link with no entries: %v", got)
	}
}

// openFDs counts the process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// settle waits up to 2 s for cond.
func settle(cond func() bool) bool {
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// TestChildWatch follows a veth end in a namespace: a MAC change, down
// and up, a multicast group joined and left, promiscuous mode; Close ends
// its goroutines and closes its socket; a deleted namespace ends it by
// itself and is not kept alive by it.
func TestChildWatch(t *testing.T) {
	nstest.RequirePriv(t)
	nstest.CheckLeaks(t)
	defer func(p time.Duration) { mvWatchPoll = p }(mvWatchPoll)
	mvWatchPoll = 50 * time.Millisecond
	ns, peer := testns.New(t, "sywc"), testns.New(t, "sywp")
	if err := netns.AddVeth(netns.Endpoint{Netns: ns, IfName: "eth0", HostName: "p0", HostNetns: peer,
		Addrs: []netip.Prefix{netip.MustParsePrefix("198.18.62.10/24")}}); err != nil {
		t.Fatal(err)
	}
	goroutines, fds := runtime.NumGoroutine(), openFDs(t)
	st, idx, err := readChildState(ns, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if !st.up || st.all || len(st.mac) != 6 {
		t.Fatalf("initial state %+v: want up, not allmulti, a MAC", st)
	}
	seen := make(chan childState, 64)
	last := st // the watcher's goroutine's copy
	w, err := startChildWatch(ns, idx, st, zap.NewNop(), func(prev, cur childState) {
		if !prev.equal(last) {
			t.Errorf("prev %+v is not the last state reported, %+v", prev, last)
		}
		last = cur
		seen <- cur
	})
	if err != nil {
		t.Fatal(err)
	}
	wait := func(what string, ok func(childState) bool) {
		t.Helper()
		timeout := time.After(3 * time.Second)
		for {
			select {
			case s := <-seen:
				st = s
				if ok(s) {
					return
				}
			case <-timeout:
				t.Fatalf("%s: not seen in 3 s; last state %+v", what, st)
			}
		}
	}
	ip := func(args ...string) {
		t.Helper()
		if out, err := inNS(ns, append([]string{"ip"}, args...)...); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	newMAC, _ := net.ParseMAC("02:5a:00:00:62:01")
	group := frame.MAC{0x01, 0x00, 0x5e, 0x01, 0x02, 0x03}
	ip("link", "set", "eth0", "address", newMAC.String())
	wait("MAC change", func(s childState) bool { return s.mac.String() == newMAC.String() })
	ip("link", "set", "eth0", "down")
	wait("down", func(s childState) bool { return !s.up })
	ip("link", "set", "eth0", "up")
	wait("up", func(s childState) bool { return s.up })
	ip("maddr", "add", group.String(), "dev", "eth0")
	wait("group joined", func(s childState) bool { return slices.Contains(s.groups, group) })
	ip("maddr", "del", group.String(), "dev", "eth0")
	wait("group left", func(s childState) bool { return !slices.Contains(s.groups, group) })
	ip("link", "set", "eth0", "promisc", "on")
	wait("promiscuous", func(s childState) bool { return s.all })
	ip("link", "set", "eth0", "promisc", "off")
	wait("not promiscuous", func(s childState) bool { return !s.all })

	w.Close()
	w.Close() // twice is fine
	if !settle(func() bool { return runtime.NumGoroutine() <= goroutines && openFDs(t) <= fds }) {
		t.Errorf("after Close: %d goroutines (%d before), %d fds (%d before)", runtime.NumGoroutine(), goroutines, openFDs(t), fds)
	}

	// A deleted namespace: the watcher lets go of it, so its veth
	// goes, and the peer's end with it.
	w, err = startChildWatch(ns, idx, st, zap.NewNop(), func(prev, cur childState) {})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := netns.Delete(ns); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.done:
	case <-time.After(3 * time.Second):
		t.Fatal("watcher still running 3 s after its namespace was deleted")
	}
	if !settle(func() bool { ok, err := netns.LinkExists(peer, "p0"); return err == nil && !ok }) {
		t.Error("the deleted namespace's veth is still there: something keeps the namespace alive")
	}
	if !settle(func() bool { return runtime.NumGoroutine() <= goroutines && openFDs(t) <= fds }) {
		t.Errorf("after the namespace went: %d goroutines (%d before), %d fds (%d before)", runtime.NumGoroutine(), goroutines, openFDs(t), fds)
	}
}
