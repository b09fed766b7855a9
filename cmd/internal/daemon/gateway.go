package daemon

import (
	"net"
	"net/netip"

	"go.uber.org/zap"

	"github.com/switchyard-net/switchyard/switch/port"
	"github.com/switchyard-net/switchyard/switch/router"
)

// newGateway returns the gateway port of a network: it answers ARP, NDP
// and ping for addrs with mac.
func newGateway(mac net.HardwareAddr, addrs []netip.Prefix, mtu int, log *zap.Logger) (port.Port, error) {
	return router.New(&router.Config{Name: "gateway", MAC: [6]byte(mac), Addrs: addrs, MTU: mtu, Logger: log}), nil
}

// gatewayAnswers says whether the gateway port answers ARP and ping (tests).
const gatewayAnswers = true
