package launch

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/claude-bottle/claude-bottle/internal/plan"
)

func readObj(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// The first start asks nothing: onboarding done, /workspace trusted, the
// placeholder approved (its last 20 characters) and, when autonomous, the
// bypass warning accepted. What Claude Code wrote itself is kept.
func TestPrepareClaudeState(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "claude")
	s := &plan.Spec{ClaudeAuth: "api-key", Autonomous: true}
	if err := PrepareClaudeState(dir, s); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(dir)
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode %v, want 0700", fi.Mode().Perm())
	}
	st := readObj(t, filepath.Join(dir, ".claude.json"))
	if st["hasCompletedOnboarding"] != true {
		t.Errorf("onboarding: %v", st)
	}
	ws := st["projects"].(map[string]any)[plan.WorkspaceDir].(map[string]any)
	if ws["hasTrustDialogAccepted"] != true {
		t.Errorf("trust: %v", ws)
	}
	approved := st["customApiKeyResponses"].(map[string]any)["approved"].([]any)
	if len(approved) != 1 || approved[0] != plan.Placeholder[len(plan.Placeholder)-20:] {
		t.Errorf("approved %v", approved)
	}
	if readObj(t, filepath.Join(dir, "settings.json"))["skipDangerousModePermissionPrompt"] != true {
		t.Error("bypass warning not accepted")
	}

	// Claude Code's own additions survive the next launch; nothing is added twice.
	st["numStartups"] = 7.0
	st["projects"].(map[string]any)[plan.WorkspaceDir].(map[string]any)["lastSessionId"] = "abc"
	b, _ := json.Marshal(st)
	os.WriteFile(filepath.Join(dir, ".claude.json"), b, 0o600)
	os.WriteFile(filepath.Join(dir, "settings.json"), []byte(`{"theme":"dark"}`), 0o600)
	if err := PrepareClaudeState(dir, s); err != nil {
		t.Fatal(err)
	}
	st = readObj(t, filepath.Join(dir, ".claude.json"))
	if st["numStartups"] != 7.0 || st["projects"].(map[string]any)[plan.WorkspaceDir].(map[string]any)["lastSessionId"] != "abc" {
		t.Errorf("Claude Code's own state lost: %v", st)
	}
	if n := len(st["customApiKeyResponses"].(map[string]any)["approved"].([]any)); n != 1 {
		t.Errorf("approved %d times", n)
	}
	if set := readObj(t, filepath.Join(dir, "settings.json")); set["theme"] != "dark" || set["skipDangerousModePermissionPrompt"] != true {
		t.Errorf("settings %v", set)
	}

	// Not autonomous, OAuth: no bypass acceptance is added, no key approval.
	dir2 := filepath.Join(t.TempDir(), "claude")
	if err := PrepareClaudeState(dir2, &plan.Spec{ClaudeAuth: "oauth"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := readObj(t, filepath.Join(dir2, ".claude.json"))["customApiKeyResponses"]; ok {
		t.Error("an API key approved for an OAuth agent")
	}
	if _, err := os.Stat(filepath.Join(dir2, "settings.json")); err == nil {
		t.Error("settings written for an agent that is not autonomous")
	}
}

// The agent owns the directory: a symlink it planted is replaced, never
// read through or written through, and garbage is started over.
func TestPrepareClaudeStateDoesNotFollowLinks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "claude")
	os.MkdirAll(dir, 0o700)
	victim := filepath.Join(t.TempDir(), "victim.json")
	os.WriteFile(victim, []byte(`{"secret":"host-data"}`), 0o600)
	os.Symlink(victim, filepath.Join(dir, ".claude.json"))
	os.WriteFile(filepath.Join(dir, "settings.json"), []byte("not json"), 0o600)
	if err := PrepareClaudeState(dir, &plan.Spec{ClaudeAuth: "api-key", Autonomous: true}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != `{"secret":"host-data"}` {
		t.Errorf("written through the link: %s", b)
	}
	fi, err := os.Lstat(filepath.Join(dir, ".claude.json"))
	if err != nil || !fi.Mode().IsRegular() {
		t.Fatalf(".claude.json is not a regular file now: %v %v", fi, err)
	}
	if st := readObj(t, filepath.Join(dir, ".claude.json")); st["secret"] != nil {
		t.Errorf("read through the link: %v", st)
	}
	if readObj(t, filepath.Join(dir, "settings.json"))["skipDangerousModePermissionPrompt"] != true {
		t.Error("garbage settings not replaced")
	}
}
