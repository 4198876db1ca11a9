// Package kubernetes runs a bottle on a Kubernetes cluster: one namespace
// per instance, the agent as an agent-sandbox Sandbox, each sidecar a Pod
// behind a Service of its short role name, stage files as ConfigMaps and
// Secrets, NetworkPolicies that leave the agent only its sidecars, and
// least-privilege RBAC. Objects (this file) is pure: plan and the tests
// render it without a cluster; backend.go talks to the API server.
package kubernetes

import (
	"cmp"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	sandboxv1 "sigs.k8s.io/agent-sandbox/api/v1beta1"

	"github.com/claude-bottle/claude-bottle/internal/audit"
	"github.com/claude-bottle/claude-bottle/internal/launch"
	"github.com/claude-bottle/claude-bottle/internal/manifest"
	"github.com/claude-bottle/claude-bottle/internal/plan"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

// Names inside an instance's namespace. The sidecars' Services carry their
// role names (egress, cred-proxy, git-gate, supervise), so the agent's
// configuration is the one it has on Docker.
const (
	// SandboxName is the agent's Sandbox, and so its Pod.
	SandboxName = "agent"
	// DecisionsSecret holds the host's supervise decisions: the supervise
	// sidecar may read it and nothing else may, and only the host writes it.
	DecisionsSecret = "supervise-decisions"
	// AgentEnvSecret holds the agent's literal and forwarded variables.
	AgentEnvSecret = "agent-env"
	// ClaudeStateConfig holds the Claude Code state files the agent
	// starts with (copied into a writable volume by an init container).
	ClaudeStateConfig = "claude-state"
	// CurrentConfigMap is the agent's read-only view of its bottle.
	CurrentConfigMap = "current-config"
	// KeeperContainer is the agent pod's second container: it keeps the
	// pod, and the agent's /workspace, after the agent exits.
	KeeperContainer = "workspace"
	// AnnotationOwner is the launcher (HOST/PID): a label value cannot hold
	// a slash.
	AnnotationOwner = "dev.claude-bottle/owner"
	// LabelRequest marks supervise request ConfigMaps.
	LabelRequest = "dev.claude-bottle.supervise-request"
)

// ObjectOptions are the cluster facts the objects depend on.
type ObjectOptions struct {
	// RuntimeClass is the agent's RuntimeClass ("" for the cluster's
	// default); for a bottle planned under runsc it defaults to "gvisor".
	RuntimeClass string
	// ClusterCIDRs are the cluster's pod and service ranges: egress never
	// reaches them (nor the metadata address).
	ClusterCIDRs []string
	// EgressPeers are the in-cluster pods egress may reach besides.
	EgressPeers []manifest.EgressPeer
	// Registry, when set, prefixes every image: the cluster pulls
	// REGISTRY/claude-bottle-sidecar:TAG and the like.
	Registry string
	// APIServer are the API server's addresses (IP:PORT) that supervise,
	// alone, may reach; nil when planning (APIServerPlaceholder).
	APIServer []string
	// Owner is the launcher, HOST/PID.
	Owner string
	// Secrets holds the secret stage files by stage path (tokens, keys,
	// egress's canary list) and Env the agent's variables: nil when
	// planning, which names them but never holds a value.
	Secrets map[string][]byte
	Env     map[string]string
	// ClaudeState holds the Claude Code state files by name.
	ClaudeState map[string][]byte
}

// GracePeriod is how long a bottle's pods get to stop (seconds).
const GracePeriod = 3

// EgressDNSPort is where egress's DNS stub listens in its pod; its
// Service answers on 53 (seen on a real kubelet: a non-root sidecar with
// every capability dropped is refused port 53).
const EgressDNSPort = 5353

// SidecarUID is the non-root user the sidecars run as on a cluster: the
// Docker backend's when its launcher is root.
const SidecarUID = launch.SidecarUID

// DefaultRuntimeClass is the RuntimeClass a gVisor bottle asks for.
const DefaultRuntimeClass = "gvisor"

// Blocked are never reachable from egress at the network layer, whatever
// the rules: link-local (cloud metadata) addresses, loopback, and the
// private and shared ranges a cluster's pods, Services and nodes live in.
// The cluster's own CIDRs (cluster_cidrs) are added when they lie outside
// these. Egress itself refuses private addresses too; this is the floor
// the network keeps if it ever did not.
var Blocked = []string{
	"10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16",
	"::1/128", "fc00::/7", "fe80::/10",
}

// outside is what egress's "anywhere" rules leave out, by family: Blocked
// and the cluster's CIDRs (those Blocked does not already cover).
func outside(cluster []string) (v4, v6 []string) {
	var blocked []netip.Prefix
	for _, c := range Blocked {
		blocked = append(blocked, netip.MustParsePrefix(c))
	}
	all := slices.Clone(blocked)
	for _, c := range cluster {
		p, err := netip.ParsePrefix(c)
		if err != nil { // validated with the manifest
			continue
		}
		p = p.Masked()
		if !slices.ContainsFunc(blocked, func(b netip.Prefix) bool { return b.Bits() <= p.Bits() && b.Contains(p.Addr()) }) {
			all = append(all, p)
		}
	}
	for _, p := range all {
		if p.Addr().Is4() {
			v4 = append(v4, p.String())
		} else {
			v6 = append(v6, p.String())
		}
	}
	sort.Strings(v4)
	sort.Strings(v6)
	return v4, v6
}

// Objects is everything one bottle instance makes on a cluster, in the
// order it is created.
type Objects struct {
	Namespace       *corev1.Namespace
	ServiceAccounts []*corev1.ServiceAccount
	Roles           []*rbacv1.Role
	RoleBindings    []*rbacv1.RoleBinding
	NetworkPolicies []*networkingv1.NetworkPolicy
	ConfigMaps      []*corev1.ConfigMap
	Secrets         []*corev1.Secret
	Services        []*corev1.Service
	Pods            []*corev1.Pod
	Sandbox         *sandboxv1.Sandbox
}

// List is every object in creation order: the namespace, who may do
// what, the policies (before any pod exists), files, Services, sidecar
// Pods, and the agent last.
func (o *Objects) List() []runtime.Object {
	out := []runtime.Object{o.Namespace}
	out = appendObjects(out, o.ServiceAccounts)
	out = appendObjects(out, o.Roles)
	out = appendObjects(out, o.RoleBindings)
	out = appendObjects(out, o.NetworkPolicies)
	out = appendObjects(out, o.ConfigMaps)
	out = appendObjects(out, o.Secrets)
	out = appendObjects(out, o.Services)
	out = appendObjects(out, o.Pods)
	return append(out, o.Sandbox)
}

func appendObjects[T runtime.Object](out []runtime.Object, xs []T) []runtime.Object {
	for _, x := range xs {
		out = append(out, x)
	}
	return out
}

// Build renders the objects of a plan. It is pure: the same plan and
// options give the same objects.
func Build(p *plan.Plan, o ObjectOptions) (*Objects, error) {
	ns := p.Instance
	if p.Spec.DerivedImage != "" {
		return nil, fmt.Errorf("kubernetes: --cwd is not supported on a cluster yet (its derived image is built on the Docker engine, where the cluster cannot pull it): run without --cwd, or on docker")
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return nil, fmt.Errorf("kubernetes: the instance name %q cannot name a namespace (%s); pin one of lowercase letters, digits and '-' with CLAUDE_BOTTLE_CONTAINER", ns, strings.Join(errs, "; "))
	}
	labels := func(role string) map[string]string {
		l := map[string]string{plan.LabelInstance: p.Instance, plan.LabelAgent: p.Agent}
		if role != "" {
			l[plan.LabelRole] = role
		}
		return l
	}
	meta := func(name, role string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels(role)}
	}
	out := &Objects{Namespace: &corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels(""), Annotations: map[string]string{AnnotationOwner: o.Owner}},
	}}
	if o.Owner == "" {
		out.Namespace.Annotations = nil
	}
	// The pod security admission label: what the cluster enforces even
	// if a pod spec here were wrong.
	out.Namespace.Labels["pod-security.kubernetes.io/enforce"] = "restricted"

	roles := []string{plan.RoleAgent}
	for _, c := range p.Docker.Containers {
		if c.Role != plan.RoleAgent {
			roles = append(roles, c.Role)
		}
	}
	for _, role := range roles {
		out.ServiceAccounts = append(out.ServiceAccounts, &corev1.ServiceAccount{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
			ObjectMeta: meta(role, role),
			// Only supervise talks to the API; it mounts its token itself.
			AutomountServiceAccountToken: new(false),
		})
	}
	if p.Spec.Supervise {
		out.Roles = append(out.Roles, &rbacv1.Role{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
			ObjectMeta: meta(plan.RoleSupervise, plan.RoleSupervise),
			Rules: []rbacv1.PolicyRule{
				// Requests: it files new ones and reads them back; it can
				// never change or delete one, nor any other ConfigMap
				// (all exist before it starts: create cannot replace).
				{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"create", "get", "list", "watch"}},
				// Decisions: the one Secret the host writes, read-only.
				{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{DecisionsSecret}, Verbs: []string{"get", "watch"}},
			},
		})
		out.RoleBindings = append(out.RoleBindings, &rbacv1.RoleBinding{
			TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
			ObjectMeta: meta(plan.RoleSupervise, plan.RoleSupervise),
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: plan.RoleSupervise},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: plan.RoleSupervise, Namespace: ns}},
		})
	}
	out.NetworkPolicies = networkPolicies(p, o, meta)

	files, err := stageFiles(p, o)
	if err != nil {
		return nil, err
	}
	for _, role := range append(roles[1:], CurrentConfigMap) {
		if cm := configMap(meta(role+"-config", role), files, role); cm != nil {
			if role == CurrentConfigMap {
				cm.Name, cm.Labels = CurrentConfigMap, labels(plan.RoleAgent)
			}
			out.ConfigMaps = append(out.ConfigMaps, cm)
		}
	}
	cs := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: meta(ClaudeStateConfig, plan.RoleAgent), Data: map[string]string{}}
	for _, k := range sortedKeys(o.ClaudeState) {
		cs.Data[k] = string(o.ClaudeState[k])
	}
	out.ConfigMaps = append(out.ConfigMaps, cs)
	for _, role := range roles[1:] {
		if s := secret(meta(role+"-secrets", role), files, role); s != nil {
			out.Secrets = append(out.Secrets, s)
		}
	}
	env := &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: meta(AgentEnvSecret, plan.RoleAgent),
		Type: corev1.SecretTypeOpaque, Data: map[string][]byte{}}
	for _, e := range p.Spec.Env {
		if e.Source == "wiring" {
			continue
		}
		env.Data[e.Name] = nil
		if v, ok := o.Env[e.Name]; ok {
			env.Data[e.Name] = []byte(v)
		}
	}
	out.Secrets = append(out.Secrets, env)
	if p.Spec.Supervise {
		out.Secrets = append(out.Secrets, &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: meta(DecisionsSecret, plan.RoleSupervise), Type: corev1.SecretTypeOpaque})
	}

	for _, c := range p.Docker.Containers {
		if c.Role == plan.RoleAgent {
			continue
		}
		out.Services = append(out.Services, service(meta(c.Role, c.Role), c.Role))
		pod, err := sidecarPod(p, c, meta(c.Role, c.Role), files)
		if err != nil {
			return nil, err
		}
		if p.Docker.Runtime == "runsc" {
			// Every sidecar handles bytes the agent controls: under gVisor
			// too, egress included (on Docker it stays on runc only for
			// the engine's embedded DNS, which a cluster does not use).
			rc := cmp.Or(o.RuntimeClass, DefaultRuntimeClass)
			pod.Spec.RuntimeClassName = &rc
		}
		if c.Role == plan.RoleEgress {
			// Non-root with no capabilities cannot bind 53: the stub
			// listens on EgressDNSPort and the Service maps 53 to it.
			pod.Spec.Containers[0].Args = append(pod.Spec.Containers[0].Args, "--dns-listen", fmt.Sprintf(":%d", EgressDNSPort))
		}
		if c.Role == plan.RoleSupervise {
			// The one sidecar that talks to the API: requests out as
			// ConfigMaps, decisions in from a Secret (supervise.go).
			pod.Spec.AutomountServiceAccountToken = new(true)
			pod.Spec.Containers[0].Args = append(pod.Spec.Containers[0].Args, "--kube")
		}
		out.Pods = append(out.Pods, pod)
	}
	sb, err := sandbox(p, o, meta(SandboxName, plan.RoleAgent), labels(plan.RoleAgent))
	if err != nil {
		return nil, err
	}
	out.Sandbox = sb
	if o.Registry != "" {
		specs := []*corev1.PodSpec{&sb.Spec.PodTemplate.Spec}
		for _, pod := range out.Pods {
			specs = append(specs, &pod.Spec)
		}
		for _, spec := range specs {
			for i := range spec.InitContainers {
				spec.InitContainers[i].Image = o.Registry + "/" + spec.InitContainers[i].Image
			}
			for i := range spec.Containers {
				spec.Containers[i].Image = o.Registry + "/" + spec.Containers[i].Image
			}
		}
	}
	return out, nil
}

