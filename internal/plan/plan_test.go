package plan

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/claude-bottle/claude-bottle/internal/golden"
	"github.com/claude-bottle/claude-bottle/internal/manifest"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

var testHost = Host{
	Env:             map[string]string{},
	Owner:           "testhost/1",
	UID:             1000,
	GID:             1000,
	AgentDockerfile: "FROM debian:bookworm-slim\n",
	RunscNote:       "runsc is not registered with the Docker engine",
}

type goldenCase struct {
	name     string
	manifest string // testdata file; "" = the built-in default
	opts     Options
	obs      Observed
	host     func(Host) Host
}

var goldenCases = []goldenCase{
	{name: "default", opts: Options{Agent: "claude"}},
	{name: "default-command", opts: Options{Agent: "claude", Command: []string{"sh", "-c", "id -u"}}},
	{name: "default-runsc", opts: Options{Agent: "claude", TTY: true}, host: func(h Host) Host { h.Runsc = true; h.RunscNote = ""; return h }},
	{name: "default-env-runc", opts: Options{Agent: "claude"}, host: func(h Host) Host {
		h.Runsc, h.RunscNote = true, ""
		h.Env = map[string]string{"CLAUDE_BOTTLE_RUNTIME": "runc"}
		return h
	}},
	{name: "default-second", opts: Options{Agent: "claude"}, obs: Observed{Resources: []Resource{
		{Name: "claude-bottle-claude", Kind: "container", Live: true},
		{Name: "claude-bottle-claude-net", Kind: "network", Live: true},
	}}},
	{name: "default-pinned-cwd", opts: Options{Agent: "claude", Cwd: "/home/me/src/app"}, host: func(h Host) Host {
		h.Env = map[string]string{"CLAUDE_BOTTLE_CONTAINER": "mybox", "CLAUDE_BOTTLE_IMAGE": "my/agent:1", "CLAUDE_BOTTLE_DERIVED_IMAGE": "my/agent:cwd"}
		return h
	}},
	{name: "default-apikey-gitcwd", opts: Options{Agent: "claude", Cwd: "/home/me/src/app", CwdRepo: &GitRepo{Root: "/home/me/src/app", Head: "0123456789abcdef0123456789abcdef01234567"}},
		host: func(h Host) Host { h.RouteCredential = map[string]int{"anthropic": 1}; return h }},
	{name: "git", manifest: "git.yaml", opts: Options{Agent: "dev"}},
	{name: "minimal", manifest: "minimal.yaml", opts: Options{Agent: "tool"}},
	{name: "local", manifest: "local.yaml", opts: Options{Agent: "svc"}, obs: Observed{Subnets: map[string][]string{"devnet": {"172.30.0.0/16"}}}},
}

func loadCase(t *testing.T, file string) *manifest.Manifest {
	t.Helper()
	if file == "" {
		return manifest.Default()
	}
	// git does not keep modes: a key must not be readable by others.
	if err := os.Chmod(filepath.Join("testdata", "keys", "deploy"), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Load(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestGolden(t *testing.T) {
	abs, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			m := loadCase(t, tc.manifest)
			h := testHost
			if tc.host != nil {
				h = tc.host(h)
			}
			p, err := Build(m, tc.opts, tc.obs, h)
			if err != nil {
				t.Fatal(err)
			}
			var js, txt bytes.Buffer
			if err := p.WriteJSON(&js); err != nil {
				t.Fatal(err)
			}
			if err := p.WriteText(&txt); err != nil {
				t.Fatal(err)
			}
			for ext, got := range map[string][]byte{".json": js.Bytes(), ".txt": txt.Bytes()} {
				got = bytes.ReplaceAll(got, []byte(abs), []byte("$TESTDATA"))
				golden.Check(t, "./internal/plan", filepath.Join("testdata", tc.name+ext), got)
			}
		})
	}
}

