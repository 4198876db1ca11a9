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

// `plan --backend kubernetes` needs no cluster: it shows the objects run
// would create (JSON: a v1 List; text: one line each, in place of the
// containers), secrets by key and never by value. A manifest's `backend:`
// picks it too, and the flag wins over the manifest.
func TestPlanKubernetesObjects(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/claude-bottle-test.sock")
	t.Setenv("CLAUDE_BOTTLE_STATE_DIR", t.TempDir())
	t.Setenv("KUBECONFIG", "/nonexistent/kubeconfig")
	t.Setenv("ANTHROPIC_API_KEY", "sk-ant-plan-must-not-show-this")
	t.Chdir(t.TempDir())
	code, out, errOut := runCLI(t, "plan", "--json", "--backend", "kubernetes")
	if code != 0 || !strings.Contains(errOut, "no cluster") {
		t.Fatalf("plan --json --backend kubernetes: exit %d: %s", code, errOut)
	}
	if strings.Contains(out, "sk-ant-plan") {
		t.Fatal("the plan printed a token")
	}
	var p struct {
		Backend string
		Objects struct {
			Kind  string
			Items []struct {
				Kind     string
				Metadata struct{ Name string }
				Data     map[string]string
			}
		}
		Operations []plan.Op
	}
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, it := range p.Objects.Items {
		kinds[it.Kind]++
		for k, v := range it.Data {
			if it.Kind == "Secret" && v != "" {
				t.Errorf("Secret %s carries a value for %s in a plan", it.Metadata.Name, k)
			}
		}
	}
	if p.Backend != "kubernetes" || p.Objects.Kind != "List" || kinds["Namespace"] != 1 || kinds["Sandbox"] != 1 || kinds["Pod"] != 3 || kinds["NetworkPolicy"] < 4 {
		t.Fatalf("backend %q, objects %v", p.Backend, kinds)
	}
	if len(p.Operations) == 0 || p.Operations[len(p.Operations)-1].ID != "ready Sandbox/agent" {
		t.Errorf("operations %+v", p.Operations)
	}
	_, text, _ := runCLI(t, "plan", "--verbose", "--backend", "kubernetes")
	for _, want := range []string{"objects:\n", "Sandbox/agent", "RuntimeClass gvisor", "Secret/cred-proxy-secrets", "(values never shown)", "the namespace is deleted"} {
		if !strings.Contains(text, want) {
			t.Errorf("text plan lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "containers:") || strings.Contains(text, "probe container") {
		t.Errorf("the kubernetes text plan shows Docker's containers:\n%s", text)
	}
	if err := os.WriteFile("claude-bottle.yaml", []byte("backend: kubernetes\nagents:\n  tool: {bottle: bare, command: [sh]}\nbottles:\n  bare: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, text, errOut = runCLI(t, "plan"); !strings.Contains(text, "Sandbox/agent") || !strings.Contains(text, "Pod/egress") {
		t.Errorf("backend: kubernetes in the manifest did not plan for a cluster:\n%s%s", text, errOut)
	}
	if _, text, _ = runCLI(t, "plan", "--backend", "docker"); !strings.Contains(text, "containers:") {
		t.Errorf("--backend docker did not win over the manifest:\n%s", text)
	}
	if code, _, errOut = runCLI(t, "plan", "--backend", "kubernetes", "--cwd"); code == 0 || !strings.Contains(errOut, "--cwd is not supported on a cluster") {
		t.Errorf("plan --cwd on a cluster: exit %d: %s", code, errOut)
	}
	if code, _, errOut = runCLI(t, "plan", "--backend", "nomad"); code == 0 || !strings.Contains(errOut, "docker or kubernetes") {
		t.Errorf("--backend nomad: exit %d: %s", code, errOut)
	}
}
