package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/switchyard-net/switchyard/netns"
)

// ovsCmdTimeout bounds one ovs-vsctl or ovsdb-tool invocation.
const ovsCmdTimeout = 15 * time.Second

// testHookOVS, when set, is called with the private directory and the PID
// of every Open vSwitch daemon the ovs peer starts.
var testHookOVS func(dir string, pid int)

// ovsPeer is a private Open vSwitch: an ovsdb-server and an ovs-vswitchd
// run by the harness in namespace S, with their database, pid files,
// control sockets and logs in a directory of their own, so that they
// neither see nor touch an Open vSwitch installed on the host.
type ovsPeer struct {
	ns   string
	cpu  int
	dir  string
	env  []string
	bins map[string]string
	db   *proc // ovsdb-server
	sw   *proc // ovs-vswitchd
	desc string
}

func (o *ovsPeer) path(name string) string { return filepath.Join(o.dir, name) }

// dbRemote is where ovs-vswitchd and ovs-vsctl reach the database.
func (o *ovsPeer) dbRemote() string { return "unix:" + o.path("db.sock") }

// ovsUp starts a private Open vSwitch in t's S with a bridge on the
// userspace (netdev) datapath whose ports are t's host ports, opened over
// AF_PACKET, or over AF_XDP with afxdp. On failure it has stopped what it
// started and removed its directory.
func (b *bencher) ovsUp(ctx context.Context, t *topology, afxdp bool) (_ *ovsPeer, err error) {
	o := &ovsPeer{ns: t.S, cpu: b.r.swCPU, bins: map[string]string{}}
	for _, t := range ovsTools {
		if o.bins[t], err = ovsFind(t); err != nil {
			return nil, fmt.Errorf("bench: ovs: %w", err)
		}
	}
	schema, err := ovsSchema()
	if err != nil {
		return nil, fmt.Errorf("bench: ovs: %w", err)
	}
	// Unix socket paths are limited to 107 bytes: stay short.
	o.dir, err = os.MkdirTemp("/tmp", "sybench-ovs-")
	if err != nil {
		return nil, fmt.Errorf("bench: ovs: private directory: %w", err)
	}
	// Whatever a daemon or tool would put in its default directories
	// (/var/run/openvswitch, /etc/openvswitch, ...) goes here instead, the
	// bridge's OpenFlow management socket among them.
	for _, v := range []string{"OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVS_SYSCONFDIR"} {
		o.env = append(o.env, v+"="+o.dir)
	}
	defer func() {
		if err != nil {
			_ = o.down()
		}
	}()
	b.r.logf("ovs: private directory %s", o.dir)
	if afxdp {
		// AF_XDP ports take no virtio-net header: the endpoints must
		// hand over complete frames (ethtool -K eth0 tx off tso off gso
		// off), or OVS forwards unfinished checksums and TCP stalls.
		for _, ep := range t.Eps {
			if err := offloadsOff(ep.Netns, epIfName); err != nil {
				return nil, fmt.Errorf("bench: ovs: %w", err)
			}
		}
	}
	if _, err := o.run(ctx, "ovsdb-tool", "create", o.path("conf.db"), schema); err != nil {
		return nil, err
	}
	o.db, err = o.start("ovsdb-server", o.path("conf.db"),
		"--remote=punix:"+o.path("db.sock"))
	if err != nil {
		return nil, err
	}
	if err := o.waitSocket(ctx, o.db, o.path("db.sock")); err != nil {
		return nil, err
	}
	// userspace-tso-enable makes the system ports read and write a
	// virtio-net header on their AF_PACKET sockets, as switchyard's do.
	// Without it OVS passes on the frames the endpoints' veths hand over
	// with their checksums left to offload, unfinished, and B drops every
	// UDP and TCP segment. It is read once, when ovs-vswitchd starts.
	// AF_XDP ports poll in a PMD thread, pinned here to the switch CPU.
	initArgs := []string{"--no-wait", "--", "init", "--", "set", "Open_vSwitch", "."}
	if afxdp {
		initArgs = append(initArgs, fmt.Sprintf("other_config:pmd-cpu-mask=0x%x", 1<<o.cpu))
	} else {
		initArgs = append(initArgs, "other_config:userspace-tso-enable=true")
	}
	if _, err := o.vsctl(ctx, initArgs...); err != nil {
		return nil, err
	}
	// --disable-system: the userspace datapath only, no kernel datapath
	// (and no kernel module). --disable-system-route: no route table
	// monitoring, which only tunnels need.
	o.sw, err = o.start("ovs-vswitchd", o.dbRemote(), "--disable-system", "--disable-system-route")
	if err != nil {
		return nil, err
	}
	// Without --no-wait, ovs-vsctl waits until ovs-vswitchd has applied
	// the change (bounded by --timeout).
	args := []string{"--", "add-br", bridgeName,
		"--", "set", "Bridge", bridgeName, "datapath_type=netdev", "fail_mode=standalone"}
	kind := "type=system"
	if afxdp {
		kind = "type=afxdp"
	}
	ports := t.hostPorts()
	for _, p := range ports {
		args = append(args, "--", "add-port", bridgeName, p, "--", "set", "Interface", p, kind)
		if afxdp {
			// veth has no native AF_XDP zero-copy: generic (skb) mode.
			args = append(args, "options:xdp-mode=generic")
		}
	}
	if _, err := o.vsctl(ctx, args...); err != nil {
		return nil, err
	}
	for _, port := range ports {
		if err := o.checkPort(ctx, port); err != nil {
			return nil, err
		}
	}
	version := "(unknown version)"
	// "ovs-vswitchd (Open vSwitch) 3.1.0" and more lines.
	if out, err := o.run(ctx, "ovs-vswitchd", "--version"); err == nil {
		if f := strings.Fields(strings.SplitN(out, "\n", 2)[0]); len(f) > 0 {
			version = f[len(f)-1]
		}
	}
	if afxdp {
		o.desc = fmt.Sprintf("Open vSwitch %s, userspace (netdev) datapath, ports over AF_XDP (generic mode, a PMD thread), "+
			"endpoint offloads off, NORMAL (MAC learning) forwarding; ovs-vswitchd and its PMD on CPU %d", version, o.cpu)
	} else {
		o.desc = fmt.Sprintf("Open vSwitch %s, userspace (netdev) datapath, ports over AF_PACKET "+
			"with userspace-tso-enable, NORMAL (MAC learning) forwarding; ovs-vswitchd and ovsdb-server on CPU %d", version, o.cpu)
	}
	return o, nil
}

