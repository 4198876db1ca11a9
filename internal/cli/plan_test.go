package cli

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	dockerbackend "github.com/claude-bottle/claude-bottle/internal/backend/docker"
	"github.com/claude-bottle/claude-bottle/internal/plan"
)

// `plan --json` carries the backend's operations, the very list Up
// executes; the text shows them only with --verbose. Without an engine
// (this test points at none) plan still works: a dry run on a laptop
// with Docker stopped.
func TestPlanShowsTheOperations(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/claude-bottle-test.sock")
	t.Setenv("CLAUDE_BOTTLE_STATE_DIR", t.TempDir())
	t.Chdir(t.TempDir())
	code, out, errOut := runCLI(t, "plan", "--json")
	if code != 0 || !strings.Contains(errOut, "planning as if nothing runs") {
		t.Fatalf("plan --json: exit %d: %s", code, errOut)
	}
	var p plan.Plan
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatal(err)
	}
	want := dockerbackend.Operations(&p)
	if p.Backend != "docker" || len(p.Operations) < 10 || !slices.EqualFunc(p.Operations, want, func(a, b plan.Op) bool {
		return a.ID == b.ID && slices.Equal(a.After, b.After)
	}) {
		t.Fatalf("backend %q, operations %+v\nwant %+v", p.Backend, p.Operations, want)
	}
	_, text, _ := runCLI(t, "plan")
	_, verbose, _ := runCLI(t, "plan", "--verbose")
	if strings.Contains(text, "operations (") || !strings.Contains(verbose, "operations (") || !strings.Contains(verbose, "create agent  <- ") {
		t.Errorf("text without --verbose:\n%s\nwith:\n%s", text, verbose)
	}
	if _, err := os.Stat(os.Getenv("CLAUDE_BOTTLE_STATE_DIR") + "/instances"); !os.IsNotExist(err) {
		t.Errorf("plan created stage directories: %v", err)
	}
}
