package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/dynamic"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"
	sandboxv1 "sigs.k8s.io/agent-sandbox/api/v1beta1"

	"github.com/claude-bottle/claude-bottle/internal/backend"
	"github.com/claude-bottle/claude-bottle/internal/launch"
	"github.com/claude-bottle/claude-bottle/internal/manifest"
	"github.com/claude-bottle/claude-bottle/internal/plan"
	"github.com/claude-bottle/claude-bottle/internal/stage"
	"github.com/claude-bottle/claude-bottle/internal/supervise"
	"github.com/claude-bottle/claude-bottle/internal/workback"
)

// Name is the backend's name as --backend and the manifest spell it.
const Name = manifest.BackendKubernetes

// SandboxResource is the agent-sandbox Sandbox's API resource.
var SandboxResource = schema.GroupVersionResource{Group: sandboxv1.GroupVersion.Group, Version: sandboxv1.GroupVersion.Version, Resource: "sandboxes"}

// Options configure the backend.
type Options struct {
	Log *slog.Logger
	// State is the host state directory: stage files are rendered there
	// first, as for Docker, and copied into ConfigMaps and Secrets.
	State  string
	Getenv func(string) string
	// Kubeconfig and Context pick the cluster the way kubectl does
	// ($KUBECONFIG, then ~/.kube/config; the current context).
	Kubeconfig, Context string
	// Bottle is the manifest's bottle settings for the cluster.
	Bottle manifest.Kubernetes
	// ReadyTimeout bounds the wait for the sidecars and the Sandbox.
	ReadyTimeout time.Duration
	// ConfirmTimeout bounds an approval's wait for the changed sidecar's
	// reload; 0 means DefaultConfirmTimeout.
	ConfirmTimeout time.Duration
	// Progress receives one line per step (nil: none).
	Progress io.Writer
}

// Backend runs bottles on a cluster through its API only.
type Backend struct {
	Options
	cfg *rest.Config
	cs  k8s.Interface
	dyn dynamic.Interface

	mu sync.Mutex
	// syncs stop each running instance's background jobs (logs, the
	// supervise sync) and wait for them.
	syncs map[string]func()
	// resize feeds each attach session its terminal's size.
	resize map[string]sizes
}

var _ backend.Backend = (*Backend)(nil)

// RESTConfig finds the cluster as kubectl does.
func RESTConfig(kubeconfig, context string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes: no usable kubeconfig (%v); set KUBECONFIG or --kubeconfig, and --context", err)
	}
	return cfg, nil
}

// New connects to the cluster of cfg and checks that it answers.
func New(ctx context.Context, o Options, cfg *rest.Config) (*Backend, error) {
	b := Offline(o)
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "claude-bottle"
	cs, err := k8s.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	if _, err := cs.Discovery().ServerVersion(); err != nil {
		return nil, fmt.Errorf("kubernetes: the API server at %s does not answer: %v", cfg.Host, err)
	}
	b.cfg, b.cs, b.dyn = cfg, cs, dyn
	return b, nil
}

// Offline is the backend without a cluster: plan's operations and objects.
func Offline(o Options) *Backend {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.ConfirmTimeout == 0 {
		o.ConfirmTimeout = DefaultConfirmTimeout
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 2 * time.Minute
	}
	return &Backend{Options: o}
}

// Name implements backend.Backend.
func (b *Backend) Name() string { return Name }

// Close implements backend.Backend.
func (b *Backend) Close() error { return nil }

// objectOptions are the manifest's cluster settings, as Build takes them.
func (b *Backend) objectOptions() ObjectOptions {
	return ObjectOptions{RuntimeClass: b.Bottle.RuntimeClass, ClusterCIDRs: b.Bottle.ClusterCIDRs, EgressPeers: b.Bottle.EgressPeers, Registry: b.Bottle.Registry}
}

