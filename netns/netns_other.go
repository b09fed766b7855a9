//go:build !linux

package netns

import (
	"os"

	"github.com/vishvananda/netlink"
)

// Create is not supported off Linux.
func Create(name string) error { return ErrUnsupported }

// Delete is not supported off Linux.
func Delete(name string) error { return ErrUnsupported }

// Exists reports false off Linux.
func Exists(name string) bool { return false }

// Do is not supported off Linux.
func Do(name string, fn func() error) error { return ErrUnsupported }

// NetlinkHandle is not supported off Linux.
func NetlinkHandle(name string) (*netlink.Handle, error) { return nil, ErrUnsupported }

// AddVeth is not supported off Linux.
func AddVeth(ep Endpoint) error { return ErrUnsupported }

// AddTap is not supported off Linux.
func AddTap(ep Endpoint, queues int) ([]*os.File, error) { return nil, ErrUnsupported }

// DelLink is not supported off Linux.
func DelLink(netnsName, name string) error { return ErrUnsupported }

// LinkExists is not supported off Linux.
func LinkExists(netnsName, name string) (bool, error) { return false, ErrUnsupported }
