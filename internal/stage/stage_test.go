package stage

import (
	"os"
	"path/filepath"
	"testing"
)

func TestStateDirOrder(t *testing.T) {
	env := map[string]string{"HOME": "/h"}
	get := func(k string) string { return env[k] }
	if d, _ := StateDir(get); d != "/h/.local/state/claude-bottle" {
		t.Fatalf("home: %s", d)
	}
	env["XDG_STATE_HOME"] = "/x"
	if d, _ := StateDir(get); d != "/x/claude-bottle" {
		t.Fatalf("xdg: %s", d)
	}
	env["CLAUDE_BOTTLE_STATE_DIR"] = "/s"
	if d, _ := StateDir(get); d != "/s" {
		t.Fatalf("explicit: %s", d)
	}
}

func TestWriteFileAtomicAndMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "policy.json")
	if err := WriteFile(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("two"), 0o400); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	st, _ := os.Stat(p)
	if string(b) != "two" || st.Mode().Perm() != 0o400 {
		t.Fatalf("got %q %v", b, st.Mode())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temp files left: %v", ents)
	}
}
