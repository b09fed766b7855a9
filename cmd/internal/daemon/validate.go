package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/switchyard-net/switchyard/cmd/internal/api"
	"github.com/switchyard-net/switchyard/ipam"
)

// maxNetworkName is the longest network name.
const maxNetworkName = 64

// checkNetworkName accepts names like Docker's: a letter or digit, then
// letters, digits, '_', '.' and '-'.
func checkNetworkName(name string) error {
	if name == "" {
		return errors.New("network name is empty")
	}
	if len(name) > maxNetworkName {
		return fmt.Errorf("network name %.20q... is longer than %d bytes", name, maxNetworkName)
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || i > 0 && (r == '_' || r == '.' || r == '-')
		if !ok {
			return fmt.Errorf("invalid network name %q: use letters, digits, '_', '.' and '-', starting with a letter or digit", name)
		}
	}
	return nil
}

// checkNetnsName accepts what ip netns accepts, without control characters.
func checkNetnsName(name string) error {
	switch {
	case name == "":
		return errors.New("namespace name is empty")
	case len(name) > 255:
		return fmt.Errorf("namespace name %.20q... is longer than 255 bytes", name)
	case name == "." || name == "..", strings.ContainsAny(name, "/"), hasControl(name):
		return fmt.Errorf("invalid namespace name %q", name)
	}
	return nil
}

// checkIfName accepts interface names the kernel takes.
func checkIfName(name string) error {
	switch {
	case name == "":
		return errors.New("interface name is empty")
	case len(name) > 15:
		return fmt.Errorf("interface name %q is longer than 15 bytes", name)
	case name == "." || name == "..", strings.ContainsAny(name, "/: \t"), hasControl(name):
		return fmt.Errorf("invalid interface name %q", name)
	}
	return nil
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0
}

func invalid(format string, args ...any) *api.Error {
	return api.Errorf(api.CodeInvalidArgument, format, args...)
}

func invalidErr(err error) *api.Error {
	return &api.Error{Code: api.CodeInvalidArgument, Message: err.Error(), Err: err}
}

func parsePrefix(what, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, invalid("%s %q is not a CIDR prefix (like 198.18.0.0/24)", what, s)
	}
	return p, nil
}

func parseAddr(what, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, invalid("%s %q is not an IP address", what, s)
	}
	return a, nil
}

// parseMAC parses a unicast, non-zero Ethernet MAC.
func parseMAC(s string) (net.HardwareAddr, error) {
	m, err := net.ParseMAC(s)
	if err != nil || len(m) != 6 {
		return nil, invalid("MAC %q is not an Ethernet address (like 02:00:00:00:00:01)", s)
	}
	if m[0]&1 != 0 {
		return nil, invalid("MAC %s is a multicast address", m)
	}
	if [6]byte(m) == ([6]byte{}) {
		return nil, invalid("MAC %s is not usable", m)
	}
	return m, nil
}

// parseAgeing parses a MAC ageing time: a positive Go duration or "never"
// (negative internally). Empty means the default (0).
func parseAgeing(s string) (time.Duration, error) {
	switch s {
	case "":
		return 0, nil
	case "never":
		return -1, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, invalid("ageing %q is not a duration (like 300s or 5m) or \"never\"", s)
	}
	if d <= 0 {
		return 0, invalid("ageing %s must be positive (or \"never\")", s)
	}
	return d, nil
}

func formatAgeing(d time.Duration) string {
	switch {
	case d < 0:
		return "never"
	case d == 0:
		return "300s"
	}
	return d.String()
}

func checkMACLimit(n int) error {
	if n < 0 {
		return invalid("mac-limit %d is negative", n)
	}
	return nil
}

func checkMTU(n int) error {
	if n != 0 && (n < 68 || n > 65535) {
		return invalid("mtu %d is out of range 68-65535", n)
	}
	return nil
}

// derivedMAC returns a locally administered unicast MAC derived from parts.
func derivedMAC(parts ...string) net.HardwareAddr {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	m := net.HardwareAddr(append([]byte(nil), h[:6]...))
	m[0] = m[0]&^0x01 | 0x02
	return m
}

// hostLinkName returns the host end's name of a veth endpoint: "sye" and 8
// hex digits of a hash of the network and namespace names (11 bytes).
func hostLinkName(network, netns string) string {
	h := sha256.Sum256([]byte("switchyard-endpoint\x00" + network + "\x00" + netns))
	return "sye" + hex.EncodeToString(h[:4])
}

// trimIPAM is an ipam error's message without the package prefix.
func trimIPAM(err error) string { return strings.TrimPrefix(err.Error(), "ipam: ") }

// ipamError maps an ipam error to a coded API error.
func ipamError(err error) error {
	if err == nil {
		return nil
	}
	code := api.CodeInternal
	for _, m := range []struct {
		sentinel error
		code     string
	}{
		{ipam.ErrOverlap, api.CodeSubnetOverlap},
		{ipam.ErrOutsideSubnet, api.CodeOutsideSubnet},
		{ipam.ErrRangeNotInSubnet, api.CodeRangeOutsideSubnet},
		{ipam.ErrAuxCollision, api.CodeAuxCollision},
		{ipam.ErrTaken, api.CodeAddressTaken},
		{ipam.ErrExhausted, api.CodePoolExhausted},
		{ipam.ErrUnknownNetwork, api.CodeNotFound},
		{ipam.ErrNotAllocated, api.CodeNotFound},
		{ipam.ErrDuplicateNetwork, api.CodeConflict},
		{ipam.ErrDuplicateOwner, api.CodeConflict},
		{ipam.ErrInUse, api.CodeConflict},
		{ipam.ErrCorruptState, api.CodeStateCorrupt},
		{ipam.ErrInvalid, api.CodeInvalidArgument},
	} {
		if errors.Is(err, m.sentinel) {
			code = m.code
			break
		}
	}
	return &api.Error{Code: code, Message: trimIPAM(err), Err: err}
}

// asAPI makes err an *api.Error (CodeInternal unless it is one).
func asAPI(err error) *api.Error {
	var e *api.Error
	if errors.As(err, &e) {
		return e
	}
	return &api.Error{Code: api.CodeInternal, Message: err.Error(), Err: err}
}