// argv is a tool's command line, run in S, pinned to the switch CPU.
func (o *ovsPeer) argv(tool string, args ...string) []string {
	return pinned(o.ns, o.cpu, append([]string{o.bins[tool]}, args...)...)
}

// start runs a daemon in the foreground (no --detach: it stays the
// harness's child, stopped by its PID), with every file it makes in the
// private directory and its log in a file there, not in syslog.
func (o *ovsPeer) start(tool string, args ...string) (*proc, error) {
	args = append(args,
		"--no-chdir",
		"--pidfile="+o.path(tool+".pid"),
		"--unixctl="+o.path(tool+".ctl"),
		"--log-file="+o.path(tool+".log"),
		"-vconsole:warn", "-vsyslog:off", "-vfile:info")
	p, err := startProcEnv(tool, o.argv(tool, args...), o.env)
	if err != nil {
		return nil, err
	}
	if testHookOVS != nil {
		testHookOVS(o.dir, p.cmd.Process.Pid)
	}
	return p, nil
}

// run runs a short-lived tool in S and returns its stdout.
func (o *ovsPeer) run(ctx context.Context, tool string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, ovsCmdTimeout)
	defer cancel()
	argv := o.argv(tool, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), o.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return "", fmt.Errorf("bench: ovs: %s %s: %w", tool, strings.Join(args, " "), err)
	}
	return stdout.String(), nil
}

// vsctl runs ovs-vsctl against the private database.
func (o *ovsPeer) vsctl(ctx context.Context, args ...string) (string, error) {
	secs := strconv.Itoa(int((ovsCmdTimeout - 5*time.Second).Seconds()))
	return o.run(ctx, "ovs-vsctl", append([]string{"--db=" + o.dbRemote(), "--timeout=" + secs}, args...)...)
}

// waitSocket waits until daemon p has created its socket at path.
func (o *ovsPeer) waitSocket(ctx context.Context, p *proc, path string) error {
	deadline := time.Now().Add(startTimeout)
	for {
		if fi, err := os.Stat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return nil
		}
		select {
		case <-p.done:
			return p.failure(fmt.Errorf("exited before creating %s (%v)", path, p.err))
		default:
		}
		if time.Now().After(deadline) {
			return p.failure(fmt.Errorf("no %s after %v", path, startTimeout))
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// checkPort checks that ovs-vswitchd opened port: it has an OpenFlow port
// number and no error.
func (o *ovsPeer) checkPort(ctx context.Context, port string) error {
	out, err := o.vsctl(ctx, "get", "Interface", port, "ofport", "error")
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		return fmt.Errorf("bench: ovs: port %s: unexpected ovs-vsctl output %q", port, out)
	}
	ofport, perr := strconv.Atoi(strings.TrimSpace(lines[0]))
	if e := strings.TrimSpace(lines[1]); e != "[]" && e != "" {
		return fmt.Errorf("bench: ovs: port %s: %s", port, strings.Trim(e, `"`))
	}
	if perr != nil || ofport <= 0 {
		return fmt.Errorf("bench: ovs: port %s was not opened (ofport %s)", port, lines[0])
	}
	return nil
}

// ovsDatapathTap is the tap the userspace datapath makes for itself.
const ovsDatapathTap = "ovs-netdev"

// down deletes the bridge, stops ovs-vswitchd, then ovsdb-server, each by
// PID (SIGTERM, then SIGKILL), removes the taps Open vSwitch made in S if
// they outlived it, and removes the private directory. S is left as the
// peer found it, for the peers measured after it.
func (o *ovsPeer) down() error {
	var errs []error
	if o.sw != nil && o.sw.running() {
		// ovs-vswitchd closes the ports, restoring their flags, and
		// removes the bridge's tap, which it made persistent. Not the
		// run's context: this runs after an interrupt too.
		if _, err := o.vsctl(context.Background(), "--if-exists", "del-br", bridgeName); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range []*proc{o.sw, o.db} {
		if p != nil {
			if err := p.stop(5 * time.Second); err != nil {
				errs = append(errs, fmt.Errorf("bench: ovs: %w", err))
			}
		}
	}
	if o.sw != nil && o.ns != "" { // "" would be the root namespace
		for _, name := range []string{bridgeName, ovsDatapathTap} {
			if err := netns.DelLink(o.ns, name); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("bench: ovs: %w", err))
			}
		}
	}
	if o.dir != "" {
		if err := os.RemoveAll(o.dir); err != nil {
			errs = append(errs, fmt.Errorf("bench: ovs: remove %s: %w", o.dir, err))
		}
	}
	return errors.Join(errs...)
}