// Facts implements backend.Backend: the host's facts, and gVisor counts as
// working when the cluster has the RuntimeClass the bottle would use.
func (b *Backend) Facts(ctx context.Context, req backend.FactsRequest) (plan.Host, error) {
	host := launch.HostFacts(b.State, req.Agent, b.Getenv)
	rc := b.Bottle.RuntimeClass
	if rc == "" {
		rc = DefaultRuntimeClass
	}
	if b.cs == nil {
		host.Runsc, host.RunscNote = true, ""
		host.RunscEvidence = fmt.Sprintf("the agent asks for RuntimeClass %q (no cluster was asked whether it has one)", rc)
		return host, nil
	}
	// Without the agent-sandbox CRDs the start would fail only at its last
	// object, after minutes: say so now.
	if err := b.sandboxServed(); err != nil {
		return host, err
	}
	_, err := b.cs.NodeV1().RuntimeClasses().Get(ctx, rc, metav1.GetOptions{})
	switch {
	case err == nil:
		host.Runsc = true
		host.RunscEvidence = fmt.Sprintf("the cluster has RuntimeClass %q for the agent", rc)
	case apierrors.IsNotFound(err):
		host.RunscNote = fmt.Sprintf("the cluster has no RuntimeClass %q", rc)
	default:
		return host, fmt.Errorf("kubernetes: read RuntimeClass %s: %w", rc, err)
	}
	return host, nil
}

// sandboxServed checks that the cluster serves the agent-sandbox Sandbox.
func (b *Backend) sandboxServed() error {
	gv := SandboxResource.GroupVersion().String()
	list, err := b.cs.Discovery().ServerResourcesForGroupVersion(gv)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("kubernetes: ask the API server for %s: %w", gv, err)
	}
	if err == nil {
		for _, r := range list.APIResources {
			if r.Name == SandboxResource.Resource {
				return nil
			}
		}
	}
	return fmt.Errorf("kubernetes: the cluster does not serve %s Sandbox: install the agent-sandbox controller and its CRDs (v1.0.1; docs/kubernetes.md, \"Pointing it at your own cluster\")", gv)
}

// Observe implements backend.Backend: our namespaces are the names taken.
func (b *Backend) Observe(ctx context.Context, join []string) (plan.Observed, error) {
	var obs plan.Observed
	if len(join) > 0 {
		return obs, fmt.Errorf("kubernetes: egress.networks (%s) names Docker networks; a cluster bottle cannot join them: remove it or run on docker", strings.Join(join, ", "))
	}
	if b.cs == nil {
		return obs, nil
	}
	nss, err := b.cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: plan.LabelInstance})
	if err != nil {
		return obs, fmt.Errorf("kubernetes: list namespaces: %w", err)
	}
	for _, ns := range nss.Items {
		obs.Resources = append(obs.Resources, plan.Resource{Name: ns.Name, Kind: "namespace", Live: launch.OwnerAlive(ns.Annotations[AnnotationOwner])})
	}
	// A namespace of that name that is not ours is taken all the same.
	return obs, nil
}

// PlanObjects renders the objects of p as `plan` shows them: secrets by
// key, never a value.
func (b *Backend) PlanObjects(p *plan.Plan) (*Objects, error) {
	return Build(p, b.objectOptions())
}

// Operations implements backend.Backend: one operation per object, then
// the waits. Each waits for the one before it: the API server takes them
// in this order (the namespace first, the policies before any pod, the
// agent once its sidecars are ready).
func (b *Backend) Operations(p *plan.Plan) []plan.Op {
	objs, err := b.PlanObjects(p)
	if err != nil {
		return []plan.Op{plan.NewOp("error", err.Error())}
	}
	var ops []plan.Op
	add := func(kind, target string) {
		op := plan.NewOp(kind, target)
		if len(ops) > 0 {
			op.After = []string{ops[len(ops)-1].ID}
		}
		ops = append(ops, op)
	}
	add("stage", p.Instance)
	for _, o := range objs.List() {
		if o == runtime.Object(objs.Sandbox) {
			// The agent's DNS and hosts name the sidecars' addresses,
			// and it starts once they are ready.
			for _, pod := range objs.Pods {
				add("ready", "Pod/"+pod.Name)
			}
		}
		add("create", describe(o))
	}
	add("ready", "Sandbox/"+SandboxName)
	return ops
}

// describe names an object as KIND/NAME.
func describe(o runtime.Object) string {
	m, err := metaOf(o)
	if err != nil {
		return fmt.Sprintf("%T", o)
	}
	return o.GetObjectKind().GroupVersionKind().Kind + "/" + m.GetName()
}

func metaOf(o runtime.Object) (metav1.Object, error) {
	m, ok := o.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%T has no object metadata", o)
	}
	return m, nil
}