// The properties the goldens show, asserted directly so a careless -update
// cannot bless a regression.
func TestDefaultPlanProperties(t *testing.T) {
	p, err := Build(manifest.Default(), Options{Agent: "claude"}, Observed{}, testHost)
	if err != nil {
		t.Fatal(err)
	}
	if p.Instance != "claude-bottle-claude" {
		t.Errorf("instance %q", p.Instance)
	}
	want := []string{RoleEgress, RoleCredProxy, RoleSupervise}
	if strings.Join(p.Spec.Sidecars, ",") != strings.Join(want, ",") {
		t.Errorf("sidecars %v, want %v", p.Spec.Sidecars, want)
	}
	env := map[string]EnvVar{}
	for _, e := range p.Spec.Env {
		env[e.Name] = e
	}
	if env["ANTHROPIC_BASE_URL"].Value != "http://cred-proxy:8080/anthropic" {
		t.Errorf("ANTHROPIC_BASE_URL %q", env["ANTHROPIC_BASE_URL"].Value)
	}
	// The default route's first credential is CLAUDE_CODE_OAUTH_TOKEN.
	if env["CLAUDE_CODE_OAUTH_TOKEN"].Value != Placeholder || env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"].Value != "1" {
		t.Errorf("claude wiring: %+v", env)
	}
	if _, ok := env["ANTHROPIC_API_KEY"]; ok {
		t.Errorf("both placeholders set: %+v", env)
	}
	if env["CLAUDE_CONFIG_DIR"].Value != ClaudeConfigDir {
		t.Errorf("CLAUDE_CONFIG_DIR %q", env["CLAUDE_CONFIG_DIR"].Value)
	}
	if env["HTTPS_PROXY"].Value != "http://egress:3128" {
		t.Errorf("proxy %q", env["HTTPS_PROXY"].Value)
	}
	agent := p.Docker.Container(RoleAgent)
	if agent == nil || agent.Network != "claude-bottle-claude-net" || len(agent.Join) != 0 || agent.User != AgentUser {
		t.Fatalf("agent container: %+v", agent)
	}
	if agent.CapDrop[0] != "ALL" || agent.SecurityOpt[0] != "no-new-privileges" {
		t.Errorf("agent not hardened: %+v", agent)
	}
	if p.Docker.Containers[len(p.Docker.Containers)-1].Role != RoleAgent {
		t.Error("the agent must start last")
	}
	eg := p.Docker.Container(RoleEgress)
	if eg.Join[0] != "claude-bottle-claude-out" {
		t.Errorf("egress joins %v", eg.Join)
	}
	for _, c := range p.Docker.Containers {
		if c.Role != RoleEgress && len(c.Join) > 0 {
			t.Errorf("%s joins %v: only egress may reach outside", c.Role, c.Join)
		}
	}
	if !p.Docker.Networks[0].Internal || p.Docker.Networks[1].Internal {
		t.Errorf("networks %+v", p.Docker.Networks)
	}
	// The host must have no address on the bottle's bridge.
	if p.Docker.Networks[0].Options["com.docker.network.bridge.inhibit_ipv4"] != "true" {
		t.Errorf("internal network options %v", p.Docker.Networks[0].Options)
	}
}

// IPv6 is off in the agent and in every sidecar that lives on the internal
// network only, under either runtime: the host's link-local address on
// the bridge would otherwise be reachable around inhibit_ipv4.
func TestIPv6Off(t *testing.T) {
	m := loadCase(t, "git.yaml")
	for _, rt := range []string{"runc", "runsc"} {
		m.Bottles[m.Agents["dev"].Bottle].Runtime = rt
		h := testHost
		h.Runsc, h.RunscNote = true, ""
		p, err := Build(m, Options{Agent: "dev"}, Observed{}, h)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Docker.Containers) < 4 {
			t.Fatalf("only %d containers", len(p.Docker.Containers))
		}
		for _, c := range p.Docker.Containers {
			for _, k := range []string{"all", "default", "lo"} {
				got := c.Sysctls["net.ipv6.conf."+k+".disable_ipv6"]
				if c.Role != RoleEgress && got != "1" {
					t.Errorf("%s (%s): net.ipv6.conf.%s.disable_ipv6 = %q, want 1", c.Role, rt, k, got)
				}
				if c.Role == RoleEgress && got != "" {
					t.Errorf("egress turns IPv6 off; its outside networks may need it")
				}
			}
		}
	}
}

func TestGitAddsGateAndRules(t *testing.T) {
	m := loadCase(t, "git.yaml")
	p, err := Build(m, Options{Agent: "dev"}, Observed{}, testHost)
	if err != nil {
		t.Fatal(err)
	}
	if p.Docker.Container(RoleGitGate) == nil {
		t.Fatal("no git-gate")
	}
	found := false
	for _, r := range p.Spec.Allowlist {
		if r.Host == "github.com" && r.Port == 22 && r.Source == "git app" && r.Client == RoleGitGate {
			found = true
		}
	}
	if !found {
		t.Errorf("allowlist lacks github.com:22: %+v", p.Spec.Allowlist)
	}
	for _, f := range p.Spec.Files {
		if strings.Contains(f.Content, "not-a-real-key") {
			t.Errorf("key content in plan file %s", f.Path)
		}
	}
}

