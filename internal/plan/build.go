package plan

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/claude-bottle/claude-bottle/internal/egress"
	"github.com/claude-bottle/claude-bottle/internal/gitgate"
	"github.com/claude-bottle/claude-bottle/internal/giturl"
	"github.com/claude-bottle/claude-bottle/internal/manifest"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

// Agent-side constants.
const (
	AgentUser = "1000:1000"
	AgentHome = "/home/agent"
	// ClaudeConfigDir is where the agent's Claude Code state is mounted.
	ClaudeConfigDir = AgentHome + "/.claude"
	// WorkspaceDir is the agent's working directory, on its own volume.
	WorkspaceDir = "/workspace"
	SidecarUser  = "65532:65532"
	proxyURL     = "http://egress:3128"
	noProxy      = "egress,cred-proxy,git-gate,supervise,localhost,127.0.0.1"
	mcpConfig    = stage.ContainerCurrentConfig + "/mcp.json"
	superviseURL = "http://supervise:8080/mcp"
)

var instanceRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

// PickAgent returns the agent a launch is for: the one named, else the
// manifest's only agent, else "claude". run and plan pick with it before
// anything else happens, so a wrong name creates nothing.
func PickAgent(m *manifest.Manifest, name string) (string, error) {
	if name != "" {
		if _, ok := m.Agents[name]; !ok {
			return "", unknownAgent(m, name)
		}
		return name, nil
	}
	if len(m.Agents) == 1 {
		for n := range m.Agents {
			return n, nil
		}
	}
	if _, ok := m.Agents["claude"]; ok {
		return "claude", nil
	}
	return "", fmt.Errorf("the manifest defines several agents (%s): name one", agentNames(m))
}

// unknownAgent is the one error for a name the manifest does not define.
func unknownAgent(m *manifest.Manifest, name string) error {
	return fmt.Errorf("%w %q: the manifest defines %s", ErrUnknownAgent, name, agentNames(m))
}