// stageFile is one file a sidecar or the agent reads: Path is its stage
// path (role/rel); Secret files hold tokens or keys.
type stageFile struct {
	Path    string
	Content []byte
	Secret  bool
}

// stageFiles are a bottle's stage files: the plan's rendered ones and the
// secret ones by name, with their content when o.Secrets holds it.
func stageFiles(p *plan.Plan, o ObjectOptions) ([]stageFile, error) {
	var out []stageFile
	for _, f := range p.Spec.Files {
		out = append(out, stageFile{Path: f.Path, Content: []byte(f.Content)})
	}
	secrets := []string{stage.EgressSecrets}
	for _, r := range p.Spec.Routes {
		secrets = append(secrets, path.Join(stage.CredProxyDir, plan.RouteTokenFile(r.Name)))
	}
	for _, r := range p.Spec.Repos {
		if r.Key != "" {
			secrets = append(secrets, path.Join(stage.GitGateKeys, r.Name))
		}
		if r.Token != nil {
			secrets = append(secrets, path.Join(stage.GitGateDir, "tokens", r.Name))
		}
	}
	for _, s := range secrets {
		f := stageFile{Path: s, Secret: true}
		if o.Secrets != nil {
			b, ok := o.Secrets[s]
			if !ok {
				return nil, fmt.Errorf("secret stage file %s was not resolved", s)
			}
			f.Content = b
		}
		out = append(out, f)
	}
	return out, nil
}

