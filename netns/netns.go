// Package netns is switchyard's setup layer: it creates and deletes named
// network namespaces (the kind `ip netns` lists), and wires endpoints into
// them: a veth pair whose inner end is renamed, addressed and routed, or a
// TAP device whose queue file descriptors the caller keeps.
//
// # Threads and namespaces
//
// On Linux a network namespace belongs to an OS thread, and the Go scheduler
// moves goroutines between threads freely. Everything here that has to run
// inside a namespace does so through Do, which follows the rules of CNI's
// pkg/ns: the work runs in a fresh goroutine locked to its OS thread; the
// thread enters the namespace, runs the function, and goes back to the
// namespace it came from. If it cannot go back, the goroutine exits still
// locked and the Go runtime throws the thread away, so no thread is ever
// left in the wrong namespace. Goroutines that fn starts do not run in the
// namespace. Sockets and file descriptors opened inside Do stay bound to the
// namespace, so open them there and do the I/O from ordinary goroutines.
//
// The empty name stands for the namespace the process started in (recorded
// when the package is initialised, from the main thread).
package netns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
)

// Dir is where named namespaces are bind-mounted, as iproute2 does it
// (/var/run is a link to /run on current systems).
const Dir = "/run/netns"

// DefaultIfName is the inner interface name when Endpoint.IfName is empty.
const DefaultIfName = "eth0"

// DefaultMTU is the MTU when Endpoint.MTU is zero.
const DefaultMTU = 1500

// maxIfName is the longest interface name the kernel takes (IFNAMSIZ-1).
const maxIfName = 15

// maxQueues is the most queues a TAP device takes (MAX_TAP_QUEUES).
const maxQueues = 256

// ErrUnsupported is returned on platforms without network namespaces.
var ErrUnsupported = errors.New("netns: network namespaces are only supported on Linux")

// Endpoint describes one end of a network namespace's attachment: the inner
// interface (veth end or TAP) and where the host side lives.
type Endpoint struct {
	// Netns is the namespace for the inner end; it must exist.
	Netns string
	// IfName is the inner interface name; empty means DefaultIfName.
	IfName string
	// HostName is the name of the host-side link (veth host end, or the
	// TAP's name while it is created). Required, at most 15 bytes.
	HostName string
	// HostNetns is the namespace of the host end; empty means the
	// process's original namespace.
	HostNetns string
	// MAC is the inner end's MAC; nil means a random locally administered
	// unicast address.
	MAC net.HardwareAddr
	// Addrs are the addresses put on the inner end.
	Addrs []netip.Prefix
	// Gateways get a default route each on the inner end; at most one per
	// address family. The kernel refuses a gateway that is not on the
	// link through one of Addrs.
	Gateways []netip.Addr
	// MTU of both ends; 0 means DefaultMTU.
	MTU int
}

// path returns the bind-mount path of namespace name.
func path(name string) string { return filepath.Join(Dir, name) }

// checkName reports whether name can name a namespace: a single path
// element, as ip netns takes it.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty namespace name")
	case len(name) > 255:
		return fmt.Errorf("namespace name %.20q... longer than 255 bytes", name)
	case name == "." || name == "..", strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("invalid namespace name %q", name)
	}
	return nil
}