func agentNames(m *manifest.Manifest) string {
	names := make([]string, 0, len(m.Agents))
	for n := range m.Agents {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// Build decides everything one launch of opts.Agent will do. It reads
// nothing but its arguments.
func Build(m *manifest.Manifest, opts Options, obs Observed, host Host) (*Plan, error) {
	agent, ok := m.Agents[opts.Agent]
	if !ok {
		return nil, unknownAgent(m, opts.Agent)
	}
	bottle, ok := m.Bottles[agent.Bottle]
	if !ok {
		return nil, fmt.Errorf("agent %q names bottle %q, which the manifest does not define", opts.Agent, agent.Bottle)
	}
	pinned := host.Env["CLAUDE_BOTTLE_CONTAINER"]
	if pinned != "" && !instanceRE.MatchString(pinned) {
		return nil, fmt.Errorf("CLAUDE_BOTTLE_CONTAINER=%q is not a usable container name (lowercase letters, digits, '_', '.', '-')", pinned)
	}
	instance, err := chooseInstance(opts.Agent, pinned, obs)
	if err != nil {
		return nil, err
	}

	refs, err := Refs(host.Env)
	if err != nil {
		return nil, err
	}
	p := &Plan{Agent: opts.Agent, Instance: instance}
	s := &p.Spec
	s.Bottle = agent.Bottle
	s.Image = refs.Agent
	if v := host.Env["CLAUDE_BOTTLE_IMAGE"]; v != "" {
		s.Image = v
	}
	if opts.Cwd != "" {
		s.Cwd = opts.Cwd
		s.DerivedImage = "claude-bottle:cwd-" + opts.Agent
		if v := host.Env["CLAUDE_BOTTLE_DERIVED_IMAGE"]; v != "" {
			s.DerivedImage = v
		}
	}
	s.TTY = opts.TTY
	s.Supervise = bottle.Supervise
	s.Resources = bottle.Resources
	s.JoinNetworks = append([]string(nil), bottle.Egress.Networks...)

	// Sidecars: egress always, the others when the bottle needs them.
	s.Sidecars = []string{RoleEgress}
	if len(bottle.CredProxy.Routes) > 0 {
		s.Sidecars = append(s.Sidecars, RoleCredProxy)
	}
	if len(bottle.Git.Repos) > 0 {
		s.Sidecars = append(s.Sidecars, RoleGitGate)
	}
	if bottle.Supervise {
		s.Sidecars = append(s.Sidecars, RoleSupervise)
	}

	runtime, why, err := chooseRuntime(bottle, host)
	if err != nil {
		return nil, err
	}
	if runtime == "runc" && host.RunscNote != "" && why.Code == ReasonAuto {
		p.Notes = append(p.Notes, "gVisor (runsc) is not used: "+host.RunscNote+"; the bottle runs under runc")
	}

	allowlist(s, bottle)
	s.Routes = routes(bottle, host.RouteCredential)
	s.Repos = repos(bottle)
	for _, f := range agent.Skills {
		name := strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))
		s.Skills = append(s.Skills, Skill{Name: name, Source: f})
	}
	s.Autonomous = agent.IsAutonomous()
	s.Command = agentCommand(agent, opts, bottle)
	if r := anthropicRoute(s); r != nil {
		s.ClaudeAuth = claudeAuth(r, host.RouteCredential[r.Name])
	}
	s.Env = agentEnv(agent, s)
	s.Workspace = WorkspaceVolume(instance)
	s.Work = Work{Mode: "archive", Archive: "work/" + instance}
	if opts.CwdRepo != nil {
		s.Work = Work{Mode: "branch", Repo: opts.CwdRepo.Root, Base: opts.CwdRepo.Head, Branch: "claude-bottle/" + instance}
	}

	for _, n := range s.JoinNetworks {
		s.PrivateNetworks = append(s.PrivateNetworks, obs.subnets(n)...)
	}
	s.AgentDockerfile = host.AgentDockerfile
	files, err := Render(s)
	if err != nil {
		return nil, err
	}
	s.Files = files
	p.Docker = dockerPlan(p, agent, bottle, runtime, host, refs)
	p.Docker.RuntimeReason = why.Text
	for i := range p.Docker.Containers {
		p.Docker.Containers[i].Labels[LabelRuntimeReason] = why.Code
	}
	return p, nil
}

// Runtime reason codes, stamped on every container (LabelRuntimeReason) so
// that ps can say why a bottle got its runtime.
const (
	ReasonAuto     = "auto"     // runtime: auto, decided by the runsc probe
	ReasonManifest = "manifest" // the bottle names runsc or runc
	ReasonEnv      = "env"      // CLAUDE_BOTTLE_RUNTIME overrides the bottle
)

// Docker's embedded DNS listens on the loopback of the container's network
// namespace; gVisor brings its own network stack and loopback and cannot
// reach it (gVisor issues 7469, 7523). egress needs it (upstreams, and
// services on the networks it joins, by their aliases), so it stays on runc
// under a gVisor bottle. cred-proxy and git-gate need only egress's name
// (their proxy): under gVisor they get it in their hosts file (HostsFrom),
// which means they are created once egress runs. supervise resolves
// nothing.
func sidecarRuntime(role, bottle string) string {
	if bottle == "runsc" && role == RoleEgress {
		return "runc"
	}
	return bottle
}

// sidecarHostsFrom is what a sidecar under runtime must find in its hosts file.
func sidecarHostsFrom(role, runtime string) []string {
	if runtime == "runsc" && (role == RoleCredProxy || role == RoleGitGate) {
		return []string{RoleEgress}
	}
	return nil
}

// runtimeWhy is why a bottle runs under its runtime: a code for labels and
// a sentence for the plan.
type runtimeWhy struct{ Code, Text string }

const dnsCaveat = "; egress stays on runc (it needs Docker's embedded DNS, which gVisor cannot reach)"

