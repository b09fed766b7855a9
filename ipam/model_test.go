package ipam

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// refSubnet is the reference allocator: every address of a small subnet in a
// list, a map of owners, and the rules written out the plain way.
type refSubnet struct {
	prefix   netip.Prefix
	all      []netip.Addr // every address of the subnet, ascending
	inRange  []netip.Addr // the addresses of the ip-range (or subnet), ascending
	blocked  map[netip.Addr]bool
	special  map[netip.Addr]bool // network, broadcast, anycast
	owner    map[netip.Addr]string
	last     int // index into inRange of the last next-free address; -1 none
	hasRange bool
}

type refNet struct {
	subs    []*refSubnet
	holding map[string][]netip.Addr
}

func addrsOf(p netip.Prefix) []netip.Addr {
	var out []netip.Addr
	for a := p.Masked().Addr(); p.Contains(a); a = a.Next() {
		out = append(out, a)
	}
	return out
}

func newRef(cfg Config) *refNet {
	r := &refNet{holding: map[string][]netip.Addr{}}
	for _, sc := range cfg.Subnets {
		s := &refSubnet{prefix: sc.Subnet, all: addrsOf(sc.Subnet), blocked: map[netip.Addr]bool{},
			special: map[netip.Addr]bool{}, owner: map[netip.Addr]string{}, last: -1}
		max := sc.Subnet.Addr().BitLen()
		if sc.Subnet.Bits() <= max-2 {
			s.special[s.all[0]] = true
			if max == 32 {
				s.special[s.all[len(s.all)-1]] = true
			}
		}
		rng := sc.Subnet
		if sc.IPRange.IsValid() {
			rng, s.hasRange = sc.IPRange, true
		}
		s.inRange = addrsOf(rng)
		if !cfg.NoGateway {
			gw := sc.Gateway
			if !gw.IsValid() { // the rule: first address that is not special
				gw = s.all[0]
				if s.special[gw] {
					gw = s.all[1]
				}
			}
			s.blocked[gw] = true
		}
		for _, a := range cfg.Aux {
			s.blocked[a] = true
		}
		r.subs = append(r.subs, s)
	}
	return r
}

// allocate returns the addresses or the sentinel the implementation must
// return.
func (r *refNet) allocate(owner string, want netip.Addr) ([]netip.Addr, error) {
	if _, ok := r.holding[owner]; ok {
		return nil, ErrDuplicateOwner
	}
	got := make([]netip.Addr, len(r.subs))
	if want.IsValid() {
		found := false
		for i, s := range r.subs {
			if !s.prefix.Contains(want) {
				continue
			}
			found = true
			switch {
			case s.special[want]:
				return nil, ErrInvalid
			case s.blocked[want] || s.owner[want] != "":
				return nil, ErrTaken
			}
			got[i] = want
		}
		if !found {
			return nil, ErrOutsideSubnet
		}
	}
	next := make([]int, len(r.subs))
	for i, s := range r.subs {
		next[i] = -1
		if got[i].IsValid() {
			continue
		}
		n := len(s.inRange)
		for k := 1; k <= n; k++ {
			j := (s.last + k) % n
			if s.last < 0 {
				j = k - 1
			}
			a := s.inRange[j]
			if !s.special[a] && !s.blocked[a] && s.owner[a] == "" {
				got[i], next[i] = a, j
				break
			}
		}
		if !got[i].IsValid() {
			return nil, ErrExhausted
		}
	}
	for i, s := range r.subs {
		s.owner[got[i]] = owner
		if next[i] >= 0 {
			s.last = next[i]
		}
	}
	r.holding[owner] = got
	return got, nil
}

func (r *refNet) release(owner string) error {
	as, ok := r.holding[owner]
	if !ok {
		return ErrNotAllocated
	}
	for _, a := range as {
		for _, s := range r.subs {
			delete(s.owner, a)
		}
	}
	delete(r.holding, owner)
	return nil
}