// fileKey is a file's key in a ConfigMap or Secret: keys cannot hold a
// slash, stage names never hold "__".
func fileKey(rel string) string { return strings.ReplaceAll(rel, "/", "__") }

// dirOf is the stage directory a role's files live in.
func dirOf(role string) string {
	if role == CurrentConfigMap {
		return stage.CurrentConfig
	}
	return role
}

func configMap(m metav1.ObjectMeta, files []stageFile, role string) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}, ObjectMeta: m, Data: map[string]string{}}
	for _, f := range files {
		if rel, ok := strings.CutPrefix(f.Path, dirOf(role)+"/"); ok && !f.Secret {
			cm.Data[fileKey(rel)] = string(f.Content)
		}
	}
	if len(cm.Data) == 0 {
		return nil
	}
	return cm
}

func secret(m metav1.ObjectMeta, files []stageFile, role string) *corev1.Secret {
	s := &corev1.Secret{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"}, ObjectMeta: m, Type: corev1.SecretTypeOpaque, Data: map[string][]byte{}}
	for _, f := range files {
		if rel, ok := strings.CutPrefix(f.Path, role+"/"); ok && f.Secret {
			s.Data[fileKey(rel)] = f.Content
		}
	}
	if len(s.Data) == 0 {
		return nil
	}
	return s
}

// items maps a role's files back to their relative paths in its volume.
func items(files []stageFile, role string, secret bool) []corev1.KeyToPath {
	var out []corev1.KeyToPath
	for _, f := range files {
		if rel, ok := strings.CutPrefix(f.Path, dirOf(role)+"/"); ok && f.Secret == secret {
			mode := int32(0o444)
			if secret {
				mode = 0o400
			}
			out = append(out, corev1.KeyToPath{Key: fileKey(rel), Path: rel, Mode: &mode})
		}
	}
	return out
}

// ports of each role's Service.
func ports(role string) []corev1.ServicePort {
	switch role {
	case plan.RoleEgress:
		return []corev1.ServicePort{
			{Name: "proxy", Port: plan.EgressPort, TargetPort: intstr.FromInt32(plan.EgressPort), Protocol: corev1.ProtocolTCP},
			{Name: "dns-udp", Port: 53, TargetPort: intstr.FromInt32(EgressDNSPort), Protocol: corev1.ProtocolUDP},
			{Name: "dns-tcp", Port: 53, TargetPort: intstr.FromInt32(EgressDNSPort), Protocol: corev1.ProtocolTCP},
		}
	default:
		return []corev1.ServicePort{{Name: "http", Port: 8080, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}}
	}
}

func service(m metav1.ObjectMeta, role string) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: m,
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{plan.LabelInstance: m.Labels[plan.LabelInstance], plan.LabelRole: role},
			Ports:    ports(role),
		},
	}
}

