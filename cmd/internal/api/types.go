// Package api holds the wire types of switchyard's control API (HTTP+JSON
// over a unix socket) and a client for it. The same types, read from YAML,
// are the schema of the daemon's topology file (switchyard daemon --config).
//
// Routes (all bodies JSON; errors as {"error":{"code":...,"message":...}}):
//
//	GET    /v1/ping                                   liveness, {"version":...}
//	GET    /v1/networks                               []Network
//	POST   /v1/networks                               NetworkCreate -> Network (201)
//	GET    /v1/networks/{name}                        Network
//	PATCH  /v1/networks/{name}                        NetworkUpdate -> Network
//	DELETE /v1/networks/{name}                        204
//	POST   /v1/networks/{name}/endpoints              EndpointCreate -> Port (201)
//	DELETE /v1/networks/{name}/endpoints/{netns}      204
//	POST   /v1/networks/{name}/attachments            AttachmentCreate -> Port (201)
//	DELETE /v1/networks/{name}/attachments/{iface}    204 (?netns=NS must match when given)
//	PATCH  /v1/networks/{name}/ports/{port}           PortUpdate -> Port
//	GET    /v1/networks/{name}/fdb                    []FDBEntry
//	DELETE /v1/networks/{name}/fdb                    FDBFlushed
//	GET    /v1/networks/{name}/nat                    NATTable (?max=N flows, default 1000)
package api

import "time"

// DefaultSocket is where the daemon listens and the CLI connects by default.
const DefaultSocket = "/run/switchyard/switchyard.sock"

// DefaultStateDir is where the daemon keeps its state by default.
const DefaultStateDir = "/var/lib/switchyard"

// Drivers, IPAM modes and port kinds.
const (
	DriverBridge  = "bridge"
	DriverMacvlan = "macvlan"

	IPAMDefault = "default"
	IPAMNone    = "none"

	KindVeth     = "veth"
	KindTap      = "tap"
	KindAttached = "attached"
	KindGateway  = "gateway"
	KindParent   = "parent" // a macvlan network's parent interface
	KindHost     = "host"   // a macvlan network's host-access interface

	// GatewayPort is the bridge port name of a network's gateway.
	GatewayPort = "gateway"
)

// Subnet is one subnet of a network. Gateway and IPRange are optional on
// create; the daemon fills the gateway in (first host) unless the network
// has none.
type Subnet struct {
	Subnet  string `json:"subnet" yaml:"subnet"`
	IPRange string `json:"ip_range,omitempty" yaml:"ip_range,omitempty"`
	Gateway string `json:"gateway,omitempty" yaml:"gateway,omitempty"`
}

