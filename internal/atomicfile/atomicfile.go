// Package atomicfile replaces state files so that a crash at any moment
// leaves either the old file or the new one, whole: the data goes to a
// temporary file in the same directory, is fsynced, renamed over the target,
// and the directory is fsynced so the rename itself survives.
package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
)

// Options tune Write. A nil *Options means: sync, no hook.
type Options struct {
	// NoSync skips both fsyncs: for tests that save thousands of times
	// and test durability elsewhere. Never in production.
	NoSync bool
	// Hook, when set, is called at "write" (the temporary file is
	// complete, not yet renamed) and at "dirsync" (renamed, directory not
	// yet synced); an error it returns fails Write there. For fault
	// injection in tests.
	Hook func(stage string) error
}

// TempPrefix is the name prefix of path's temporary files.
func TempPrefix(path string) string { return filepath.Base(path) + ".tmp-" }

// Write replaces path with data. A failure before the rename leaves path as
// it was and no temporary file behind; renamed reports whether path holds
// the new data, which it does when only the directory sync failed.
func Write(path string, data []byte, o *Options) (renamed bool, err error) {
	var opt Options
	if o != nil {
		opt = *o
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, TempPrefix(path)+"*")
	if err != nil {
		return false, err
	}
	tmp := f.Name()
	defer func() {
		if !renamed {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return false, err
	}
	if !opt.NoSync {
		if err := f.Sync(); err != nil {
			return false, err
		}
	}
	if err := f.Close(); err != nil {
		return false, err
	}
	if err := hook(opt, "write"); err != nil {
		return false, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return false, err
	}
	renamed = true
	if err := hook(opt, "dirsync"); err != nil {
		return true, err
	}
	if opt.NoSync {
		return true, nil
	}
	return true, syncDir(dir)
}

func hook(o Options, stage string) error {
	if o.Hook == nil {
		return nil
	}
	return o.Hook(stage)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// RemoveTemps removes the temporary files of path that a crash during Write
// left behind. Errors are ignored: they only leave litter.
func RemoveTemps(path string) {
	dir := filepath.Dir(path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	prefix := TempPrefix(path)
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasPrefix(e.Name(), prefix) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