func (r *refNet) releaseAddr(a netip.Addr) error {
	for _, s := range r.subs {
		if !s.prefix.Contains(a) {
			continue
		}
		o := s.owner[a]
		if o == "" {
			return ErrNotAllocated
		}
		delete(s.owner, a)
		var rest []netip.Addr
		for _, b := range r.holding[o] {
			if b != a {
				rest = append(rest, b)
			}
		}
		if len(rest) == 0 {
			delete(r.holding, o)
		} else {
			r.holding[o] = rest
		}
		return nil
	}
	return ErrOutsideSubnet
}

func (r *refNet) leases() []Lease {
	out := []Lease{}
	for _, s := range r.subs {
		for _, a := range s.all {
			if o := s.owner[a]; o != "" {
				out = append(out, Lease{a, o})
			}
		}
	}
	return out
}

// modelConfigs are the networks the randomized and fuzz tests run on: small
// enough for the reference to list every address, and covering ranges, aux
// addresses, /31, /32, /127, /128, no gateway, dual stack and the top of both
// address spaces.
var modelConfigs = []Config{
	{Subnets: []SubnetConfig{{Subnet: pp("198.18.0.0/28")}}},
	{Subnets: []SubnetConfig{{Subnet: pp("198.18.0.0/27"), IPRange: pp("198.18.0.8/29"), Gateway: ap("198.18.0.30")}},
		Aux: map[string]netip.Addr{"x": ap("198.18.0.9"), "y": ap("198.18.0.3")}},
	{Subnets: []SubnetConfig{{Subnet: pp("198.18.0.0/31")}}},
	{NoGateway: true, Subnets: []SubnetConfig{{Subnet: pp("198.18.0.0/30")}}},
	{Subnets: []SubnetConfig{{Subnet: pp("198.18.0.0/29")}, {Subnet: pp("fd00:198:18::/125"), IPRange: pp("fd00:198:18::4/126")}},
		Aux: map[string]netip.Addr{"z": ap("fd00:198:18::5")}},
	{Subnets: []SubnetConfig{{Subnet: pp("255.255.255.240/28"), Gateway: ap("255.255.255.254")}, {Subnet: pp("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0/124")}}},
	{NoGateway: true, Subnets: []SubnetConfig{{Subnet: pp("fd00::/127")}}},
	{NoGateway: true, Subnets: []SubnetConfig{{Subnet: pp("198.18.0.7/32")}, {Subnet: pp("fd00::7/128")}}},
	{Subnets: []SubnetConfig{{Subnet: pp("198.18.0.0/26"), IPRange: pp("198.18.0.32/27")}, {Subnet: pp("fd00:198:18::/122")}}},
}

// runModel drives an IPAM and the reference with operations decoded from ops
// and fails on the first difference in results, errors or state.
func runModel(t *testing.T, ops []byte) {
	if len(ops) == 0 {
		return
	}
	cfg := modelConfigs[int(ops[0])%len(modelConfigs)]
	ops = ops[1:]
	path := filepath.Join(t.TempDir(), "ipam.json")
	m, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	m.noSync = true
	if _, err := m.AddNetwork("n", cfg); err != nil {
		t.Fatalf("AddNetwork(%+v): %v", cfg, err)
	}
	ref := newRef(cfg)
	// pick maps a byte to an address of one of the subnets, or outside all.
	pick := func(b byte) netip.Addr {
		if b == 0xff {
			return ap("203.0.113.1")
		}
		s := ref.subs[int(b>>6)%len(ref.subs)]
		return s.all[int(b&0x3f)%len(s.all)]
	}
	check := func(step int, what string, err, want error) {
		t.Helper()
		if (err == nil) != (want == nil) || (want != nil && !errors.Is(err, want)) {
			t.Fatalf("step %d %s: err %v, want %v", step, what, err, want)
		}
	}
	for step := 0; len(ops) >= 3; step++ {
		op, x, y := ops[0]%8, ops[1], ops[2]
		ops = ops[3:]
		owner := fmt.Sprint("o", x%8)
		switch op {
		case 0, 1, 2: // allocate next free, or a requested address
			var want netip.Addr
			if op == 2 {
				want = pick(y)
			}
			wantAddrs, wantErr := ref.allocate(owner, want)
			var req []netip.Addr
			if want.IsValid() {
				req = []netip.Addr{want}
			}
			got, err := m.Allocate("n", owner, req)
			check(step, fmt.Sprintf("Allocate(%s, %v)", owner, req), err, wantErr)
			if diff := cmp.Diff(wantAddrs, got, addrCmp); diff != "" {
				t.Fatalf("step %d Allocate(%s, %v) (-want +got):\n%s", step, owner, req, diff)
			}
		case 3, 4:
			check(step, "Release("+owner+")", m.Release("n", owner), ref.release(owner))
		case 5:
			a := pick(y)
			check(step, fmt.Sprintf("ReleaseAddr(%s)", a), m.ReleaseAddr("n", a), ref.releaseAddr(a))
		case 6: // restart
			m2, err := Open(path)
			if err != nil {
				t.Fatalf("step %d reopen: %v", step, err)
			}
			m2.noSync = true
			m = m2
		case 7: // nothing, compare only
		}
		_, leases, err := m.Network("n")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(ref.leases(), leases, addrCmp); diff != "" {
			t.Fatalf("step %d leases (-ref +got):\n%s", step, diff)
		}
		owners := slices.Sorted(maps.Keys(ref.holding))
		if diff := cmp.Diff(owners, m.Owners("n"), addrCmp); diff != "" {
			t.Fatalf("step %d owners (-ref +got):\n%s", step, diff)
		}
	}
}

