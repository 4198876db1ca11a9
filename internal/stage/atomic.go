package stage

import (
	"os"
	"path/filepath"
)

// WriteFile writes data to path by write-temp-then-rename in the same
// directory, so a reader (a sidecar polling its config) never sees half a
// file. perm applies to the final file.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return WriteFileOwned(path, data, perm, -1)
}

// WriteFileOwned is WriteFile that also gives the file to uid (and the
// group of the same number) before it takes path's place, so a sidecar that
// watches path never sees it with the wrong owner; uid < 0 keeps ours.
func WriteFileOwned(path string, data []byte, perm os.FileMode, uid int) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if uid >= 0 {
		if err := f.Chown(uid, uid); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
