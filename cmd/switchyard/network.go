package main

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/switchyard-net/switchyard/cmd/internal/api"
)

type clientFunc func() *api.Client

func newNetworkCmd(client clientFunc) *cobra.Command {
	return groupCmd("network", "Manage networks: create, connect namespaces, inspect",
		newNetworkCreateCmd(client),
		newNetworkLsCmd(client),
		newNetworkInspectCmd(client),
		newNetworkRmCmd(client),
		newNetworkSetCmd(client),
		newNetworkConnectCmd(client),
		newNetworkDisconnectCmd(client),
		newNetworkAttachCmd(client),
		newNetworkDetachCmd(client),
	)
}

func newNetworkCreateCmd(client clientFunc) *cobra.Command {
	var (
		req                       api.NetworkCreate
		subnets, ranges, gateways []string
		aux                       []string
		uplinkIPs, natTimeouts    []string
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a network",
		Long: `create makes a network: a learning bridge and, unless --ipam none, a subnet
whose first address (or --gateway) the switch answers ARP and ping for.

--subnet may be given twice (one IPv4, one IPv6); each --ip-range and
--gateway goes with the subnet of its address family. --ipam none makes a
pure L2 network with no subnet and no gateway (a standalone switch).

--uplink IFACE gives the gateway a way out: it opens IFACE (in the daemon's
namespace, or --uplink-netns) with a ring port, owns its own MAC and the
--uplink-ip addresses there (answering ARP and ping for them), routes the
endpoints' IPv4 traffic to --uplink-gateway with masquerade, and takes
published ports (network connect --publish) with the client's address
kept. Without --uplink a network reaches nothing beyond its gateway.`,
		Example: `  switchyard network create lan --subnet 198.18.0.0/24
  switchyard network create l2 --ipam none
  switchyard network create web --subnet 198.18.1.0/24 \
      --uplink veth-up --uplink-ip 198.19.0.2/24 --uplink-gateway 198.19.0.1`,
		Args: exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Name = args[0]
			sn, err := pairSubnets(cmd, subnets, ranges, gateways)
			if err != nil {
				return err
			}
			req.Subnets = sn
			for _, a := range aux {
				k, v, ok := strings.Cut(a, "=")
				if !ok || k == "" || v == "" {
					return usagef(cmd, "invalid --aux-address %q: want NAME=IP", a)
				}
				if req.AuxAddresses == nil {
					req.AuxAddresses = map[string]string{}
				}
				if _, dup := req.AuxAddresses[k]; dup {
					return usagef(cmd, "--aux-address %s given twice", k)
				}
				req.AuxAddresses[k] = v
			}
			req.UplinkIP = strings.Join(uplinkIPs, ",")
			for _, kv := range natTimeouts {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" || v == "" {
					return usagef(cmd, "invalid --nat-timeout %q: want NAME=DURATION, like udp=60s", kv)
				}
				if req.NATTimeouts == nil {
					req.NATTimeouts = map[string]string{}
				}
				req.NATTimeouts[k] = v
			}
			n, err := client().CreateNetwork(cmd.Context(), req)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), n.Name)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Driver, "driver", api.DriverBridge, "bridge or macvlan")
	f.StringVar(&req.Mode, "mode", "", "macvlan mode: bridge (default), private, vepa or passthru (macvlan only)")
	f.StringVar(&req.Parent, "parent", "", "macvlan parent interface (macvlan only)")
	f.StringVar(&req.ParentNetns, "parent-netns", "", "namespace of the macvlan parent (macvlan only)")
	f.BoolVar(&req.HostAccess, "host-access", false, "give the parent's namespace an interface that reaches the endpoints (macvlan only)")
	f.StringVar(&req.IPAM, "ipam", api.IPAMDefault, "default, or none for a pure L2 network")
	f.StringArrayVar(&subnets, "subnet", nil, "subnet in CIDR form (default: a free private /16)")
	f.StringArrayVar(&ranges, "ip-range", nil, "allocate endpoint addresses from this CIDR inside the subnet")
	f.StringArrayVar(&gateways, "gateway", nil, "gateway address (default: the subnet's first address)")
	f.StringArrayVar(&aux, "aux-address", nil, "NAME=IP: reserve an address (repeatable)")
	f.StringVar(&req.Uplink, "uplink", "", "interface to route to the outside through, with NAT")
	f.StringVar(&req.UplinkNetns, "uplink-netns", "", "namespace of the uplink interface (default: the daemon's)")
	f.StringArrayVar(&uplinkIPs, "uplink-ip", nil, "the gateway's address on the uplink, CIDR (repeatable; the first masquerades)")
	f.StringVar(&req.UplinkGateway, "uplink-gateway", "", "next hop on the uplink for off-link destinations")
	f.StringArrayVar(&req.PublishAllow, "publish-allow", nil, "CIDR: only these sources reach published ports (repeatable)")
	f.IntVar(&req.NATMaxFlows, "nat-max-flows", 0, "connection-table size (default 262144)")
	f.StringArrayVar(&natTimeouts, "nat-timeout", nil, "NAME=DURATION flow timeout, like tcp-established=1h or udp=60s (repeatable)")
	f.BoolVar(&req.Internal, "internal", false, "no uplink: the gateway routes nothing")
	f.IntVar(&req.MTU, "mtu", 0, "MTU of the endpoints' links (default 1500)")
	f.StringVar(&req.Ageing, "ageing", "", "MAC ageing time, like 300s or 5m, or never (default 300s)")
	f.IntVar(&req.MACLimit, "mac-limit", 0, "most learned MAC entries (default 65536)")
	return cmd
}