// evidence is what showed gVisor works where the bottle runs.
func evidence(host Host) string {
	if host.RunscEvidence != "" {
		return host.RunscEvidence
	}
	return "runsc started a probe container here" + dnsCaveat
}

// chooseRuntime picks the bottle's OCI runtime: the agent's, and every
// sidecar's that can run under it. All of them handle bytes the agent
// controls (egress parses its requests, cred-proxy and git-gate relay
// them, supervise reads its proposals), so each belongs under gVisor when
// it can be (see needsEngineDNS for those that cannot yet).
// CLAUDE_BOTTLE_RUNTIME (auto, runsc, runc) replaces the bottle's setting.
func chooseRuntime(b *manifest.Bottle, host Host) (string, runtimeWhy, error) {
	setting, why := b.Runtime, runtimeWhy{Code: ReasonManifest}
	if setting == "" {
		setting = "auto"
	}
	src := "the bottle's runtime: " + setting
	if v := host.Env["CLAUDE_BOTTLE_RUNTIME"]; v != "" {
		switch v {
		case "auto", "runsc", "runc":
		default:
			return "", why, fmt.Errorf("CLAUDE_BOTTLE_RUNTIME=%q: want auto, runsc or runc", v)
		}
		setting, why.Code, src = v, ReasonEnv, "CLAUDE_BOTTLE_RUNTIME="+v
	}
	switch setting {
	case "runc":
		why.Text = src
		return "runc", why, nil
	case "runsc":
		if !host.Runsc {
			return "", why, fmt.Errorf("%s, but gVisor does not work on this host: %s", src, host.RunscNote)
		}
		why.Text = src + "; " + evidence(host)
		return "runsc", why, nil
	}
	if why.Code == ReasonManifest {
		why.Code = ReasonAuto
	}
	if host.Runsc {
		why.Text = src + ", and " + evidence(host)
		return "runsc", why, nil
	}
	why.Text = src + ", but runsc does not work here"
	return "runc", why, nil
}

// allowlist fills the effective allowlist: the manifest's rules, then
// what routes and repositories need, without duplicates.
func allowlist(s *Spec, b *manifest.Bottle) {
	for _, r := range b.Egress.Allow {
		s.AddRule(egress.Rule{Host: r.Host, Port: r.Port, AllowPrivate: r.AllowPrivate, Source: SourceManifest})
	}
	for _, r := range b.CredProxy.Routes {
		if rule, ok := s.routeRule(r.Name, r.Upstream); ok {
			s.AddRule(rule)
		}
	}
	for _, r := range b.Git.Repos {
		// The manifest was validated: an upstream that does not parse, or
		// names no host (a local path), needs no rule.
		if u, err := giturl.Parse(r.Upstream); err == nil && u.Host != "" {
			s.AddRule(egress.Rule{Host: u.Host, Port: u.Port, AllowPrivate: s.PrivateAllowed(u.Host), Source: "git " + r.Name, Client: RoleGitGate})
		}
	}
}

func portOf(u *url.URL) int {
	if p := u.Port(); p != "" {
		n, _ := strconv.Atoi(p)
		return n
	}
	if u.Scheme == "http" {
		return 80
	}
	return 443
}

// routes are the bottle's routes, each with the header and format of the
// credential the host has set (chosen: by route name; the first when
// unknown). The launcher sets them again from what it resolves.
func routes(b *manifest.Bottle, chosen map[string]int) []Route {
	var out []Route
	for _, r := range b.CredProxy.Routes {
		rt := Route{Name: r.Name, Path: r.Path, Upstream: r.Upstream, Role: r.Role, StripHeaders: r.StripHeaders, Credentials: r.Credentials}
		if i := chosen[r.Name]; i >= 0 && i < len(r.Credentials) {
			rt.Header, rt.Format = r.Credentials[i].Header, r.Credentials[i].Format
		}
		out = append(out, rt)
	}
	return out
}

