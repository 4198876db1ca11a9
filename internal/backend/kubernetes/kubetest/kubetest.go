// Package kubetest runs a real Kubernetes control plane for tests, from the
// binaries .ci/kube builds (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, the agent-sandbox controller and kwok), on loopback only.
//
// APIServer (tier 1) is etcd, the API server with RBAC authorization and
// admission, and the controller manager's namespace and garbage-collector
// controllers (so a deleted namespace really goes), with the agent-sandbox
// CRDs installed. Cluster (tier 2) adds the scheduler, the agent-sandbox
// controller and a kwok fake node, so a Sandbox's Pod is scheduled and
// marked Running (no container runs) and the Sandbox goes Ready.
//
// When the binaries are missing a test fails under CI=true (CI must prove
// these tiers) and skips otherwise, saying how to build them; under
// go test -short it always skips.
package kubetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/claude-bottle/claude-bottle/internal/audit"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

// DefaultBinDir is where .ci/kube build puts the binaries.
const DefaultBinDir = "/usr/local/libexec/claude-bottle-ci/kube"

// Plane is a running control plane.
type Plane struct {
	// Config is the cluster admin's (system:masters).
	Config *rest.Config
	Client k8s.Interface
	Dir    string
	// Kubeconfig is a file holding Config, for the other components.
	Kubeconfig string
}

func binDir(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("a Kubernetes control plane is not started under -short")
	}
	dir := os.Getenv("CLAUDE_BOTTLE_KUBE_BIN")
	if dir == "" {
		dir = DefaultBinDir
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "agent-sandbox-controller", "kwok"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			msg := fmt.Sprintf("no %s in %s: build the control plane with .ci/kube build (or set CLAUDE_BOTTLE_KUBE_BIN)", b, dir)
			if os.Getenv("CI") == "true" {
				t.Fatal("CI=true but " + msg)
			}
			t.Skip(msg)
		}
	}
	return dir
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs a component until the test ends; its output goes to a log
// file in dir that a failing test prints the tail of.
func start(t testing.TB, dir, name, bin string, args ...string) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 3000 {
				b = b[len(b)-3000:]
			}
			t.Logf("--- %s log (tail) ---\n%s", name, b)
		}
	})
}

// APIServer starts tier 1: etcd, kube-apiserver (RBAC, default admission)
// and the namespace and garbage-collector controllers, with the
// agent-sandbox CRDs installed and established.
func APIServer(t testing.TB) *Plane {
	t.Helper()
	bins := binDir(t)
	dir, err := os.MkdirTemp("", "kubetest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })

	etcdPort, peerPort, apiPort := freePort(t), freePort(t), freePort(t)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	start(t, dir, "etcd", filepath.Join(bins, "etcd"), "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", peerPort),
		"--unsafe-no-fsync", "--log-level", "warn")

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "sa.key")
	pubDER, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	write(t, keyPath, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	write(t, filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
	tok := make([]byte, 16)
	rand.Read(tok)
	token := hex.EncodeToString(tok)
	write(t, filepath.Join(dir, "tokens.csv"), []byte(token+`,admin,admin,"system:masters"`+"\n"))

	start(t, dir, "kube-apiserver", filepath.Join(bins, "kube-apiserver"),
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", strconv.Itoa(apiPort),
		"--cert-dir", filepath.Join(dir, "certs"),
		"--service-cluster-ip-range", "10.96.0.0/16",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file", keyPath,
		"--token-auth-file", filepath.Join(dir, "tokens.csv"),
		"--authorization-mode", "RBAC",
		"--endpoint-reconciler-type", "none",
		// Tier 3's kubelet is reached at its node address (no DNS here).
		"--kubelet-preferred-address-types", "InternalIP",
		"--allow-privileged=false")

	cfg := &rest.Config{Host: fmt.Sprintf("https://127.0.0.1:%d", apiPort), BearerToken: token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true}, QPS: 200, Burst: 400}
	cs, err := k8s.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := &Plane{Config: cfg, Client: cs, Dir: dir, Kubeconfig: filepath.Join(dir, "kubeconfig")}
	write(t, p.Kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: %q, insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: %q}}]
