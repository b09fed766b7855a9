package ipam

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/switchyard-net/switchyard/internal/atomicfile"
)

const stateVersion = 1

// fileState is the state file: JSON, networks keyed by name.
type fileState struct {
	Version  int                     `json:"version"`
	Networks map[string]*fileNetwork `json:"networks"`
}

type fileNetwork struct {
	Config Config  `json:"config"`
	Leases []Lease `json:"leases"`
	// Last holds, per subnet of Config, the last address handed out next-free
	// (the round-robin cursor); "" for none.
	Last []netip.Addr `json:"last"`
}

// encodeLocked renders the state as the JSON of fileState, laid out for
// people and diffs: one network config per line, one lease per line. It
// is the same document json.MarshalIndent would give, written directly
// because indenting costs a third of a save for large networks.
func (m *IPAM) encodeLocked() ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "{\n  \"version\": %d,\n  \"networks\": {", stateVersion)
	for i, name := range m.namesLocked() {
		n := m.nets[name]
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n    ")
		if err := appendJSON(&b, name); err != nil {
			return nil, err
		}
		b.WriteString(": {\n      \"config\": ")
		if err := appendJSON(&b, n.cfg); err != nil {
			return nil, err
		}
		b.WriteString(",\n      \"leases\": [")
		nl := 0
		for _, p := range n.pools {
			for _, a := range p.taken {
				if nl > 0 {
					b.WriteByte(',')
				}
				nl++
				b.WriteString("\n        ")
				appendLease(&b, a, p.owner[a])
			}
		}
		if nl > 0 {
			b.WriteString("\n      ")
		}
		b.WriteString("],\n      \"last\": ")
		last := make([]netip.Addr, len(n.pools))
		for i, p := range n.pools {
			last[i] = p.last
		}
		if err := appendJSON(&b, last); err != nil {
			return nil, err
		}
		b.WriteString("\n    }")
	}
	if len(m.nets) > 0 {
		b.WriteString("\n  ")
	}
	b.WriteString("}\n}\n")
	return b.Bytes(), nil
}

// appendLease writes {"addr":...,"owner":...} as json.Marshal of a Lease
// would, without reflection (a save writes every lease).
func appendLease(b *bytes.Buffer, a netip.Addr, owner string) {
	b.WriteString(`{"addr":"`)
	b.Write(a.AppendTo(b.AvailableBuffer()))
	b.WriteString(`","owner":`)
	plain := true
	for i := 0; i < len(owner); i++ {
		if c := owner[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			plain = false
			break
		}
	}
	if plain {
		b.WriteByte('"')
		b.WriteString(owner)
		b.WriteByte('"')
	} else {
		q, _ := json.Marshal(owner) // a string always marshals
		b.Write(q)
	}
	b.WriteByte('}')
}

func appendJSON(b *bytes.Buffer, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b.Write(data)
	return nil
}

// persistLocked writes the state atomically: a temporary file in the same
// directory, fsync, rename over the state file, fsync of the directory.
// renamed reports whether the new file is in place (even if an error
// follows).
func (m *IPAM) persistLocked() (renamed bool, err error) {
	fail := func(err error) error {
		return &ipamError{msg: fmt.Sprintf("ipam: saving state to %s: %v", m.path, err), kind: ErrPersist, err: err}
	}
	data, err := m.encodeLocked()
	if err != nil {
		return false, fail(err)
	}
	renamed, err = atomicfile.Write(m.path, data, &atomicfile.Options{NoSync: m.noSync, Hook: m.hook})
	if err != nil {
		return renamed, fail(err)
	}
	return true, nil
}

// load reads the state file into m. created reports that there was none.
func (m *IPAM) load() (created bool, err error) {
	dir := filepath.Dir(m.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("ipam: creating state directory %s: %w", dir, err)
	}
	atomicfile.RemoveTemps(m.path)
	data, err := os.ReadFile(m.path)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("ipam: reading state file %s: %w", m.path, err)
	}
	if err := m.decode(data); err != nil {
		return false, &ipamError{
			msg:  fmt.Sprintf("ipam: state file %s is corrupt: %s; fix or move it aside", m.path, strings.TrimPrefix(err.Error(), "ipam: ")),
			kind: ErrCorruptState,
		}
	}
	return false, nil
}

// decode parses data and rebuilds the networks, checking everything a saved
// state satisfies: the format, each config valid and in effective form, no
// overlaps, every lease inside its subnet, not reserved and held once.
func (m *IPAM) decode(data []byte) error {
	var fsx fileState
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fsx); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty file")
		}
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("data after the JSON document at offset %d", dec.InputOffset())
	}
	if fsx.Version != stateVersion {
		return fmt.Errorf("version %d, want %d", fsx.Version, stateVersion)
	}
	for _, name := range slices.Sorted(maps.Keys(fsx.Networks)) {
		fn := fsx.Networks[name]
		if err := m.decodeNetwork(name, fn); err != nil {
			return fmt.Errorf("network %q: %s", name, strings.TrimPrefix(err.Error(), "ipam: "))
		}
	}
	return nil
}

func (m *IPAM) decodeNetwork(name string, fn *fileNetwork) error {
	if err := checkName("network name", name); err != nil {
		return err
	}
	if fn == nil {
		return errors.New("null entry")
	}
	if len(fn.Config.Subnets) == 0 {
		return errors.New("no subnets")
	}
	eff, err := fn.Config.effective()
	if err != nil {
		return err
	}
	for i, sc := range eff.Subnets {
		if sc != fn.Config.Subnets[i] {
			return fmt.Errorf("subnet %s has no gateway and no_gateway is not set", sc.Subnet)
		}
	}
	for _, sc := range eff.Subnets {
		if other, op, ok := m.overlapLocked(sc.Subnet); ok {
			return fmt.Errorf("subnet %s overlaps network %q (%s)", sc.Subnet, other, op)
		}
	}
	n := newNetwork(eff)
	if len(fn.Last) != len(n.pools) {
		return fmt.Errorf("%d round-robin cursors for %d subnets", len(fn.Last), len(n.pools))
	}
	for i, a := range fn.Last {
		if a.IsValid() && !n.pools[i].inRange(a) {
			return fmt.Errorf("round-robin cursor %s outside %s", a, n.pools[i].rangeText())
		}
		n.pools[i].last = a
	}
	for _, l := range fn.Leases {
		if err := checkName("lease owner", l.Owner); err != nil {
			return err
		}
		if err := checkAddr("lease address", l.Addr); err != nil {
			return err
		}
		_, p := n.poolFor(l.Addr)
		switch {
		case p == nil:
			return fmt.Errorf("lease %s of %q is outside the subnets (%s)", l.Addr, l.Owner, eff.subnetList())
		case formReserved(p.cfg.Subnet, l.Addr) != "" || p.reserved[l.Addr] != "":
			return fmt.Errorf("lease %s of %q is not allocatable (%s)", l.Addr, l.Owner, strings.TrimPrefix(p.reserved[l.Addr], "the "))
		case p.owner[l.Addr] != "":
			return fmt.Errorf("address %s leased twice (%q and %q)", l.Addr, p.owner[l.Addr], l.Owner)
		}
		for _, b := range n.byOwner[l.Owner] {
			if _, q := n.poolFor(b); q == p {
				return fmt.Errorf("owner %q holds two addresses in %s (%s, %s)", l.Owner, p.cfg.Subnet, b, l.Addr)
			}
		}
		p.add(l.Addr, l.Owner)
		n.byOwner[l.Owner] = append(n.byOwner[l.Owner], l.Addr)
	}
	m.nets[name] = n
	return nil
}
