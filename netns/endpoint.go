package netns

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// normalize checks ep and fills in its defaults: IfName, MTU and a random
// MAC. It copies what it changes.
func (ep Endpoint) normalize() (Endpoint, error) {
	if ep.Netns == "" {
		return ep, errors.New("endpoint has no namespace")
	}
	if err := checkName(ep.Netns); err != nil {
		return ep, err
	}
	if ep.HostNetns != "" {
		if err := checkName(ep.HostNetns); err != nil {
			return ep, fmt.Errorf("host namespace: %w", err)
		}
	}
	if ep.IfName == "" {
		ep.IfName = DefaultIfName
	}
	if err := checkIfName(ep.IfName); err != nil {
		return ep, err
	}
	if ep.HostName == "" {
		return ep, errors.New("endpoint has no host-side link name")
	}
	if err := checkIfName(ep.HostName); err != nil {
		return ep, err
	}
	switch {
	case ep.MTU == 0:
		ep.MTU = DefaultMTU
	case ep.MTU < 68 || ep.MTU > 65535:
		return ep, fmt.Errorf("MTU %d out of range 68-65535", ep.MTU)
	}
	if ep.MAC == nil {
		mac, err := RandomMAC()
		if err != nil {
			return ep, err
		}
		ep.MAC = mac
	} else {
		if len(ep.MAC) != 6 {
			return ep, fmt.Errorf("MAC %s is not a 6-byte Ethernet address", ep.MAC)
		}
		if ep.MAC[0]&1 != 0 {
			return ep, fmt.Errorf("MAC %s is a multicast address", ep.MAC)
		}
		if [6]byte(ep.MAC) == ([6]byte{}) {
			return ep, errors.New("MAC 00:00:00:00:00:00 is not usable")
		}
		ep.MAC = append(net.HardwareAddr(nil), ep.MAC...)
	}
	for _, p := range ep.Addrs {
		if err := checkPrefix(p); err != nil {
			return ep, err
		}
	}
	var have4, have6 bool
	for _, gw := range ep.Gateways {
		switch {
		case !gw.IsValid():
			return ep, errors.New("invalid gateway address")
		case gw.Is4In6():
			return ep, fmt.Errorf("gateway %s: IPv4-mapped IPv6 addresses are not accepted, give the IPv4 form", gw)
		case gw.Zone() != "":
			return ep, fmt.Errorf("gateway %s: zones are not accepted", gw)
		case gw.IsUnspecified() || gw.IsMulticast():
			return ep, fmt.Errorf("gateway %s is not a unicast address", gw)
		case gw.Is4() && have4, gw.Is6() && have6:
			return ep, fmt.Errorf("gateway %s: at most one gateway per address family", gw)
		}
		have4 = have4 || gw.Is4()
		have6 = have6 || gw.Is6()
	}
	return ep, nil
}

func checkIfName(name string) error {
	switch {
	case len(name) > maxIfName:
		return fmt.Errorf("interface name %q longer than %d bytes", name, maxIfName)
	case name == "." || name == "..", strings.ContainsAny(name, "/:\x00 \t\n"):
		return fmt.Errorf("invalid interface name %q", name)
	}
	return nil
}

func checkPrefix(p netip.Prefix) error {
	a := p.Addr()
	switch {
	case !p.IsValid():
		return errors.New("invalid address prefix")
	case a.Is4In6():
		return fmt.Errorf("address %s: IPv4-mapped IPv6 addresses are not accepted, give the IPv4 form", p)
	case a.Zone() != "":
		return fmt.Errorf("address %s: zones are not accepted", p)
	case a.IsUnspecified() || a.IsMulticast():
		return fmt.Errorf("address %s is not a unicast address", p)
	}
	return nil
}

// RandomMAC returns a random locally administered unicast MAC address.
func RandomMAC() (net.HardwareAddr, error) {
	mac := make(net.HardwareAddr, 6)
	if _, err := rand.Read(mac); err != nil {
		return nil, fmt.Errorf("random MAC: %w", err)
	}
	mac[0] = mac[0]&^0x01 | 0x02
	return mac, nil
}