contexts: [{name: test, context: {cluster: test, user: admin}}]
current-context: test
`, cfg.Host, token)))
	waitFor(t, 60*time.Second, "the API server to be ready", func() (bool, error) {
		b, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(context.Background())
		return err == nil && string(b) == "ok", nil
	})
	start(t, dir, "kube-controller-manager", filepath.Join(bins, "kube-controller-manager"),
		"--kubeconfig", p.Kubeconfig,
		// Services get endpoints (tier 3's kube-proxy routes them) and
		// namespaces the root CA (a pod's token volume needs it).
		"--controllers", "namespace-controller,garbage-collector-controller,serviceaccount-controller,endpointslice-controller,root-ca-certificate-publisher-controller",
		"--root-ca-file", filepath.Join(dir, "certs", "apiserver.crt"),
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(freePort(t)), "--leader-elect=false",
		"--use-service-account-credentials=false")
	installCRDs(t, cfg)
	// The RuntimeClass a gVisor bottle asks for, as docs/kubernetes.md
	// tells a cluster's owner to make (no node runs it here).
	if _, err := p.Client.NodeV1().RuntimeClasses().Create(context.Background(), &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "gvisor"}, Handler: "runsc"}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return p
}

// Cluster starts tier 2: APIServer plus kube-scheduler, the agent-sandbox
// controller and kwok with one fake node.
func Cluster(t testing.TB) *Plane {
	t.Helper()
	p := APIServer(t)
	bins := binDir(t)
	ctx := context.Background()
	start(t, p.Dir, "kube-scheduler", filepath.Join(bins, "kube-scheduler"), "--kubeconfig", p.Kubeconfig,
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(freePort(t)), "--leader-elect=false")
	start(t, p.Dir, "agent-sandbox-controller", filepath.Join(bins, "agent-sandbox-controller"), "--kubeconfig", p.Kubeconfig,
		"--leader-elect=false", "--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	start(t, p.Dir, "kwok", filepath.Join(bins, "kwok"), "--kubeconfig", p.Kubeconfig,
		"--manage-nodes-with-annotation-selector", "kwok.x-k8s.io/node=fake",
		"--config", filepath.Join(bins, "kwok-stages.yaml"),
		"--server-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "kwok-node-0",
		Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
		Labels:      map[string]string{"type": "kwok", "kubernetes.io/hostname": "kwok-node-0"}},
		Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{}}}
	if _, err := p.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Without a node lifecycle controller the not-ready taint the API
	// server's admission puts on a new node stays: take it off once kwok
	// reports the node Ready.
	waitFor(t, 60*time.Second, "the kwok node to be Ready and untainted", func() (bool, error) {
		n, err := p.Client.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		ready := false
		for _, c := range n.Status.Conditions {
			ready = ready || (c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue)
		}
		if !ready {
			return false, nil
		}
		if len(n.Spec.Taints) == 0 {
			return true, nil
		}
		n.Spec.Taints = nil
		_, err = p.Client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			err = nil
		}
		return false, err
	})
	return p
}

// As returns a config that acts as the ServiceAccount ns/name
// (impersonation), for asserting what RBAC lets it do.
func (p *Plane) As(ns, name string) k8s.Interface {
	cfg := rest.CopyConfig(p.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":" + name,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}}
	cs, err := k8s.NewForConfig(cfg)
	if err != nil {
		panic(err)
	}
	return cs
}

// installCRDs creates the agent-sandbox CRDs from the module this project
// builds against (the same version as its Go types) and waits until the
// API server serves them.
func installCRDs(t testing.TB, cfg *rest.Config) {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/agent-sandbox").Output()
	if err != nil {
		t.Fatalf("find the agent-sandbox module: %v", err)
	}
	crds := filepath.Join(strings.TrimSpace(string(out)), "k8s", "crds")
	files, err := filepath.Glob(filepath.Join(crds, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in %s: %v", crds, err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	gvr := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range bytes.Split(b, []byte("\n---")) {
			js, err := yaml.YAMLToJSON(doc)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			var u unstructured.Unstructured
			if err := json.Unmarshal(js, &u.Object); err != nil || u.Object == nil {
				continue
			}
			if _, err := dyn.Resource(gvr).Create(context.Background(), &u, metav1.CreateOptions{}); err != nil {
				t.Fatalf("create CRD %s: %v", u.GetName(), err)
			}
			names = append(names, u.GetName())
		}
	}
	for _, n := range names {
		waitFor(t, 30*time.Second, "CRD "+n+" to be established", func() (bool, error) {
			u, err := dyn.Resource(gvr).Get(context.Background(), n, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			for _, c := range conds {
				m, _ := c.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return true, nil
				}
			}
			return false, nil
		})
	}
}

func write(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond every 100 ms until it holds, fails the test on an
// error or after d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s (last error: %v)", d, what, last)
}

// PlayReload stands in for a sidecar that tiers 1 and 2 cannot run: once
// ConfigMap configMap in instance's namespace holds want, it logs the
// reload the sidecar would (into the host's log directory, as run's log
// mirror does), so that an approval waiting for it goes on. The decision
// is therefore written only after the ConfigMap changed.
func PlayReload(t testing.TB, p *Plane, state, instance, sidecar, configMap, want string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		for ctx.Err() == nil {
			cm, err := p.Client.CoreV1().ConfigMaps(instance).Get(ctx, configMap, metav1.GetOptions{})
			if err == nil {
				for _, v := range cm.Data {
					if strings.Contains(v, want) {
						if l, c, err := audit.Open(stage.LogDir(state, instance), instance, sidecar); err == nil {
							l.Write(audit.Event{Kind: "reload", Verdict: "allow"})
							c.Close()
						}
						return
					}
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
}
