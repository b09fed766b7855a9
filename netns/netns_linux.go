package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// origin is the network namespace the process started in, opened while the
// package initialises. Package initialisation runs on the main goroutine,
// which the runtime keeps on the main thread until main starts, so this is
// the main thread's namespace.
var origin = openOrigin()

type originNs struct {
	fd  int
	err error
}

func openOrigin() originNs {
	fd, err := unix.Open("/proc/self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return originNs{fd: -1, err: fmt.Errorf("netns: open the original namespace: %w", err)}
	}
	return originNs{fd: fd}
}

// mountMu serialises changes to the mounts under Dir within this process.
var mountMu sync.Mutex

// Create creates the named network namespace name, visible to `ip netns`:
// an empty file under Dir with a new namespace bind-mounted on it. It fails
// if the name is invalid or already taken.
func Create(name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("netns create: %w", err)
	}
	mountMu.Lock()
	defer mountMu.Unlock()
	if err := prepareDir(); err != nil {
		return fmt.Errorf("netns create %s: %w", name, err)
	}
	p := path(name)
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("netns create %s: %w", name, fs.ErrExist)
		}
		return fmt.Errorf("netns create %s: %w", name, err)
	}
	unix.Close(fd)
	err = onLockedThread(
		func() error { return unix.Unshare(unix.CLONE_NEWNET) },
		func() error {
			src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
			return unix.Mount(src, p, "none", unix.MS_BIND, "")
		})
	if err != nil {
		os.Remove(p)
		return fmt.Errorf("netns create %s: %w", name, err)
	}
	return nil
}

// prepareDir makes Dir exist and be a shared mount point, so that the
// namespace mounts under it show in every mount namespace, as ip netns add
// does.
func prepareDir() error {
	if err := os.MkdirAll(Dir, 0o755); err != nil {
		return err
	}
	err := unix.Mount("", Dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) {
		// Not a mount point yet: make it one, then shared.
		if err := unix.Mount(Dir, Dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind-mount %s on itself: %w", Dir, err)
		}
		err = unix.Mount("", Dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	}
	if err != nil {
		return fmt.Errorf("make %s a shared mount: %w", Dir, err)
	}
	return nil
}

// Delete removes the named namespace: it deletes the veth links inside (so
// that their peers in other namespaces go now rather than whenever the
// kernel dismantles the namespace), unmounts it and removes its file. Other
// links inside die with the namespace once nothing else holds it. An error
// wrapping fs.ErrNotExist means there was no such namespace.
func Delete(name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("netns delete: %w", err)
	}
	if Exists(name) {
		deleteVeths(name)
	}
	mountMu.Lock()
	defer mountMu.Unlock()
	p := path(name)
	uerr := unix.Unmount(p, unix.MNT_DETACH)
	rerr := os.Remove(p)
	switch {
	case rerr == nil:
		return nil
	case errors.Is(rerr, fs.ErrNotExist):
		return fmt.Errorf("netns delete %s: %w", name, fs.ErrNotExist)
	case uerr != nil && !errors.Is(uerr, unix.EINVAL):
		return fmt.Errorf("netns delete %s: unmount: %w", name, uerr)
	default:
		return fmt.Errorf("netns delete %s: %w", name, rerr)
	}
}

// deleteVeths deletes, best effort, the veth links in namespace name.
func deleteVeths(name string) {
	h, err := NetlinkHandle(name)
	if err != nil {
		return
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return
	}
	for _, l := range links {
		if l.Type() == "veth" {
			_ = h.LinkDel(l)
		}
	}
}