// Up implements backend.Backend: it renders the stage directory on the host
// (credentials resolved there, as for Docker), copies it into the
// instance's objects and creates them in order; on any failure, or when
// ctx ends, it deletes the namespace (and with it everything) and waits.
func (b *Backend) Up(ctx context.Context, p *plan.Plan, opts backend.UpOptions) (_ *backend.Bottle, err error) {
	if b.cs == nil {
		return nil, errors.New("kubernetes: no cluster")
	}
	dir := stage.InstanceDir(b.State, p.Instance)
	created := false
	defer func() {
		if err == nil {
			return
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DeleteTimeout+10*time.Second)
		defer cancel()
		if created {
			if derr := b.deleteNamespace(dctx, p.Instance); derr != nil {
				err = fmt.Errorf("%w (and the cleanup failed: %v)", err, derr)
			}
		}
		os.RemoveAll(dir)
	}()
	b.progress("stage files of %s", p.Instance)
	o, missing, err := b.render(ctx, p, opts.ManifestPath)
	if err != nil {
		return nil, err
	}
	list := o.List()
	for i, obj := range list {
		if i == 0 {
			// The namespace is the claim: a second launcher with the same
			// name fails here, as a Docker one fails on the container name.
			if _, err := b.cs.CoreV1().Namespaces().Create(ctx, o.Namespace, metav1.CreateOptions{}); err != nil {
				if apierrors.IsAlreadyExists(err) {
					return nil, fmt.Errorf("%w: namespace %q already exists (a running bottle); unset CLAUDE_BOTTLE_CONTAINER or pick another name", plan.ErrNameTaken, p.Instance)
				}
				return nil, fmt.Errorf("create %s: %w", describe(obj), err)
			}
			created = true
			if opts.Claimed != nil {
				opts.Claimed()
			}
			continue
		}
		if sb, ok := obj.(*sandboxv1.Sandbox); ok {
			if err := b.waitPodsReady(ctx, o); err != nil {
				return nil, err
			}
			if err := b.fillAddresses(ctx, p.Instance, sb); err != nil {
				return nil, err
			}
		}
		b.progress("create %s", describe(obj))
		if err := b.create(ctx, p.Instance, obj); err != nil {
			return nil, fmt.Errorf("create %s: %w", describe(obj), err)
		}
	}
	if err := b.waitSandboxReady(ctx, p.Instance); err != nil {
		return nil, err
	}
	// While the bottle runs: each sidecar's decision log into the host's
	// log directory, and supervise's requests and decisions.
	var jobs []func(context.Context)
	for _, pod := range o.Pods {
		role := pod.Labels[plan.LabelRole]
		jobs = append(jobs, func(ctx context.Context) { b.followLogs(ctx, p.Instance, role) })
	}
	if p.Spec.Supervise {
		jobs = append(jobs, func(ctx context.Context) { b.syncSupervise(ctx, p.Instance) })
	}
	b.background(ctx, p.Instance, jobs)
	return &backend.Bottle{Plan: p, Agent: p.Instance + "/" + SandboxName, Missing: missing}, nil
}

