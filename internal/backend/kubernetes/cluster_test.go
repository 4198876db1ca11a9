package kubernetes

// Tests against a real control plane (kubetest): tier 1 is etcd and
// kube-apiserver with the controller-manager (admission, validation,
// RBAC, namespace deletion); tier 2 adds the scheduler, the agent-sandbox
// controller and a kwok node (Pods scheduled and Running, the Sandbox
// Ready). Neither runs a container: see docs/kubernetes.md.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	sandboxv1 "sigs.k8s.io/agent-sandbox/api/v1beta1"

	"github.com/claude-bottle/claude-bottle/internal/backend"
	"github.com/claude-bottle/claude-bottle/internal/backend/kubernetes/kubetest"
	"github.com/claude-bottle/claude-bottle/internal/manifest"
	"github.com/claude-bottle/claude-bottle/internal/plan"
	"github.com/claude-bottle/claude-bottle/internal/stage"
	"github.com/claude-bottle/claude-bottle/internal/supervise"
)

// The tokens the tests hand the backend: they must reach Secrets, never
// a ConfigMap, an object's metadata or the plan.
var testEnv = map[string]string{
	"ANTHROPIC_API_KEY": "sk-ant-api03-kube-test-token-never-in-a-configmap",
	"GITHUB_TOKEN":      "ghp_kubeTestTokenNeverInAConfigMap0000",
	"GITHUB_USER":       "octo",
}

