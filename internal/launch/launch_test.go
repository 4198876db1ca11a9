package launch

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/credproxy"
	"github.com/claude-bottle/claude-bottle/internal/egress"
	"github.com/claude-bottle/claude-bottle/internal/manifest"
	"github.com/claude-bottle/claude-bottle/internal/plan"
	"github.com/claude-bottle/claude-bottle/internal/stage"
	"github.com/claude-bottle/claude-bottle/internal/supervise"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestResolveCredential(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tok")
	os.WriteFile(file, []byte("from-file\n"), 0o600)
	env := envOf(map[string]string{"A": "from-env", "EMPTY": ""})
	cases := []struct {
		name    string
		c       manifest.Credential
		want    string
		noValue bool
		errHas  string
	}{
		{name: "env", c: manifest.Credential{Env: "A"}, want: "from-env"},
		{name: "env unset", c: manifest.Credential{Env: "EMPTY"}, noValue: true},
		{name: "file trims newline", c: manifest.Credential{File: file}, want: "from-file"},
		{name: "file missing", c: manifest.Credential{File: filepath.Join(dir, "nope")}, noValue: true},
		{name: "command", c: manifest.Credential{Command: []string{"sh", "-c", "echo from-cmd"}}, want: "from-cmd"},
		{name: "command fails", c: manifest.Credential{Command: []string{"sh", "-c", "echo not logged in >&2; exit 1"}}, errHas: "not logged in"},
		{name: "two lines", c: manifest.Credential{Command: []string{"printf", "a\\nb"}}, errHas: "line break"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolveCredential(context.Background(), tc.c, env)
			switch {
			case tc.noValue:
				if err != errNoValue {
					t.Fatalf("want errNoValue, got %q %v", got, err)
				}
			case tc.errHas != "":
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("want error with %q, got %v", tc.errHas, err)
				}
			default:
				if err != nil || got != tc.want {
					t.Fatalf("got %q %v, want %q", got, err, tc.want)
				}
			}
		})
	}
	_, _, err := resolveFirst(context.Background(), `route "anthropic"`, []manifest.Credential{{Env: "X1"}, {Env: "X2"}}, env)
	if err == nil || !strings.Contains(err.Error(), "$X1 or $X2") || !strings.Contains(err.Error(), "anthropic") {
		t.Fatalf("missing token error: %v", err)
	}
}

func testPlan(t *testing.T) *plan.Plan {
	t.Helper()
	m := manifest.Default()
	m.Agents["claude"].Env = map[string]string{"LIT": "literal-value"}
	m.Agents["claude"].ForwardEnv = []string{"FWD"}
	p, err := plan.Build(m, plan.Options{Agent: "claude"}, plan.Observed{}, plan.Host{Owner: "h/1", UID: 1000, GID: 1000, AgentDockerfile: "FROM x\n"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrepareModesAndSecrets(t *testing.T) {
	p := testPlan(t)
	state := t.TempDir()
	dir := stage.InstanceDir(state, p.Instance)
	env := envOf(map[string]string{"ANTHROPIC_API_KEY": "sk-real-token-123456", "FWD": "forwarded-secret"})
	if err := Prepare(context.Background(), p, dir, stage.LogDir(state, p.Instance), "", env); err != nil {
		t.Fatal(err)
	}
	// The OAuth variable is unset, so the API key (x-api-key) is used.
	var cfg credproxy.Config
	if err := readJSON(filepath.Join(dir, stage.CredProxyRoutes), &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Routes) != 1 || cfg.Routes[0].Header != "x-api-key" || cfg.Routes[0].TokenFile != "tokens/anthropic" {
		t.Fatalf("routes: %+v", cfg)
	}
	tok := filepath.Join(dir, stage.CredProxyDir, "tokens", "anthropic")
	if b, _ := os.ReadFile(tok); string(b) != "sk-real-token-123456" {
		t.Fatalf("token file %q", b)
	}
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), "forwarded-secret") {
			t.Errorf("forwarded value in %s", rel)
		}
		if strings.HasPrefix(rel, stage.CurrentConfig) {
			if strings.Contains(string(b), "sk-real") {
				t.Errorf("token in agent-visible %s", rel)
			}
			return nil
		}
		if !info.IsDir() && info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is %v", rel, info.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, stage.AgentEnv)); string(b) != "LIT=literal-value\n" {
		t.Errorf("agent.env %q", b)
	}
	var sec egress.Secrets
	readJSON(filepath.Join(dir, stage.EgressSecrets), &sec)
	if len(sec.Values) != 1 || sec.Values[0] != "sk-real-token-123456" {
		t.Errorf("canary values: %d", len(sec.Values))
	}
	envList, missing := AgentEnv(p, env)
	if !contains(envList, "FWD=forwarded-secret") || !contains(envList, "LIT=literal-value") || len(missing) != 0 {
		t.Errorf("agent env %v missing %v", envList, missing)
	}
}