// restricted is the container security context every bottle container
// gets: the pod security "restricted" profile and a read-only root.
func restricted(uid int64) *corev1.SecurityContext {
	return &corev1.SecurityContext{
		RunAsUser: &uid, RunAsGroup: &uid, RunAsNonRoot: new(true),
		AllowPrivilegeEscalation: new(false), ReadOnlyRootFilesystem: new(true),
		Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// sidecarPod runs one sidecar with its files mounted read-only where the
// Docker backend binds them, and its decision log on a pod-local volume.
func sidecarPod(p *plan.Plan, c plan.Container, m metav1.ObjectMeta, files []stageFile) (*corev1.Pod, error) {
	ctr := corev1.Container{
		Name: c.Role, Image: c.Image, Command: c.Entrypoint, Args: c.Cmd,
		SecurityContext: restricted(SidecarUID),
	}
	for _, e := range c.Env {
		k, v, _ := strings.Cut(e, "=")
		ctr.Env = append(ctr.Env, corev1.EnvVar{Name: k, Value: v})
	}
	// Its decision log also on stdout, where the launcher reads it through
	// the API into the host's log directory (supervise.go's followLogs).
	ctr.Env = append(ctr.Env, corev1.EnvVar{Name: audit.StdoutEnv, Value: "1"})
	for _, sp := range ports(c.Role) {
		ctr.Ports = append(ctr.Ports, corev1.ContainerPort{Name: sp.Name, ContainerPort: sp.TargetPort.IntVal, Protocol: sp.Protocol})
	}
	if len(c.Health) > 0 {
		ctr.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: c.Health}},
			PeriodSeconds: 1, TimeoutSeconds: 2}
	}
	var vols []corev1.Volume
	for i, mt := range c.Mounts {
		name := fmt.Sprintf("m%d", i)
		v := corev1.Volume{Name: name}
		switch {
		case mt.Source == stage.LogsDir || strings.HasPrefix(mt.Source, "supervise/"):
			// Pod-local: decision logs, and supervise's queue until it
			// moves to the API.
			v.EmptyDir = &corev1.EmptyDirVolumeSource{}
		case mt.Source == stage.CurrentConfig:
			v.ConfigMap = &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: CurrentConfigMap}}
		default:
			var srcs []corev1.VolumeProjection
			if it := items(files, mt.Source, false); len(it) > 0 {
				srcs = append(srcs, corev1.VolumeProjection{ConfigMap: &corev1.ConfigMapProjection{
					LocalObjectReference: corev1.LocalObjectReference{Name: mt.Source + "-config"}, Items: it}})
			}
			if it := items(files, mt.Source, true); len(it) > 0 {
				srcs = append(srcs, corev1.VolumeProjection{Secret: &corev1.SecretProjection{
					LocalObjectReference: corev1.LocalObjectReference{Name: mt.Source + "-secrets"}, Items: it}})
			}
			if len(srcs) == 0 {
				return nil, fmt.Errorf("%s mounts %s, which has no files", c.Role, mt.Source)
			}
			v.Projected = &corev1.ProjectedVolumeSource{Sources: srcs}
		}
		vols = append(vols, v)
		ctr.VolumeMounts = append(ctr.VolumeMounts, corev1.VolumeMount{Name: name, MountPath: mt.Target, ReadOnly: mt.ReadOnly})
	}
	for _, t := range sortedKeys(c.Tmpfs) {
		name := "tmp" + fmt.Sprint(len(vols))
		vols = append(vols, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}})
		ctr.VolumeMounts = append(ctr.VolumeMounts, corev1.VolumeMount{Name: name, MountPath: t})
	}
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: m,
		Spec: corev1.PodSpec{
			ServiceAccountName: c.Role,
			// No API token: only supervise's pod mounts one (Build).
			AutomountServiceAccountToken: new(false),
			EnableServiceLinks:           new(false),
			RestartPolicy:                corev1.RestartPolicyAlways,
			// Teardown waits on this: the sidecars stop on SIGTERM.
			TerminationGracePeriodSeconds: new(int64(GracePeriod)),
			// The kubelet writes mounted files as root; with fsGroup they
			// are the sidecar's group and group-readable (a 0400 secret
			// becomes 0440), so the non-root sidecar can read its own.
			SecurityContext: &corev1.PodSecurityContext{FSGroup: new(int64(SidecarUID))},
			// cred-proxy and git-gate reach out only through egress, by
			// its Service name (the cluster's DNS, as Docker's).
			Containers: []corev1.Container{ctr},
			Volumes:    vols,
		},
	}, nil
}

