package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/claude-bottle/claude-bottle/internal/backend"
	kubebackend "github.com/claude-bottle/claude-bottle/internal/backend/kubernetes"
	"github.com/claude-bottle/claude-bottle/internal/backend/kubernetes/kubetest"
	"github.com/claude-bottle/claude-bottle/internal/launch"
	"github.com/claude-bottle/claude-bottle/internal/manifest"
	"github.com/claude-bottle/claude-bottle/internal/plan"
	"github.com/claude-bottle/claude-bottle/internal/stage"
	"github.com/claude-bottle/claude-bottle/internal/supervise"
)

// The verbs against a tier-2 cluster (API server, scheduler, the
// agent-sandbox controller, a kwok node: no kubelet, so nothing runs and
// nothing can be attached to). run brings the bottle up, fails to attach
// and says so, and leaves nothing; ps lists bottles by label across
// namespaces; cleanup removes an orphan and nothing else, not even the
// stage directory of a bottle another backend runs.
func TestKubernetesVerbs(t *testing.T) {
	plane, state := kubeCLI(t)
	ctx := context.Background()

	code, out, errOut := runCLI(t, "run", "--backend", "kubernetes", "--", "true")
	if code == 0 || !strings.Contains(errOut, "attach to the agent in claude-bottle-claude") {
		t.Fatalf("run on a cluster without a kubelet: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("run said: %s", strings.TrimSpace(errOut))
	nss, err := plane.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: plan.LabelInstance})
	if err != nil || len(nss.Items) != 0 {
		t.Fatalf("run left namespaces: %+v %v", nss, err)
	}
	if _, err := os.Stat(stage.InstanceDir(state, "claude-bottle-claude")); !os.IsNotExist(err) {
		t.Errorf("run left its stage directory: %v", err)
	}

	host, _ := os.Hostname()
	ours := func(name, owner string) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name,
			Labels:      map[string]string{plan.LabelInstance: name, plan.LabelAgent: "claude"},
			Annotations: map[string]string{kubebackend.AnnotationOwner: owner}}}
		if _, err := plane.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ours("live-box", launch.Owner())
	ours("dead-box", fmt.Sprintf("%s/%d", host, 999999999))
	// A Docker bottle's stage directory, which kubernetes cleanup must keep.
	dockerDir := stage.InstanceDir(state, "docker-box")
	if err := os.MkdirAll(dockerDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dockerDir, stage.PlanFile), []byte(`{"backend":"docker"}`), 0o600); err != nil {
		t.Fatal(err)
	}

	_, out, errOut = runCLI(t, "ps", "--backend", "kubernetes")
	if !strings.Contains(out, "live-box") || !strings.Contains(out, "dead-box") || !strings.Contains(out, "orphaned") {
		t.Fatalf("ps:\n%s%s", out, errOut)
	}
	code, out, errOut = runCLI(t, "cleanup", "--backend", "kubernetes")
	if code != 0 || !strings.Contains(out, "removing namespace dead-box") || strings.Contains(out, "live-box") || strings.Contains(out, "docker-box") {
		t.Fatalf("cleanup: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := plane.Client.CoreV1().Namespaces().Get(ctx, "dead-box", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the orphan's namespace is still there: %v", err)
	}
	if _, err := plane.Client.CoreV1().Namespaces().Get(ctx, "live-box", metav1.GetOptions{}); err != nil {
		t.Errorf("cleanup removed a live bottle: %v", err)
	}
	if _, err := os.Stat(dockerDir); err != nil {
		t.Errorf("kubernetes cleanup removed a Docker bottle's stage directory: %v", err)
	}
	_, out, _ = runCLI(t, "ps", "--backend", "kubernetes")
	if !strings.Contains(out, "live-box") || strings.Contains(out, "dead-box") {
		t.Errorf("ps after cleanup:\n%s", out)
	}
	// With `backend: kubernetes` in the manifest, ps needs no flag.
	if err := os.WriteFile("claude-bottle.yaml", []byte("backend: kubernetes\nagents:\n  a: {bottle: b}\nbottles:\n  b: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, out, errOut = runCLI(t, "ps"); !strings.Contains(out, "live-box") {
		t.Errorf("ps with backend: kubernetes in the manifest:\n%s%s", out, errOut)
	}
}