// TestAgainstReference runs random operation streams on every model config.
func TestAgainstReference(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	runs := 8
	if testing.Short() {
		runs = 10
	}
	for i := 0; i < runs*len(modelConfigs); i++ {
		ops := make([]byte, 1+3*(50+rng.IntN(250)))
		for j := range ops {
			ops[j] = byte(rng.Uint32())
		}
		ops[0] = byte(i % len(modelConfigs))
		t.Run(fmt.Sprint(i), func(t *testing.T) { runModel(t, ops) })
		if t.Failed() {
			t.Fatalf("failing input: %x", ops)
		}
	}
}

// TestReferenceSelfCheck: the reference must disagree with a wrong
// implementation, so that agreement means something. It is run on a plain
// /29 where the expected round-robin sequence is known.
func TestReferenceSelfCheck(t *testing.T) {
	r := newRef(Config{Subnets: []SubnetConfig{{Subnet: pp("198.18.0.0/29")}}})
	var got []string
	for _, o := range []string{"a", "b", "c"} {
		as, err := r.allocate(o, netip.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, as[0].String())
	}
	r.release("a")
	as, _ := r.allocate("d", netip.Addr{})
	got = append(got, as[0].String())
	if _, err := r.allocate("e", ap("198.18.0.7")); !errors.Is(err, ErrInvalid) {
		t.Errorf("broadcast request: %v", err)
	}
	if _, err := r.allocate("e", ap("198.18.0.1")); !errors.Is(err, ErrTaken) {
		t.Errorf("gateway request: %v", err)
	}
	want := []string{"198.18.0.2", "198.18.0.3", "198.18.0.4", "198.18.0.5"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reference sequence (-want +got):\n%s", diff)
	}
}

// FuzzOps drives the IPAM and the reference allocator with fuzzed operation
// streams (first byte: the network config; then 3 bytes per operation).
func FuzzOps(f *testing.F) {
	for i := range modelConfigs {
		f.Add([]byte{byte(i), 0, 1, 0, 0, 2, 0, 2, 3, 5, 3, 1, 0, 6, 0, 0, 0, 4, 0, 2, 4, 0x41, 5, 0, 0x42, 0, 9, 0})
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 3000 {
			ops = ops[:3000]
		}
		runModel(t, ops)
	})
}

