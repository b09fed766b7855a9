package daemon

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/netns"
	"github.com/switchyard-net/switchyard/switch/frame"
)

// A macvlan endpoint's interface in its namespace (the veth's inner end or
// the TAP) is what the kernel's macvlan device would be, and the daemon
// follows what the kernel's macvlan driver reads off that device: its MAC
// (a passthru child's goes to the parent), whether it is up (a down
// child gets nothing) and its multicast list (the groups it takes).
//
// Link changes come as netlink events from a socket in the endpoint's
// namespace. The multicast list has no event (dev_mc_add notifies
// nobody; `ip maddr` and IGMP/MLD joins change it silently), so it is
// read from /proc/net/dev_mcast in the namespace every mvWatchPoll; the
// same tick re-reads the link, in case an event was lost.
//
// A socket or an open /proc/net file keeps its namespace alive, which
// would keep a deleted namespace's veth alive and hide the endpoint's
// end from the daemon. So the /proc file is opened for each read only,
// and the watcher checks on every tick that the namespace's name still
// names the namespace it started in; when not, it closes its socket and
// ends (the port's own link-gone path then removes the endpoint).

// mvWatchPoll is how often a child's multicast list is read and its
// namespace checked.
var mvWatchPoll = 500 * time.Millisecond

func stateOfLink(l netlink.Link) childState {
	a := l.Attrs()
	return childState{
		mac: slices.Clone(a.HardwareAddr),
		up:  a.RawFlags&unix.IFF_UP != 0,
		all: a.RawFlags&(unix.IFF_PROMISC|unix.IFF_ALLMULTI) != 0 || a.Promisc > 0,
	}
}

// childWatch follows one endpoint's interface; see the top of the file.
type childWatch struct {
	ns     string
	index  int
	nsIno  uint64
	log    *zap.Logger
	on     func(prev, cur childState)
	stop   chan struct{}
	done   chan struct{}
	closed sync.Once
}

// nsInode identifies the namespace that ns names now.
func nsInode(ns string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(netns.Dir, ns), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// readChildState reads the state of interface ifname in namespace ns, and
// its index.
func readChildState(ns, ifname string) (childState, int, error) {
	var st childState
	var idx int
	err := netns.Do(ns, func() error {
		l, err := netlink.LinkByName(ifname)
		if err != nil {
			return fmt.Errorf("find %s: %w", ifname, err)
		}
		idx = l.Attrs().Index
		st = stateOfLink(l)
		st.groups, err = readMcast(idx)
		return err
	})
	return st, idx, err
}

// readMcast reads the multicast list of link index idx from the calling
// thread's namespace. /proc/net is the namespace of the process's main
// thread; /proc/thread-self/net that of this one.
func readMcast(idx int) ([]frame.MAC, error) {
	b, err := os.ReadFile("/proc/thread-self/net/dev_mcast")
	if err != nil {
		return nil, err
	}
	return parseDevMcast(b, idx), nil
}

// parseDevMcast picks link idx's groups out of /proc/net/dev_mcast: one
// line per entry, "ifindex name users global hex-address". Lines it
// cannot read are skipped.
func parseDevMcast(b []byte, idx int) []frame.MAC {
	var out []frame.MAC
	for line := range bytes.Lines(b) {
		f := bytes.Fields(line)
		if len(f) != 5 {
			continue
		}
		if i, err := strconv.Atoi(string(f[0])); err != nil || i != idx {
			continue
		}
		var m frame.MAC
		if n, err := hex.Decode(m[:], f[4]); err != nil || n != 6 || len(f[4]) != 12 {
			continue
		}
		if i, found := slices.BinarySearchFunc(out, m, func(a, b frame.MAC) int { return bytes.Compare(a[:], b[:]) }); !found {
			out = slices.Insert(out, i, m)
		}
	}
	return out
}

// startChildWatch follows interface index idx in namespace ns, whose
// state was prev, and calls on from its goroutine with each change.
func startChildWatch(ns string, idx int, prev childState, log *zap.Logger, on func(prev, cur childState)) (*childWatch, error) {
	ino, err := nsInode(ns)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", ns, err)
	}
	w := &childWatch{ns: ns, index: idx, nsIno: ino, log: log, on: on, stop: make(chan struct{}), done: make(chan struct{})}
	updates := make(chan netlink.LinkUpdate, 16)
	subDone := make(chan struct{})
	err = netns.Do(ns, func() error {
		// The socket is made on this thread, so in ns, and stays there.
		return netlink.LinkSubscribeWithOptions(updates, subDone, netlink.LinkSubscribeOptions{
			ErrorCallback: func(err error) { log.Debug("link watch", zap.Error(err)) },
		})
	})
	if err != nil {
		return nil, fmt.Errorf("watch links in %s: %w", ns, err)
	}
	go w.run(prev, updates, subDone)
	return w, nil
}

// Close stops the watcher and waits for it; its socket is closed when it
// returns.
func (w *childWatch) Close() {
	w.closed.Do(func() { close(w.stop) })
	<-w.done
}

func (w *childWatch) run(prev childState, updates chan netlink.LinkUpdate, subDone chan struct{}) {
	defer close(w.done)
	sub := updates
	defer func() {
		close(subDone)
		for range sub { // until the subscription's goroutine has closed it
		}
	}()
	tick := time.NewTicker(mvWatchPoll)
	defer tick.Stop()
	apply := func(cur childState) {
		if !cur.equal(prev) {
			w.on(prev, cur)
			prev = cur
		}
	}
	for {
		select {
		case <-w.stop:
			return
		case u, ok := <-updates:
			if !ok {
				// The subscription failed (a lost message, say):
				// the ticks carry on alone.
				updates = nil
				continue
			}
			if int(u.Index) != w.index || u.Header.Type != unix.RTM_NEWLINK {
				continue
			}
			cur := stateOfLink(u.Link)
			cur.groups = prev.groups // the event has no list; the tick reads it
			if cur.all != prev.all {
				if g, err := w.readGroups(); err == nil {
					cur.groups = g
				}
			}
			apply(cur)
		case <-tick.C:
			if ino, err := nsInode(w.ns); err != nil || ino != w.nsIno {
				w.log.Debug("endpoint's namespace gone; watch ended")
				return
			}
			var cur childState
			err := netns.Do(w.ns, func() error {
				l, err := netlink.LinkByIndex(w.index)
				if err != nil {
					return err
				}
				cur = stateOfLink(l)
				cur.groups, err = readMcast(w.index)
				return err
			})
			if err != nil {
				w.log.Debug("reading the endpoint's link", zap.Error(err))
				continue
			}
			apply(cur)
		}
	}
}

func (w *childWatch) readGroups() ([]frame.MAC, error) {
	var g []frame.MAC
	err := netns.Do(w.ns, func() error {
		var err error
		g, err = readMcast(w.index)
		return err
	})
	return g, err
}
