package workback

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func tarOf(t *testing.T, names ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, n := range names {
		if n[len(n)-1] == '/' {
			tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeDir, Mode: 0o755})
			continue
		}
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: 2})
		tw.Write([]byte("hi"))
	}
	tw.Close()
	return b.Bytes()
}

// An archive is kept only when /workspace held something, owner-only and
// whole; an empty workspace or a broken stream leaves no file.
func TestSaveArchive(t *testing.T) {
	dir := t.TempDir()
	full := filepath.Join(dir, "work", "a.tar")
	saved, err := SaveArchive(bytes.NewReader(tarOf(t, "./", "./result.txt")), full)
	if err != nil || !saved {
		t.Fatalf("saved %v, %v", saved, err)
	}
	fi, err := os.Stat(full)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("archive %v %v", fi, err)
	}
	b, _ := os.ReadFile(full)
	tr := tar.NewReader(bytes.NewReader(b))
	tr.Next()
	if h, err := tr.Next(); err != nil || h.Name != "./result.txt" {
		t.Errorf("archive holds %v %v", h, err)
	}
	empty := filepath.Join(dir, "work", "b.tar")
	if saved, err := SaveArchive(bytes.NewReader(tarOf(t, "./")), empty); err != nil || saved {
		t.Errorf("empty workspace: saved %v, %v", saved, err)
	}
	broken := filepath.Join(dir, "work", "c.tar")
	raw := tarOf(t, "./", "./result.txt")
	if _, err := SaveArchive(bytes.NewReader(raw[:700]), broken); err == nil {
		t.Error("a cut stream was saved")
	}
	left, _ := filepath.Glob(filepath.Join(dir, "work", "*"))
	if len(left) != 1 {
		t.Errorf("files left: %v", left)
	}
}