func TestInstanceNaming(t *testing.T) {
	live := func(names ...string) Observed {
		var o Observed
		for _, n := range names {
			o.Resources = append(o.Resources, Resource{Name: n, Kind: "container", Live: true})
		}
		return o
	}
	cases := []struct {
		name   string
		pinned string
		obs    Observed
		want   string
		err    error
	}{
		{name: "free", want: "claude-bottle-claude"},
		{name: "first taken", obs: live("claude-bottle-claude"), want: "claude-bottle-claude-2"},
		{name: "sidecar of first taken", obs: live("claude-bottle-claude-egress"), want: "claude-bottle-claude-2"},
		{name: "two taken", obs: live("claude-bottle-claude", "claude-bottle-claude-2-net"), want: "claude-bottle-claude-3"},
		{name: "orphan", obs: Observed{Resources: []Resource{{Name: "claude-bottle-claude-egress", Kind: "container"}}}, err: ErrOrphan},
		{name: "pinned free", pinned: "box", want: "box"},
		{name: "pinned taken", pinned: "box", obs: live("box"), err: ErrNameTaken},
		{name: "pinned orphan", pinned: "box", obs: Observed{Resources: []Resource{{Name: "box-egress", Kind: "container"}}}, err: ErrOrphan},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := chooseInstance("claude", tc.pinned, tc.obs)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				if !strings.Contains(err.Error(), "cleanup") && tc.err == ErrOrphan {
					t.Errorf("orphan error does not point at cleanup: %v", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	var all Observed
	for n := 1; n <= MaxInstances; n++ {
		name := "claude-bottle-claude"
		if n > 1 {
			name = fmt.Sprintf("%s-%d", name, n)
		}
		all.Resources = append(all.Resources, Resource{Name: name, Kind: "container", Live: true})
	}
	if _, err := chooseInstance("claude", "", all); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("bound: %v", err)
	}
}

func TestUnknownAgentAndRunsc(t *testing.T) {
	if _, err := Build(manifest.Default(), Options{Agent: "nope"}, Observed{}, testHost); !errors.Is(err, ErrUnknownAgent) {
		t.Fatalf("unknown agent: %v", err)
	}
	m := manifest.Default()
	m.Bottles["default"].Runtime = "runsc"
	if _, err := Build(m, Options{Agent: "claude"}, Observed{}, testHost); err == nil || !strings.Contains(err.Error(), "runsc") {
		t.Fatalf("runsc required but absent: %v", err)
	}
}

// CLAUDE_BOTTLE_RUNTIME replaces the bottle's setting: runsc fails closed
// where gVisor does not work (CI relies on it), runc skips it, and every
// container gets the one runtime.
func TestRuntimeOverride(t *testing.T) {
	env := func(v string, runsc bool) Host {
		h := testHost
		h.Env = map[string]string{"CLAUDE_BOTTLE_RUNTIME": v}
		h.Runsc = runsc
		return h
	}
	if _, err := Build(manifest.Default(), Options{Agent: "claude"}, Observed{}, env("runsc", false)); err == nil ||
		!strings.Contains(err.Error(), "CLAUDE_BOTTLE_RUNTIME=runsc") || !strings.Contains(err.Error(), testHost.RunscNote) {
		t.Errorf("runsc forced but absent: %v", err)
	}
	if _, err := Build(manifest.Default(), Options{Agent: "claude"}, Observed{}, env("kata", true)); err == nil {
		t.Error("CLAUDE_BOTTLE_RUNTIME=kata accepted")
	}
	m := manifest.Default()
	m.Bottles["default"].Runtime = "runc"
	p, err := Build(m, Options{Agent: "claude"}, Observed{}, env("runsc", true))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{RoleAgent: "runsc", RoleSupervise: "runsc", RoleEgress: "runc", RoleCredProxy: "runsc"}
	for _, c := range p.Docker.Containers {
		if c.Runtime != want[c.Role] || c.Labels[LabelRuntime] != want[c.Role] || c.Labels[LabelRuntimeReason] != ReasonEnv {
			t.Errorf("%s: runtime %q labels %v, want %s", c.Role, c.Runtime, c.Labels, want[c.Role])
		}
		if hosts := strings.Join(c.HostsFrom, ","); (c.Role == RoleCredProxy) != (hosts == RoleEgress) {
			t.Errorf("%s: hosts from %q", c.Role, hosts)
		}
	}
}

func TestMemBytes(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "512m": 512 << 20, "4g": 4 << 30, "1024k": 1 << 20, "100": 100, "1.5g": 3 << 29} {
		if got := memBytes(in); got != want {
			t.Errorf("memBytes(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestImageRefs(t *testing.T) {
	r, err := Refs(nil)
	if err != nil || r != (ImageRefs{AgentImage, SidecarImage, GitGateImage}) {
		t.Fatalf("default refs: %+v %v", r, err)
	}
	r, err = Refs(map[string]string{"CLAUDE_BOTTLE_IMAGE_TAG": "wt-2"})
	if err != nil || r.Agent != "claude-bottle-agent:wt-2" || r.Sidecar != "claude-bottle-sidecar:wt-2" || r.GitGate != "claude-bottle-git-gate:wt-2" {
		t.Fatalf("tagged refs: %+v %v", r, err)
	}
	for _, bad := range []string{"a:b", "-x", "a/b", strings.Repeat("x", 129)} {
		if _, err := Refs(map[string]string{"CLAUDE_BOTTLE_IMAGE_TAG": bad}); err == nil || !strings.Contains(err.Error(), "CLAUDE_BOTTLE_IMAGE_TAG") {
			t.Errorf("tag %q: %v, want an error naming the variable", bad, err)
		}
	}
}

// Autonomy: Claude Code, the agent's or one given after --, runs without
// permission prompts unless the agent says autonomous: false or the
// command picks a permission mode itself; other commands are untouched.
func TestAutonomy(t *testing.T) {
	no := false
	cases := []struct {
		name       string
		autonomous *bool
		command    []string
		want       string
	}{
		{"default agent", nil, nil, "claude --dangerously-skip-permissions --mcp-config"},
		{"run -- claude -p", nil, []string{"claude", "-p", "hi"}, "claude --dangerously-skip-permissions -p hi"},
		{"absolute path", nil, []string{"/usr/local/bin/claude", "-p", "hi"}, "/usr/local/bin/claude --dangerously-skip-permissions -p hi"},
		{"own permission mode", nil, []string{"claude", "--permission-mode", "plan"}, "claude --permission-mode plan"},
		{"already given", nil, []string{"claude", "--dangerously-skip-permissions"}, "claude --dangerously-skip-permissions"},
		{"other program", nil, []string{"sh", "-c", "claude"}, "sh -c claude"},
		{"autonomous: false", &no, nil, "claude --mcp-config"},
		{"autonomous: false, run -- claude", &no, []string{"claude", "-p", "hi"}, "claude -p hi"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := manifest.Default()
			m.Agents["claude"].Autonomous = c.autonomous
			p, err := Build(m, Options{Agent: "claude", Command: c.command}, Observed{}, testHost)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(p.Spec.Command, " ")
			if !strings.HasPrefix(got, c.want) {
				t.Errorf("command %q, want it to start with %q", got, c.want)
			}
			if p.Spec.Autonomous != (c.autonomous == nil) {
				t.Errorf("Spec.Autonomous %v", p.Spec.Autonomous)
			}
			var text bytes.Buffer
			p.WriteText(&text)
			want := "autonomy  on"
			if c.autonomous != nil {
				want = "autonomy  off"
			}
			if !strings.Contains(text.String(), want) {
				t.Errorf("plan text lacks %q:\n%s", want, text.String())
			}
		})
	}
}

// The placeholder's kind follows the credential set on the host: Claude
// Code must hold the same kind of credential cred-proxy injects.
func TestClaudeAuthFollowsHostCredential(t *testing.T) {
	for _, c := range []struct {
		chosen   int
		want     string
		unwanted string
	}{{0, "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_API_KEY"}, {1, "ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"}} {
		h := testHost
		h.RouteCredential = map[string]int{"anthropic": c.chosen}
		p, err := Build(manifest.Default(), Options{Agent: "claude"}, Observed{}, h)
		if err != nil {
			t.Fatal(err)
		}
		env := map[string]string{}
		for _, e := range p.Spec.Env {
			env[e.Name] = e.Value
		}
		if env[c.want] != Placeholder {
			t.Errorf("credential %d: %s = %q, want the placeholder", c.chosen, c.want, env[c.want])
		}
		if _, ok := env[c.unwanted]; ok {
			t.Errorf("credential %d: %s set too", c.chosen, c.unwanted)
		}
	}
}

// The agent's Claude state and workspace: the state is the agent's own
// (mounted read-write at CLAUDE_CONFIG_DIR), /workspace is a volume of the
// instance, and the work goes back as a branch only from a git top level.
func TestStateAndWork(t *testing.T) {
	p, err := Build(manifest.Default(), Options{Agent: "claude"}, Observed{}, testHost)
	if err != nil {
		t.Fatal(err)
	}
	agent := p.Docker.Container(RoleAgent)
	var state, ws *Mount
	for i, m := range agent.Mounts {
		switch m.Target {
		case ClaudeConfigDir:
			state = &agent.Mounts[i]
		case WorkspaceDir:
			ws = &agent.Mounts[i]
		}
	}
	if state == nil || !state.Stage || state.Source != stage.ClaudeState || state.ReadOnly {
		t.Errorf("claude state mount %+v", state)
	}
	if ws == nil || !ws.Volume || ws.Source != "claude-bottle-claude-workspace" {
		t.Errorf("workspace mount %+v", ws)
	}
	if p.Spec.Work.Mode != "archive" || p.Spec.Work.Archive != "work/claude-bottle-claude" {
		t.Errorf("work without a repository: %+v", p.Spec.Work)
	}
	repo := &GitRepo{Root: "/src/app", Head: "abc"}
	p, err = Build(manifest.Default(), Options{Agent: "claude", Cwd: "/src/app", CwdRepo: repo}, Observed{}, testHost)
	if err != nil {
		t.Fatal(err)
	}
	if w := p.Spec.Work; w.Mode != "branch" || w.Repo != "/src/app" || w.Base != "abc" || w.Branch != "claude-bottle/claude-bottle-claude" {
		t.Errorf("work from a repository: %+v", w)
	}
	// A volume left by a killed run keeps the name taken: cleanup first.
	_, err = Build(manifest.Default(), Options{Agent: "claude"}, Observed{Resources: []Resource{{Name: "claude-bottle-claude-workspace", Kind: "volume"}}}, testHost)
	if !errors.Is(err, ErrOrphan) {
		t.Errorf("leftover workspace volume: %v, want ErrOrphan", err)
	}
}

// The egress rule for a repository comes from giturl's reading of its
// upstream: an scp-like path that looks like a port is still port 22.
func TestGitUpstreamRule(t *testing.T) {
	for upstream, want := range map[string]string{
		"git@git.example.com:2222/app.git":         "git.example.com:22",
		"ssh://git@git.example.com:2222/app.git":   "git.example.com:2222",
		"ssh://git@git.example.com/app.git":        "git.example.com:22",
		"https://git.example.com/app.git":          "git.example.com:443",
		"https://git.example.com:8443/app.git":     "git.example.com:8443",
		"ssh://git@[2001:db8::7]:2200/srv/app.git": "2001:db8::7:2200",
	} {
		m := loadCase(t, "git.yaml")
		m.Bottles[m.Agents["dev"].Bottle].Git.Repos[0].Upstream = upstream
		p, err := Build(m, Options{Agent: "dev"}, Observed{}, testHost)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range p.Spec.Allowlist {
			if r.Client == RoleGitGate {
				got = append(got, fmt.Sprintf("%s:%d", r.Host, r.Port))
			}
		}
		if strings.Join(got, " ") != want {
			t.Errorf("%s: git-gate rules %v, want %s", upstream, got, want)
		}
	}
}

// PickAgent picks the named agent, else the only one, else "claude"; an
// unknown name is the same error from PickAgent and from Build.
func TestPickAgent(t *testing.T) {
	agents := func(names ...string) *manifest.Manifest {
		m := &manifest.Manifest{Agents: map[string]*manifest.Agent{}}
		for _, n := range names {
			m.Agents[n] = &manifest.Agent{}
		}
		return m
	}
	cases := []struct {
		m            *manifest.Manifest
		name, want   string
		errHas       string
		unknownAgent bool
	}{
		{m: agents("dev"), want: "dev"},
		{m: agents("dev"), name: "dev", want: "dev"},
		{m: agents("dev", "claude"), want: "claude"},
		{m: agents("dev", "claude"), name: "dev", want: "dev"},
		{m: agents("b", "a"), errHas: "several agents (a, b): name one"},
		{m: agents("b", "a"), name: "c", errHas: `unknown agent "c": the manifest defines a, b`, unknownAgent: true},
	}
	for _, tc := range cases {
		got, err := PickAgent(tc.m, tc.name)
		if tc.errHas == "" {
			if err != nil || got != tc.want {
				t.Errorf("PickAgent(%v, %q) = %q, %v; want %q", agentNames(tc.m), tc.name, got, err, tc.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.errHas) || errors.Is(err, ErrUnknownAgent) != tc.unknownAgent {
			t.Errorf("PickAgent(%v, %q) = %q, %v; want an error with %q", agentNames(tc.m), tc.name, got, err, tc.errHas)
		}
	}
	m := manifest.Default()
	_, picked := PickAgent(m, "nope")
	_, built := Build(m, Options{Agent: "nope"}, Observed{}, testHost)
	if picked == nil || built == nil || picked.Error() != built.Error() {
		t.Errorf("PickAgent says %v, Build says %v", picked, built)
	}
}