func repos(b *manifest.Bottle) []Repo {
	var out []Repo
	for _, r := range b.Git.Repos {
		out = append(out, Repo{
			Name: r.Name, Upstream: r.Upstream, Key: r.Key, HostKeys: r.HostKeys, Token: r.Token,
			GateURL: fmt.Sprintf("http://git-gate:%d/%s.git", GitGatePort, r.Name),
			Push:    gitgate.PushPolicy{Branches: r.Push.Branches, Force: r.Push.Force, Delete: r.Push.Delete, Tags: r.Push.Tags},
		})
	}
	return out
}

func anthropicRoute(s *Spec) *Route {
	for i := range s.Routes {
		if s.Routes[i].Role == "anthropic-base-url" {
			return &s.Routes[i]
		}
	}
	return nil
}

// agentCommand is the command the agent container runs. The default Claude
// command learns the supervise MCP server and the agent's prompt. Any
// Claude Code command, the agent's or one given after --, runs without
// permission prompts when the agent is autonomous.
func agentCommand(a *manifest.Agent, opts Options, b *manifest.Bottle) []string {
	if len(opts.Command) > 0 {
		return autonomy(a, append([]string(nil), opts.Command...))
	}
	cmd := append([]string(nil), a.Command...)
	if len(cmd) == 0 {
		cmd = []string{"claude"}
	}
	if !isClaude(cmd) {
		return cmd
	}
	cmd = autonomy(a, cmd)
	if b.Supervise {
		cmd = append(cmd, "--mcp-config", mcpConfig)
	}
	prompt := bottlePrompt(b)
	if a.Prompt != "" {
		prompt += "\n\n" + a.Prompt
	}
	return append(cmd, "--append-system-prompt", prompt)
}

func isClaude(cmd []string) bool {
	return len(cmd) > 0 && (cmd[0] == "claude" || strings.HasSuffix(cmd[0], "/claude"))
}

// autonomy adds --dangerously-skip-permissions to a Claude Code command of
// an autonomous agent, unless the command already chooses a permission
// mode itself.
func autonomy(a *manifest.Agent, cmd []string) []string {
	if !a.IsAutonomous() || !isClaude(cmd) {
		return cmd
	}
	for _, arg := range cmd[1:] {
		if arg == "--dangerously-skip-permissions" || arg == "--permission-mode" || strings.HasPrefix(arg, "--permission-mode=") {
			return cmd
		}
	}
	return append([]string{cmd[0], "--dangerously-skip-permissions"}, cmd[1:]...)
}

// claudeAuth is the kind of credential Claude Code must believe it holds:
// an OAuth token (from "claude setup-token") travels as "Authorization:
// Bearer", and Claude Code only sends the headers such a token needs when
// it holds one itself (CLAUDE_CODE_OAUTH_TOKEN); anything else is an API
// key.
func claudeAuth(r *Route, chosen int) string {
	if chosen < 0 || chosen >= len(r.Credentials) {
		chosen = 0
	}
	if len(r.Credentials) == 0 {
		return "api-key"
	}
	c := r.Credentials[chosen]
	header := strings.ToLower(c.Header)
	if (header == "" || header == "authorization") && (c.Format == "" || strings.HasPrefix(c.Format, "Bearer ")) {
		return "oauth"
	}
	return "api-key"
}

// bottlePrompt tells the agent where it is and how to ask for more.
func bottlePrompt(b *manifest.Bottle) string {
	s := "You run inside a claude-bottle: outbound traffic passes an allowlist proxy, and what you may reach is listed in " +
		stage.ContainerCurrentConfig + "/allowlist.txt."
	if b.Supervise {
		s += " When the proxy refuses a request (HTTP 403 from claude-bottle egress), do not retry or work around it: ask for access with the supervise MCP tools (request_egress for a host, request_route for an API that needs a credential, propose_dockerfile for tools the image lacks), then wait for the decision with get_request."
	}
	return s
}

