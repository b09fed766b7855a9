//go:build !linux

package daemon

import (
	"net"

	"go.uber.org/zap"
)

func setConsume(string, string, net.HardwareAddr, bool) (bool, error) { return false, errUnsupported }
func delIngressQdisc(string, string) error                            { return errUnsupported }
func setLinkMAC(string, string, net.HardwareAddr) error               { return errUnsupported }

func addHostPair(string, string, string, net.HardwareAddr, int) error { return errUnsupported }

type childWatch struct{}

func (*childWatch) Close() {}

func readChildState(string, string) (childState, int, error) { return childState{}, 0, errUnsupported }

func startChildWatch(string, int, childState, *zap.Logger, func(prev, cur childState)) (*childWatch, error) {
	return nil, errUnsupported
}