// A bottle up on the tier-2 cluster (brought up by the backend, as run
// does: on tier 2 nothing can attach): ps lists it with its sidecars; a
// request its supervise files (as its service account) reaches
// `claude-bottle supervise`; `supervise approve` applies it to egress's
// ConfigMap and the decision reaches the Secret the sidecar reads;
// `logs` shows the host's decision. Then the bottle goes.
func TestKubernetesSuperviseApproveFromTheCLI(t *testing.T) {
	plane, state := kubeCLI(t)
	ctx := t.Context()
	env := map[string]string{"ANTHROPIC_API_KEY": "sk-ant-api03-kube-cli-test"}
	be, err := kubebackend.New(ctx, kubebackend.Options{State: state, Getenv: func(k string) string { return env[k] }, ReadyTimeout: 90 * time.Second}, plane.Config)
	if err != nil {
		t.Fatal(err)
	}
	host := plan.Host{Env: map[string]string{"CLAUDE_BOTTLE_CONTAINER": "cli-box"}, Owner: launch.Owner(), UID: 1000, GID: 1000, Runsc: true,
		RunscEvidence: "test", AgentDockerfile: "FROM debian:bookworm-slim\n", RouteCredential: map[string]int{}}
	p, err := plan.Build(manifest.Default(), plan.Options{Agent: "claude"}, plan.Observed{}, host)
	if err != nil {
		t.Fatal(err)
	}
	p.Backend = kubebackend.Name
	if _, err := be.Up(ctx, p, backend.UpOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = be.Down(context.Background(), p.Instance) })

	_, out, errOut := runCLI(t, "ps", "--backend", "kubernetes")
	if !strings.Contains(out, "cli-box") || !strings.Contains(out, "cred-proxy,egress,supervise") || !strings.Contains(out, "running") {
		t.Fatalf("ps:\n%s%s", out, errOut)
	}

	remote := kubebackend.NewSuperviseRemote(ctx, slog.New(slog.DiscardHandler), plane.As(p.Instance, plan.RoleSupervise), p.Instance)
	q := &supervise.Queue{RequestsDir: t.TempDir(), Remote: remote}
	req, err := q.File(supervise.Request{Kind: supervise.KindEgress, Reason: "the Go docs", Egress: &supervise.EgressAsk{Host: "pkg.go.dev", Port: 443}})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the request to reach the host", func() bool {
		_, out, _ := runCLI(t, "supervise")
		return strings.Contains(out, req.ID)
	})
	kubetest.PlayReload(t, plane, state, p.Instance, plan.RoleEgress, "egress-config", "pkg.go.dev")
	if code, out, errOut := runCLI(t, "supervise", "approve", req.ID); code != 0 {
		t.Fatalf("supervise approve: exit %d\n%s%s", code, out, errOut)
	}
	cm, err := plane.Client.CoreV1().ConfigMaps(p.Instance).Get(ctx, "egress-config", metav1.GetOptions{})
	if err != nil || !strings.Contains(cm.Data["policy.json"], "pkg.go.dev") {
		t.Errorf("egress-config after approve: %v", err)
	}
	waitUntil(t, "the sidecar to see the decision", func() bool {
		st, err := q.Get(req.ID)
		return err == nil && st.Decision != nil && st.Decision.Verdict == "approved"
	})
	if _, out, errOut := runCLI(t, "logs", p.Instance); !strings.Contains(out, req.ID) {
		t.Errorf("logs does not show the decision:\n%s%s", out, errOut)
	}
	if err := be.Down(ctx, p.Instance); err != nil {
		t.Fatal(err)
	}
	if _, out, _ := runCLI(t, "ps", "--backend", "kubernetes"); strings.Contains(out, "cli-box") {
		t.Errorf("ps after Down:\n%s", out)
	}
}

// kubeCLI starts a tier-2 cluster and points the CLI at it (and at no
// Docker engine), in a fresh state and working directory.
func kubeCLI(t *testing.T) (*kubetest.Plane, string) {
	plane := kubetest.Cluster(t)
	state := t.TempDir()
	t.Setenv("CLAUDE_BOTTLE_STATE_DIR", state)
	t.Setenv("KUBECONFIG", plane.Kubeconfig)
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/claude-bottle-test.sock")
	t.Setenv("ANTHROPIC_API_KEY", "sk-ant-api03-kube-cli-test")
	t.Chdir(t.TempDir())
	return plane, state
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if cond() {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