// agentEnv is the agent's environment: literals, forwarded names, then the
// bottle's wiring, which wins over either.
func agentEnv(a *manifest.Agent, s *Spec) []EnvVar {
	wiring := []EnvVar{
		{Name: "HOME", Value: AgentHome},
		{Name: "HTTPS_PROXY", Value: proxyURL}, {Name: "https_proxy", Value: proxyURL},
		{Name: "HTTP_PROXY", Value: proxyURL}, {Name: "http_proxy", Value: proxyURL},
		{Name: "NO_PROXY", Value: noProxy}, {Name: "no_proxy", Value: noProxy},
		{Name: "CLAUDE_BOTTLE_INSTANCE_CONFIG", Value: stage.ContainerCurrentConfig},
		// The agent's own Claude Code state, kept across its bottles.
		{Name: "CLAUDE_CONFIG_DIR", Value: ClaudeConfigDir},
	}
	if r := anthropicRoute(s); r != nil {
		key := "ANTHROPIC_API_KEY"
		if s.ClaudeAuth == "oauth" {
			key = "CLAUDE_CODE_OAUTH_TOKEN"
		}
		wiring = append(wiring,
			EnvVar{Name: "ANTHROPIC_BASE_URL", Value: fmt.Sprintf("http://cred-proxy:%d%s", CredProxyPort, strings.TrimSuffix(r.Path, "/"))},
			EnvVar{Name: key, Value: Placeholder},
			EnvVar{Name: "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", Value: "1"},
			EnvVar{Name: "DISABLE_ERROR_REPORTING", Value: "1"},
			EnvVar{Name: "DISABLE_TELEMETRY", Value: "1"},
			EnvVar{Name: "DISABLE_AUTOUPDATER", Value: "1"},
		)
	}
	if s.Supervise {
		// get_request may wait up to 300 s for a person: Claude Code's own
		// MCP tool timeout must outlast it.
		wiring = append(wiring, EnvVar{Name: "MCP_TOOL_TIMEOUT", Value: "330000"})
	}
	if len(s.Repos) > 0 {
		// Rewrite each upstream URL to the gate, so the real remote URLs
		// just work. Environment-borne git config needs no file.
		var kv []EnvVar
		n := 0
		for _, r := range s.Repos {
			for _, from := range gitURLForms(r.Upstream) {
				kv = append(kv,
					EnvVar{Name: fmt.Sprintf("GIT_CONFIG_KEY_%d", n), Value: "url." + r.GateURL + ".insteadOf"},
					EnvVar{Name: fmt.Sprintf("GIT_CONFIG_VALUE_%d", n), Value: from})
				n++
			}
		}
		wiring = append(wiring, EnvVar{Name: "GIT_CONFIG_COUNT", Value: strconv.Itoa(n)})
		wiring = append(wiring, kv...)
	}
	wired := map[string]bool{}
	for i := range wiring {
		wiring[i].Source = "wiring"
		wired[wiring[i].Name] = true
	}
	var out []EnvVar
	names := make([]string, 0, len(a.Env))
	for k := range a.Env {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if !wired[k] {
			out = append(out, EnvVar{Name: k, Value: a.Env[k], Source: "literal"})
		}
	}
	for _, k := range a.ForwardEnv {
		if !wired[k] {
			out = append(out, EnvVar{Name: k, Forward: true, Source: "forward"})
		}
	}
	return append(out, wiring...)
}

// gitURLForms lists the spellings of an upstream the agent may use.
func gitURLForms(upstream string) []string {
	forms := []string{upstream}
	if strings.HasSuffix(upstream, ".git") {
		forms = append(forms, strings.TrimSuffix(upstream, ".git"))
	} else {
		forms = append(forms, upstream+".git")
	}
	return forms
}

// subnets returns the observed subnets of a network the egress sidecar joins.
func (o Observed) subnets(network string) []string {
	return o.Subnets[network]
}

