package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/switchyard-net/switchyard/cmd/internal/api"
)

// LoadTopology reads a topology file (YAML, or JSON, which YAML includes)
// with the API's schema. Unknown fields are errors.
func LoadTopology(path string) (*api.Topology, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading topology %s: %w", path, err)
	}
	t, err := ParseTopology(data)
	if err != nil {
		return nil, fmt.Errorf("topology %s: %w", path, err)
	}
	return t, nil
}

// ParseTopology parses a topology document.
func ParseTopology(data []byte) (*api.Topology, error) {
	var t api.Topology
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&t); err != nil {
		if errors.Is(err, io.EOF) {
			return &t, nil
		}
		return nil, err
	}
	seen := map[string]bool{}
	for i, n := range t.Networks {
		if n.Name == "" {
			return nil, fmt.Errorf("network %d has no name", i+1)
		}
		if seen[n.Name] {
			return nil, fmt.Errorf("network %q given twice", n.Name)
		}
		seen[n.Name] = true
	}
	return &t, nil
}

// Apply makes the topology exist: networks that are missing are created
// (existing ones are left as they are, even if their settings differ),
// endpoints and attachments that are missing are added. It stops at the
// first error; what was done until then stays.
func (d *Daemon) Apply(t *api.Topology) error {
	if err := d.lockOpen(); err != nil {
		return err
	}
	defer d.mu.Unlock()
	for _, spec := range t.Networks {
		n, ok := d.st.Networks[spec.Name]
		if ok {
			d.log.Info("topology: network exists; left as it is", zap.String("network", spec.Name))
		} else {
			var err error
			if n, err = d.createNetworkLocked(spec.NetworkCreate); err != nil {
				return fmt.Errorf("network %q: %w", spec.Name, err)
			}
		}
		rn := d.nets[spec.Name]
		for _, ec := range spec.Endpoints {
			if _, ok := n.Endpoints[ec.Netns]; ok {
				continue
			}
			if _, err := d.connectLocked(n, rn, ec); err != nil {
				return fmt.Errorf("network %q: endpoint %q: %w", spec.Name, ec.Netns, err)
			}
		}
		for _, ac := range spec.Attachments {
			if _, ok := n.Attachments[ac.Iface]; ok {
				continue
			}
			if _, err := d.attachLocked(n, rn, ac); err != nil {
				return fmt.Errorf("network %q: attachment %q: %w", spec.Name, ac.Iface, err)
			}
		}
	}
	return nil
}