// pairSubnets puts each --ip-range and --gateway with the --subnet of its
// address family (or the only subnet).
func pairSubnets(cmd *cobra.Command, subnets, ranges, gateways []string) ([]api.Subnet, error) {
	if len(subnets) == 0 {
		if len(ranges) > 0 || len(gateways) > 0 {
			return nil, usagef(cmd, "--ip-range and --gateway need --subnet")
		}
		return nil, nil
	}
	out := make([]api.Subnet, len(subnets))
	fam := make([]int, len(subnets)) // 4, 6 or 0 (unparsable: the daemon says why)
	for i, s := range subnets {
		out[i].Subnet = s
		if p, err := netip.ParsePrefix(s); err == nil {
			fam[i] = family(p.Addr())
		}
	}
	pick := func(flag, v string, f int) (int, error) {
		if len(out) == 1 {
			return 0, nil
		}
		for i := range out {
			if fam[i] == f {
				return i, nil
			}
		}
		return -1, usagef(cmd, "cannot tell which --subnet %s %s belongs to", flag, v)
	}
	for _, r := range ranges {
		f := 0
		if p, err := netip.ParsePrefix(r); err == nil {
			f = family(p.Addr())
		}
		i, err := pick("--ip-range", r, f)
		if err != nil {
			return nil, err
		}
		if out[i].IPRange != "" {
			return nil, usagef(cmd, "two --ip-range for subnet %s", out[i].Subnet)
		}
		out[i].IPRange = r
	}
	for _, g := range gateways {
		f := 0
		if a, err := netip.ParseAddr(g); err == nil {
			f = family(a)
		}
		i, err := pick("--gateway", g, f)
		if err != nil {
			return nil, err
		}
		if out[i].Gateway != "" {
			return nil, usagef(cmd, "two --gateway for subnet %s", out[i].Subnet)
		}
		out[i].Gateway = g
	}
	return out, nil
}

func family(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}

func newNetworkLsCmd(client clientFunc) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			nets, err := client().Networks(cmd.Context())
			if err != nil {
				return err
			}
			if quiet {
				for _, n := range nets {
					fmt.Fprintln(cmd.OutOrStdout(), n.Name)
				}
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tDRIVER\tSUBNET\tGATEWAY\tPORTS")
			for _, n := range nets {
				var sub, gw []string
				for _, s := range n.Subnets {
					sub = append(sub, s.Subnet)
					if s.Gateway != "" {
						gw = append(gw, s.Gateway)
					}
				}
				driver := n.Driver
				if m := n.Macvlan; m != nil {
					driver += "/" + m.Mode + " on " + m.Parent
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", n.Name, driver, dash(strings.Join(sub, ",")), dash(strings.Join(gw, ",")), len(n.Ports))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print names only")
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newNetworkInspectCmd(client clientFunc) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect NAME...",
		Short: "Show networks and their ports as JSON",
		Long: `inspect prints a JSON array with one object per network: its settings and
every port (gateway, endpoints, attached interfaces) with its kind, namespace,
interface, host link, MAC, addresses, flags and counters.`,
		Args: minArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := make([]api.Network, 0, len(args))
			for _, name := range args {
				n, err := client().Network(cmd.Context(), name)
				if err != nil {
					return err
				}
				out = append(out, n)
			}
			return writeJSON(cmd.OutOrStdout(), out)
		},
	}
}