// sandbox is the agent: an agent-sandbox Sandbox whose pod has no
// service-account token, runs non-root under the bottle's RuntimeClass,
// resolves names only through egress's DNS stub (its address and the
// sidecars' are filled in once their Services exist), and reads its
// bottle's configuration read-only.
func sandbox(p *plan.Plan, o ObjectOptions, m metav1.ObjectMeta, podLabels map[string]string) (*sandboxv1.Sandbox, error) {
	c := p.Docker.Container(plan.RoleAgent)
	if c == nil {
		return nil, fmt.Errorf("the plan has no agent")
	}
	image := c.Image
	// The agent's own container layer is writable, as on Docker: its /tmp
	// and home are the image's (/tmp mode 1777). An emptyDir there is mode
	// 0777 without the sticky bit, whose owner (root) alone could change
	// it, and Claude Code refuses to keep its sockets under such a
	// directory ("Cross-session messaging is off", seen on tier 3).
	agentSC := restricted(1000)
	agentSC.ReadOnlyRootFilesystem = new(false)
	ctr := corev1.Container{
		Name: plan.RoleAgent, Image: image, Command: c.Entrypoint, Args: c.Cmd,
		Stdin: true, StdinOnce: true, TTY: c.TTY,
		SecurityContext: agentSC,
		EnvFrom:         []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: AgentEnvSecret}}}},
		WorkingDir:      "/workspace",
	}
	if gated(c, p.Spec.AgentDockerfile) {
		ctr.Command = []string{"/bin/sh", "-c", attachGate, "claude-bottle-attach-gate"}
	}
	for _, e := range p.Spec.Env {
		if e.Source == "wiring" {
			ctr.Env = append(ctr.Env, corev1.EnvVar{Name: e.Name, Value: e.Value})
		}
	}
	res := corev1.ResourceList{}
	if c.Memory > 0 {
		res[corev1.ResourceMemory] = *resource.NewQuantity(c.Memory, resource.BinarySI)
	}
	if c.NanoCPUs > 0 {
		res[corev1.ResourceCPU] = *resource.NewMilliQuantity(c.NanoCPUs/1e6, resource.DecimalSI)
	}
	if len(res) > 0 {
		ctr.Resources = corev1.ResourceRequirements{Limits: res, Requests: res}
	}
	ctr.VolumeMounts = []corev1.VolumeMount{
		{Name: "current-config", MountPath: stage.ContainerCurrentConfig, ReadOnly: true},
		{Name: "claude-state", MountPath: "/home/agent/.claude"},
		{Name: "workspace", MountPath: "/workspace"},
	}
	// The workspace container holds the pod (and its /workspace) once the
	// agent has exited, so that Finish can read the work out through the
	// API before the namespace goes.
	keeperSC := restricted(1000)
	// It asks for nothing (the agent's requests are the bottle's, often a
	// whole node's share) and may use little.
	small := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")}
	none := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("0"), corev1.ResourceMemory: resource.MustParse("0")}
	keeper := corev1.Container{
		Name: KeeperContainer, Image: image, SecurityContext: keeperSC,
		Command:      []string{"/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"},
		VolumeMounts: []corev1.VolumeMount{{Name: "workspace", MountPath: plan.WorkspaceDir, ReadOnly: true}},
		Resources:    corev1.ResourceRequirements{Limits: small, Requests: none},
	}
	copyState := corev1.Container{
		Name: "claude-state", Image: image, SecurityContext: restricted(1000),
		Command:      []string{"sh", "-c", "cp -R /state/. /home/agent/.claude/ 2>/dev/null; true"},
		VolumeMounts: []corev1.VolumeMount{{Name: "claude-state-files", MountPath: "/state", ReadOnly: true}, {Name: "claude-state", MountPath: "/home/agent/.claude"}},
	}
	// The RuntimeClass only when the plan chose gVisor: a cluster without
	// it plans runc, with the plan's note saying why.
	runtimeClass := ""
	if p.Docker.Runtime == "runsc" {
		runtimeClass = cmp.Or(o.RuntimeClass, DefaultRuntimeClass)
	}
	spec := corev1.PodSpec{
		ServiceAccountName:           plan.RoleAgent,
		AutomountServiceAccountToken: new(false),
		EnableServiceLinks:           new(false),
		RestartPolicy:                corev1.RestartPolicyNever,
		// As on Docker: a few seconds to stop, then killed (teardown
		// waits for the namespace, and a shell ignores SIGTERM).
		TerminationGracePeriodSeconds: new(int64(GracePeriod)),
		// Filled in by Up with egress's Service address: the stub refuses
		// every name, so nothing leaks through a lookup.
		DNSPolicy:      corev1.DNSNone,
		DNSConfig:      &corev1.PodDNSConfig{Nameservers: []string{EgressAddressPlaceholder}},
		InitContainers: []corev1.Container{copyState},
		Containers:     []corev1.Container{ctr, keeper},
		SecurityContext: &corev1.PodSecurityContext{
			FSGroup: new(int64(1000)),
		},
		Volumes: []corev1.Volume{
			{Name: "current-config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: CurrentConfigMap}}}},
			{Name: "claude-state-files", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: ClaudeStateConfig}}}},
			{Name: "claude-state", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "workspace", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		},
	}
	if runtimeClass != "" {
		spec.RuntimeClassName = &runtimeClass
	}
	for _, role := range p.Spec.Sidecars {
		spec.HostAliases = append(spec.HostAliases, corev1.HostAlias{IP: ServiceAddressPlaceholder(role), Hostnames: []string{role}})
	}
	return &sandboxv1.Sandbox{
		TypeMeta:   metav1.TypeMeta{APIVersion: sandboxv1.GroupVersion.String(), Kind: sandboxv1.SandboxKind},
		ObjectMeta: m,
		Spec: sandboxv1.SandboxSpec{
			SandboxBlueprint: sandboxv1.SandboxBlueprint{
				PodTemplate: sandboxv1.PodTemplate{ObjectMeta: sandboxv1.PodMetadata{Labels: podLabels}, Spec: spec},
			},
			OperatingMode: sandboxv1.SandboxOperatingModeRunning,
		},
	}, nil
}