// background runs jobs until Down stops them (and waits for them).
func (b *Backend) background(ctx context.Context, instance string, jobs []func(context.Context)) {
	bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for _, job := range jobs {
		wg.Go(func() { job(bctx) })
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.syncs == nil {
		b.syncs = map[string]func(){}
	}
	b.syncs[instance] = func() { cancel(); wg.Wait() }
}

// render writes the instance's stage directory on the host (credentials
// resolved there, as for Docker) and renders the objects from it.
func (b *Backend) render(ctx context.Context, p *plan.Plan, manifestPath string) (*Objects, []string, error) {
	dir := stage.InstanceDir(b.State, p.Instance)
	if err := launch.Prepare(ctx, p, dir, stage.LogDir(b.State, p.Instance), manifestPath, b.Getenv); err != nil {
		return nil, nil, err
	}
	if err := launch.PrepareClaudeState(filepath.Join(dir, stage.ClaudeState), &p.Spec); err != nil {
		return nil, nil, err
	}
	api, err := b.apiServerAddrs(ctx)
	if err != nil {
		return nil, nil, err
	}
	return b.hostObjects(p, dir, api)
}

// apiServerAddrs are the addresses (IP:PORT) a pod reaches the API server
// at once the cluster's Service has been resolved: the endpoints of
// default/kubernetes, else (a user who may not read them, or a control
// plane without them) the address the kubeconfig names.
func (b *Backend) apiServerAddrs(ctx context.Context) ([]string, error) {
	var out []string
	slices, err := b.cs.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=kubernetes"})
	if err == nil {
		for _, s := range slices.Items {
			for _, port := range s.Ports {
				if port.Port == nil {
					continue
				}
				for _, e := range s.Endpoints {
					for _, a := range e.Addresses {
						if ip, perr := netip.ParseAddr(a); perr == nil {
							out = append(out, netip.AddrPortFrom(ip, uint16(*port.Port)).String())
						}
					}
				}
			}
		}
	}
	if len(out) > 0 {
		sort.Strings(out)
		return out, nil
	}
	u, err := url.Parse(b.cfg.Host)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: the API server address %q: %w", b.cfg.Host, err)
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", u.Hostname())
	if err != nil {
		return nil, fmt.Errorf("kubernetes: resolve the API server %s: %w", u.Hostname(), err)
	}
	for _, ip := range ips {
		out = append(out, net.JoinHostPort(ip.Unmap().String(), port))
	}
	sort.Strings(out)
	return out, nil
}

// hostObjects renders the objects with the stage directory's secret files
// and the agent's variables (forwarded ones read from the host now).
func (b *Backend) hostObjects(p *plan.Plan, dir string, apiServer []string) (*Objects, []string, error) {
	opts := b.objectOptions()
	opts.APIServer = apiServer
	opts.Owner = launch.Owner()
	opts.Secrets = map[string][]byte{}
	plain := map[string]bool{}
	for _, f := range p.Spec.Files {
		plain[f.Path] = true
	}
	for _, sub := range []string{stage.EgressDir, stage.CredProxyDir, stage.GitGateDir} {
		err := filepath.WalkDir(filepath.Join(dir, sub), func(path string, d os.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return filepath.SkipDir
				}
				return err
			}
			rel, _ := filepath.Rel(dir, path)
			if d.IsDir() || plain[filepath.ToSlash(rel)] {
				return nil
			}
			c, err := os.ReadFile(path)
			opts.Secrets[filepath.ToSlash(rel)] = c
			return err
		})
		if err != nil {
			return nil, nil, err
		}
	}
	env, missing := launch.AgentEnv(p, b.Getenv)
	opts.Env = map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		opts.Env[k] = v
	}
	opts.ClaudeState = map[string][]byte{}
	states, _ := os.ReadDir(filepath.Join(dir, stage.ClaudeState))
	for _, e := range states {
		if e.Type().IsRegular() {
			c, err := os.ReadFile(filepath.Join(dir, stage.ClaudeState, e.Name()))
			if err != nil {
				return nil, nil, err
			}
			opts.ClaudeState[e.Name()] = c
		}
	}
	o, err := Build(p, opts)
	return o, missing, err
}

// create creates one object in the instance's namespace.
func (b *Backend) create(ctx context.Context, ns string, obj runtime.Object) error {
	if sb, ok := obj.(*sandboxv1.Sandbox); ok {
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(sb)
		if err != nil {
			return err
		}
		_, err = b.dyn.Resource(SandboxResource).Namespace(ns).Create(ctx, &unstructured.Unstructured{Object: u}, metav1.CreateOptions{})
		return err
	}
	var err error
	c := b.cs
	switch x := obj.(type) {
	case *corev1.ServiceAccount:
		_, err = c.CoreV1().ServiceAccounts(ns).Create(ctx, x, metav1.CreateOptions{})
	case *corev1.ConfigMap:
		_, err = c.CoreV1().ConfigMaps(ns).Create(ctx, x, metav1.CreateOptions{})
	case *corev1.Secret:
		_, err = c.CoreV1().Secrets(ns).Create(ctx, x, metav1.CreateOptions{})
	case *corev1.Service:
		_, err = c.CoreV1().Services(ns).Create(ctx, x, metav1.CreateOptions{})
	case *corev1.Pod:
		_, err = c.CoreV1().Pods(ns).Create(ctx, x, metav1.CreateOptions{})
	case *rbacv1.Role:
		_, err = c.RbacV1().Roles(ns).Create(ctx, x, metav1.CreateOptions{})
	case *rbacv1.RoleBinding:
		_, err = c.RbacV1().RoleBindings(ns).Create(ctx, x, metav1.CreateOptions{})
	case *networkingv1.NetworkPolicy:
		_, err = c.NetworkingV1().NetworkPolicies(ns).Create(ctx, x, metav1.CreateOptions{})
	default:
		err = fmt.Errorf("no client for %T", obj)
	}
	return err
}

