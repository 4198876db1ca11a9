package kubernetes

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/claude-bottle/claude-bottle/internal/golden"
	"github.com/claude-bottle/claude-bottle/internal/manifest"
	"github.com/claude-bottle/claude-bottle/internal/plan"
)

// testPlans are the default bottle (egress, cred-proxy, supervise) and the
// Docker backend's full one (all four sidecars), planned under gVisor.
func testPlans(t *testing.T) map[string]*plan.Plan {
	t.Helper()
	if err := os.Chmod(filepath.Join("..", "..", "plan", "testdata", "keys", "deploy"), 0o600); err != nil {
		t.Fatal(err)
	}
	full, err := manifest.Load(filepath.Join("..", "docker", "testdata", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	host := plan.Host{Env: map[string]string{}, Owner: "testhost/1", UID: 1000, GID: 1000, Runsc: true,
		AgentDockerfile: "FROM debian:bookworm-slim\n", RunscEvidence: `the cluster has RuntimeClass "gvisor" for the agent`}
	out := map[string]*plan.Plan{}
	for name, tc := range map[string]struct {
		m     *manifest.Manifest
		agent string
	}{"default": {manifest.Default(), "claude"}, "full": {full, "dev"}} {
		p, err := plan.Build(tc.m, plan.Options{Agent: tc.agent}, plan.Observed{}, host)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = p
	}
	return out
}

var testOptions = ObjectOptions{ClusterCIDRs: []string{"10.96.0.0/12", "10.244.0.0/16"}}

// The objects plan shows, and the operations that create them, pinned by
// golden files (go test ./internal/backend/kubernetes -update).
func TestObjectsGolden(t *testing.T) {
	for name, p := range testPlans(t) {
		t.Run(name, func(t *testing.T) {
			o, err := Build(p, testOptions)
			if err != nil {
				t.Fatal(err)
			}
			js, err := json.MarshalIndent(AsList(o), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, "./internal/backend/kubernetes", filepath.Join("testdata", name+".json"), append(js, '\n'))
			b := Offline(Options{Bottle: manifest.Kubernetes{ClusterCIDRs: testOptions.ClusterCIDRs}})
			// The text plan, as `plan --verbose --backend kubernetes`
			// prints it: the objects in place of containers, then the
			// operations.
			shown := *p
			shown.Operations, shown.Lines, shown.Undo = b.Operations(p), Lines(o), Undo
			var txt strings.Builder
			if err := shown.WriteText(&txt); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, "./internal/backend/kubernetes", filepath.Join("testdata", "plan-"+name+".txt"), []byte(txt.String()))
		})
	}
}

// What the goldens show, asserted so that a careless -update cannot hide
// it: secrets are named, never valued, in a plan; each secret is mounted
// only into the sidecar that owns it; the agent has no token, no secret
// volume, runs non-root under gVisor and resolves through egress; the
// namespace denies all traffic but what the policies allow.
func TestObjectsInvariants(t *testing.T) {
	for name, p := range testPlans(t) {
		o, err := Build(p, testOptions)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range o.Secrets {
			for k, v := range s.Data {
				if v != nil {
					t.Errorf("%s: planned Secret %s holds a value for %s", name, s.Name, k)
				}
			}
		}
		for _, pod := range o.Pods {
			role := pod.Labels[plan.LabelRole]
			// The kubelet writes mounted files as root: without the
			// sidecar's fsGroup it cannot read its 0400 secrets (seen on
			// a real kubelet: "open .../secrets.json: permission denied").
			if sc := pod.Spec.SecurityContext; sc == nil || sc.FSGroup == nil || *sc.FSGroup != *pod.Spec.Containers[0].SecurityContext.RunAsGroup {
				t.Errorf("%s: %s's mounted files are not its group's", name, role)
			}
			// Under gVisor when the bottle is: every sidecar reads what
			// the agent sends.
			if rc := pod.Spec.RuntimeClassName; p.Docker.Runtime == "runsc" && (rc == nil || *rc != DefaultRuntimeClass) {
				t.Errorf("%s: %s does not run under gVisor", name, role)
			}
			// Only supervise talks to the API (its queue).
			if mounts := pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken; mounts != (role == plan.RoleSupervise) {
				t.Errorf("%s: %s mounts a service-account token: %v", name, role, mounts)
			}
			for _, v := range pod.Spec.Volumes {
				for _, src := range projected(v) {
					if src.Secret != nil && src.Secret.Name != role+"-secrets" {
						t.Errorf("%s: %s mounts %s", name, role, src.Secret.Name)
					}
				}
			}
			checkRestricted(t, name+" "+role, pod.Spec.Containers[0].SecurityContext, true)
		}
		spec := o.Sandbox.Spec.PodTemplate.Spec
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken || spec.ServiceAccountName != plan.RoleAgent {
			t.Errorf("%s: the agent's service account: %v %q", name, spec.AutomountServiceAccountToken, spec.ServiceAccountName)
		}
		if spec.RuntimeClassName == nil || *spec.RuntimeClassName != DefaultRuntimeClass {
			t.Errorf("%s: runtime class %v", name, spec.RuntimeClassName)
		}
		if spec.DNSPolicy != corev1.DNSNone || spec.DNSConfig == nil || len(spec.DNSConfig.Nameservers) != 1 {
			t.Errorf("%s: the agent's DNS is not egress's stub only: %v %+v", name, spec.DNSPolicy, spec.DNSConfig)
		}
		for _, v := range spec.Volumes {
			if v.Secret != nil || len(projected(v)) > 0 {
				t.Errorf("%s: the agent mounts volume %s from a Secret", name, v.Name)
			}
		}
		for _, c := range append(spec.InitContainers, spec.Containers...) {
			// The agent's own layer is writable, as on Docker (its /tmp
			// must be the image's sticky one); its init container's is not.
			checkRestricted(t, name+" agent "+c.Name, c.SecurityContext, c.Name != plan.RoleAgent)
			if c.Name == plan.RoleAgent {
				for _, m := range c.VolumeMounts {
					if m.MountPath == "/tmp" || m.MountPath == "/home/agent" {
						t.Errorf("%s: the agent mounts a volume at %s (mode 0777 without the sticky bit)", name, m.MountPath)
					}
				}
			}
			for _, m := range c.VolumeMounts {
				if m.MountPath == "/etc/claude-bottle/current-config" && !m.ReadOnly {
					t.Errorf("%s: current-config is writable", name)
				}
			}
		}
		var hosts []string
		for _, h := range spec.HostAliases {
			hosts = append(hosts, h.Hostnames...)
		}
		if !slices.Equal(hosts, p.Spec.Sidecars) {
			t.Errorf("%s: the agent's hosts file names %v, want its sidecars %v", name, hosts, p.Spec.Sidecars)
		}
		deny := o.NetworkPolicies[0]
		if deny.Spec.PodSelector.Size() != 0 || len(deny.Spec.PolicyTypes) != 2 || len(deny.Spec.Ingress)+len(deny.Spec.Egress) != 0 {
			t.Errorf("%s: the first policy is not a default deny: %+v", name, deny.Spec)
		}
		for _, np := range o.NetworkPolicies {
			for _, r := range np.Spec.Egress {
				for _, to := range r.To {
					apiServer := np.Name == plan.RoleSupervise && to.IPBlock != nil && to.IPBlock.CIDR == "192.0.2.100/32" && len(r.To) == 1 && len(r.Ports) == 1
					if to.IPBlock != nil && np.Name != plan.RoleEgress && !apiServer {
						t.Errorf("%s: policy %s lets a pod other than egress reach %s", name, np.Name, to.IPBlock.CIDR)
					}
					if to.IPBlock != nil {
						for _, a := range neverReached {
							if in(to.IPBlock.CIDR, a) && !slices.ContainsFunc(to.IPBlock.Except, func(e string) bool { return in(e, a) }) {
								t.Errorf("%s: egress may reach %s through %v", name, a, to.IPBlock)
							}
						}
					}
				}
			}
		}
		if agent := policy(o, "agent"); agent == nil || len(agent.Spec.Egress) != len(p.Spec.Sidecars) {
			t.Errorf("%s: the agent's policy does not list exactly its sidecars", name)
		}
	}
}

func projected(v corev1.Volume) []corev1.VolumeProjection {
	if v.Projected == nil {
		return nil
	}
	return v.Projected.Sources
}

func checkRestricted(t *testing.T, what string, sc *corev1.SecurityContext, readOnly bool) {
	t.Helper()
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 ||
		sc.ReadOnlyRootFilesystem == nil || *sc.ReadOnlyRootFilesystem != readOnly {
		t.Errorf("%s: security context %+v", what, sc)
	}
}

// neverReached are addresses egress's policy must leave out: the test
// cluster's Service and pod ranges, metadata, loopback, private ranges.
var neverReached = []string{"10.96.0.1", "10.244.3.7", "169.254.169.254", "127.0.0.1", "172.17.0.1", "192.168.1.1", "100.64.0.1",
	"::1", "fe80::1", "fd00:ec2::254", "fd12::1"}

func in(cidr, addr string) bool {
	return netip.MustParsePrefix(cidr).Contains(netip.MustParseAddr(addr))
}

// A cluster range outside the private ones is left out too; one inside
// them is not listed twice.
func TestOutside(t *testing.T) {
	v4, v6 := outside([]string{"203.0.113.0/24", "10.96.0.0/12", "2001:db8::/64"})
	if !slices.Contains(v4, "203.0.113.0/24") || slices.Contains(v4, "10.96.0.0/12") || !slices.Contains(v4, "10.0.0.0/8") {
		t.Errorf("v4 %v", v4)
	}
	if !slices.Contains(v6, "2001:db8::/64") || !slices.Contains(v6, "fc00::/7") || slices.ContainsFunc(v6, func(c string) bool { return netip.MustParsePrefix(c).Addr().Is4() }) {
		t.Errorf("v6 %v", v6)
	}
}

func policy(o *Objects, name string) *networkingv1.NetworkPolicy {
	for _, np := range o.NetworkPolicies {
		if np.Name == name {
			return np
		}
	}
	return nil
}

// kubernetes.registry prefixes every image of the bottle, the agent's
// init container's too; without it the names are as built.
func TestRegistryPrefixesEveryImage(t *testing.T) {
	for name, p := range testPlans(t) {
		o := testOptions
		o.Registry = "registry.example.com/team"
		objs, err := Build(p, o)
		if err != nil {
			t.Fatal(err)
		}
		specs := []corev1.PodSpec{objs.Sandbox.Spec.PodTemplate.Spec}
		for _, pod := range objs.Pods {
			specs = append(specs, pod.Spec)
		}
		n := 0
		for _, s := range specs {
			for _, c := range append(s.InitContainers, s.Containers...) {
				n++
				if !strings.HasPrefix(c.Image, "registry.example.com/team/claude-bottle-") {
					t.Errorf("%s: %s pulls %s", name, c.Name, c.Image)
				}
			}
		}
		if n < len(p.Spec.Sidecars)+2 {
			t.Errorf("%s: only %d containers", name, n)
		}
	}
}

// kubernetes.egress_peers opens egress's policy, and only egress's, to the
// pods it names: in their namespace, by label, on their ports.
func TestEgressPeers(t *testing.T) {
	p := testPlans(t)["default"]
	o := testOptions
	o.EgressPeers = []manifest.EgressPeer{{Namespace: "myapp", Pods: map[string]string{"app": "api"}, Ports: []int{8080}}, {Namespace: "tools"}}
	objs, err := Build(p, o)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, np := range objs.NetworkPolicies {
		for _, r := range np.Spec.Egress {
			for _, to := range r.To {
				if to.NamespaceSelector == nil || to.NamespaceSelector.MatchLabels[corev1.LabelMetadataName] == "kube-system" {
					continue
				}
				if np.Name != plan.RoleEgress {
					t.Errorf("policy %s opens a peer: %+v", np.Name, to)
				}
				found++
				switch ns := to.NamespaceSelector.MatchLabels[corev1.LabelMetadataName]; ns {
				case "myapp":
					if to.PodSelector.MatchLabels["app"] != "api" || len(r.Ports) != 1 || r.Ports[0].Port.IntValue() != 8080 || *r.Ports[0].Protocol != corev1.ProtocolTCP {
						t.Errorf("myapp's rule: %+v ports %+v", to, r.Ports)
					}
				case "tools":
					if len(to.PodSelector.MatchLabels) != 0 || len(r.Ports) != 0 {
						t.Errorf("tools' rule: %+v ports %+v", to, r.Ports)
					}
				default:
					t.Errorf("unexpected peer namespace %q", ns)
				}
			}
		}
	}
	if found != 2 {
		t.Errorf("found %d peer rules, want 2", found)
	}
	// plan's text names them as what they are.
	text := fmt.Sprint(Lines(objs))
	for _, want := range []string{"pods app=api in namespace myapp 8080/tcp", "every pod in namespace tools"} {
		if !strings.Contains(text, want) {
			t.Errorf("the plan's text lacks %q:\n%s", want, text)
		}
	}
	// Without peers, no policy names another namespace but kube-system's DNS.
	plain, err := Build(p, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	for _, np := range plain.NetworkPolicies {
		for _, r := range np.Spec.Egress {
			for _, to := range r.To {
				if to.NamespaceSelector != nil && to.NamespaceSelector.MatchLabels[corev1.LabelMetadataName] != "kube-system" {
					t.Errorf("policy %s opens %+v with no peers asked", np.Name, to)
				}
			}
		}
	}
}

// A terminal agent waits behind the attach gate, unless the gate would
// replace an ENTRYPOINT its Dockerfile declares or it has no terminal.
func TestAttachGate(t *testing.T) {
	tty := &plan.Container{TTY: true, Cmd: []string{"claude"}}
	for _, tc := range []struct {
		name       string
		c          *plan.Container
		dockerfile string
		want       bool
	}{
		{"terminal", tty, "FROM claude-bottle-agent:local\nRUN true\n", true},
		{"no terminal", &plan.Container{Cmd: []string{"claude"}}, "FROM x\n", false},
		{"entrypoint declared", tty, "FROM x\n  entrypoint [\"/init\"]\n", false},
		{"entrypoint in the plan", &plan.Container{TTY: true, Entrypoint: []string{"/init"}, Cmd: []string{"x"}}, "FROM x\n", false},
		{"no command", &plan.Container{TTY: true}, "FROM x\n", false},
	} {
		if got := gated(tc.c, tc.dockerfile); got != tc.want {
			t.Errorf("%s: gated = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// The agent's pod holds a workspace container that keeps /workspace
// readable after the agent exits: read-only, restricted, and asking the
// scheduler for nothing (the agent's requests may be a whole node's).
func TestWorkspaceKeeper(t *testing.T) {
	for name, p := range testPlans(t) {
		o, err := Build(p, testOptions)
		if err != nil {
			t.Fatal(err)
		}
		var keeper *corev1.Container
		for i, c := range o.Sandbox.Spec.PodTemplate.Spec.Containers {
			if c.Name == KeeperContainer {
				keeper = &o.Sandbox.Spec.PodTemplate.Spec.Containers[i]
			}
		}
		if keeper == nil {
			t.Fatalf("%s: no %s container", name, KeeperContainer)
		}
		checkRestricted(t, name+" keeper", keeper.SecurityContext, true)
		if len(keeper.VolumeMounts) != 1 || keeper.VolumeMounts[0].MountPath != plan.WorkspaceDir || !keeper.VolumeMounts[0].ReadOnly {
			t.Errorf("%s: keeper mounts %+v", name, keeper.VolumeMounts)
		}
		for r, q := range keeper.Resources.Requests {
			if !q.IsZero() {
				t.Errorf("%s: keeper requests %s %s", name, r, q.String())
			}
		}
	}
}