// EgressAddressPlaceholder stands for egress's Service address in a plan;
// Up replaces it (and ServiceAddressPlaceholder's) with the ClusterIPs.
var EgressAddressPlaceholder = ServiceAddressPlaceholder(plan.RoleEgress)

// attachGate holds a terminal agent's command until run has attached to
// it: a container starts before anything can attach to it, and what a
// program prints to its terminal before that is lost (a shell's prompt,
// a command's first lines). It reads one byte from the terminal in raw
// mode, silently, which Attach sends first (attachGateByte), then runs
// the command. Without a terminal, or if nothing comes in two minutes, it
// goes on. (timeout --foreground: in its own process group dd would be
// stopped by SIGTTIN reading the terminal, and the gate would always wait
// the two minutes.)
const attachGate = `if [ -t 0 ] && s=$(stty -g 2>/dev/null); then
	stty raw -echo
	if command -v timeout >/dev/null 2>&1; then timeout --foreground 120 dd bs=1 count=1 of=/dev/null 2>/dev/null; else dd bs=1 count=1 of=/dev/null 2>/dev/null; fi
	stty "$s"
fi
exec "$@"`

// attachGateByte is what Attach sends through the gate.
const attachGateByte = "\r"

// gated: the agent's command runs behind attachGate when it has a
// terminal and the gate replaces no ENTRYPOINT (Kubernetes' command does:
// an image's ENTRYPOINT would be lost, so such an agent starts at once).
func gated(c *plan.Container, dockerfile string) bool {
	if c == nil || !c.TTY || len(c.Entrypoint) > 0 || len(c.Cmd) == 0 {
		return false
	}
	for _, l := range strings.Split(dockerfile, "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.EqualFold(f[0], "ENTRYPOINT") {
			return false
		}
	}
	return true
}

