package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"time"

	"github.com/switchyard-net/switchyard/cmd/internal/api"
	"github.com/switchyard-net/switchyard/ipam"
	"github.com/switchyard-net/switchyard/nat"
)

// stateVersion is the version of the state file's format.
const stateVersion = 1

// File names in the state dir.
const (
	stateFileName = "state.json"
	ipamFileName  = "ipam.json"
	lockFileName  = "lock"
)

// stateFile is the daemon's state file: every network with what is
// connected to it. The IPAM keeps the leases in its own file.
type stateFile struct {
	Version  int                   `json:"version"`
	Networks map[string]*netRecord `json:"networks"`
}

// netRecord is a network as persisted.
type netRecord struct {
	Name   string `json:"name"`
	Driver string `json:"driver"`
	IPAM   string `json:"ipam"`
	// Subnets is the effective IPAM config (gateways filled in); empty
	// with IPAM none.
	Subnets  []ipam.SubnetConfig   `json:"subnets,omitempty"`
	Aux      map[string]netip.Addr `json:"aux_addresses,omitempty"`
	Internal bool                  `json:"internal,omitempty"`
	MTU      int                   `json:"mtu"`
	// Ageing is the MAC ageing time; 0 means the default, negative never.
	Ageing     time.Duration `json:"ageing_ns"`
	MACLimit   int           `json:"mac_limit,omitempty"`
	GatewayMAC string        `json:"gateway_mac,omitempty"`
	// GatewayFlags are the gateway port's flags (when it has one).
	GatewayFlags api.PortFlags `json:"gateway_flags"`
	// Uplink, when set, is the gateway's way out, with NAT.
	Uplink       *uplinkRecord  `json:"uplink,omitempty"`
	PublishAllow []netip.Prefix `json:"publish_allow,omitempty"`
	NATMaxFlows  int            `json:"nat_max_flows,omitempty"`
	NATTimeouts  nat.Timeouts   `json:"nat_timeouts"`
	Created      time.Time      `json:"created"`
	// Endpoints by namespace name (= port name).
	Endpoints map[string]*epRecord `json:"endpoints"`
	// Attachments by interface name (= port name).
	Attachments map[string]*attRecord `json:"attachments"`
	// Macvlan is a macvlan network's parent and mode (nil for a bridge).
	Macvlan *mvRecord `json:"macvlan,omitempty"`
}

// hasGateway reports whether the network has a gateway port.
func (n *netRecord) hasGateway() bool { return n.GatewayMAC != "" }

// epRecord is an endpoint as persisted.
type epRecord struct {
	Netns    string         `json:"netns"`
	Kind     string         `json:"kind"` // veth | tap
	IfName   string         `json:"ifname"`
	HostLink string         `json:"host_link,omitempty"` // veth host end
	MAC      string         `json:"mac"`
	Addrs    []netip.Prefix `json:"addrs,omitempty"`
	Gateways []netip.Addr   `json:"gateways,omitempty"`
	Flags    api.PortFlags  `json:"flags"`
	// Publish are the endpoint's published ports; PublishAllow the
	// sources they take (empty: any).
	Publish      []publishRecord `json:"publish,omitempty"`
	PublishAllow []netip.Prefix  `json:"publish_allow,omitempty"`
	// Pending is set while a connect is creating the links: a record
	// still pending at start is the remains of a crash, cleaned up.
	Pending bool `json:"pending,omitempty"`
}

// attRecord is an attached interface as persisted.
type attRecord struct {
	Iface string        `json:"iface"`
	Netns string        `json:"netns,omitempty"`
	Flags api.PortFlags `json:"flags"`
	// SetUp and SetPromisc record what attaching changed on the link, to
	// be undone on detach.
	SetUp      bool `json:"set_up,omitempty"`
	SetPromisc bool `json:"set_promisc,omitempty"`
}

func newState() *stateFile {
	return &stateFile{Version: stateVersion, Networks: map[string]*netRecord{}}
}