// NetworkCreate is the body of POST /v1/networks and one network of a
// topology file.
type NetworkCreate struct {
	Name string `json:"name" yaml:"name"`
	// Driver is "bridge" (default) or "macvlan".
	Driver string `json:"driver,omitempty" yaml:"driver,omitempty"`
	// Mode, Parent, ParentNetns and HostAccess belong to the macvlan
	// driver: mode bridge (default), private, vepa or passthru; the parent
	// interface and its namespace (empty: the daemon's); HostAccess adds
	// an interface in the parent's namespace that reaches the endpoints.
	Mode        string `json:"mode,omitempty" yaml:"mode,omitempty"`
	Parent      string `json:"parent,omitempty" yaml:"parent,omitempty"`
	ParentNetns string `json:"parent_netns,omitempty" yaml:"parent_netns,omitempty"`
	HostAccess  bool   `json:"host_access,omitempty" yaml:"host_access,omitempty"`
	// IPAM is "default" (addresses and a gateway) or "none" (a pure L2
	// switch: no subnet, no gateway, endpoints get no address).
	IPAM    string   `json:"ipam,omitempty" yaml:"ipam,omitempty"`
	Subnets []Subnet `json:"subnets,omitempty" yaml:"subnets,omitempty"`
	// AuxAddresses maps names to addresses the IPAM never hands out.
	AuxAddresses map[string]string `json:"aux_addresses,omitempty" yaml:"aux_addresses,omitempty"`
	// Uplink is the interface the gateway routes to the outside through,
	// with masquerade and published ports; UplinkNetns its namespace
	// (empty: the daemon's). UplinkIP are the gateway's own external
	// addresses there, in CIDR form, comma-separated; the first
	// masquerades. UplinkGateway is the next hop for off-link
	// destinations.
	Uplink        string `json:"uplink,omitempty" yaml:"uplink,omitempty"`
	UplinkNetns   string `json:"uplink_netns,omitempty" yaml:"uplink_netns,omitempty"`
	UplinkIP      string `json:"uplink_ip,omitempty" yaml:"uplink_ip,omitempty"`
	UplinkGateway string `json:"uplink_gateway,omitempty" yaml:"uplink_gateway,omitempty"`
	// PublishAllow, when set, are the only sources (CIDRs) that may reach
	// the network's published ports.
	PublishAllow []string `json:"publish_allow,omitempty" yaml:"publish_allow,omitempty"`
	// NATMaxFlows bounds the connection table (0: 262144).
	NATMaxFlows int `json:"nat_max_flows,omitempty" yaml:"nat_max_flows,omitempty"`
	// NATTimeouts overrides flow timeouts by name (tcp-established, udp,
	// ...) as Go durations.
	NATTimeouts map[string]string `json:"nat_timeouts,omitempty" yaml:"nat_timeouts,omitempty"`
	// Internal networks have no uplink: the gateway routes nothing.
	Internal bool `json:"internal,omitempty" yaml:"internal,omitempty"`
	// MTU of the endpoints' links; 0 means 1500.
	MTU int `json:"mtu,omitempty" yaml:"mtu,omitempty"`
	// Ageing is the MAC ageing time as a Go duration ("5m"), or "never";
	// empty means 300s.
	Ageing string `json:"ageing,omitempty" yaml:"ageing,omitempty"`
	// MACLimit caps the learned MAC entries; 0 means the default (65536).
	MACLimit int `json:"mac_limit,omitempty" yaml:"mac_limit,omitempty"`
}

// NetworkUpdate is the body of PATCH /v1/networks/{name}; nil fields stay.
type NetworkUpdate struct {
	Ageing   *string `json:"ageing,omitempty"`
	MACLimit *int    `json:"mac_limit,omitempty"`
}

// EndpointCreate is the body of POST /v1/networks/{name}/endpoints: connect
// a network namespace.
type EndpointCreate struct {
	Netns string `json:"netns" yaml:"netns"`
	// IPs are wanted addresses (at most one per subnet), without prefix
	// length. Empty: allocate. ["none"]: attach at L2 only (no address,
	// no route).
	IPs []string `json:"ips,omitempty" yaml:"ips,omitempty"`
	// MAC of the inner interface; empty means one derived from the network
	// and namespace names (stable across reconnects).
	MAC string `json:"mac,omitempty" yaml:"mac,omitempty"`
	// IfName is the inner interface's name; default eth0.
	IfName string `json:"ifname,omitempty" yaml:"ifname,omitempty"`
	// Kind is "veth" (default) or "tap".
	Kind string `json:"kind,omitempty" yaml:"kind,omitempty"`
	// Publish maps ports of the network's uplink addresses to the
	// endpoint: [IP:]HOSTPORT[-END]:CTRPORT[-END][/tcp|udp].
	Publish []string `json:"publish,omitempty" yaml:"publish,omitempty"`
	// PublishAllow, when set, are the only sources (CIDRs) that may reach
	// this endpoint's published ports.
	PublishAllow []string `json:"publish_allow,omitempty" yaml:"publish_allow,omitempty"`
}

// IPNone in EndpointCreate.IPs attaches an endpoint at L2 only.
const IPNone = "none"

// AttachmentCreate is the body of POST /v1/networks/{name}/attachments: an
// existing interface becomes a port, as `ip link set IFACE master BR` would
// make it one of a kernel bridge.
type AttachmentCreate struct {
	Iface string `json:"iface" yaml:"iface"`
	// Netns is the interface's namespace; empty means the daemon's own.
	Netns string `json:"netns,omitempty" yaml:"netns,omitempty"`
}