// ServiceAddressPlaceholder stands for a sidecar Service's address in a
// plan: one per role, from the documentation range (RFC 5737), so that
// planned objects stay valid (the API refuses two host aliases with one
// address).
func ServiceAddressPlaceholder(role string) string {
	return fmt.Sprintf("192.0.2.%d", 1+slices.Index([]string{plan.RoleEgress, plan.RoleCredProxy, plan.RoleGitGate, plan.RoleSupervise}, role))
}

// networkPolicies: default deny in the namespace; the agent reaches only
// its sidecars' ports (and egress's DNS stub); cred-proxy and git-gate
// reach only egress; only egress reaches outside, never the cluster's own
// ranges or link-local (metadata) addresses, plus the cluster DNS it
// resolves upstreams with.
func networkPolicies(p *plan.Plan, o ObjectOptions, meta func(name, role string) metav1.ObjectMeta) []*networkingv1.NetworkPolicy {
	inst := p.Instance
	sel := func(role string) metav1.LabelSelector {
		return metav1.LabelSelector{MatchLabels: map[string]string{plan.LabelInstance: inst, plan.LabelRole: role}}
	}
	peer := func(role string) networkingv1.NetworkPolicyPeer {
		s := sel(role)
		return networkingv1.NetworkPolicyPeer{PodSelector: &s}
	}
	np := func(name string, pod metav1.LabelSelector, types ...networkingv1.PolicyType) *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{
			TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
			ObjectMeta: meta(name, ""),
			Spec:       networkingv1.NetworkPolicySpec{PodSelector: pod, PolicyTypes: types},
		}
	}
	toPorts := func(role string) []networkingv1.NetworkPolicyPort {
		var out []networkingv1.NetworkPolicyPort
		for _, sp := range ports(role) {
			port, proto := sp.TargetPort, sp.Protocol
			out = append(out, networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &port})
		}
		return out
	}
	deny := np("default-deny", metav1.LabelSelector{}, networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress)
	out := []*networkingv1.NetworkPolicy{deny}

	agent := np("agent", sel(plan.RoleAgent), networkingv1.PolicyTypeEgress)
	for _, role := range p.Spec.Sidecars {
		agent.Spec.Egress = append(agent.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: []networkingv1.NetworkPolicyPeer{peer(role)}, Ports: toPorts(role)})
	}
	out = append(out, agent)
	for _, role := range p.Spec.Sidecars {
		in := np(role, sel(role), networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress)
		from := []networkingv1.NetworkPolicyPeer{peer(plan.RoleAgent)}
		if role == plan.RoleEgress {
			for _, r := range p.Spec.Sidecars {
				if r == plan.RoleCredProxy || r == plan.RoleGitGate {
					from = append(from, peer(r))
				}
			}
		}
		in.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: from, Ports: toPorts(role)}}
		switch role {
		case plan.RoleEgress:
			v4, v6 := outside(o.ClusterCIDRs)
			in.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{
				{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: v4}}}},
				{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "::/0", Except: v6}}}},
				clusterDNS(),
			}
			in.Spec.Egress = append(in.Spec.Egress, peerRules(o.EgressPeers)...)
		case plan.RoleCredProxy, plan.RoleGitGate:
			in.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{
				{To: []networkingv1.NetworkPolicyPeer{peer(plan.RoleEgress)}, Ports: toPorts(plan.RoleEgress)[:1]},
				clusterDNS(),
			}
		case plan.RoleSupervise:
			in.Spec.Egress = apiServerRules(o.APIServer)
		}
		out = append(out, in)
	}
	return out
}

