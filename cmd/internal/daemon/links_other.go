//go:build !linux

package daemon

import (
	"errors"
	"net/netip"
	"os"

	"github.com/switchyard-net/switchyard/switch/port"
)

// errUnsupported is returned on systems without network namespaces.
var errUnsupported = errors.New("daemon: switchyard's endpoints need Linux")

func hostRoutes() []netip.Prefix { return nil }
func quietHostEnd(string)        {}
func linkInfo(string, string) (bool, string, bool, bool, error) {
	return false, "", false, false, errUnsupported
}
func delLinkOfType(string, string, string) error           { return errUnsupported }
func setLink(string, string, *bool, *bool) error           { return errUnsupported }
func (*Daemon) openRing(string, string) (port.Port, error) { return nil, errUnsupported }
func setTapPersist(*os.File, bool) error                   { return errUnsupported }
func reopenTap(string, string) (*os.File, error)           { return nil, errUnsupported }
func tapPort(string, *os.File, int) (port.Port, error)     { return nil, errUnsupported }
func linkMAC(string, string) (string, error)               { return "", errUnsupported }
func defaultRoutes(string) (bool, bool, error)             { return false, false, errUnsupported }