// fillAddresses points the agent's resolver at egress's Service and its
// hosts file at each sidecar's: the names it has on Docker.
func (b *Backend) fillAddresses(ctx context.Context, ns string, sb *sandboxv1.Sandbox) error {
	spec := &sb.Spec.PodTemplate.Spec
	for i, h := range spec.HostAliases {
		svc, err := b.cs.CoreV1().Services(ns).Get(ctx, h.Hostnames[0], metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("read Service %s: %w", h.Hostnames[0], err)
		}
		if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
			return fmt.Errorf("Service %s has no cluster address", h.Hostnames[0])
		}
		spec.HostAliases[i].IP = svc.Spec.ClusterIP
		if h.Hostnames[0] == plan.RoleEgress {
			spec.DNSConfig.Nameservers = []string{svc.Spec.ClusterIP}
		}
	}
	return nil
}

// waitPodsReady waits until every sidecar Pod is Ready.
func (b *Backend) waitPodsReady(ctx context.Context, o *Objects) error {
	for _, pod := range o.Pods {
		b.progress("wait for Pod/%s", pod.Name)
		err := b.poll(ctx, b.ReadyTimeout, "Pod/"+pod.Name+" to be ready", func() (bool, string, error) {
			x, err := b.cs.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
			if err != nil {
				return false, "", err
			}
			if x.Status.Phase == corev1.PodFailed || x.Status.Phase == corev1.PodSucceeded {
				return false, "", fmt.Errorf("Pod/%s ended (%s)", pod.Name, x.Status.Phase)
			}
			for _, c := range x.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					return true, "", nil
				}
			}
			return false, string(x.Status.Phase), nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// waitSandboxReady waits for the agent-sandbox controller to report the
// Sandbox Ready (its Pod scheduled and running).
func (b *Backend) waitSandboxReady(ctx context.Context, ns string) error {
	b.progress("wait for Sandbox/%s", SandboxName)
	return b.poll(ctx, b.ReadyTimeout, "Sandbox/"+SandboxName+" to be ready (is the agent-sandbox controller running?)", func() (bool, string, error) {
		u, err := b.dyn.Resource(SandboxResource).Namespace(ns).Get(ctx, SandboxName, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		var sb sandboxv1.Sandbox
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &sb); err != nil {
			return false, "", err
		}
		state := "no Ready condition yet"
		for _, c := range sb.Status.Conditions {
			if c.Type == string(sandboxv1.SandboxConditionReady) {
				if c.Status == metav1.ConditionTrue {
					return true, "", nil
				}
				state = c.Reason + ": " + c.Message
			}
		}
		// An agent that has already ended (a short command) leaves its pod
		// running but never Ready (the workspace container holds it):
		// its output and exit code are there to read.
		if pod, err := b.cs.CoreV1().Pods(ns).Get(ctx, SandboxName, metav1.GetOptions{}); err == nil {
			for _, st := range pod.Status.ContainerStatuses {
				if st.Name == plan.RoleAgent && st.State.Terminated != nil {
					return true, "", nil
				}
			}
		}
		return false, state, nil
	})
}

// poll asks done every 250 ms until it says true, fails, or timeout.
func (b *Backend) poll(ctx context.Context, timeout time.Duration, what string, done func() (bool, string, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := ""
	for {
		ok, state, err := done()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		last = state
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("timed out after %s waiting for %s (last: %s)", timeout, what, last)
			}
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Attach implements backend.Backend as `kubectl attach -it` does: the
// agent container's stdin, stdout and TTY through the API server (the
// kubelet's attach, over WebSocket, else SPDY), then its exit code from
// the pod's status. The agent starts with its Sandbox, before anyone is
// attached: a TUI redraws on the first resize, which run sends at once;
// without a TTY, output comes from the container's log from its first
// line (attach would lose what was printed before it), and attach carries
// stdin only.
func (b *Backend) Attach(ctx context.Context, bt *backend.Bottle, s backend.Streams) (int, error) {
	if b.cs == nil {
		return 0, errors.New("kubernetes: no cluster")
	}
	ns := bt.Plan.Instance
	fail := func(err error) (int, error) {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, fmt.Errorf("kubernetes: attach to the agent in %s: %w", ns, err)
	}
	if s.TTY {
		sizes := b.sizeQueue(ns)
		defer b.dropSizeQueue(ns)
		stdin := s.Stdin
		if stdin != nil && gated(bt.Plan.Docker.Container(plan.RoleAgent), bt.Plan.Spec.AgentDockerfile) {
			// Opens the gate once attached: the command starts now, and
			// its first output reaches this terminal.
			stdin = io.MultiReader(strings.NewReader(attachGateByte), stdin)
		}
		if err := b.attach(ctx, ns, remotecommand.StreamOptions{Stdin: stdin, Stdout: s.Stdout, Tty: true, TerminalSizeQueue: sizes}); err != nil {
			return fail(err)
		}
		return b.agentExit(ctx, ns)
	}
	logs, err := b.cs.CoreV1().Pods(ns).GetLogs(SandboxName, &corev1.PodLogOptions{Container: plan.RoleAgent, Follow: true}).Stream(ctx)
	if err != nil {
		return fail(err)
	}
	defer logs.Close()
	if s.Stdin != nil {
		go func() {
			// Ends with the container (StdinOnce), or with ctx.
			if err := b.attach(ctx, ns, remotecommand.StreamOptions{Stdin: s.Stdin}); err != nil && ctx.Err() == nil {
				b.Log.Warn("kubernetes: the agent's stdin", "instance", ns, "err", err)
			}
		}()
	}
	if _, err := io.Copy(s.Stdout, logs); err != nil {
		return fail(err)
	}
	return b.agentExit(ctx, ns)
}

// attach streams opts to the agent container's attach.
func (b *Backend) attach(ctx context.Context, ns string, opts remotecommand.StreamOptions) error {
	req := b.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(SandboxName).SubResource("attach").
		VersionedParams(&corev1.PodAttachOptions{Container: plan.RoleAgent, Stdin: opts.Stdin != nil, Stdout: opts.Stdout != nil, Stderr: opts.Stderr != nil, TTY: opts.Tty}, scheme.ParameterCodec)
	ex, err := b.executor(req.URL())
	if err != nil {
		return err
	}
	return ex.StreamWithContext(ctx, opts)
}

// executor streams a pod's attach or exec as kubectl does: WebSocket,
// else SPDY.
func (b *Backend) executor(u *url.URL) (remotecommand.Executor, error) {
	ws, err := remotecommand.NewWebSocketExecutor(b.cfg, "GET", u.String())
	if err != nil {
		return nil, err
	}
	spdy, err := remotecommand.NewSPDYExecutor(b.cfg, "POST", u)
	if err != nil {
		return nil, err
	}
	return remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
}

// agentExit waits briefly for the agent container's exit code once its
// streams have closed.
func (b *Backend) agentExit(ctx context.Context, ns string) (int, error) {
	code := 0
	err := b.poll(ctx, 30*time.Second, "the agent to exit", func() (bool, string, error) {
		pod, err := b.cs.CoreV1().Pods(ns).Get(ctx, SandboxName, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		for _, st := range pod.Status.ContainerStatuses {
			if st.Name == plan.RoleAgent && st.State.Terminated != nil {
				code = int(st.State.Terminated.ExitCode)
				return true, "", nil
			}
		}
		return false, string(pod.Status.Phase), nil
	})
	return code, err
}

// sizes carries terminal sizes to one attach session.
type sizes chan *remotecommand.TerminalSize

// Next implements remotecommand.TerminalSizeQueue.
func (q sizes) Next() *remotecommand.TerminalSize { return <-q }

func (b *Backend) sizeQueue(ns string) sizes {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.resize == nil {
		b.resize = map[string]sizes{}
	}
	q := make(sizes, 4)
	b.resize[ns] = q
	return q
}

func (b *Backend) dropSizeQueue(ns string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if q, ok := b.resize[ns]; ok {
		delete(b.resize, ns)
		close(q) // Next returns nil: the stream stops asking
	}
}

// Resize implements backend.Backend: the size goes to the attach session
// (dropped when one is still pending: only the latest matters).
func (b *Backend) Resize(ctx context.Context, bt *backend.Bottle, height, width uint) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	q, ok := b.resize[bt.Plan.Instance]
	if !ok {
		return nil
	}
	select {
	case q <- &remotecommand.TerminalSize{Width: uint16(width), Height: uint16(height)}:
	default:
	}
	return nil
}

// Finish implements backend.Backend: the agent's work comes back (finish).
func (b *Backend) Finish(ctx context.Context, bt *backend.Bottle) (backend.Work, error) {
	return b.finish(ctx, bt.Plan)
}

// harvestTimeout bounds reading the work out of the pod.
const harvestTimeout = 5 * time.Minute

// finish brings the agent's /workspace back as an archive under the state
// directory (Spec.Work: --cwd's branch is not offered on a cluster), read
// as a tar stream from the pod's workspace container through the API. An
// empty workspace gives Nothing. A running agent is not stopped first (a
// pod's container cannot be stopped alone): what it writes meanwhile may
// be missing from the archive.
func (b *Backend) finish(ctx context.Context, p *plan.Plan) (backend.Work, error) {
	if b.cs == nil || p.Spec.Work.Mode != "archive" {
		return backend.Work{Nothing: true}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, harvestTimeout)
	defer cancel()
	r, w := io.Pipe()
	var stderr strings.Builder
	go func() {
		err := b.exec(ctx, p.Instance, KeeperContainer, []string{"tar", "-C", plan.WorkspaceDir, "-cf", "-", "."}, w, &workback.FirstBytes{W: &stderr, N: 4096})
		if err != nil && stderr.Len() > 0 {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
		}
		w.CloseWithError(err)
	}()
	archive := workback.ArchivePath(filepath.Join(b.State, p.Spec.Work.Archive))
	saved, err := workback.SaveArchive(r, archive)
	r.Close()
	if err != nil {
		return backend.Work{}, fmt.Errorf("read /workspace from the agent's pod: %w", err)
	}
	if !saved {
		return backend.Work{Nothing: true}, nil
	}
	return backend.Work{Archive: archive}, nil
}

// exec runs cmd in a container of the agent's pod, its output to stdout.
func (b *Backend) exec(ctx context.Context, ns, container string, cmd []string, stdout, stderr io.Writer) error {
	req := b.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(SandboxName).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: cmd, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ex, err := b.executor(req.URL())
	if err != nil {
		return err
	}
	return ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: stdout, Stderr: stderr})
}

// Down implements backend.Backend: it deletes the instance's namespace,
// which deletes everything in it, waits until it is gone, and removes the
// stage directory.
func (b *Backend) Down(ctx context.Context, instance string) error {
	b.mu.Lock()
	stop := b.syncs[instance]
	delete(b.syncs, instance)
	b.mu.Unlock()
	if stop != nil {
		stop()
	}
	if err := b.deleteNamespace(ctx, instance); err != nil {
		return err
	}
	// The decision log (STATE/logs/INSTANCE) is kept, as on Docker.
	return os.RemoveAll(stage.InstanceDir(b.State, instance))
}

// DeleteTimeout bounds the wait for a deleted namespace to go: the
// cluster's namespace controller deletes what is in it first.
const DeleteTimeout = 2 * time.Minute

// deleteNamespace deletes one of our namespaces and waits until it is gone.
// A namespace without our instance label is never touched.
func (b *Backend) deleteNamespace(ctx context.Context, name string) error {
	ns, err := b.cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if ns.Labels[plan.LabelInstance] != name {
		return fmt.Errorf("namespace %s is not a claude-bottle instance; not deleting it", name)
	}
	b.progress("delete Namespace/%s", name)
	policy := metav1.DeletePropagationForeground
	if err := b.cs.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &policy}); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return b.poll(ctx, DeleteTimeout, "Namespace/"+name+" to be deleted", func() (bool, string, error) {
		x, err := b.cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, "", nil
		}
		if err != nil {
			return false, "", err
		}
		return false, string(x.Status.Phase), nil
	})
}

