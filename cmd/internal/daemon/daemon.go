// Package daemon is switchyard's switch daemon: it owns networks (one
// learning bridge each, with a gateway when the network has IPAM),
// endpoints (veth pairs or TAP devices wired into network namespaces) and
// attached interfaces, persists them in a state dir, re-adopts them on
// restart, and serves the control API (package api) over a unix socket.
//
// The daemon is embeddable: New builds it (taking the state dir's lock,
// loading and re-adopting the state, applying a topology), the exported
// methods (CreateNetwork, Connect, ...) are the API without the socket,
// Serve answers HTTP requests on the socket until Close.
//
// # State
//
// The state dir holds state.json (networks, endpoints, attachments, port
// flags), ipam.json (the IPAM's leases, package ipam) and lock, which the
// running daemon holds with flock(LOCK_EX|LOCK_NB): a second daemon on the
// same dir refuses to start. state.json is rewritten atomically (temporary
// file, fsync, rename, fsync of the dir) after every change. A connect
// writes the endpoint as pending before it creates links, so a crash half
// way leaves a record that the next start cleans up.
//
// Every mutating call validates everything it can first, then acts; a
// failure half way undoes what was done, so a failed call leaves the
// state, the links and the leases as they were. Calls are serialised by
// one mutex.
//
// # Restart
//
// Close stops the daemon without tearing anything down: links stay, and
// frames stop flowing until the next start. New re-adopts every endpoint
// whose namespace and link still exist (the veth host end is reopened with
// an AF_PACKET ring, a TAP device is reopened by name inside its
// namespace) and cleans up the rest: links left, leases, the record. Each
// decision is logged.
//
// TAP endpoints are made persistent (TUNSETPERSIST) so that they outlive
// the daemon's file descriptors; disconnect deletes them.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/switchyard-net/switchyard/cmd/internal/api"
	"github.com/switchyard-net/switchyard/internal/atomicfile"
	"github.com/switchyard-net/switchyard/ipam"
	"github.com/switchyard-net/switchyard/nat"
	"github.com/switchyard-net/switchyard/switch/capture"
	"github.com/switchyard-net/switchyard/switch/router"
)

// Version is reported by GET /v1/ping.
var Version = "dev"

// Config sets up a daemon. A nil *Config means all defaults.
type Config struct {
	// StateDir holds the state files; default api.DefaultStateDir.
	StateDir string
	// Socket is the unix socket path Serve answers on; empty means no
	// socket (an embedded daemon driven through its methods only).
	Socket string
	// Logger; default: no logging.
	Logger *zap.Logger
	// Topology, when not nil, is applied after the state is re-adopted:
	// missing networks are created, missing endpoints and attachments
	// added; what exists is left as it is.
	Topology *api.Topology
	// BusyPoll is how long the ring ports keep polling their rings before
	// they sleep (afpacket.Config.BusyPoll): zero, the default, sleeps at
	// once; up to MaxBusyPoll. Polling trades a CPU for latency.
	BusyPoll time.Duration
	// RxSteering has each ring port steer its interface's received
	// frames to the daemon's CPUs (afpacket.Config.RxSteering): a TCP
	// sender's segments arrive in order and the copy into the ring moves
	// to the daemon's CPU, at an IPI per burst of frames, which costs
	// small-frame rate.
	RxSteering bool
}

// MaxBusyPoll bounds Config.BusyPoll.
const MaxBusyPoll = 10 * time.Millisecond

// Daemon owns the networks. Its methods are safe for concurrent use.
type Daemon struct {
	log       *zap.Logger
	dir       string
	statePath string
	socket    string
	busyPoll  time.Duration
	rxSteer   bool
	lock      *os.File
	ipam      *ipam.IPAM

	mu        sync.Mutex // serialises every call; guards the fields below
	st        *stateFile
	nets      map[string]*runNet
	mvParents map[string]*mvParent // macvlan parents in use, by mvRecord.key
	closed    bool

	ln        net.Listener
	sockIno   uint64
	srv       *http.Server
	done      chan struct{}
	closeOnce sync.Once
}

// runNet is a network's running part.
type runNet struct {
	name string
	br   engine          // a *bridge.Bridge, or a macvlan network's adapter (macvlan.go)
	mir  *capture.Mirror // captures of the network (capture.go); nil for macvlan
	// With an uplink: the gateway, its NAT and the clock goroutine's stop.
	gw   *router.Port
	nat  *nat.NAT
	stop chan struct{}
}

// close stops the network's goroutines and closes its bridge (and so its
// ports).
func (rn *runNet) close() {
	if rn.stop != nil {
		close(rn.stop)
		rn.stop = nil
	}
	rn.br.Close()
}