// FuzzOpen feeds arbitrary state files to Open: it must not panic, must
// either load or report ErrCorruptState, and a loaded state must save and
// load back to the same thing.
func FuzzOpen(f *testing.F) {
	f.Add([]byte(`{"version":1,"networks":{}}`))
	f.Add([]byte(`{"version":1,"networks":{"a":{"config":{"subnets":[{"subnet":"198.18.0.0/24","gateway":"198.18.0.1"}]},"leases":[{"addr":"198.18.0.5","owner":"x"}],"last":["198.18.0.5"]}}}`))
	f.Add([]byte(`{"version":1,"networks":{"a":{"config":{"subnets":[{"subnet":"198.18.0.0/24","ip_range":"198.18.0.0/25","gateway":"198.18.0.1"},{"subnet":"fd00::/64","gateway":"fd00::1"}],"aux_addresses":{"h":"198.18.0.9"}},"leases":[{"addr":"198.18.0.5","owner":"x"},{"addr":"fd00::5","owner":"x"}],"last":["",""]},"b":{"config":{"subnets":[{"subnet":"198.19.0.0/31"}],"no_gateway":true},"leases":[],"last":[""]}}}`))
	f.Add([]byte(`{"version":1,"networks":{"a":null}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "ipam.json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		m, err := Open(path)
		if err != nil {
			if !errors.Is(err, ErrCorruptState) {
				t.Fatalf("error not ErrCorruptState: %v", err)
			}
			if b, _ := os.ReadFile(path); !bytes.Equal(b, data) {
				t.Fatal("corrupt file modified")
			}
			return
		}
		before := snap(t, m)
		m.noSync = true
		if _, err := m.AddNetwork("fuzz-extra", Config{Subnets: []SubnetConfig{{Subnet: pp("0.0.0.0/32")}}}); err != nil && !errors.Is(err, ErrOverlap) && !errors.Is(err, ErrDuplicateNetwork) {
			t.Fatalf("AddNetwork after load: %v", err)
		} else if err == nil {
			if err := m.RemoveNetwork("fuzz-extra"); err != nil {
				t.Fatal(err)
			}
		}
		m2, err := Open(path)
		if err != nil {
			t.Fatalf("saved state does not load: %v", err)
		}
		after := snap(t, m2)
		before.FileData, after.FileData = "", ""
		if diff := cmp.Diff(before, after, addrCmp); diff != "" {
			t.Fatalf("state changed by save and load (-before +after):\n%s", diff)
		}
	})
}

// TestEncoding: the hand-laid-out state file is exactly the JSON of
// fileState, including owners that need escaping.
func TestEncoding(t *testing.T) {
	m, path := openTemp(t)
	mustAdd(t, m, "b", Config{Subnets: []SubnetConfig{{Subnet: pp("198.18.1.0/24"), IPRange: pp("198.18.1.0/25")}, {Subnet: pp("fd00::/64")}},
		Aux: map[string]netip.Addr{"h": ap("fd00::9")}})
	mustAdd(t, m, "a", Config{NoGateway: true, Subnets: []SubnetConfig{{Subnet: pp("198.18.0.0/24")}}})
	mustAdd(t, m, "empty", Config{})
	owners := []string{"plain", `quo"te`, "back\\slash", "<html>&", "unicodé", "tab\there"}
	for _, o := range owners {
		if _, err := m.Allocate("b", o, nil); err != nil {
			if errors.Is(err, ErrInvalid) { // control characters refused
				continue
			}
			t.Fatal(err)
		}
		mustAlloc(t, m, "a", o)
	}
	if err := m.ReleaseAddr("b", ap("fd00::3")); err != nil {
		t.Fatal(err)
	}
	want := fileState{Version: 1, Networks: map[string]*fileNetwork{}}
	for _, name := range m.Networks() {
		cfg, leases, _ := m.Network(name)
		fn := &fileNetwork{Config: cfg, Leases: leases}
		for _, p := range m.nets[name].pools {
			fn.Last = append(fn.Last, p.last)
		}
		want.Networks[name] = fn
	}
	wantJSON, err := json.Marshal(&want)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := json.Compact(&got, data); err != nil {
		t.Fatalf("state file is not JSON: %v\n%s", err, data)
	}
	if diff := cmp.Diff(string(wantJSON), got.String()); diff != "" {
		t.Errorf("state file differs from json.Marshal (-want +got):\n%s", diff)
	}
	var indented bytes.Buffer
	json.Indent(&indented, wantJSON, "", "  ")
	if bytes.Count(data, []byte("\n")) >= bytes.Count(indented.Bytes(), []byte("\n")) {
		t.Errorf("expected a compact one-lease-per-line layout, got:\n%s", data)
	}
	t.Logf("state file:\n%s", data)
}