// List implements backend.Backend: our namespaces, across the cluster.
func (b *Backend) List(ctx context.Context) ([]backend.Instance, error) {
	nss, err := b.cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: plan.LabelInstance})
	if err != nil {
		return nil, fmt.Errorf("kubernetes: list namespaces: %w", err)
	}
	var out []backend.Instance
	for _, ns := range nss.Items {
		inst := backend.Instance{Instance: ns.Name, Agent: ns.Labels[plan.LabelAgent], Created: ns.CreationTimestamp.Time,
			Live: launch.OwnerAlive(ns.Annotations[AnnotationOwner]), Runtimes: map[string]string{}}
		pods, err := b.cs.CoreV1().Pods(ns.Name).List(ctx, metav1.ListOptions{LabelSelector: plan.LabelRole})
		if err != nil {
			return nil, err
		}
		for _, p := range pods.Items {
			role := p.Labels[plan.LabelRole]
			rc := "default"
			if p.Spec.RuntimeClassName != nil {
				rc = *p.Spec.RuntimeClassName
			}
			inst.Runtimes[role] = rc
			if role == plan.RoleAgent {
				inst.Runtime = rc
			} else {
				inst.Sidecars = append(inst.Sidecars, role)
			}
		}
		sort.Strings(inst.Sidecars)
		out = append(out, inst)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Instance < out[j].Instance })
	return out, nil
}