// clone returns a deep copy of s (through JSON: the state is small).
func (s *stateFile) clone() *stateFile {
	b, err := json.Marshal(s)
	if err != nil {
		panic(fmt.Sprintf("daemon: state does not marshal: %v", err))
	}
	out := newState()
	if err := json.Unmarshal(b, out); err != nil {
		panic(fmt.Sprintf("daemon: state does not unmarshal: %v", err))
	}
	return out
}

func (s *stateFile) encode() ([]byte, error) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// loadState reads the state file at path. A missing file is an empty
// state; a file that cannot be parsed is an error naming the path, never a
// silent reset.
func loadState(path string) (*stateFile, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return newState(), nil
	}
	if err != nil {
		return nil, api.Errorf(api.CodeInternal, "reading state file %s: %v", path, err)
	}
	s, err := decodeState(data)
	if err != nil {
		return nil, api.Errorf(api.CodeStateCorrupt, "state file %s is corrupt: %v; fix or move it aside", path, err)
	}
	return s, nil
}

func decodeState(data []byte) (*stateFile, error) {
	s := newState()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(s); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty file")
		}
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("data after the JSON document at offset %d", dec.InputOffset())
	}
	if s.Version != stateVersion {
		return nil, fmt.Errorf("version %d, want %d", s.Version, stateVersion)
	}
	if s.Networks == nil {
		s.Networks = map[string]*netRecord{}
	}
	for name, n := range s.Networks {
		if n == nil {
			return nil, fmt.Errorf("network %q: null entry", name)
		}
		if n.Name != name {
			return nil, fmt.Errorf("network %q: recorded under name %q", name, n.Name)
		}
		if err := checkNetworkName(name); err != nil {
			return nil, fmt.Errorf("network %q: %v", name, err)
		}
		if err := checkMacvlanRecord(n); err != nil {
			return nil, fmt.Errorf("network %q: %v", name, err)
		}
		if n.Endpoints == nil {
			n.Endpoints = map[string]*epRecord{}
		}
		if n.Attachments == nil {
			n.Attachments = map[string]*attRecord{}
		}
		for k, ep := range n.Endpoints {
			if ep == nil || ep.Netns != k || (ep.Kind != api.KindVeth && ep.Kind != api.KindTap) || ep.IfName == "" ||
				(ep.Kind == api.KindVeth && ep.HostLink == "") {
				return nil, fmt.Errorf("network %q: endpoint %q: incomplete record", name, k)
			}
			if err := checkEndpointRecord(ep); err != nil {
				return nil, fmt.Errorf("network %q: endpoint %q: %v", name, k, err)
			}
		}
		for k, at := range n.Attachments {
			if at == nil || at.Iface != k {
				return nil, fmt.Errorf("network %q: attachment %q: incomplete record", name, k)
			}
			if err := checkAttachmentRecord(at); err != nil {
				return nil, fmt.Errorf("network %q: attachment %q: %v", name, k, err)
			}
		}
	}
	return s, nil
}

// checkEndpointRecord checks the names in an endpoint record as a connect
// would have: teardown acts on them, so an empty or odd one (a hand edit)
// could make it act on the daemon's own namespace or on a link not ours.
func checkEndpointRecord(ep *epRecord) error {
	if err := checkNetnsName(ep.Netns); err != nil {
		return err
	}
	if err := checkIfName(ep.IfName); err != nil {
		return err
	}
	switch {
	case ep.Kind == api.KindVeth:
		if err := checkIfName(ep.HostLink); err != nil {
			return fmt.Errorf("host link: %v", err)
		}
	case ep.HostLink != "":
		return fmt.Errorf("a %s endpoint has no host link, but %q is recorded", ep.Kind, ep.HostLink)
	}
	return nil
}

// checkAttachmentRecord checks the names in an attachment record as an
// attach would have.
func checkAttachmentRecord(at *attRecord) error {
	if err := checkIfName(at.Iface); err != nil {
		return err
	}
	if at.Iface == "lo" {
		return errors.New("the loopback interface cannot be a port")
	}
	if at.Netns != "" {
		if err := checkNetnsName(at.Netns); err != nil {
			return err
		}
	}
	return nil
}