// PortFlags are a port's forwarding flags.
type PortFlags struct {
	Hairpin    bool `json:"hairpin"`
	Isolated   bool `json:"isolated"`
	Flood      bool `json:"flood"`
	McastFlood bool `json:"mcast_flood"`
	BcastFlood bool `json:"bcast_flood"`
}

// PortUpdate is the body of PATCH /v1/networks/{name}/ports/{port}; nil
// fields stay.
type PortUpdate struct {
	Hairpin    *bool `json:"hairpin,omitempty"`
	Isolated   *bool `json:"isolated,omitempty"`
	Flood      *bool `json:"flood,omitempty"`
	McastFlood *bool `json:"mcast_flood,omitempty"`
	BcastFlood *bool `json:"bcast_flood,omitempty"`
}

// Counters are a port's forwarding counters (kept by the switch) and, where
// the backend keeps them, its I/O counters.
type Counters struct {
	RxFrames  uint64            `json:"rx_frames"`
	RxBytes   uint64            `json:"rx_bytes"`
	TxFrames  uint64            `json:"tx_frames"`
	TxBytes   uint64            `json:"tx_bytes"`
	TxFlooded uint64            `json:"tx_flooded"`
	TxUnicast uint64            `json:"tx_unicast"`
	Drops     map[string]uint64 `json:"drops,omitempty"`
	// IO are the backend's counters (ring or TAP), when it keeps them.
	IO *IOCounters `json:"io,omitempty"`
}

// IOCounters are a port backend's own counters.
type IOCounters struct {
	RxFrames  uint64 `json:"rx_frames"`
	RxBytes   uint64 `json:"rx_bytes"`
	TxFrames  uint64 `json:"tx_frames"`
	TxBytes   uint64 `json:"tx_bytes"`
	RxDropped uint64 `json:"rx_dropped"`
	TxDropped uint64 `json:"tx_dropped"`
	RxErrors  uint64 `json:"rx_errors"`
	TxErrors  uint64 `json:"tx_errors"`
}

// Port is one port of a network: an endpoint (veth or tap), an attached
// interface, or the gateway.
type Port struct {
	// Name is the port's name: the endpoint's namespace, the attached
	// interface's name, or "gateway".
	Name string `json:"name"`
	Kind string `json:"kind"` // veth | tap | attached | gateway
	// Netns is the namespace of the interface (empty: the daemon's own).
	Netns string `json:"netns,omitempty"`
	// IfName is the interface inside Netns.
	IfName string `json:"ifname,omitempty"`
	// HostLink is the veth's host end (in the daemon's namespace).
	HostLink string    `json:"host_link,omitempty"`
	MAC      string    `json:"mac,omitempty"`
	IPv4     string    `json:"ipv4,omitempty"` // with prefix length
	IPv6     string    `json:"ipv6,omitempty"` // with prefix length
	Flags    PortFlags `json:"flags"`
	Offloads bool      `json:"offloads"`
	// Publish are the endpoint's published ports, as given.
	Publish      []string `json:"publish,omitempty"`
	PublishAllow []string `json:"publish_allow,omitempty"`
	// Up is false when the port is in the state but not on the switch
	// (its link went away and it is being cleaned up).
	Up       bool     `json:"up"`
	Counters Counters `json:"counters"`
	// Gateway is the gateway's own counters (gateway port only).
	Gateway map[string]uint64 `json:"gateway,omitempty"`
}

// Uplink is a network's way out, as inspect shows it.
type Uplink struct {
	Iface   string   `json:"iface"`
	Netns   string   `json:"netns,omitempty"`
	MAC     string   `json:"mac"`
	Addrs   []string `json:"addrs"`
	Gateway string   `json:"gateway,omitempty"`
	// Up is false when the uplink could not be reopened at start.
	Up bool `json:"up"`
}

