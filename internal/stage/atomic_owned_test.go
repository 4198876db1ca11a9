package stage

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The file has its owner when it appears at path: a watcher that reads it
// at once (egress on a policy change) must never find it root-owned.
func TestWriteFileOwnedOwnsBeforeRename(t *testing.T) {
	if os.Getuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but not root: giving a file away needs root, as CI has")
		}
		t.Skip("needs root to give a file away")
	}
	path := filepath.Join(t.TempDir(), "policy.json")
	if err := WriteFileOwned(path, []byte("{}"), 0o600, 65532); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if s := st.Sys().(*syscall.Stat_t); s.Uid != 65532 || s.Gid != 65532 || st.Mode().Perm() != 0o600 {
		t.Errorf("owner %d:%d mode %v", s.Uid, s.Gid, st.Mode().Perm())
	}
}