// Orphans implements backend.Backend: namespaces whose launcher is gone.
func (b *Backend) Orphans(ctx context.Context) ([]backend.Orphan, error) {
	insts, err := b.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []backend.Orphan
	for _, i := range insts {
		if !i.Live {
			out = append(out, backend.Orphan{Kind: "namespace", Name: i.Instance, Instance: i.Instance})
		}
	}
	return out, nil
}

// FinishOrphan implements backend.Backend: the work of a bottle whose
// launcher is gone comes back from its pod, if the pod is still there.
func (b *Backend) FinishOrphan(ctx context.Context, instance string) (backend.Work, error) {
	p, err := launch.KeptPlan(b.State, instance)
	if err != nil || p.Instance != instance || b.cs == nil {
		return backend.Work{Nothing: true}, nil
	}
	if _, err := b.cs.CoreV1().Pods(instance).Get(ctx, SandboxName, metav1.GetOptions{}); err != nil {
		return backend.Work{Nothing: true}, nil
	}
	return b.finish(ctx, p)
}

// Apply implements backend.Backend: the approval changes the stage
// directory as on Docker (one renderer), then the changed files are copied
// into the instance's ConfigMaps and Secrets, which the kubelet projects
// into the sidecars' volumes; the sidecars reload them as on Docker.
func (b *Backend) Apply(ctx context.Context, instance string, req supervise.Request, opts supervise.ApplyOptions) error {
	a := &launch.Applier{State: b.State, Getenv: b.Getenv}
	if b.cs != nil {
		// Each sidecar's files reach it as its ConfigMap and Secret, then
		// the decision waits for its reload (its log, followed by run
		// into the log directory), as on Docker. The kubelet refreshes a
		// mounted ConfigMap on its own sync period (about a minute by
		// default), hence the longer wait.
		a.Confirm = b.ConfirmTimeout
		a.Publish = func(ctx context.Context, p *plan.Plan, sidecar string) error {
			return b.publish(ctx, p, instance, sidecar)
		}
	}
	return a.Apply(ctx, instance, req, opts)
}

