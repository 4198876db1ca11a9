package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/claude-bottle/claude-bottle/e2e/e2etest"
	"github.com/claude-bottle/claude-bottle/internal/docker"
	"github.com/claude-bottle/claude-bottle/internal/launch"
	"github.com/claude-bottle/claude-bottle/internal/plan"
)

// engineState is every container and network this process launched (the
// CLI runs in-process, so they carry this process's owner label). Other
// tests may create resources concurrently; those are not ours to count.
func engineState(t *testing.T, c *docker.Client) string {
	t.Helper()
	ctx := context.Background()
	mine := map[string]string{plan.LabelOwner: launch.Owner()}
	cs, err := c.ListContainers(ctx, mine, true)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := c.ListNetworks(ctx, mine)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, x := range cs {
		names = append(names, "c:"+x.Name)
	}
	for _, x := range ns {
		names = append(names, "n:"+x.Name)
	}
	sort.Strings(names)
	return strings.Join(names, "\n")
}

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// Every malformed manifest: validate and plan exit non-zero, name the file,
// and create nothing on the engine or in the state directory.
func TestMalformedManifestsCreateNothing(t *testing.T) {
	c := e2etest.Engine(t)
	state := t.TempDir()
	t.Setenv("CLAUDE_BOTTLE_STATE_DIR", state)
	files, err := filepath.Glob("../manifest/testdata/malformed/*.yaml")
	if err != nil || len(files) < 20 {
		t.Fatalf("want at least 20 malformed manifests, have %d (%v)", len(files), err)
	}
	// git does not keep modes: the world-readable key cases need theirs.
	keys, _ := filepath.Glob("../manifest/testdata/malformed/keys/*")
	for _, k := range keys {
		os.Chmod(k, 0o644)
	}
	before := engineState(t, c)
	for _, f := range files {
		for _, verb := range [][]string{{"validate"}, {"plan"}, {"plan", "--json"}, {"run", "--", "true"}} {
			args := append([]string{verb[0], "-f", f}, verb[1:]...)
			code, out, errOut := runCLI(t, args...)
			if code == 0 {
				t.Errorf("%v: exit 0\n%s", args, out)
				continue
			}
			if !strings.Contains(errOut, filepath.Base(f)) {
				t.Errorf("%v: error does not name the file: %s", args, errOut)
			}
		}
	}
	if after := engineState(t, c); after != before {
		t.Errorf("engine state changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	ents, _ := os.ReadDir(filepath.Join(state, "instances"))
	if len(ents) != 0 {
		t.Errorf("stage directories created: %v", ents)
	}
}

// A pinned name that is taken, by anything, is an error naming it.
func TestPinnedNameTaken(t *testing.T) {
	c := e2etest.Engine(t)
	t.Setenv("CLAUDE_BOTTLE_STATE_DIR", t.TempDir())
	name := e2etest.Unique("cbtest-pinned")
	e2etest.Start(t, c, docker.ContainerSpec{Name: name, Image: "debian:bookworm-slim", Cmd: []string{"sleep", "300"}})
	t.Setenv("CLAUDE_BOTTLE_CONTAINER", name)
	code, _, errOut := runCLI(t, "plan", "claude")
	if code == 0 || !strings.Contains(errOut, "already exists") || !strings.Contains(errOut, name) {
		t.Fatalf("plan with a taken pinned name: exit %d: %s", code, errOut)
	}
	t.Setenv("CLAUDE_BOTTLE_CONTAINER", name+"-free")
	code, out, errOut := runCLI(t, "plan", "claude", "--json")
	if code != 0 || !strings.Contains(out, `"instance": "`+name+`-free"`) {
		t.Fatalf("plan with a free pinned name: exit %d: %s %s", code, out, errOut)
	}
}

// A sidecar left by a launcher that is gone makes the name an orphan:
// plan says so and points at cleanup; cleanup removes it.
func TestOrphanSidecar(t *testing.T) {
	c := e2etest.Engine(t)
	t.Setenv("CLAUDE_BOTTLE_STATE_DIR", t.TempDir())
	inst := e2etest.Unique("cbtest-orphan")
	host, _ := os.Hostname()
	ctx := context.Background()
	id, err := c.CreateContainer(ctx, docker.ContainerSpec{
		Name: inst + "-egress", Image: "debian:bookworm-slim", Cmd: []string{"sleep", "300"},
		Labels: map[string]string{plan.LabelInstance: inst, plan.LabelRole: plan.RoleEgress, plan.LabelAgent: "claude",
			// PID 0 names no process: the launcher is gone.
			plan.LabelOwner: host + "/0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.RemoveContainer(context.Background(), id) })
	t.Setenv("CLAUDE_BOTTLE_CONTAINER", inst)
	code, _, errOut := runCLI(t, "plan", "claude")
	if code == 0 || !strings.Contains(errOut, inst+"-egress") || !strings.Contains(errOut, "claude-bottle cleanup") {
		t.Fatalf("plan over an orphan: exit %d: %s", code, errOut)
	}
	code, out, errOut := runCLI(t, "cleanup")
	if code != 0 || !strings.Contains(out, inst+"-egress") {
		t.Fatalf("cleanup: exit %d: %s %s", code, out, errOut)
	}
	if _, err := c.InspectContainer(ctx, id); err == nil {
		t.Fatal("orphan still exists after cleanup")
	}
}

// In an empty directory the default manifest plans egress, cred-proxy and
// supervise with the Claude wiring; a manifest with a repository adds git-gate.
func TestPlanDefaultInEmptyDir(t *testing.T) {
	e2etest.Engine(t)
	t.Setenv("CLAUDE_BOTTLE_STATE_DIR", t.TempDir())
	t.Chdir(t.TempDir())
	code, out, errOut := runCLI(t, "plan", "claude", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{`"egress"`, `"cred-proxy"`, `"supervise"`, `"ANTHROPIC_BASE_URL"`, `"value": "http://cred-proxy:8080/anthropic"`, plan.Placeholder} {
		if !strings.Contains(out, want) {
			t.Errorf("plan --json lacks %s", want)
		}
	}
	if strings.Contains(out, `"git-gate"`) {
		t.Error("git-gate without repositories")
	}
	key := filepath.Join(t.TempDir(), "key")
	os.WriteFile(key, []byte("k"), 0o600)
	m := "agents:\n  claude:\n    bottle: b\nbottles:\n  b:\n    git:\n      repos:\n        - name: app\n          upstream: git@example.test:me/app.git\n          key: " + key + "\n"
	os.WriteFile("claude-bottle.yaml", []byte(m), 0o644)
	code, out, errOut = runCLI(t, "plan", "claude", "--json")
	if code != 0 || !strings.Contains(out, `"git-gate"`) {
		t.Fatalf("git manifest: exit %d: %s %s", code, out, errOut)
	}
}

// cleanup that cannot list the stage directories says so and fails,
// rather than reporting nothing to clean up. --dry-run: other tests'
// orphans on this engine are not ours to remove.
func TestCleanupUnreadableStageFails(t *testing.T) {
	e2etest.Engine(t)
	state := t.TempDir()
	t.Setenv("CLAUDE_BOTTLE_STATE_DIR", state)
	// "instances" is a file, so the directory cannot be read.
	if err := os.WriteFile(filepath.Join(state, "instances"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "cleanup", "--dry-run")
	if code == 0 || !strings.Contains(errOut, "stage directories") {
		t.Fatalf("cleanup over an unreadable state directory: exit %d: %s %s", code, out, errOut)
	}
}