func dockerPlan(p *Plan, a *manifest.Agent, b *manifest.Bottle, runtime string, host Host, refs ImageRefs) DockerPlan {
	s := &p.Spec
	inst := p.Instance
	_, nets := ResourceNames(inst)
	internal, out := nets[0], nets[1]
	labels := func(role string) map[string]string {
		l := map[string]string{LabelInstance: inst, LabelAgent: p.Agent, LabelRole: role}
		if host.Owner != "" {
			l[LabelOwner] = host.Owner
		}
		return l
	}
	d := DockerPlan{Runtime: runtime}
	d.Networks = []Network{
		// inhibit_ipv4: the host gets no address on the bottle's bridge.
		// --internal only stops forwarding; with an address, the host
		// itself (any service listening on all interfaces) would be
		// reachable from the agent at the gateway.
		{Name: internal, Internal: true, Labels: labels(RoleNetwork),
			Options: map[string]string{"com.docker.network.bridge.inhibit_ipv4": "true"}},
		{Name: out, Internal: false, Labels: labels(RoleNetwork)},
	}
	sidecarUser := SidecarUser
	if host.UID != 0 {
		sidecarUser = fmt.Sprintf("%d:%d", host.UID, host.GID)
	}
	hardened := func(c Container) Container {
		c.CapDrop = []string{"ALL"}
		c.SecurityOpt = []string{"no-new-privileges"}
		c.Labels = labels(c.Role)
		c.Labels[LabelRuntime] = c.Runtime
		c.Network = internal
		c.Aliases = []string{c.Role}
		return c
	}
	logMount := Mount{Source: stage.LogsDir, Stage: true, Target: stage.ContainerLogDir}
	sidecarCmd := func(role string) []string {
		return []string{"sidecar", role, "--config", stage.ContainerConfigRoot + "/" + role, "--log", stage.ContainerLogDir, "--instance", inst}
	}
	proxyEnv := []string{"HTTPS_PROXY=" + proxyURL, "HTTP_PROXY=" + proxyURL, "https_proxy=" + proxyURL, "http_proxy=" + proxyURL, "NO_PROXY=", "no_proxy="}
	for _, role := range s.Sidecars {
		var c Container
		switch role {
		case RoleEgress:
			c = Container{Role: role, Image: refs.Sidecar, Cmd: sidecarCmd(role),
				Join:   append([]string{out}, s.JoinNetworks...),
				Mounts: []Mount{{Source: stage.EgressDir, Stage: true, Target: stage.ContainerConfigRoot + "/egress", ReadOnly: true}, logMount},
				Health: health("/claude-bottle", EgressPort),
				// The DNS stub listens on 53 as a non-root user with no capabilities.
				Sysctls: map[string]string{"net.ipv4.ip_unprivileged_port_start": "0"},
			}
		case RoleCredProxy:
			c = Container{Role: role, Image: refs.Sidecar, Cmd: sidecarCmd(role), Env: proxyEnv,
				Mounts: []Mount{{Source: stage.CredProxyDir, Stage: true, Target: stage.ContainerConfigRoot + "/cred-proxy", ReadOnly: true}, logMount},
				Health: health("/claude-bottle", CredProxyPort)}
		case RoleGitGate:
			c = Container{Role: role, Image: refs.GitGate, Cmd: sidecarCmd(role), Env: append(append([]string(nil), proxyEnv...), "HOME=/tmp"),
				Mounts: []Mount{{Source: stage.GitGateDir, Stage: true, Target: stage.ContainerConfigRoot + "/git-gate", ReadOnly: true}, logMount},
				Tmpfs:  map[string]string{"/tmp": "rw,exec,size=2g"},
				Health: health("/usr/local/bin/claude-bottle", GitGatePort)}
		case RoleSupervise:
			c = Container{Role: role, Image: refs.Sidecar, Cmd: sidecarCmd(role),
				Mounts: []Mount{
					{Source: stage.SuperviseReqs, Stage: true, Target: stage.ContainerSuperviseRoot + "/requests"},
					{Source: stage.SuperviseDecided, Stage: true, Target: stage.ContainerSuperviseRoot + "/decisions", ReadOnly: true},
					{Source: stage.CurrentConfig, Stage: true, Target: stage.ContainerCurrentConfig, ReadOnly: true},
					logMount,
				},
				Health: health("/claude-bottle", SupervisePort)}
		}
		if role != RoleEgress {
			// On the internal network only: nothing of theirs needs IPv6.
			// egress keeps it, for upstreams on its outside networks.
			c.Sysctls = noIPv6()
		}
		c.Name = inst + "-" + role
		c.User = sidecarUser
		c.ReadOnlyRootfs = true
		c.Runtime = sidecarRuntime(role, runtime)
		c.HostsFrom = sidecarHostsFrom(role, c.Runtime)
		c.Memory = 512 << 20
		c.PidsLimit = 256
		d.Containers = append(d.Containers, hardened(c))
	}
	image := s.Image
	if s.DerivedImage != "" {
		image = s.DerivedImage
	}
	agentC := hardened(Container{
		Role: RoleAgent, Name: inst, Image: image, Cmd: s.Command, User: AgentUser,
		Mounts: []Mount{
			{Source: stage.CurrentConfig, Stage: true, Target: stage.ContainerCurrentConfig, ReadOnly: true},
			{Source: stage.ClaudeState, Stage: true, Target: ClaudeConfigDir},
			{Source: s.Workspace, Volume: true, Target: WorkspaceDir},
		},
		Runtime:       runtime,
		Memory:        memBytes(b.Resources.Memory),
		NanoCPUs:      int64(b.Resources.CPUs * 1e9),
		PidsLimit:     b.Resources.PIDs,
		DNSFromEgress: true,
		TTY:           s.TTY,
		// The person's terminal (or run's stdin) is the agent's, once;
		// an init reaps what Claude Code's tools leave behind.
		Stdin:   true,
		Init:    true,
		Sysctls: noIPv6(),
	})
	agentC.Aliases = nil
	for _, sk := range s.Skills {
		agentC.Mounts = append(agentC.Mounts, Mount{Source: sk.Source, Target: AgentHome + "/.claude/skills/" + sk.Name + "/SKILL.md", ReadOnly: true})
	}
	d.Containers = append(d.Containers, agentC)
	return d
}

