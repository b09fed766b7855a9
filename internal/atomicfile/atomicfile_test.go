package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	if renamed, err := Write(p, []byte("one"), nil); err != nil || !renamed {
		t.Fatalf("Write = %v, %v", renamed, err)
	}
	if renamed, err := Write(p, []byte("two"), nil); err != nil || !renamed {
		t.Fatalf("second Write = %v, %v", renamed, err)
	}
	if b, _ := os.ReadFile(p); string(b) != "two" {
		t.Errorf("file holds %q, want two", b)
	}
	// A failure before the rename: old content, no temporary file.
	boom := errors.New("boom")
	_, err := Write(p, []byte("three"), &Options{Hook: func(stage string) error {
		if stage == "write" {
			return boom
		}
		return nil
	}})
	if !errors.Is(err, boom) {
		t.Fatalf("Write with a failing hook = %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "two" {
		t.Errorf("after a failed write the file holds %q, want two", b)
	}
	// A failure after the rename reports renamed.
	renamed, err := Write(p, []byte("four"), &Options{Hook: func(stage string) error {
		if stage == "dirsync" {
			return boom
		}
		return nil
	}})
	if !renamed || !errors.Is(err, boom) {
		t.Errorf("Write failing at dirsync = %v, %v; want renamed and the error", renamed, err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("%d files in the directory, want only the state file", len(ents))
	}
}

func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	for _, n := range []string{"state.json", "state.json.tmp-123", "state.json.tmp-456", "other.tmp-1"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	RemoveTemps(p)
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) != 2 || names[0] != "other.tmp-1" || names[1] != "state.json" {
		t.Errorf("left %v, want other.tmp-1 and state.json", names)
	}
}
