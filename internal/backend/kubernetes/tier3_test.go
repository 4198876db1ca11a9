//go:build tier3

package kubernetes

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/claude-bottle/claude-bottle/internal/backend"
	"github.com/claude-bottle/claude-bottle/internal/backend/kubernetes/kubetest"
	"github.com/claude-bottle/claude-bottle/internal/manifest"
	"github.com/claude-bottle/claude-bottle/internal/plan"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

// Tier 3, alone (go test -tags tier3, as .ci/run's step runs it, with the
// images built from this checkout first: claude-bottle images build): the
// bottle on a real
// kubelet, under runc (docs/kubernetes.md says why not gVisor here). The
// agent's output comes back from its first line with its exit code; its
// resolver and hosts file are egress's and the sidecars' Services; egress
// refuses a host the allowlist lacks and says why, its DNS stub answers
// nothing for it; cred-proxy explains a refusal; Down removes it all.
func TestTier3RealPods(t *testing.T) {
	plane := kubetest.Cluster(t)
	kubetest.Node(t, plane, "claude-bottle-sidecar:local", "claude-bottle-agent:local")
	ctx := t.Context()
	b := newTestBackend(t, plane.Config, 3*time.Minute)
	m := manifest.Default()
	script := `echo uid=$(id -u); grep nameserver /etc/resolv.conf; getent hosts egress cred-proxy supervise;
curl -m 20 -sS -o /dev/null -w "egress said %{http_code}\n" https://not-allowed.example.invalid/;
curl -m 20 -sS -x "" -o /dev/null -w "egress health %{http_code}\n" http://egress:3128/healthz;
getent hosts not-allowed.example.invalid || echo "dns stub: no address";
curl -m 20 -sS -x "" http://cred-proxy:8080/nothing-here; exit 7`
	host := plan.Host{Env: map[string]string{"CLAUDE_BOTTLE_CONTAINER": "tier3", "CLAUDE_BOTTLE_RUNTIME": "runc"}, Owner: "testhost/1",
		UID: 1000, GID: 1000, AgentDockerfile: "FROM debian:bookworm-slim\n", RouteCredential: map[string]int{}}
	p, err := plan.Build(m, plan.Options{Agent: "claude", Command: []string{"sh", "-c", script}}, plan.Observed{}, host)
	if err != nil {
		t.Fatal(err)
	}
	bt, err := b.Up(ctx, p, backend.UpOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Down(context.Background(), p.Instance) })
	var out strings.Builder
	code, err := b.Attach(ctx, bt, backend.Streams{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out})
	t.Logf("the agent printed:\n%s", out.String())
	if err != nil || code != 7 {
		t.Fatalf("exit %d, %v", code, err)
	}
	egress, _ := b.cs.CoreV1().Services(p.Instance).Get(ctx, plan.RoleEgress, metav1.GetOptions{})
	for _, want := range []string{"uid=1000", "nameserver " + egress.Spec.ClusterIP, egress.Spec.ClusterIP + " ", "cred-proxy", "supervise",
		"CONNECT tunnel failed, response 403", "egress health 200", "dns stub: no address", "no route for this path", "request_route"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the agent's output lacks %q", want)
		}
	}
	// egress's decision log reaches the host's log directory while the
	// bottle runs, and stays after it.
	egressLog := filepath.Join(stage.LogDir(b.State, p.Instance), "egress.jsonl")
	mirrored := func() bool {
		c, _ := os.ReadFile(egressLog)
		return strings.Contains(string(c), "not-allowed.example.invalid")
	}
	for i := 0; i < 50 && !mirrored(); i++ {
		time.Sleep(200 * time.Millisecond)
	}
	if err := b.Down(ctx, p.Instance); err != nil {
		t.Fatal(err)
	}
	gone(t, b, p.Instance)
	if !mirrored() {
		c, _ := os.ReadFile(egressLog)
		t.Errorf("the host's egress log lacks the refusal:\n%s", c)
	}
}