func newNetworkRmCmd(client clientFunc) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"remove"},
		Short:   "Remove networks, their endpoints and the links they made",
		Args:    minArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var errs []error
			for _, name := range args {
				if err := client().RemoveNetwork(cmd.Context(), name); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(cmd.OutOrStdout(), name)
			}
			return joinOneLine(errs)
		},
	}
}

// joinOneLine joins errors into one error on one line.
func joinOneLine(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	s := make([]string, len(errs))
	for i, e := range errs {
		s[i] = e.Error()
	}
	return errors.New(strings.Join(s, "; "))
}

func newNetworkSetCmd(client clientFunc) *cobra.Command {
	var (
		ageing   string
		macLimit int
	)
	cmd := &cobra.Command{
		Use:   "set NAME",
		Short: "Change a network's MAC ageing and learning limit",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var req api.NetworkUpdate
			if cmd.Flags().Changed("ageing") {
				req.Ageing = &ageing
			}
			if cmd.Flags().Changed("mac-limit") {
				req.MACLimit = &macLimit
			}
			if req.Ageing == nil && req.MACLimit == nil {
				return usagef(cmd, "nothing to set: give --ageing or --mac-limit")
			}
			_, err := client().UpdateNetwork(cmd.Context(), args[0], req)
			return err
		},
	}
	cmd.Flags().StringVar(&ageing, "ageing", "", "MAC ageing time, like 300s or 5m, or never")
	cmd.Flags().IntVar(&macLimit, "mac-limit", 0, "most learned MAC entries (0: the default, 65536)")
	return cmd
}

func newNetworkConnectCmd(client clientFunc) *cobra.Command {
	var req api.EndpointCreate
	cmd := &cobra.Command{
		Use:   "connect NAME NETNS",
		Short: "Connect a network namespace to a network",
		Long: `connect wires namespace NETNS into the network: a veth pair (--kind tap: a TAP
device) whose inner end, --ifname (default eth0), gets an address from the
network's IPAM and a default route via its gateway. The port is named NETNS.
--ip picks the address (once per subnet); --ip none attaches at L2 only.`,
		Example: `  ip netns add web
  switchyard network connect lan web --ip 198.18.0.10`,
		Args: exactArgs("NAME", "NETNS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Netns = args[1]
			for _, ip := range req.IPs {
				if ip == api.IPNone && len(req.IPs) > 1 {
					return usagef(cmd, "--ip none cannot be combined with addresses")
				}
			}
			switch req.Kind {
			case api.KindVeth, api.KindTap:
			default:
				return usagef(cmd, "invalid --kind %q: want veth or tap", req.Kind)
			}
			p, err := client().Connect(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), portLine(p))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&req.IPs, "ip", nil, "address to give (IPv4 and/or IPv6), or none for L2 only")
	f.StringVar(&req.MAC, "mac", "", "MAC of the inner interface (default: derived from network and namespace)")
	f.StringVar(&req.IfName, "ifname", "eth0", "name of the interface inside the namespace")
	f.StringVar(&req.Kind, "kind", api.KindVeth, "veth (ring port) or tap")
	f.StringArrayVar(&req.Publish, "publish", nil, "[IP:]HOSTPORT[-END]:CTRPORT[-END][/tcp|udp] on the uplink (repeatable)")
	f.StringArrayVar(&req.PublishAllow, "publish-allow", nil, "CIDR: only these sources reach this endpoint's published ports (repeatable)")
	return cmd
}

// portLine is a one-line summary of a port.
func portLine(p api.Port) string {
	parts := []string{p.Name, p.Kind, p.IfName, dash(p.MAC)}
	if p.IPv4 != "" {
		parts = append(parts, p.IPv4)
	}
	if p.IPv6 != "" {
		parts = append(parts, p.IPv6)
	}
	return strings.Join(parts, " ")
}