// Network is a network as GET /v1/networks/{name} returns it.
type Network struct {
	Name         string            `json:"name"`
	Driver       string            `json:"driver"`
	IPAM         string            `json:"ipam"`
	Subnets      []Subnet          `json:"subnets,omitempty"` // effective: gateways filled in
	AuxAddresses map[string]string `json:"aux_addresses,omitempty"`
	Internal     bool              `json:"internal"`
	MTU          int               `json:"mtu"`
	Ageing       string            `json:"ageing"`
	MACLimit     int               `json:"mac_limit"` // 0: the default
	// GatewayMAC is the gateway's MAC (empty without a gateway).
	GatewayMAC   string            `json:"gateway_mac,omitempty"`
	Uplink       *Uplink           `json:"uplink,omitempty"`
	PublishAllow []string          `json:"publish_allow,omitempty"`
	NATMaxFlows  int               `json:"nat_max_flows,omitempty"`
	NATTimeouts  map[string]string `json:"nat_timeouts,omitempty"`
	// Macvlan describes a macvlan network's parent and mode.
	Macvlan *Macvlan  `json:"macvlan,omitempty"`
	Created time.Time `json:"created"`
	Ports   []Port    `json:"ports"`
}

// Macvlan is what Network shows of a macvlan network.
type Macvlan struct {
	Mode        string `json:"mode"`
	Parent      string `json:"parent"`
	ParentNetns string `json:"parent_netns,omitempty"`
	ParentMAC   string `json:"parent_mac,omitempty"`
	// HostAccess is the interface in the parent's namespace that reaches
	// the endpoints (with --host-access), and its address.
	HostAccess *Port `json:"host_access,omitempty"`
	// ParentPort is the parent as a port of the switch, with counters.
	ParentPort *Port `json:"parent_port,omitempty"`
}

// FDBEntry is one row of a network's MAC table.
type FDBEntry struct {
	MAC  string `json:"mac"`
	Port string `json:"port"`
	Type string `json:"type"` // static | learned
	// AgeSeconds is the time since the entry was last refreshed (0 for
	// static entries).
	AgeSeconds float64 `json:"age_seconds"`
}

// NATFlow is one connection-table entry.
type NATFlow struct {
	Proto string `json:"proto"`
	Kind  string `json:"kind"` // masquerade | published | hairpin
	// Original is the first packet as it arrived (src -> dst);
	// Translated the same packet as it left.
	OrigSrc    string  `json:"orig_src"`
	OrigDst    string  `json:"orig_dst"`
	NewSrc     string  `json:"new_src"`
	NewDst     string  `json:"new_dst"`
	State      string  `json:"state"`
	TimeoutSec float64 `json:"timeout_s"`
	Packets    uint64  `json:"packets"`
	Bytes      uint64  `json:"bytes"`
}

// NATTable is the answer of GET /v1/networks/{name}/nat.
type NATTable struct {
	Flows    int               `json:"flows"`
	MaxFlows int               `json:"max_flows"`
	Created  uint64            `json:"created"`
	Expired  uint64            `json:"expired"`
	Evicted  uint64            `json:"evicted"`
	Drops    map[string]uint64 `json:"drops,omitempty"`
	Mappings []string          `json:"mappings,omitempty"`
	Entries  []NATFlow         `json:"entries"`
	// Truncated is set when more flows exist than were listed.
	Truncated bool `json:"truncated,omitempty"`
}

// FDBFlushed is the answer of DELETE /v1/networks/{name}/fdb.
type FDBFlushed struct {
	Flushed int `json:"flushed"`
}

// Ping is the answer of GET /v1/ping.
type Ping struct {
	Version  string `json:"version"`
	StateDir string `json:"state_dir"`
}

// NetworkSpec is one network of a topology file: the network and what to
// connect to it.
type NetworkSpec struct {
	NetworkCreate `yaml:",inline"`
	Endpoints     []EndpointCreate   `json:"endpoints,omitempty" yaml:"endpoints,omitempty"`
	Attachments   []AttachmentCreate `json:"attachments,omitempty" yaml:"attachments,omitempty"`
}

// Topology is a declarative set of networks (switchyard daemon --config).
type Topology struct {
	Networks []NetworkSpec `json:"networks" yaml:"networks"`
}