// APIServerPlaceholder stands for the API server's addresses in a plan;
// Up fills in the real ones.
const APIServerPlaceholder = "192.0.2.100:6443"

// apiServerRules let supervise reach the API server's addresses, each
// address on its own port, and nothing else.
func apiServerRules(addrs []string) []networkingv1.NetworkPolicyEgressRule {
	if addrs == nil {
		addrs = []string{APIServerPlaceholder}
	}
	var out []networkingv1.NetworkPolicyEgressRule
	for _, a := range addrs {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			continue // Up passes only parsed addresses
		}
		tcp, port := corev1.ProtocolTCP, intstr.FromInt32(int32(ap.Port()))
		out = append(out, networkingv1.NetworkPolicyEgressRule{
			To:    []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: netip.PrefixFrom(ap.Addr(), ap.Addr().BitLen()).String()}}},
			Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &port}},
		})
	}
	return out
}

// peerRules let egress reach the in-cluster pods the manifest names
// (kubernetes.egress_peers), on their ports or any.
func peerRules(peers []manifest.EgressPeer) []networkingv1.NetworkPolicyEgressRule {
	var out []networkingv1.NetworkPolicyEgressRule
	for _, pe := range peers {
		r := networkingv1.NetworkPolicyEgressRule{To: []networkingv1.NetworkPolicyPeer{{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: pe.Namespace}},
			PodSelector:       &metav1.LabelSelector{MatchLabels: pe.Pods},
		}}}
		for _, port := range pe.Ports {
			tcp, p := corev1.ProtocolTCP, intstr.FromInt32(int32(port))
			r.Ports = append(r.Ports, networkingv1.NetworkPolicyPort{Protocol: &tcp, Port: &p})
		}
		out = append(out, r)
	}
	return out
}

// clusterDNS lets a sidecar resolve names with the cluster's DNS
// (kube-system's kube-dns), port 53 only.
func clusterDNS() networkingv1.NetworkPolicyEgressRule {
	udp, tcp := corev1.ProtocolUDP, corev1.ProtocolTCP
	p53 := intstr.FromInt32(53)
	return networkingv1.NetworkPolicyEgressRule{
		To: []networkingv1.NetworkPolicyPeer{{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: "kube-system"}},
			PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"k8s-app": "kube-dns"}},
		}},
		Ports: []networkingv1.NetworkPolicyPort{{Protocol: &udp, Port: &p53}, {Protocol: &tcp, Port: &p53}},
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// AsList is the objects as one v1 List, the form `plan --json` and kubectl
// print.
func AsList(o *Objects) map[string]any {
	return map[string]any{"apiVersion": "v1", "kind": "List", "items": o.List()}
}