func newNetworkDisconnectCmd(client clientFunc) *cobra.Command {
	return &cobra.Command{
		Use:   "disconnect NAME NETNS",
		Short: "Disconnect a namespace: remove its port, links and address",
		Args:  exactArgs("NAME", "NETNS"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return client().Disconnect(cmd.Context(), args[0], args[1])
		},
	}
}

func newNetworkAttachCmd(client clientFunc) *cobra.Command {
	var netns string
	cmd := &cobra.Command{
		Use:   "attach NAME IFACE",
		Short: "Make an existing interface a port (like ip link set IFACE master BR)",
		Long: `attach opens IFACE (in the daemon's namespace, or in --netns) as a port of the
network, named IFACE. The interface is set up and promiscuous if it was not;
detach undoes that.`,
		Args: exactArgs("NAME", "IFACE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := client().Attach(cmd.Context(), args[0], api.AttachmentCreate{Iface: args[1], Netns: netns})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), portLine(p))
			return nil
		},
	}
	cmd.Flags().StringVar(&netns, "netns", "", "namespace the interface is in (default: the daemon's)")
	return cmd
}

func newNetworkDetachCmd(client clientFunc) *cobra.Command {
	var netns string
	cmd := &cobra.Command{
		Use:   "detach NAME IFACE",
		Short: "Remove an attached interface from a network",
		Args:  exactArgs("NAME", "IFACE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return client().Detach(cmd.Context(), args[0], args[1], netns)
		},
	}
	cmd.Flags().StringVar(&netns, "netns", "", "namespace the interface is in (checked when given)")
	return cmd
}

func newPortCmd(client clientFunc) *cobra.Command {
	return groupCmd("port", "Manage ports", newPortSetCmd(client))
}

func newPortSetCmd(client clientFunc) *cobra.Command {
	flags := []struct {
		name, help string
	}{
		{"hairpin", "frames may leave by the port they came in on"},
		{"isolated", "reach only non-isolated ports"},
		{"flood", "receive unknown-unicast floods"},
		{"mcast-flood", "receive multicast floods"},
		{"bcast-flood", "receive broadcast floods"},
	}
	vals := make([]string, len(flags))
	cmd := &cobra.Command{
		Use:   "set NAME PORT",
		Short: "Set a port's forwarding flags",
		Long: `set changes the flags of PORT (an endpoint's namespace, an attached interface,
or gateway) in network NAME. Each flag takes on or off.`,
		Example: "  switchyard port set lan web --isolated on --hairpin off",
		Args:    exactArgs("NAME", "PORT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var req api.PortUpdate
			dst := []**bool{&req.Hairpin, &req.Isolated, &req.Flood, &req.McastFlood, &req.BcastFlood}
			for i, f := range flags {
				if !cmd.Flags().Changed(f.name) {
					continue
				}
				var b bool
				switch vals[i] {
				case "on":
					b = true
				case "off":
				default:
					return usagef(cmd, "invalid --%s %q: want on or off", f.name, vals[i])
				}
				*dst[i] = &b
			}
			if req == (api.PortUpdate{}) {
				return usagef(cmd, "nothing to set: give --hairpin, --isolated, --flood, --mcast-flood or --bcast-flood")
			}
			_, err := client().SetPort(cmd.Context(), args[0], args[1], req)
			return err
		},
	}
	for i, f := range flags {
		cmd.Flags().StringVar(&vals[i], f.name, "", f.help+": on or off")
	}
	return cmd
}

func newFDBCmd(client clientFunc) *cobra.Command {
	var flush bool
	cmd := &cobra.Command{
		Use:   "fdb NAME",
		Short: "Show (or flush) a network's MAC table",
		Args:  exactArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if flush {
				k, err := client().FlushFDB(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "flushed %d learned entries\n", k)
				return nil
			}
			es, err := client().FDB(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "MAC\tPORT\tTYPE\tAGE")
			for _, e := range es {
				age := "-"
				if e.Type != "static" {
					age = (time.Duration(e.AgeSeconds*10) * time.Second / 10).String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.MAC, e.Port, e.Type, age)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&flush, "flush", false, "remove the learned entries (static ones stay)")
	return cmd
}
