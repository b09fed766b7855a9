package ipam

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// SubnetConfig is one subnet of a network.
type SubnetConfig struct {
	Subnet  netip.Prefix `json:"subnet"`
	IPRange netip.Prefix `json:"ip_range,omitzero"` // zero = whole subnet
	Gateway netip.Addr   `json:"gateway,omitzero"`  // zero = first host (filled in by AddNetwork)
}

// Config is the address configuration of a network.
type Config struct {
	// Subnets holds at most one IPv4 and one IPv6 subnet. Empty means: pick
	// one IPv4 default pool (see DefaultPools).
	Subnets []SubnetConfig `json:"subnets"`
	// Aux maps a name to an address reserved in one of the subnets; it is
	// never handed out. Aux addresses need explicit subnets.
	Aux map[string]netip.Addr `json:"aux_addresses,omitempty"`
	// NoGateway leaves the gateway out: no address is reserved for it and
	// Gateway must be zero (e.g. macvlan without a gateway).
	NoGateway bool `json:"no_gateway,omitempty"`
}

// clone returns a deep copy of c.
func (c Config) clone() Config {
	out := Config{NoGateway: c.NoGateway}
	if c.Subnets != nil {
		out.Subnets = append([]SubnetConfig(nil), c.Subnets...)
	}
	if c.Aux != nil {
		out.Aux = make(map[string]netip.Addr, len(c.Aux))
		for k, v := range c.Aux {
			out.Aux[k] = v
		}
	}
	return out
}

// DefaultPools returns Docker's default address pools in the order they are
// tried when a network is created without a subnet: 172.17.0.0/16,
// 172.18.0.0/16, 172.19.0.0/16, then 172.20.0.0/14, 172.24.0.0/14 and
// 172.28.0.0/14 split into /16s, then 192.168.0.0/16 split into /20s (31 in
// all). The caller owns the returned slice.
func DefaultPools() []netip.Prefix {
	var out []netip.Prefix
	for _, b := range []byte{17, 18, 19} {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{172, b, 0, 0}), 16))
	}
	for b := 20; b < 32; b++ { // 172.20/14, 172.24/14, 172.28/14 as /16s
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{172, byte(b), 0, 0}), 16))
	}
	for c := 0; c < 256; c += 16 {
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(c), 0}), 20))
	}
	return out
}

// Validate checks c on its own, without looking at other networks: at most
// one subnet per family, canonical prefixes, the ip-range inside its subnet,
// the gateway inside its subnet and not its network or broadcast address,
// aux addresses inside a subnet and clear of the gateway and of each other.
// It returns the first problem found as one line wrapping a sentinel error.
func (c Config) Validate() error {
	_, err := c.effective()
	return err
}

// effective validates c and returns a copy with the gateways filled in. With
// no subnets it returns the copy unchanged (the pool is picked by AddNetwork).
func (c Config) effective() (Config, error) {
	out := c.clone()
	if len(c.Subnets) == 0 {
		if len(c.Aux) > 0 {
			return Config{}, errorf(ErrInvalid, "aux addresses need an explicit subnet")
		}
		return out, nil
	}
	if len(c.Subnets) > 2 {
		return Config{}, errorf(ErrInvalid, "%d subnets given; at most one IPv4 and one IPv6", len(c.Subnets))
	}
	for i := range out.Subnets {
		sc := &out.Subnets[i]
		if err := checkSubnet(*sc); err != nil {
			return Config{}, err
		}
		for _, o := range out.Subnets[:i] {
			if o.Subnet.Addr().Is4() == sc.Subnet.Addr().Is4() {
				return Config{}, errorf(ErrInvalid, "two %s subnets given (%s, %s); at most one per family",
					family(sc.Subnet.Addr()), o.Subnet, sc.Subnet)
			}
		}
		if c.NoGateway {
			if sc.Gateway.IsValid() {
				return Config{}, errorf(ErrInvalid, "gateway %s given with no_gateway set", sc.Gateway)
			}
			continue
		}
		if !sc.Gateway.IsValid() {
			sc.Gateway = firstHost(sc.Subnet)
		}
	}
	names := make([]string, 0, len(c.Aux))
	for n := range c.Aux {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		a := c.Aux[n]
		if err := checkName("aux address name", n); err != nil {
			return Config{}, err
		}
		if err := checkAddr("aux address "+quoteName(n), a); err != nil {
			return Config{}, err
		}
		sc, ok := out.subnetFor(a)
		if !ok {
			return Config{}, errorf(ErrOutsideSubnet, "aux address %s=%s is outside the network's subnets (%s)",
				n, a, out.subnetList())
		}
		if what := formReserved(sc.Subnet, a); what != "" {
			return Config{}, errorf(ErrInvalid, "aux address %s=%s is the %s of %s", n, a, what, sc.Subnet)
		}
		if sc.Gateway == a {
			return Config{}, errorf(ErrAuxCollision, "aux address %s=%s collides with the gateway of %s", n, a, sc.Subnet)
		}
		for _, p := range names[:i] {
			if c.Aux[p] == a {
				return Config{}, errorf(ErrAuxCollision, "aux addresses %s and %s are both %s", p, n, a)
			}
		}
	}
	return out, nil
}