func TestPrepareMissingTokenLeavesNothing(t *testing.T) {
	p := testPlan(t)
	state := t.TempDir()
	dir := stage.InstanceDir(state, p.Instance)
	err := Prepare(context.Background(), p, dir, stage.LogDir(state, p.Instance), "", envOf(nil))
	if err == nil || !strings.Contains(err.Error(), "CLAUDE_CODE_OAUTH_TOKEN") || !strings.Contains(err.Error(), "ANTHROPIC_API_KEY") {
		t.Fatalf("want a missing-token error naming the sources, got %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("stage directory left behind: %v", err)
	}
}

func TestApplyEgressRouteDockerfile(t *testing.T) {
	p := testPlan(t)
	state := t.TempDir()
	dir := stage.InstanceDir(state, p.Instance)
	env := envOf(map[string]string{"ANTHROPIC_API_KEY": "sk-real-token-123456", "GH": "gh-token-abcdef123"})
	if err := Prepare(context.Background(), p, dir, stage.LogDir(state, p.Instance), "", env); err != nil {
		t.Fatal(err)
	}
	a := &Applier{State: state, Getenv: env}
	ctx := context.Background()
	req := supervise.Request{ID: "r-1", Kind: supervise.KindEgress, Created: time.Now(), Egress: &supervise.EgressAsk{Host: "example.org", Port: 443}}
	// The plan came from the built-in default: nothing to persist into.
	if err := a.Apply(ctx, p.Instance, req, supervise.ApplyOptions{Persist: true}); err == nil || !strings.Contains(err.Error(), "init") {
		t.Fatalf("--persist with the default manifest: %v", err)
	}
	var before egress.Policy
	readJSON(filepath.Join(dir, stage.EgressPolicy), &before)
	if len(before.Rules) != 1 {
		t.Fatalf("a refused --persist changed the live policy: %+v", before.Rules)
	}
	if err := a.Apply(ctx, p.Instance, req, supervise.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	var pol egress.Policy
	readJSON(filepath.Join(dir, stage.EgressPolicy), &pol)
	if last := pol.Rules[len(pol.Rules)-1]; last.Host != "example.org" || last.Source != "supervise r-1" {
		t.Fatalf("policy: %+v", pol)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, stage.CurrentConfig, "allowlist.txt")); !strings.Contains(string(b), "example.org:443") {
		t.Errorf("current-config allowlist not refreshed: %s", b)
	}
	route := supervise.Request{ID: "r-2", Kind: supervise.KindRoute, Route: &supervise.RouteAsk{Service: "github", Upstream: "https://api.github.com"}}
	if err := a.Apply(ctx, p.Instance, route, supervise.ApplyOptions{}); err == nil {
		t.Fatal("route approved without a token source")
	}
	if err := a.Apply(ctx, p.Instance, route, supervise.ApplyOptions{Credential: &manifest.Credential{Env: "GH"}}); err != nil {
		t.Fatal(err)
	}
	var cfg credproxy.Config
	readJSON(filepath.Join(dir, stage.CredProxyRoutes), &cfg)
	if len(cfg.Routes) != 2 || cfg.Routes[1].Path != "/github/" || cfg.Routes[1].Format != "Bearer {token}" {
		t.Fatalf("routes: %+v", cfg)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, stage.CredProxyDir, "tokens", "github")); string(b) != "gh-token-abcdef123" {
		t.Fatalf("token %q", b)
	}
	readJSON(filepath.Join(dir, stage.EgressPolicy), &pol)
	if last := pol.Rules[len(pol.Rules)-1]; last.Host != "api.github.com" {
		t.Fatalf("upstream not allowed: %+v", pol.Rules)
	}
	cc, _ := os.ReadFile(filepath.Join(dir, stage.CurrentConfig, "routes.json"))
	if !strings.Contains(string(cc), "http://cred-proxy:8080/github/") || strings.Contains(string(cc), "gh-token") {
		t.Errorf("current-config routes: %s", cc)
	}
	df := supervise.Request{ID: "r-3", Kind: supervise.KindDockerfile, Dockerfile: &supervise.DockerfileAsk{Content: "FROM debian:bookworm-slim\nRUN true\n"}}
	if err := a.Apply(ctx, p.Instance, df, supervise.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(stage.AgentDir(state, "claude"), "Dockerfile")); !strings.Contains(string(b), "RUN true") {
		t.Errorf("approved Dockerfile not kept: %q", b)
	}
	if err := a.Apply(ctx, "no-such-instance", req, supervise.ApplyOptions{}); err == nil {
		t.Error("applied to a missing instance")
	}
}