func newTestBackend(t *testing.T, cfg *rest.Config, ready time.Duration) *Backend {
	t.Helper()
	b, err := New(t.Context(), Options{State: t.TempDir(), Getenv: func(k string) string { return testEnv[k] },
		Bottle: manifest.Kubernetes{ClusterCIDRs: testOptions.ClusterCIDRs}, ReadyTimeout: ready}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pinned is a test plan under another instance name, so that tests can run
// side by side on one API server.
func pinned(t *testing.T, which, name string) *plan.Plan {
	t.Helper()
	m := manifest.Default()
	agent := "claude"
	if which == "full" {
		var err error
		if m, err = manifest.Load(filepath.Join("..", "docker", "testdata", "full.yaml")); err != nil {
			t.Fatal(err)
		}
		agent = "dev"
	}
	_ = testPlans(t) // the key's mode
	host := plan.Host{Env: map[string]string{"CLAUDE_BOTTLE_CONTAINER": name}, Owner: "testhost/1", UID: 1000, GID: 1000, Runsc: true,
		AgentDockerfile: "FROM debian:bookworm-slim\n", RunscEvidence: "test"}
	host.RouteCredential = map[string]int{}
	p, err := plan.Build(m, plan.Options{Agent: agent}, plan.Observed{}, host)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// gone asserts that nothing of the instance is left: no namespace (not
// even one terminating), no stage directory (the decision log is kept,
// as on Docker).
func gone(t *testing.T, b *Backend, instance string) {
	t.Helper()
	if _, err := b.cs.CoreV1().Namespaces().Get(context.Background(), instance, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace %s is still there (%v)", instance, err)
	}
	if _, err := os.Stat(stage.InstanceDir(b.State, instance)); !os.IsNotExist(err) {
		t.Errorf("the stage directory is still there (%v)", err)
	}
}

// Tier 1: every object of the default and the full bottle is accepted by
// the real API server (schema validation, the Sandbox CRD's schema, pod
// security "restricted" on every Pod including the agent's template);
// tokens land in Secrets only; and RBAC, asked as each service account,
// lets each do only what docs/kubernetes.md says.
func TestTier1ObjectsAdmittedAndRBAC(t *testing.T) {
	plane := kubetest.APIServer(t)
	ctx := t.Context()
	for _, which := range []string{"default", "full"} {
		t.Run(which, func(t *testing.T) {
			b := newTestBackend(t, plane.Config, time.Second)
			p := pinned(t, which, "rbac-"+which)
			ns := p.Instance
			o := createAll(t, b, p)
			// The agent's Pod is made by the agent-sandbox controller from
			// the template: admission must accept it too (a dry run).
			agentPod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "agent-dry", Namespace: ns}, Spec: o.Sandbox.Spec.PodTemplate.Spec}
			if _, err := b.cs.CoreV1().Pods(ns).Create(ctx, agentPod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				t.Errorf("pod security refuses the agent's pod: %v", err)
			}
			// And it is enforced: a pod that keeps a capability is refused.
			bad := agentPod.DeepCopy()
			bad.Name = "net-raw"
			bad.Spec.Containers[0].SecurityContext.Capabilities = &corev1.Capabilities{Add: []corev1.Capability{"NET_RAW"}}
			if _, err := b.cs.CoreV1().Pods(ns).Create(ctx, bad, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "restricted") {
				t.Errorf("a pod with NET_RAW was admitted in the bottle's namespace: %v", err)
			}
			noTokens(t, b.cs, ns, p)
			checkRBAC(t, plane, b.cs, ns, p)
		})
	}
}

// createAll renders p's objects and creates them as Up does, without
// waiting for anything to be ready; Down at the end of the test.
func createAll(t *testing.T, b *Backend, p *plan.Plan) *Objects {
	t.Helper()
	ctx := t.Context()
	ns := p.Instance
	o, _, err := b.render(ctx, p, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Down(context.Background(), ns) })
	if _, err := b.cs.CoreV1().Namespaces().Create(ctx, o.Namespace, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, obj := range o.List()[1:] {
		if sb, ok := obj.(*sandboxv1.Sandbox); ok {
			if err := b.fillAddresses(ctx, ns, sb); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.create(ctx, ns, obj); err != nil {
			t.Fatalf("the API server refused %s: %v", describe(obj), err)
		}
	}
	return o
}

// noTokens: the token values are in the sidecars' Secrets and nowhere
// else (ConfigMaps, the Sandbox, pod specs).
func noTokens(t *testing.T, cs k8s.Interface, ns string, p *plan.Plan) {
	t.Helper()
	ctx := context.Background()
	cms, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	secrets, err := cs.CoreV1().Secrets(ns).Get(ctx, "cred-proxy-secrets", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{testEnv["ANTHROPIC_API_KEY"], testEnv["GITHUB_TOKEN"]} {
		needed := tok == testEnv["ANTHROPIC_API_KEY"] || slices.ContainsFunc(p.Spec.Routes, func(r plan.Route) bool { return r.Name == "github" })
		if needed {
			if !slices.ContainsFunc(mapsValues(secrets.Data), func(v []byte) bool { return string(v) == tok }) {
				t.Errorf("cred-proxy-secrets lacks a token it needs (keys %v)", keysOf(secrets.Data))
			}
		}
		for _, cm := range cms.Items {
			for k, v := range cm.Data {
				if strings.Contains(v, tok) {
					t.Errorf("ConfigMap %s key %s holds a token", cm.Name, k)
				}
			}
		}
		for _, pod := range pods.Items {
			if strings.Contains(fmt.Sprint(pod.Spec), tok) {
				t.Errorf("Pod %s's spec holds a token", pod.Name)
			}
		}
	}
}

func mapsValues(m map[string][]byte) [][]byte {
	var out [][]byte
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func keysOf(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// checkRBAC asks the API server, as each of the bottle's service accounts,
// what it may do.
func checkRBAC(t *testing.T, plane *kubetest.Plane, admin k8s.Interface, ns string, p *plan.Plan) {
	t.Helper()
	ctx := context.Background()
	forbidden := func(who, what string, err error) {
		t.Helper()
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s could %s (err %v)", who, what, err)
		}
	}
	allowed := func(who, what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s could not %s: %v", who, what, err)
		}
	}
	for _, sa := range append([]string{plan.RoleAgent}, p.Spec.Sidecars...) {
		c := plane.As(ns, sa)
		_, err := c.CoreV1().Secrets(ns).Get(ctx, "cred-proxy-secrets", metav1.GetOptions{})
		forbidden(sa, "read cred-proxy-secrets", err)
		_, err = c.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
		forbidden(sa, "list Secrets", err)
		_, err = c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		forbidden(sa, "list Pods", err)
		_, err = c.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		forbidden(sa, "create a Pod", err)
		err = c.CoreV1().ConfigMaps(ns).Delete(ctx, "egress-config", metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
		forbidden(sa, "delete egress-config", err)
		cm, _ := admin.CoreV1().ConfigMaps(ns).Get(ctx, "egress-config", metav1.GetOptions{})
		_, err = c.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
		forbidden(sa, "rewrite egress's policy", err)
		_, err = c.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		forbidden(sa, "list namespaces", err)
		_, err = c.RbacV1().RoleBindings(ns).Create(ctx, &rbacSelfGrant, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		forbidden(sa, "grant itself a role", err)
		if sa != plan.RoleSupervise {
			_, err = c.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
			forbidden(sa, "list ConfigMaps", err)
			_, err = c.CoreV1().Secrets(ns).Get(ctx, DecisionsSecret, metav1.GetOptions{})
			forbidden(sa, "read the decisions", err)
		}
	}
	if !slices.Contains(p.Spec.Sidecars, plan.RoleSupervise) {
		return
	}
	// supervise files requests as ConfigMaps and reads the host user's
	// decisions; it can neither decide nor touch another namespace.
	c := plane.As(ns, plan.RoleSupervise)
	req := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "request-1", Namespace: ns}, Data: map[string]string{"request.json": "{}"}}
	_, err := c.CoreV1().ConfigMaps(ns).Create(ctx, req, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	allowed("supervise", "file a request", err)
	_, err = c.CoreV1().Secrets(ns).Get(ctx, DecisionsSecret, metav1.GetOptions{})
	allowed("supervise", "read the decisions", err)
	dec, _ := admin.CoreV1().Secrets(ns).Get(ctx, DecisionsSecret, metav1.GetOptions{})
	_, err = c.CoreV1().Secrets(ns).Update(ctx, dec, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
	forbidden("supervise", "write a decision", err)
	_, err = c.CoreV1().ConfigMaps("default").Create(ctx, req, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	forbidden("supervise", "write in another namespace", err)
}

var rbacSelfGrant = rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "self"},
	RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"}}

// Tier 1: supervise through the API. The sidecar's side runs with the
// supervise service account's rights (impersonated): it files a request
// as a ConfigMap; the launcher's sync copies it into the stage directory,
// where the host's review (supervise.List, Decide) finds it as on Docker;
// the decision goes back into the Secret and the sidecar sees it. A
// ConfigMap that is not a valid request is never shown.
func TestTier1SuperviseThroughTheAPI(t *testing.T) {
	plane := kubetest.APIServer(t)
	ctx := t.Context()
	b := newTestBackend(t, plane.Config, time.Second)
	p := pinned(t, "default", "supervise-api")
	ns := p.Instance
	o := createAll(t, b, p)
	if got := describePolicy(policy(o, plan.RoleSupervise)); !strings.Contains(got, "127.0.0.1/32") {
		t.Errorf("supervise's policy does not name the API server this test runs: %s", got)
	}

	remote := NewSuperviseRemote(ctx, b.Log, plane.As(ns, plan.RoleSupervise), ns)
	q := &supervise.Queue{RequestsDir: t.TempDir(), Remote: remote}
	req, err := q.File(supervise.Request{Kind: supervise.KindEgress, Reason: "the Go docs", Egress: &supervise.EgressAsk{Host: "pkg.go.dev", Port: 443}})
	if err != nil {
		t.Fatal(err)
	}
	// Something in the namespace that is not a request is not shown.
	junk := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "request-r-20260101-000000-deadbeef", Labels: map[string]string{LabelRequest: "true"}},
		Data: map[string]string{RequestKey: `{"id":"r-20260101-000000-deadbeef","kind":"egress"}`}}
	if _, err := plane.As(ns, plan.RoleSupervise).CoreV1().ConfigMaps(ns).Create(ctx, junk, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := b.syncSuperviseOnce(ctx, ns); err == nil || !strings.Contains(err.Error(), "is not a request") {
		t.Errorf("sync of a junk request: %v", err)
	}
	pending, err := supervise.List(b.State)
	if err != nil || len(pending) != 1 || pending[0].Request.ID != req.ID || pending[0].Instance != ns || pending[0].Decision != nil {
		t.Fatalf("the host sees %+v (%v), want request %s pending", pending, err, req.ID)
	}
	kubetest.PlayReload(t, plane, b.State, ns, plan.RoleEgress, "egress-config", "pkg.go.dev")
	if err := supervise.Decide(ctx, b.State, ns, req.ID, "approved", "ok", b, supervise.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := b.syncSuperviseOnce(ctx, ns); err != nil && !strings.Contains(err.Error(), "is not a request") {
		t.Fatal(err)
	}
	st, err := q.Wait(ctx, req.ID, 10*time.Second)
	if err != nil || st.Decision == nil || st.Decision.Verdict != "approved" {
		t.Fatalf("the sidecar sees %+v, %v", st.Decision, err)
	}
	cm, _ := b.cs.CoreV1().ConfigMaps(ns).Get(ctx, "egress-config", metav1.GetOptions{})
	if !strings.Contains(cm.Data["policy.json"], "pkg.go.dev") {
		t.Errorf("the approval did not reach egress's ConfigMap")
	}
	// The sidecar cannot forge a decision, nor rewrite its filed request.
	sec, _ := b.cs.CoreV1().Secrets(ns).Get(ctx, DecisionsSecret, metav1.GetOptions{})
	if _, err := plane.As(ns, plan.RoleSupervise).CoreV1().Secrets(ns).Update(ctx, sec, metav1.UpdateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("supervise wrote the decisions: %v", err)
	}
	filed, _ := b.cs.CoreV1().ConfigMaps(ns).Get(ctx, requestConfigMap(req.ID), metav1.GetOptions{})
	if _, err := plane.As(ns, plan.RoleSupervise).CoreV1().ConfigMaps(ns).Update(ctx, filed, metav1.UpdateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("supervise rewrote a filed request: %v", err)
	}
}

// failAt fails the API server's nth create (POST), counting from 1; the
// count of creates seen is kept whether or not one fails.
type failAt struct {
	n     int64
	seen  atomic.Int64
	inner http.RoundTripper
}

func (f *failAt) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost {
		if f.seen.Add(1) == f.n {
			return nil, errors.New("injected failure")
		}
	}
	return f.inner.RoundTrip(r)
}

func withFailure(cfg *rest.Config, f *failAt) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		f.inner = rt
		return f
	}
	return cfg
}

// Tier 1: Up fails at every create of the full bottle (and, last, at the
// sidecars' readiness, which never comes without a scheduler), and each
// time leaves nothing: no namespace, no stage directory. A start
// interrupted by ctx leaves nothing either.
func TestTier1UpFailsCleanlyAtEveryStep(t *testing.T) {
	plane := kubetest.APIServer(t)
	// How many creates precede the wait: counted, not assumed.
	count := &failAt{}
	b := newTestBackend(t, withFailure(plane.Config, count), 500*time.Millisecond)
	p := pinned(t, "full", "fail-count")
	if _, err := b.Up(t.Context(), p, backend.UpOptions{}); err == nil || !strings.Contains(err.Error(), "timed out") || !strings.Contains(err.Error(), "Pod/egress") {
		t.Fatalf("Up on an API server with no scheduler: %v", err)
	}
	gone(t, b, p.Instance)
	creates := int(count.seen.Load())
	if want := len((mustBuild(t, p)).List()) - 1; creates != want {
		t.Fatalf("%d creates before the wait, want every object but the Sandbox (%d)", creates, want)
	}
	var wg sync.WaitGroup
	for n := 1; n <= creates; n++ {
		wg.Go(func() {
			f := &failAt{n: int64(n)}
			b := newTestBackend(t, withFailure(plane.Config, f), 500*time.Millisecond)
			p := pinned(t, "full", fmt.Sprintf("fail-%d", n))
			_, err := b.Up(t.Context(), p, backend.UpOptions{})
			if err == nil || !strings.Contains(err.Error(), "injected failure") {
				t.Errorf("create %d failed but Up says %v", n, err)
			}
			gone(t, b, p.Instance)
		})
	}
	wg.Wait()

	// Interrupted (Ctrl-C) while waiting for the sidecars.
	b = newTestBackend(t, plane.Config, time.Minute)
	p = pinned(t, "default", "interrupted")
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(1500*time.Millisecond, cancel)
	if _, err := b.Up(ctx, p, backend.UpOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("interrupted Up: %v", err)
	}
	gone(t, b, p.Instance)
}

func mustBuild(t *testing.T, p *plan.Plan) *Objects {
	t.Helper()
	o, err := Build(p, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// Tier 2: a bottle comes up (sidecar Pods scheduled and Ready, the Sandbox
// Ready), is listed as ours and live, refuses a second start under its
// name without harming the first, takes an approval live (egress's
// ConfigMap changes), and Down removes everything. A namespace whose
// launcher is gone is an orphan, and cleaning it leaves nothing.
func TestTier2UpListApplyDown(t *testing.T) {
	plane := kubetest.Cluster(t)
	ctx := t.Context()
	b := newTestBackend(t, plane.Config, 90*time.Second)
	p := pinned(t, "default", "tier2")
	var claimed bool
	bt, err := b.Up(ctx, p, backend.UpOptions{Claimed: func() { claimed = true }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Down(context.Background(), p.Instance) })
	if !claimed || bt.Agent != p.Instance+"/"+SandboxName {
		t.Errorf("claimed %v, bottle %+v", claimed, bt)
	}
	// The agent's resolver and hosts file name the sidecars' Services.
	sb := getSandbox(t, b, p.Instance)
	svc, err := b.cs.CoreV1().Services(p.Instance).Get(ctx, plan.RoleEgress, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec := sb.Spec.PodTemplate.Spec
	if spec.DNSConfig == nil || !slices.Equal(spec.DNSConfig.Nameservers, []string{svc.Spec.ClusterIP}) || spec.HostAliases[0].IP != svc.Spec.ClusterIP {
		t.Errorf("the agent's DNS %+v and hosts %+v do not point at egress %s", spec.DNSConfig, spec.HostAliases, svc.Spec.ClusterIP)
	}
	pod, err := b.cs.CoreV1().Pods(p.Instance).Get(ctx, SandboxName, metav1.GetOptions{})
	if err != nil || pod.Spec.RuntimeClassName == nil || *pod.Spec.RuntimeClassName != DefaultRuntimeClass || pod.Spec.NodeName == "" {
		t.Errorf("the agent's pod: %v", err)
	}

	insts, err := b.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(insts, func(x backend.Instance) bool { return x.Instance == p.Instance })
	if i < 0 || !insts[i].Live || !slices.Equal(insts[i].Sidecars, []string{"cred-proxy", "egress", "supervise"}) || insts[i].Runtime != DefaultRuntimeClass {
		t.Fatalf("List: %+v", insts)
	}
	if orphans, _ := b.Orphans(ctx); slices.ContainsFunc(orphans, func(o backend.Orphan) bool { return o.Instance == p.Instance }) {
		t.Errorf("a live bottle is listed as an orphan: %+v", orphans)
	}

	// A second start under the same pinned name is refused as on Docker,
	// and the running bottle is untouched.
	second := newTestBackend(t, plane.Config, 10*time.Second)
	if _, err := second.Up(ctx, pinned(t, "default", "tier2"), backend.UpOptions{}); !errors.Is(err, plan.ErrNameTaken) {
		t.Errorf("second Up: %v", err)
	}
	if _, err := b.cs.CoreV1().Namespaces().Get(ctx, p.Instance, metav1.GetOptions{}); err != nil {
		t.Fatalf("the refused second start removed the first: %v", err)
	}

	// An approval reaches egress's ConfigMap, which its Pod mounts.
	req := supervise.Request{ID: "r-1", Kind: supervise.KindEgress, Created: time.Now(), Reason: "docs", Egress: &supervise.EgressAsk{Host: "pkg.go.dev"}}
	kubetest.PlayReload(t, plane, b.State, p.Instance, plan.RoleEgress, "egress-config", "pkg.go.dev")
	if err := b.Apply(ctx, p.Instance, req, supervise.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	cm, err := b.cs.CoreV1().ConfigMaps(p.Instance).Get(ctx, "egress-config", metav1.GetOptions{})
	if err != nil || !strings.Contains(cm.Data["policy.json"], "pkg.go.dev") {
		t.Errorf("egress-config after the approval: %v %v", err, cm.Data)
	}
	cur, _ := b.cs.CoreV1().ConfigMaps(p.Instance).Get(ctx, CurrentConfigMap, metav1.GetOptions{})
	if !strings.Contains(cur.Data["allowlist.txt"], "pkg.go.dev") {
		t.Errorf("the agent's current-config does not show the approval: %v", cur.Data["allowlist.txt"])
	}
	// An approval egress never confirms is not reported done: the
	// decision the agent reads never runs ahead of the live policy.
	b.ConfirmTimeout = time.Second
	unconfirmed := supervise.Request{ID: "r-2", Kind: supervise.KindEgress, Created: time.Now(), Reason: "docs", Egress: &supervise.EgressAsk{Host: "unconfirmed.example"}}
	if err := b.Apply(ctx, p.Instance, unconfirmed, supervise.ApplyOptions{}); err == nil || !strings.Contains(err.Error(), "did not confirm") {
		t.Errorf("an approval egress never reloaded: %v", err)
	}

	if err := b.Down(ctx, p.Instance); err != nil {
		t.Fatal(err)
	}
	gone(t, b, p.Instance)
	if insts, _ := b.List(ctx); slices.ContainsFunc(insts, func(x backend.Instance) bool { return x.Instance == p.Instance }) {
		t.Errorf("listed after Down: %+v", insts)
	}

	// An orphan: a namespace whose launcher (this host, a dead pid) is gone.
	op := pinned(t, "default", "orphan")
	oo := testOptions
	host, _ := os.Hostname()
	oo.Owner = host + "/999999999"
	objs, err := Build(op, oo)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.cs.CoreV1().Namespaces().Create(ctx, objs.Namespace, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	orphans, err := b.Orphans(ctx)
	if err != nil || !slices.ContainsFunc(orphans, func(o backend.Orphan) bool { return o.Instance == op.Instance && o.Kind == "namespace" }) {
		t.Fatalf("orphans %+v, %v", orphans, err)
	}
	if err := b.Down(ctx, op.Instance); err != nil {
		t.Fatal(err)
	}
	gone(t, b, op.Instance)
	// A namespace that is not ours is never deleted.
	if _, err := b.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "theirs"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Down(ctx, "theirs"); err == nil || !strings.Contains(err.Error(), "not a claude-bottle instance") {
		t.Errorf("Down of a namespace not ours: %v", err)
	}
}

// Tier 2: the last create (the Sandbox, after the sidecars are Ready)
// failing leaves nothing either.
func TestTier2SandboxFailureCleansUp(t *testing.T) {
	plane := kubetest.Cluster(t)
	p := pinned(t, "default", "sandbox-fails")
	f := &failAt{n: int64(len(mustBuild(t, p).List()))}
	b := newTestBackend(t, withFailure(plane.Config, f), 90*time.Second)
	if _, err := b.Up(t.Context(), p, backend.UpOptions{}); err == nil || !strings.Contains(err.Error(), "create Sandbox/agent") {
		t.Fatalf("Up with the Sandbox refused: %v", err)
	}
	gone(t, b, p.Instance)
}

func getSandbox(t *testing.T, b *Backend, ns string) *sandboxv1.Sandbox {
	t.Helper()
	u, err := b.dyn.Resource(SandboxResource).Namespace(ns).Get(context.Background(), SandboxName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var sb sandboxv1.Sandbox
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &sb); err != nil {
		t.Fatal(err)
	}
	return &sb
}

// Tier 1: a cluster without the agent-sandbox CRDs is named as such before
// anything is created (Facts), not minutes later at the Sandbox.
func TestTier1NoSandboxCRD(t *testing.T) {
	plane := kubetest.APIServer(t)
	b := newTestBackend(t, plane.Config, time.Second)
	if _, err := b.Facts(t.Context(), backend.FactsRequest{Agent: "claude"}); err != nil {
		t.Fatalf("with the CRDs: %v", err)
	}
	crds := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	dyn, err := dynamic.NewForConfig(plane.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := dyn.Resource(crds).Delete(t.Context(), "sandboxes.agents.x-k8s.io", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var ferr error
	for i := 0; i < 100; i++ {
		// Discovery follows the deletion within moments.
		if _, ferr = newTestBackend(t, plane.Config, time.Second).Facts(t.Context(), backend.FactsRequest{Agent: "claude"}); ferr != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ferr == nil || !strings.Contains(ferr.Error(), "install the agent-sandbox controller") {
		t.Errorf("without the CRD: %v", ferr)
	}
}
