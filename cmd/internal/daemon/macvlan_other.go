//go:build !linux

package daemon

import "net"

func setConsume(string, string, net.HardwareAddr, bool) (bool, error) { return false, errUnsupported }
func delIngressQdisc(string, string) error                            { return errUnsupported }
func setLinkMAC(string, string, net.HardwareAddr) error               { return errUnsupported }

func addHostPair(string, string, string, net.HardwareAddr, int) error { return errUnsupported }