func TestOwnerAlive(t *testing.T) {
	h, _ := os.Hostname()
	cases := map[string]bool{
		Owner():                              true,
		h + "/0":                             false,
		h + "/not-a-pid":                     false,
		fmt.Sprintf("%s/%d", h, 1<<22+12345): false,
		"some-other-host/1":                  true,
		"":                                   true,
	}
	for owner, want := range cases {
		if got := OwnerAlive(owner); got != want {
			t.Errorf("OwnerAlive(%q) = %v, want %v", owner, got, want)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestApplyPersist(t *testing.T) {
	mpath := filepath.Join(t.TempDir(), manifest.FileName)
	os.WriteFile(mpath, []byte("# mine\nagents:\n  dev:\n    bottle: box\nbottles:\n  box:\n    supervise: true\n"), 0o644)
	m, err := manifest.Load(mpath)
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.Build(m, plan.Options{Agent: "dev"}, plan.Observed{}, plan.Host{Owner: "h/1", UID: 1000, GID: 1000})
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	if err := Prepare(context.Background(), p, stage.InstanceDir(state, p.Instance), stage.LogDir(state, p.Instance), mpath, envOf(nil)); err != nil {
		t.Fatal(err)
	}
	a := &Applier{State: state, Getenv: envOf(nil)}
	req := supervise.Request{ID: "r-9", Kind: supervise.KindEgress, Egress: &supervise.EgressAsk{Host: "pkg.example", Port: 443}}
	if err := a.Apply(context.Background(), p.Instance, req, supervise.ApplyOptions{Persist: true}); err != nil {
		t.Fatal(err)
	}
	m2, err := manifest.Load(mpath)
	if err != nil {
		t.Fatal(err)
	}
	if r := m2.Bottles["box"].Egress.Allow; len(r) != 1 || r[0].Host != "pkg.example" {
		t.Fatalf("manifest rules %+v", r)
	}
	var pol egress.Policy
	readJSON(filepath.Join(stage.InstanceDir(state, p.Instance), stage.EgressPolicy), &pol)
	if len(pol.Rules) != 1 || pol.Rules[0].Host != "pkg.example" {
		t.Fatalf("live policy %+v", pol.Rules)
	}
}

// With Confirm set, Apply returns only once the sidecar logged a reload
// after the change; a reload error or silence is an error.
func TestApplyWaitsForReload(t *testing.T) {
	p := testPlan(t)
	state := t.TempDir()
	dir := stage.InstanceDir(state, p.Instance)
	env := envOf(map[string]string{"ANTHROPIC_API_KEY": "sk-real-token-123456"})
	if err := Prepare(context.Background(), p, dir, stage.LogDir(state, p.Instance), "", env); err != nil {
		t.Fatal(err)
	}
	a := &Applier{State: state, Getenv: env, Confirm: 300 * time.Millisecond}
	req := supervise.Request{ID: "r-1", Kind: supervise.KindEgress, Egress: &supervise.EgressAsk{Host: "example.org", Port: 443}}
	if err := a.Apply(context.Background(), p.Instance, req, supervise.ApplyOptions{}); err == nil || !strings.Contains(err.Error(), "did not confirm") {
		t.Fatalf("no sidecar: %v", err)
	}
	logFile := filepath.Join(stage.LogDir(state, p.Instance), "egress.jsonl")
	a.Confirm = 5 * time.Second
	done := make(chan error, 1)
	go func() {
		req.Egress.Host = "example.net"
		done <- a.Apply(context.Background(), p.Instance, req, supervise.ApplyOptions{})
	}()
	// Stamped ahead, so it counts whenever Apply took its starting time.
	line := fmt.Sprintf(`{"time":%q,"sidecar":"egress","kind":"reload","verdict":"allow"}`+"\n", time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano))
	os.WriteFile(logFile, []byte(line), 0o600)
	if err := <-done; err != nil {
		t.Fatalf("confirmed reload: %v", err)
	}
}

// Adding a route appends its token to the egress canary's list. When that
// list cannot be read, the route is refused and nothing is written:
// rewriting the list from a failed read would drop the tokens already in
// it, and egress would let them out.
func TestApplyRouteKeepsCanarySecrets(t *testing.T) {
	env := envOf(map[string]string{"ANTHROPIC_API_KEY": "sk-real-token-123456", "GH": "gh-token-abcdef123"})
	route := supervise.Request{ID: "r-2", Kind: supervise.KindRoute, Route: &supervise.RouteAsk{Service: "github", Upstream: "https://api.github.com"}}
	opts := supervise.ApplyOptions{Credential: &manifest.Credential{Env: "GH"}}
	setup := func(t *testing.T) (*Applier, string, string) {
		p := testPlan(t)
		state := t.TempDir()
		dir := stage.InstanceDir(state, p.Instance)
		if err := Prepare(context.Background(), p, dir, stage.LogDir(state, p.Instance), "", env); err != nil {
			t.Fatal(err)
		}
		return &Applier{State: state, Getenv: env}, p.Instance, dir
	}
	t.Run("appended", func(t *testing.T) {
		a, inst, dir := setup(t)
		if err := a.Apply(context.Background(), inst, route, opts); err != nil {
			t.Fatal(err)
		}
		var sec egress.Secrets
		if err := readJSON(filepath.Join(dir, stage.EgressSecrets), &sec); err != nil {
			t.Fatal(err)
		}
		if strings.Join(sec.Values, ",") != "sk-real-token-123456,gh-token-abcdef123" {
			t.Fatalf("canary values: %d, want the launch token and the route's", len(sec.Values))
		}
	})
	unreadable := map[string]func(path string) error{
		"corrupt": func(path string) error {
			return os.WriteFile(path, []byte(`{"values": ["sk-real-token-123456"`), 0o400)
		},
		"unknown": func(path string) error {
			return os.WriteFile(path, []byte(`{"vals": ["sk-real-token-123456"]}`), 0o400)
		},
		"missing":   func(path string) error { return os.Remove(path) },
		"directory": func(path string) error { os.Remove(path); return os.Mkdir(path, 0o700) },
	}
	for name, spoil := range unreadable {
		t.Run(name, func(t *testing.T) {
			a, inst, dir := setup(t)
			secPath := filepath.Join(dir, stage.EgressSecrets)
			if err := spoil(secPath); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, dir)
			err := a.Apply(context.Background(), inst, route, opts)
			if err == nil || !strings.Contains(err.Error(), "github") {
				t.Fatalf("route added over an unreadable canary list: %v", err)
			}
			if strings.Contains(err.Error(), "gh-token") || strings.Contains(err.Error(), "sk-real") {
				t.Fatalf("a token in the error: %v", err)
			}
			if after := snapshot(t, dir); after != before {
				t.Fatalf("a refused route changed the stage directory:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// snapshot lists every path under dir with its content's length and hash.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			fmt.Fprintf(&b, "%s/\n", rel)
			return nil
		}
		c, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %d %x\n", rel, len(c), sha256.Sum256(c))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// Approving an egress rule and a route on a running bottle writes the
// files a fresh launch of the bottle with that rule and route in its
// manifest would: the same renderer, the same derivation (the route's
// port, its cred-proxy-only rule, its header and format). Only the rules'
// Source differs (who added them) and their order.
func TestApprovalsRenderAsAFreshLaunch(t *testing.T) {
	env := envOf(map[string]string{"ANTHROPIC_API_KEY": "sk-real-token-123456", "GH": "gh-token-abcdef123"})
	ctx := context.Background()
	launched := func(t *testing.T, m *manifest.Manifest) (state, dir string) {
		t.Helper()
		p, err := plan.Build(m, plan.Options{Agent: "claude"}, plan.Observed{}, plan.Host{Owner: "h/1", UID: 1000, GID: 1000, AgentDockerfile: "FROM x\n"})
		if err != nil {
			t.Fatal(err)
		}
		state = t.TempDir()
		dir = stage.InstanceDir(state, p.Instance)
		if err := Prepare(ctx, p, dir, stage.LogDir(state, p.Instance), "", env); err != nil {
			t.Fatal(err)
		}
		return state, dir
	}

	state, live := launched(t, manifest.Default())
	a := &Applier{State: state, Getenv: env}
	inst := filepath.Base(live)
	if err := a.Apply(ctx, inst, supervise.Request{ID: "r-1", Kind: supervise.KindEgress, Egress: &supervise.EgressAsk{Host: "example.org", Port: 443}}, supervise.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	route := supervise.Request{ID: "r-2", Kind: supervise.KindRoute, Route: &supervise.RouteAsk{Service: "github", Upstream: "https://api.github.com:8443"}}
	if err := a.Apply(ctx, inst, route, supervise.ApplyOptions{Credential: &manifest.Credential{Env: "GH"}}); err != nil {
		t.Fatal(err)
	}

	m := manifest.Default()
	b := m.Bottles[m.Agents["claude"].Bottle]
	b.Egress.Allow = append(b.Egress.Allow, manifest.Rule{Host: "example.org", Port: 443})
	b.CredProxy.Routes = append(b.CredProxy.Routes, manifest.Route{Name: "github", Path: "/github/", Upstream: "https://api.github.com:8443",
		Credentials: []manifest.Credential{{Env: "GH", Header: manifest.DefaultHeader, Format: manifest.DefaultFormat}}})
	_, fresh := launched(t, m)

	for _, f := range []string{stage.CredProxyRoutes, stage.CurrentConfig + "/routes.json", stage.CurrentConfig + "/repos.json", stage.CurrentConfig + "/mcp.json"} {
		got, err1 := os.ReadFile(filepath.Join(live, f))
		want, err2 := os.ReadFile(filepath.Join(fresh, f))
		if err1 != nil || err2 != nil || string(got) != string(want) {
			t.Errorf("%s after the approvals:\n%s\nafter a fresh launch:\n%s (%v %v)", f, got, want, err1, err2)
		}
	}
	rules := func(dir string) []string {
		var pol egress.Policy
		if err := readJSON(filepath.Join(dir, stage.EgressPolicy), &pol); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range pol.Rules {
			out = append(out, fmt.Sprintf("%s:%d client=%q private=%v", r.Host, r.Port, r.Client, r.AllowPrivate))
		}
		slices.Sort(out)
		return out
	}
	if got, want := rules(live), rules(fresh); !slices.Equal(got, want) || len(got) != 3 {
		t.Errorf("egress rules after the approvals:\n%v\nafter a fresh launch:\n%v", got, want)
	}
	// The plan kept in the stage directory is the bottle as it now is.
	var p plan.Plan
	if err := readJSON(filepath.Join(live, stage.PlanFile), &p); err != nil {
		t.Fatal(err)
	}
	for _, f := range p.Spec.Files {
		if b, err := os.ReadFile(filepath.Join(live, f.Path)); err != nil || string(b) != f.Content {
			t.Errorf("%s differs from the kept plan's file (%v)", f.Path, err)
		}
	}
	if err := a.Apply(ctx, inst, route, supervise.ApplyOptions{Credential: &manifest.Credential{Env: "GH"}}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("the same route approved twice: %v", err)
	}
}

// An approved port of a host the manifest lets be private (an in-cluster
// or local service) is private too, live and persisted; another host's
// approval is not.
func TestApprovalCarriesAllowPrivate(t *testing.T) {
	mpath := filepath.Join(t.TempDir(), manifest.FileName)
	os.WriteFile(mpath, []byte("agents:\n  dev:\n    bottle: box\nbottles:\n  box:\n    supervise: true\n    egress:\n      allow:\n        - {host: svc.internal, port: 9999, allow_private: true}\n"), 0o644)
	m, err := manifest.Load(mpath)
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.Build(m, plan.Options{Agent: "dev"}, plan.Observed{}, plan.Host{Owner: "h/1", UID: 1000, GID: 1000})
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	if err := Prepare(context.Background(), p, stage.InstanceDir(state, p.Instance), stage.LogDir(state, p.Instance), mpath, envOf(nil)); err != nil {
		t.Fatal(err)
	}
	a := &Applier{State: state, Getenv: envOf(nil)}
	for _, req := range []supervise.Request{
		{ID: "r-1", Kind: supervise.KindEgress, Egress: &supervise.EgressAsk{Host: "SVC.internal", Port: 8080}},
		{ID: "r-2", Kind: supervise.KindEgress, Egress: &supervise.EgressAsk{Host: "pkg.example", Port: 443}},
	} {
		if err := a.Apply(context.Background(), p.Instance, req, supervise.ApplyOptions{Persist: true}); err != nil {
			t.Fatal(err)
		}
	}
	var pol egress.Policy
	readJSON(filepath.Join(stage.InstanceDir(state, p.Instance), stage.EgressPolicy), &pol)
	live := map[string]bool{}
	for _, r := range pol.Rules {
		live[fmt.Sprintf("%s:%d", strings.ToLower(r.Host), r.Port)] = r.AllowPrivate
	}
	if !live["svc.internal:8080"] || live["pkg.example:443"] {
		t.Errorf("live rules' allow_private: %v", live)
	}
	m2, err := manifest.Load(mpath)
	if err != nil {
		t.Fatal(err)
	}
	kept := map[string]bool{}
	for _, r := range m2.Bottles["box"].Egress.Allow {
		kept[fmt.Sprintf("%s:%d", strings.ToLower(r.Host), r.Port)] = r.AllowPrivate
	}
	if !kept["svc.internal:8080"] || kept["pkg.example:443"] || len(kept) != 3 {
		t.Errorf("persisted rules' allow_private: %v", kept)
	}
}