// DefaultConfirmTimeout is how long an approval waits for a sidecar on a
// cluster to reload its changed ConfigMap.
const DefaultConfirmTimeout = 3 * time.Minute

// publish updates the ConfigMap and Secret one sidecar reads ("" for the
// agent's current-config) from the plan's files and the stage directory.
func (b *Backend) publish(ctx context.Context, p *plan.Plan, instance, sidecar string) error {
	o, _, err := b.hostObjects(p, stage.InstanceDir(b.State, instance), nil)
	if err != nil {
		return err
	}
	mine := func(name string) bool {
		if sidecar == "" {
			return name == CurrentConfigMap
		}
		return strings.HasPrefix(name, sidecar+"-")
	}
	for _, cm := range o.ConfigMaps {
		if !mine(cm.Name) || cm.Name == ClaudeStateConfig {
			continue
		}
		if _, err := b.cs.CoreV1().ConfigMaps(instance).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update ConfigMap/%s: %w", cm.Name, err)
		}
	}
	for _, s := range o.Secrets {
		if !mine(s.Name) || s.Name == AgentEnvSecret || s.Name == DecisionsSecret {
			continue
		}
		if _, err := b.cs.CoreV1().Secrets(instance).Update(ctx, s, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update Secret/%s: %w", s.Name, err)
		}
	}
	if sidecar != "" {
		b.progress("%s's configuration is updated in %s; waiting for it to reload (the kubelet refreshes mounted ConfigMaps about once a minute)", sidecar, instance)
	}
	return nil
}

func (b *Backend) progress(format string, args ...any) {
	if b.Progress != nil {
		fmt.Fprintf(b.Progress, "claude-bottle: "+format+"\n", args...)
	}
}