// New starts a daemon: it takes the state dir's lock, loads the state,
// re-adopts what still exists and cleans up the rest, applies
// cfg.Topology and, when cfg.Socket is set, listens on the socket (Serve
// answers on it).
func New(cfg *Config) (_ *Daemon, err error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if c.StateDir == "" {
		c.StateDir = api.DefaultStateDir
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.BusyPoll < 0 || c.BusyPoll > MaxBusyPoll {
		return nil, fmt.Errorf("busy poll %v out of range: want 0 to %v", c.BusyPoll, MaxBusyPoll)
	}
	dir, err := filepath.Abs(c.StateDir)
	if err != nil {
		return nil, fmt.Errorf("state dir %s: %w", c.StateDir, err)
	}
	d := &Daemon{
		log:       c.Logger,
		dir:       dir,
		statePath: filepath.Join(dir, stateFileName),
		socket:    c.Socket,
		busyPoll:  c.BusyPoll,
		rxSteer:   c.RxSteering,
		nets:      map[string]*runNet{},
		done:      make(chan struct{}),
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating state dir %s: %w", dir, err)
	}
	if err := d.takeLock(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			d.closeRuntime()
			d.releaseLock()
		}
	}()
	atomicfile.RemoveTemps(d.statePath)
	st, err := loadState(d.statePath)
	if err != nil {
		return nil, err
	}
	d.st = st
	d.ipam, err = ipam.Open(filepath.Join(dir, ipamFileName))
	if err != nil {
		if errors.Is(err, ipam.ErrCorruptState) {
			return nil, &api.Error{Code: api.CodeStateCorrupt, Message: trimIPAM(err), Err: err}
		}
		return nil, err
	}
	d.ipam.SetAvoid(hostRoutes())
	d.mu.Lock()
	d.restoreLocked()
	err = d.saveLocked()
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if c.Topology != nil {
		if err := d.Apply(c.Topology); err != nil {
			return nil, fmt.Errorf("applying the topology: %w", err)
		}
	}
	if c.Socket != "" {
		if err := d.listen(c.Socket); err != nil {
			return nil, err
		}
		d.srv = &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: zap.NewStdLog(d.log)}
	}
	d.log.Info("daemon started", zap.String("state_dir", dir), zap.String("socket", c.Socket),
		zap.Int("networks", len(d.st.Networks)))
	return d, nil
}

// StateDir returns the daemon's state dir.
func (d *Daemon) StateDir() string { return d.dir }

// StatePath returns the path of the daemon's state file.
func (d *Daemon) StatePath() string { return d.statePath }

// takeLock opens the lock file and takes it, or fails if another daemon
// holds it.
func (d *Daemon) takeLock() error {
	p := filepath.Join(d.dir, lockFileName)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("opening lock file %s: %w", p, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return api.Errorf(api.CodeConflict, "another switchyard daemon is using state dir %s (%s is locked)", d.dir, p)
		}
		return fmt.Errorf("locking %s: %w", p, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(fmt.Sprintf("%d\n", os.Getpid())), 0)
	d.lock = f
	return nil
}

func (d *Daemon) releaseLock() {
	if d.lock != nil {
		_ = unix.Flock(int(d.lock.Fd()), unix.LOCK_UN)
		d.lock.Close()
		d.lock = nil
	}
}

// listen binds the socket: under a temporary name, made 0660, then renamed
// into place, so it is never reachable with wider permissions. A socket
// file nobody answers on is stale and replaced; one that answers belongs
// to another daemon.
func (d *Daemon) listen(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating socket dir %s: %w", filepath.Dir(path), err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return api.Errorf(api.CodeConflict, "%s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return api.Errorf(api.CodeConflict, "socket %s is in use by another daemon", path)
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("removing stale socket %s: %w", path, err)
		}
	}
	tmp := path + ".new"
	_ = os.Remove(tmp)
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o660); err != nil {
		ln.Close()
		os.Remove(tmp)
		return fmt.Errorf("chmod socket %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		os.Remove(tmp)
		return fmt.Errorf("placing socket %s: %w", path, err)
	}
	var st unix.Stat_t
	if unix.Stat(path, &st) == nil {
		d.sockIno = st.Ino
	}
	d.ln = ln
	return nil
}

// Serve answers API requests on the socket until Close, then returns nil.
// Without a socket it just waits for Close.
func (d *Daemon) Serve() error {
	if d.srv == nil {
		<-d.done
		return nil
	}
	err := d.srv.Serve(d.ln)
	if errors.Is(err, http.ErrServerClosed) {
		<-d.done
		return nil
	}
	return err
}

// Close stops the daemon: it stops answering, stops forwarding, closes
// every port and releases the state dir. Links, TAP devices and leases
// stay, to be re-adopted by the next daemon on the state dir. Close waits
// (up to 10 s) for requests in flight.
func (d *Daemon) Close() error {
	d.closeOnce.Do(func() {
		d.EndCaptures("the daemon is stopping") // streams would hold up Shutdown
		if d.srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = d.srv.Shutdown(ctx)
			cancel()
		}
		d.mu.Lock()
		d.closed = true
		d.closeRuntime()
		d.mu.Unlock()
		if d.ln != nil {
			d.ln.Close()
			var st unix.Stat_t
			if unix.Stat(d.socket, &st) == nil && st.Ino == d.sockIno {
				os.Remove(d.socket)
			}
		}
		d.releaseLock()
		d.log.Info("daemon stopped", zap.String("state_dir", d.dir))
		close(d.done)
	})
	return nil
}

// closeRuntime closes every bridge (and so every port); links stay.
func (d *Daemon) closeRuntime() {
	for name, rn := range d.nets {
		rn.endCaptures("the daemon is stopping")
		rn.close()
		delete(d.nets, name)
	}
}

// errClosed is returned by calls on a closed daemon.
var errClosed = api.Errorf(api.CodeDaemonUnavailable, "the daemon is shutting down")

// lockOpen takes the mutex, or fails on a closed daemon.
func (d *Daemon) lockOpen() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return errClosed
	}
	return nil
}

// saveLocked writes the state file.
func (d *Daemon) saveLocked() error {
	data, err := d.st.encode()
	if err == nil {
		_, err = atomicfile.Write(d.statePath, data, nil)
	}
	if err != nil {
		d.log.Error("saving state failed", zap.String("path", d.statePath), zap.Error(err))
		return api.Errorf(api.CodeInternal, "saving state to %s: %v", d.statePath, err)
	}
	return nil
}