// Exists reports whether name is a named network namespace.
func Exists(name string) bool {
	if checkName(name) != nil {
		return false
	}
	var st unix.Statfs_t
	if err := unix.Statfs(path(name), &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// openNs opens namespace name ("" = the original one) for setns. The
// caller closes the returned fd unless it is origin's.
func openNs(name string) (fd int, closeFd func(), err error) {
	if name == "" {
		if origin.err != nil {
			return -1, nil, origin.err
		}
		return origin.fd, func() {}, nil
	}
	if err := checkName(name); err != nil {
		return -1, nil, err
	}
	fd, err = unix.Open(path(name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return -1, nil, fmt.Errorf("namespace %s: %w", name, fs.ErrNotExist)
		}
		return -1, nil, fmt.Errorf("open namespace %s: %w", name, err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil || st.Type != unix.NSFS_MAGIC {
		unix.Close(fd)
		return -1, nil, fmt.Errorf("namespace %s: %s is not a mounted namespace: %w", name, path(name), fs.ErrNotExist)
	}
	return fd, func() { unix.Close(fd) }, nil
}

// Do runs fn on an OS thread inside namespace name ("" = the process's
// original namespace) and returns its error. fn runs in a fresh goroutine
// locked to its thread; afterwards the thread goes back to its namespace or,
// if that fails, is discarded. A panic in fn is re-raised in the caller.
func Do(name string, fn func() error) error {
	fd, closeFd, err := openNs(name)
	if err != nil {
		return fmt.Errorf("netns do: %w", err)
	}
	defer closeFd()
	return onLockedThread(func() error {
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("netns do: enter %s: %w", displayName(name), err)
		}
		return nil
	}, fn)
}

func displayName(name string) string {
	if name == "" {
		return "the original namespace"
	}
	return "namespace " + name
}

// onLockedThread runs enter and then fn in a new goroutine locked to its
// OS thread, then moves the thread back to the network namespace it had
// before enter. If enter fails it must leave the thread's namespace as it
// was. If the thread cannot be moved back, the goroutine ends still locked,
// which makes the runtime terminate the thread. A panic in fn is re-raised
// in the caller, and runtime.Goexit in fn (t.FailNow) ends the caller's
// goroutine too.
func onLockedThread(enter, fn func() error) error {
	type result struct {
		err      error
		returned bool // fn returned (or was not run)
		panicked bool
		pv       any
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		var r result
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		back, err := unix.Open(self, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("netns: open the thread's namespace: %w", err), returned: true}
			return
		}
		// Runs on return, panic and Goexit alike.
		defer func() {
			if r.panicked = !r.returned; r.panicked {
				r.pv = recover()
				r.panicked = r.pv != nil
			}
			if err := unix.Setns(back, unix.CLONE_NEWNET); err != nil {
				// Leave the thread locked: it dies with this goroutine.
				r.err = errors.Join(r.err, fmt.Errorf("netns: restore the thread's namespace (thread discarded): %w", err))
			} else {
				runtime.UnlockOSThread()
			}
			unix.Close(back)
			done <- r
		}()
		if err := enter(); err != nil {
			r.err, r.returned = err, true
			return
		}
		r.err = fn()
		r.returned = true
	}()
	r := <-done
	switch {
	case r.panicked:
		panic(r.pv)
	case !r.returned:
		runtime.Goexit()
	}
	return r.err
}

// NetlinkHandle returns a netlink handle (NETLINK_ROUTE only) whose socket
// lives in namespace name ("" = the process's original namespace). Every
// link, address, route and neighbour call on it acts in that namespace,
// from any goroutine. A handle keeps its namespace alive: Close it.
func NetlinkHandle(name string) (*netlink.Handle, error) {
	var h *netlink.Handle
	err := Do(name, func() error {
		var err error
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netns: netlink handle in %s: %w", displayName(name), err)
	}
	return h, nil
}

// DelLink deletes the link called name in namespace netnsName ("" = the
// original one). Deleting either end of a veth pair removes both. An error
// wrapping fs.ErrNotExist means there was no such link.
func DelLink(netnsName, name string) error {
	h, err := NetlinkHandle(netnsName)
	if err != nil {
		return fmt.Errorf("netns del link %s: %w", name, err)
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("netns del link %s in %s: %w", name, displayName(netnsName), notFound(err))
	}
	if err := h.LinkDel(l); err != nil {
		return fmt.Errorf("netns del link %s in %s: %w", name, displayName(netnsName), notFound(err))
	}
	return nil
}

// LinkExists reports whether namespace netnsName ("" = the original one)
// has a link called name.
func LinkExists(netnsName, name string) (bool, error) {
	h, err := NetlinkHandle(netnsName)
	if err != nil {
		return false, fmt.Errorf("netns link exists %s: %w", name, err)
	}
	defer h.Close()
	_, err = h.LinkByName(name)
	var nf netlink.LinkNotFoundError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &nf), errors.Is(err, unix.ENODEV):
		return false, nil
	default:
		return false, fmt.Errorf("netns link exists %s in %s: %w", name, displayName(netnsName), err)
	}
}

// notFound makes netlink's "no such link" errors wrap fs.ErrNotExist.
func notFound(err error) error {
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("%w: %w", fs.ErrNotExist, err)
	}
	return err
}
