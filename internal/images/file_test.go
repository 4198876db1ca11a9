package images

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A file read from its path hashes like the same bytes held in memory, and
// its content must still match the digest taken when it was found.
func TestPathFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bin")
	data := []byte(strings.Repeat("static binary ", 10000))
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	onDisk := file{name: "claude-bottle", mode: 0o755, path: path, sum: sha256.Sum256(data)}
	inMem := file{name: "claude-bottle", mode: 0o755, data: data}
	df := []byte("FROM scratch\n")
	if a, b := inputHash(df, []file{onDisk}, nil), inputHash(df, []file{inMem}, nil); a != b {
		t.Fatalf("same content, different hashes: %s %s", a, b)
	}
	got, err := onDisk.content()
	if err != nil || string(got) != string(data) {
		t.Fatalf("content: %v", err)
	}
	tarA, err := contextTar(df, []file{onDisk})
	if err != nil {
		t.Fatal(err)
	}
	tarB, _ := contextTar(df, []file{inMem})
	if string(tarA) != string(tarB) {
		t.Fatal("build contexts differ for the same content")
	}
	if err := os.WriteFile(path, append(data, '!'), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := contextTar(df, []file{onDisk}); err == nil || !strings.Contains(err.Error(), "changed while the image was being prepared") {
		t.Fatalf("a binary replaced after hashing went into the build context: %v", err)
	}
}

// readBinary takes the digest of a static binary by streaming it and
// keeps only its path.
func TestReadBinaryDigest(t *testing.T) {
	path := staticBinary(t, "digest")
	f, err := readBinary(path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.sum != sha256.Sum256(data) || f.path != path || f.data != nil || f.name != "claude-bottle" || f.mode != 0o755 {
		t.Fatalf("readBinary: %q %o path %q, %d bytes held, digest matches: %v", f.name, f.mode, f.path, len(f.data), f.sum == sha256.Sum256(data))
	}
}