// noIPv6 turns IPv6 off in a container's network namespace. The bottle's
// networks are IPv4 only, yet the kernel gives every interface an IPv6
// link-local address, and the host's end of the bridge has one too: with
// IPv6 on, the agent could reach host services listening on [::] at
// fe80::...%eth0, around inhibit_ipv4. The sysctls are namespaced, so
// they change nothing outside the container. They are set under every
// runtime: runc applies them; gVisor (runsc) ignores an OCI spec's sysctls
// today (gVisor issue 10790), so under runsc the e2e probe
// (e2e/hostside TestAgentHasNoIPv6) is what tells.
func noIPv6() map[string]string {
	return map[string]string{
		"net.ipv6.conf.all.disable_ipv6":     "1",
		"net.ipv6.conf.default.disable_ipv6": "1",
		"net.ipv6.conf.lo.disable_ipv6":      "1",
	}
}

// health is the exec readiness check: the sidecar images have no shell or
// curl, but they have our binary.
func health(bin string, port int) []string {
	return []string{bin, "sidecar", "health", fmt.Sprintf("http://127.0.0.1:%d/healthz", port)}
}

// memBytes parses "512m", "4g", "1024k" or plain bytes; invalid means 0
// (the manifest has validated it already).
func memBytes(s string) int64 {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "" {
		return 0
	}
	mult := int64(1)
	switch s[len(s)-1] {
	case 'k':
		mult = 1 << 10
	case 'm':
		mult = 1 << 20
	case 'g':
		mult = 1 << 30
	}
	if mult != 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0
	}
	return int64(n * float64(mult))
}