func checkSubnet(sc SubnetConfig) error {
	p := sc.Subnet
	if !p.IsValid() {
		return errorf(ErrInvalid, "subnet missing or invalid")
	}
	if p.Addr().Is4In6() {
		return errorf(ErrInvalid, "subnet %s is IPv4-mapped IPv6; give it as IPv4", p)
	}
	if p.Masked() != p {
		return errorf(ErrInvalid, "subnet %s has host bits set (did you mean %s?)", p, p.Masked())
	}
	if r := sc.IPRange; r.IsValid() {
		if r.Masked() != r {
			return errorf(ErrInvalid, "ip-range %s has host bits set (did you mean %s?)", r, r.Masked())
		}
		if r.Bits() < p.Bits() || !p.Contains(r.Addr()) {
			return errorf(ErrRangeNotInSubnet, "ip-range %s is not inside subnet %s", r, p)
		}
		if r.IsSingleIP() {
			if what := formReserved(p, r.Addr()); what != "" {
				return errorf(ErrInvalid, "ip-range %s holds only the %s of %s", r, what, p)
			}
		}
	}
	if g := sc.Gateway; g.IsValid() {
		if err := checkAddr("gateway", g); err != nil {
			return err
		}
		if !p.Contains(g) {
			return errorf(ErrOutsideSubnet, "gateway %s is outside subnet %s", g, p)
		}
		if what := formReserved(p, g); what != "" {
			return errorf(ErrInvalid, "gateway %s is the %s of %s", g, what, p)
		}
	}
	return nil
}

// checkAddr rejects addresses that cannot be compared with a subnet's.
func checkAddr(what string, a netip.Addr) error {
	switch {
	case !a.IsValid():
		return errorf(ErrInvalid, "%s missing or invalid", what)
	case a.Zone() != "":
		return errorf(ErrInvalid, "%s %s has a zone; give it without %%%s", what, a, a.Zone())
	case a.Is4In6():
		return errorf(ErrInvalid, "%s %s is IPv4-mapped IPv6; give it as %s", what, a, a.Unmap())
	}
	return nil
}

// checkName rejects empty names and names that would break a one-line
// message.
func checkName(what, n string) error {
	if n == "" {
		return errorf(ErrInvalid, "%s is empty", what)
	}
	if strings.IndexFunc(n, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return errorf(ErrInvalid, "%s %q has control characters", what, n)
	}
	return nil
}

func quoteName(n string) string {
	if strings.IndexFunc(n, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return fmt.Sprintf("%q", n)
	}
	return n
}

func (c *Config) subnetFor(a netip.Addr) (SubnetConfig, bool) {
	for _, sc := range c.Subnets {
		if sc.Subnet.Contains(a) {
			return sc, true
		}
	}
	return SubnetConfig{}, false
}

func (c *Config) subnetList() string {
	s := make([]string, len(c.Subnets))
	for i, sc := range c.Subnets {
		s[i] = sc.Subnet.String()
	}
	return strings.Join(s, ", ")
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// lastAddr returns the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	p = p.Masked()
	if p.Addr().Is4() {
		b := p.Addr().As4()
		setHostBits(b[:], p.Bits())
		return netip.AddrFrom4(b)
	}
	b := p.Addr().As16()
	setHostBits(b[:], p.Bits())
	return netip.AddrFrom16(b)
}

func setHostBits(b []byte, bits int) {
	for i := range b {
		switch {
		case bits >= 8*(i+1):
		case bits <= 8*i:
			b[i] = 0xff
		default:
			b[i] |= 0xff >> (bits - 8*i)
		}
	}
}

// formReserved says whether a is never usable by its place in p: for IPv4
// the network and broadcast addresses of subnets up to /30 (a /31 uses both
// addresses, RFC 3021; a /32 its only one); for IPv6 the subnet-router
// anycast address (host part all zero) of subnets up to /126 (a /127 uses
// both, RFC 6164; a /128 its only one). It returns what a is, or "".
func formReserved(p netip.Prefix, a netip.Addr) string {
	max := p.Addr().BitLen()
	if p.Bits() > max-2 {
		return ""
	}
	if a == p.Addr() {
		if max == 32 {
			return "network address"
		}
		return "subnet-router anycast address"
	}
	if max == 32 && a == lastAddr(p) {
		return "broadcast address"
	}
	return ""
}

// firstHost returns the default gateway of p: its first usable address.
func firstHost(p netip.Prefix) netip.Addr {
	if p.Bits() > p.Addr().BitLen()-2 {
		return p.Addr()
	}
	return p.Addr().Next()
}
