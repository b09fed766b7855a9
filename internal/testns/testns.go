// Package testns holds the namespace chores that tests of several packages
// share: a named namespace that the test's cleanup removes, a bounded
// command inside one, a bounded ping. It sits on top of netns, so netns's
// own tests cannot use it (they use internal/nstest, which imports nothing
// of ours).
package testns

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-net/switchyard/internal/nstest"
	"github.com/switchyard-net/switchyard/netns"
)

// New creates a named namespace (prefix plus a random suffix, see
// nstest.Name) and registers its removal, unless the test removed it first.
func New(t testing.TB, prefix string) string {
	t.Helper()
	name := nstest.Name(prefix)
	if err := netns.Create(name); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		if netns.Exists(name) {
			if err := netns.Delete(name); err != nil {
				t.Errorf("delete namespace %s: %v", name, err)
			}
		}
	})
	return name
}

// Exec runs a command inside namespace ns (ip netns exec), killed after
// timeout, and returns its combined output.
func Exec(ns string, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	return string(out), err
}

// Ping sends count pings from ns to dst, 0.2 s apart, each waiting at most
// 1 s, and reports whether every reply came; a failure is logged.
func Ping(t testing.TB, ns, dst string, count int) bool {
	t.Helper()
	out, err := Exec(ns, time.Duration(count+3)*time.Second, "ping", "-n", "-q", "-c", fmt.Sprint(count), "-i", "0.2", "-W", "1", dst)
	if err != nil {
		t.Logf("ping %s from %s: %v\n%s", dst, ns, err, strings.TrimSpace(out))
		return false
	}
	return strings.Contains(out, fmt.Sprintf("%d received", count))
}

// PingFails reports whether a single ping from ns to dst got no reply.
func PingFails(ns, dst string) bool {
	_, err := Exec(ns, 5*time.Second, "ping", "-n", "-q", "-c", "1", "-W", "1", dst)
	return err != nil
}
