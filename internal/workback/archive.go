package workback

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// ArchivePath names an archive after its instance and the time, so that a
// later bottle of the same name never overwrites it.
func ArchivePath(prefix string) string {
	return prefix + "-" + time.Now().Format("20060102-150405") + ".tar"
}

// SaveArchive writes the tar stream r (the agent's /workspace) to path,
// owner-only, unless it holds nothing but its top directory. It reports
// whether it wrote one; a partial file never stays.
func SaveArchive(r io.Reader, path string) (bool, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".work-*.tar")
	if err != nil {
		return false, err
	}
	defer os.Remove(f.Name())
	// Read the archive as it is written, to learn whether /workspace held
	// anything but itself.
	tr := tar.NewReader(io.TeeReader(r, f))
	entries := 0
	for {
		if _, err := tr.Next(); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			f.Close()
			return false, fmt.Errorf("copy /workspace: %w", err)
		}
		entries++
	}
	if _, err := io.Copy(f, r); err != nil { // the archive's end padding
		f.Close()
		return false, err
	}
	if err := f.Close(); err != nil {
		return false, err
	}
	if entries <= 1 {
		return false, nil
	}
	if err := os.Chmod(f.Name(), 0o600); err != nil {
		return false, err
	}
	return true, os.Rename(f.Name(), path)
}

// FirstBytes keeps the first N bytes written to it in W and drops the rest: a
// harvest's stderr, bounded.
type FirstBytes struct {
	W io.Writer
	N int
}

func (h *FirstBytes) Write(p []byte) (int, error) {
	if h.N > 0 {
		k := min(len(p), h.N)
		h.W.Write(p[:k])
		h.N -= k
	}
	return len(p), nil
}
