package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kubebackend "github.com/claude-bottle/claude-bottle/internal/backend/kubernetes"
	"github.com/claude-bottle/claude-bottle/internal/backend/kubernetes/kubetest"
	"github.com/claude-bottle/claude-bottle/internal/launch"
	"github.com/claude-bottle/claude-bottle/internal/plan"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

// The verbs against a tier-2 cluster (API server, scheduler, the
// agent-sandbox controller, a kwok node: no kubelet, so nothing runs and
// nothing can be attached to). run brings the bottle up, fails to attach
// and says so, and leaves nothing; ps lists bottles by label across
// namespaces; cleanup removes an orphan and nothing else, not even the
// stage directory of a bottle another backend runs.
func TestKubernetesVerbs(t *testing.T) {
	plane := kubetest.Cluster(t)
	ctx := context.Background()
	state := t.TempDir()
	t.Setenv("CLAUDE_BOTTLE_STATE_DIR", state)
	t.Setenv("KUBECONFIG", plane.Kubeconfig)
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/claude-bottle-test.sock")
	t.Setenv("ANTHROPIC_API_KEY", "sk-ant-api03-kube-cli-test")
	t.Chdir(t.TempDir())

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
}
