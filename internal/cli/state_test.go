package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/claude-bottle/claude-bottle/internal/stage"
)

// state ls lists each agent's Claude state and saved workspaces; state rm
// removes one agent's state, not another's, and not through a symlink the
// agent planted.
func TestStateVerb(t *testing.T) {
	state := t.TempDir()
	t.Setenv("CLAUDE_BOTTLE_STATE_DIR", state)
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "keep"), []byte("x"), 0o600)
	for _, a := range []string{"one", "two"} {
		d := stage.ClaudeDir(state, a)
		os.MkdirAll(filepath.Join(d, "projects"), 0o700)
		os.WriteFile(filepath.Join(d, ".claude.json"), []byte("{}"), 0o600)
		os.Symlink(outside, filepath.Join(d, "link"))
	}
	os.MkdirAll(stage.WorkDir(state), 0o700)
	os.WriteFile(filepath.Join(stage.WorkDir(state), "claude-bottle-x-1.tar"), nil, 0o600)

	code, out, errOut := runCLI(t, "state", "ls")
	if code != 0 || !strings.Contains(out, "agent one") || !strings.Contains(out, "agent two") || !strings.Contains(out, "claude-bottle-x-1.tar") {
		t.Fatalf("state ls: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, "state", "rm", "one"); code != 0 || !strings.Contains(out, "removed") {
		t.Fatalf("state rm: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(stage.ClaudeDir(state, "one")); !os.IsNotExist(err) {
		t.Errorf("agent one's state still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(stage.ClaudeDir(state, "two"), ".claude.json")); err != nil {
		t.Errorf("agent two's state went too: %v", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "keep")); err != nil {
		t.Errorf("state rm followed a symlink: %v", err)
	}
	for _, bad := range []string{"nobody", "../x", ".."} {
		if code, _, errOut := runCLI(t, "state", "rm", bad); code == 0 || errOut == "" {
			t.Errorf("state rm %q: exit %d, want an error", bad, code)
		}
	}
}

// A route with no token on the host is reported before anything is built
// or created: a newcomer learns it in a second, not after the image builds.
func TestRunWithoutTokenFailsFirst(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("CLAUDE_BOTTLE_STATE_DIR", t.TempDir())
	t.Setenv("ANTHROPIC_API_KEY", "")
	t.Setenv("CLAUDE_CODE_OAUTH_TOKEN", "")
	t.Setenv("DOCKER_HOST", "unix:///nonexistent.sock") // no engine is asked
	code, _, errOut := runCLI(t, "run")
	if code == 0 || !strings.Contains(errOut, "has no token: set $CLAUDE_CODE_OAUTH_TOKEN or $ANTHROPIC_API_KEY") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}
