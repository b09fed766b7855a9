package switchyard_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/switchyard-net/switchyard/"

// allowed lists, for each package of ours, the packages of ours it may
// import (non-test code). Dependencies flow one way: frame <- port <-
// backends; frame, port, fdb <- bridge; frame, port <- macvlan; frame <-
// nat; frame, port, nat <- router (the gateway, which the daemon plugs into
// a bridge as a port: the bridge and the NAT never import each other); ipam and
// netns import nothing of ours but leaf utilities (internal/atomicfile,
// which the daemon's state file shares with the IPAM's); everything <- cmd
// and bench. A package not
// listed here may import only what its prefix rule allows (see below).
var allowed = map[string][]string{
	"switch/frame":         {},
	"switch/port":          {"switch/frame"},
	"switch/port/afpacket": {"switch/frame", "switch/port"},
	"switch/port/tap":      {"switch/frame", "switch/port"},
	"switch/port/porttest": {"switch/frame", "switch/port"},
	"switch/fdb":           {},
	"switch/bridge":        {"switch/frame", "switch/port", "switch/fdb"},
	"switch/macvlan":       {"switch/frame", "switch/port"},
	"switch/router":        {"switch/frame", "switch/port", "nat"},
	"switch/capture":       {"switch/frame", "switch/port"},
	"nat":                  {"switch/frame"},
	"ipam":                 {"internal/atomicfile"},
	"netns":                {},
	"internal/nstest":      {},
	"internal/atomicfile":  {},
	"internal/pmqos":       {},
	"internal/testns":      {"internal/nstest", "netns"},
}

// TestImportGraph locks the direction of dependencies between our packages.
func TestImportGraph(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(p.ImportPath, module)
		if rel == p.ImportPath {
			continue // the root package
		}
		seen++
		for _, imp := range p.Imports {
			dep, ours := strings.CutPrefix(imp, module)
			if !ours {
				continue
			}
			if !mayImport(rel, dep) {
				t.Errorf("%s imports %s: against the dependency direction (see deps_test.go)", rel, dep)
			}
		}
	}
	if seen < 8 {
		t.Fatalf("go list saw only %d packages of ours", seen)
	}
}

func mayImport(pkg, dep string) bool {
	// Everything may be used by the binary, its internal packages and the
	// benchmark harness.
	for _, top := range []string{"cmd/", "bench", "e2e"} {
		if strings.HasPrefix(pkg, top) {
			return true
		}
	}
	list, ok := allowed[pkg]
	if !ok {
		return false // a new package must be placed in the graph above
	}
	for _, a := range list {
		if a == dep {
			return true
		}
	}
	return false
}
