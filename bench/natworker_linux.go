package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/switchyard-net/switchyard/nat"
	"github.com/switchyard-net/switchyard/netns"
	"github.com/switchyard-net/switchyard/switch/bridge"
	"github.com/switchyard-net/switchyard/switch/frame"
	"github.com/switchyard-net/switchyard/switch/port"
	"github.com/switchyard-net/switchyard/switch/port/afpacket"
	"github.com/switchyard-net/switchyard/switch/router"
)

type natConfig struct {
	switchConfig
	uplink, gw, gwMAC, upMAC, ext, publish, neigh string
}

// natTick is how often the nat worker advances the NAT's and the
// gateway's clocks, as the daemon does.
const natTick = time.Second

// natReport is what the nat worker prints at the end.
type natReport struct {
	Ports   []bridge.PortInfo `json:"ports"`
	Gateway router.Counters   `json:"gateway"`
	NAT     nat.Stats         `json:"nat"`
}

// parsedNAT is the nat worker's configuration, checked.
type parsedNAT struct {
	gw           netip.Prefix
	gwMAC, upMAC frame.MAC
	ext          []netip.Prefix
	rules        []natRule
	neigh        map[netip.Addr]frame.MAC
}

func parseMAC(flag, s string) (frame.MAC, error) {
	m, err := net.ParseMAC(s)
	if err != nil || len(m) != 6 {
		return frame.MAC{}, fmt.Errorf("-%s %q: want a MAC address", flag, s)
	}
	return frame.MAC(m), nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// parse checks the nat worker's flags.
func (nc natConfig) parse() (parsedNAT, error) {
	var p parsedNAT
	var err error
	if nc.ports == "" || nc.uplink == "" {
		return p, errors.New("give the inside ports with -ports and the uplink with -uplink")
	}
	if p.gw, err = netip.ParsePrefix(nc.gw); err != nil || !p.gw.Addr().Is4() {
		return p, fmt.Errorf("-gw %q: want an IPv4 ADDR/BITS", nc.gw)
	}
	if p.gwMAC, err = parseMAC("gw-mac", nc.gwMAC); err != nil {
		return p, err
	}
	if p.upMAC, err = parseMAC("uplink-mac", nc.upMAC); err != nil {
		return p, err
	}
	for _, s := range splitList(nc.ext) {
		e, err := netip.ParsePrefix(s)
		if err != nil || !e.Addr().Is4() {
			return p, fmt.Errorf("-ext %q: want IPv4 ADDR/BITS", s)
		}
		p.ext = append(p.ext, e)
	}
	if len(p.ext) == 0 {
		return p, errors.New("-ext: give at least one external address")
	}
	for _, s := range splitList(nc.publish) {
		r, err := parseNATRule(s)
		if err != nil {
			return p, err
		}
		p.rules = append(p.rules, r)
	}
	p.neigh = map[netip.Addr]frame.MAC{}
	for _, s := range splitList(nc.neigh) {
		a, m, ok := strings.Cut(s, "=")
		addr, err := netip.ParseAddr(a)
		if !ok || err != nil || !addr.Is4() {
			return p, fmt.Errorf("-neigh %q: want ADDR=MAC", s)
		}
		if p.neigh[addr], err = parseMAC("neigh", m); err != nil {
			return p, err
		}
	}
	return p, nil
}

// natWorker runs switchyard's gateway in namespace nc.netns as the daemon
// runs a bridge network with an uplink: a bridge with the inside ports
// (AF_PACKET rings) and the gateway port; the gateway routes IPv4 through
// a NAT (masquerade, the published ports) to a ring port on the uplink.
// The NAT's and the gateway's clocks tick every natTick. When ctx ends it
// prints the ports', gateway's and NAT's counters.
func natWorker(ctx context.Context, stdout io.Writer, nc natConfig) error {
	pc, err := nc.parse()
	if err != nil {
		return err
	}
	cfg, err := nc.ringConfig()
	if err != nil {
		return err
	}
	var ext []netip.Addr
	for _, e := range pc.ext {
		ext = append(ext, e.Addr())
	}
	n, err := nat.New(&nat.Config{Inside: []netip.Prefix{pc.gw.Masked()}, Gateway: pc.gw.Addr(), External: ext, Masquerade: true})
	if err != nil {
		return err
	}
	var ms []nat.Mapping
	for _, r := range pc.rules {
		ms = append(ms, r.mapping())
	}
	if err := n.AddMappings(ms...); err != nil {
		return err
	}
	var names []string
	var ports []port.Port
	var up port.Port
	closeAll := func() {
		for _, p := range ports {
			p.Close()
		}
		if up != nil {
			up.Close()
		}
	}
	err = netns.Do(nc.netns, func() error {
		for _, name := range splitList(nc.ports) {
			p, err := afpacket.Open(name, cfg)
			if err != nil {
				return err
			}
			names, ports = append(names, name), append(ports, p)
		}
		p, err := afpacket.Open(nc.uplink, cfg)
		if err != nil {
			return err
		}
		up = p
		return nil
	})
	if err != nil {
		closeAll()
		return err
	}
	gw := router.New(&router.Config{Name: "gateway", MAC: pc.gwMAC, Addrs: []netip.Prefix{pc.gw}, NAT: n,
		Uplink: &router.UplinkConfig{Port: up, Name: nc.uplink, MAC: pc.upMAC, Addrs: pc.ext}})
	up = nil // the gateway owns it now
	for a, m := range pc.neigh {
		gw.SetNeighbour(a, m, true)
	}
	br := bridge.New(nil)
	fail := func(err error, from int) error {
		for _, q := range ports[from:] {
			q.Close()
		}
		br.Close()
		return err
	}
	if err := br.AddPort("gateway", gw, bridge.DefaultFlags()); err != nil {
		gw.Close()
		return fail(err, 0)
	}
	if err := br.AddStaticMAC("gateway", pc.gwMAC); err != nil {
		return fail(err, 0)
	}
	if err := br.AddPort("uplink:", gw.Uplink(), bridge.Flags{NoLearning: true}); err != nil {
		return fail(err, 0)
	}
	for i, p := range ports {
		if err := br.AddPort(names[i], p, bridge.DefaultFlags()); err != nil {
			return fail(err, i)
		}
	}
	fmt.Fprintln(stdout, lineReady)
	t := time.NewTicker(natTick)
	defer t.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case now := <-t.C:
			n.Tick(now)
			gw.Tick(now)
		}
	}
	rep := natReport{Ports: br.Ports(), Gateway: gw.Counters(), NAT: n.Stats()}
	cerr := br.Close()
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n", b)
	return cerr
}
