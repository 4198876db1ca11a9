package plan

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/claude-bottle/claude-bottle/internal/credproxy"
	"github.com/claude-bottle/claude-bottle/internal/egress"
	"github.com/claude-bottle/claude-bottle/internal/gitgate"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

// SourceManifest is the Source of an allowlist rule the manifest names.
const SourceManifest = "manifest"

// Render is the one renderer of what a bottle's sidecars and agent read
// from its stage directory, from the Spec alone: egress's policy,
// cred-proxy's routes (token file names, never tokens), git-gate's
// repositories and known hosts, and the agent's read-only current-config.
// Build calls it for the plan, the launcher again once it has resolved
// the credentials, and the supervise applier after each approved change,
// writing only the files whose content changed.
func Render(s *Spec) ([]File, error) {
	var files []File
	addJSON := func(path string, mode uint32, v any) error {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		files = append(files, File{Path: path, Mode: mode, Content: string(b) + "\n"})
		return nil
	}
	pol := egress.Policy{Rules: s.Allowlist, PrivateNetworks: s.PrivateNetworks}
	if err := addJSON(stage.EgressPolicy, 0o600, pol); err != nil {
		return nil, err
	}
	if len(s.Routes) > 0 {
		cfg := credproxy.Config{}
		for _, r := range s.Routes {
			cfg.Routes = append(cfg.Routes, credproxy.Route{
				Name: r.Name, Path: r.Path, Upstream: r.Upstream, Header: r.Header, Format: r.Format,
				StripHeaders: r.StripHeaders, TokenFile: RouteTokenFile(r.Name),
			})
		}
		if err := addJSON(stage.CredProxyRoutes, 0o600, cfg); err != nil {
			return nil, err
		}
	}
	if len(s.Repos) > 0 {
		cfg := gitgate.Config{}
		var known []string
		for _, r := range s.Repos {
			gr := gitgate.Repo{Name: r.Name, Upstream: r.Upstream, Push: r.Push}
			if r.Key != "" {
				gr.KeyFile = "keys/" + r.Name
			}
			if r.Token != nil {
				gr.TokenFile = "tokens/" + r.Name
				gr.Header, gr.Format = r.Token.Header, r.Token.Format
			}
			cfg.Repos = append(cfg.Repos, gr)
			known = append(known, r.HostKeys...)
		}
		if len(known) > 0 {
			cfg.KnownHosts = "known_hosts"
			files = append(files, File{Path: stage.GitGateKnown, Mode: 0o600, Content: strings.Join(known, "\n") + "\n"})
		}
		if err := addJSON(stage.GitGateRepos, 0o600, cfg); err != nil {
			return nil, err
		}
	}
	return append(files, currentConfig(s)...), nil
}

// RouteTokenFile is where cred-proxy reads a route's token, relative to
// its configuration directory.
func RouteTokenFile(route string) string { return "tokens/" + route }

// AddRule adds r to the allowlist unless a rule for the same host and port
// is there already; it says whether it added one.
func (s *Spec) AddRule(r egress.Rule) bool {
	for _, have := range s.Allowlist {
		if strings.EqualFold(have.Host, r.Host) && have.Port == r.Port {
			return false
		}
	}
	s.Allowlist = append(s.Allowlist, r)
	return true
}

// AddRoute adds a cred-proxy route to a bottle and the egress rule its
// upstream needs (for cred-proxy only), as Build does for the manifest's.
func (s *Spec) AddRoute(r Route) error {
	for _, have := range s.Routes {
		if have.Name == r.Name || have.Path == r.Path {
			return fmt.Errorf("route %s already exists", r.Name)
		}
	}
	rule, ok := s.routeRule(r.Name, r.Upstream)
	if !ok {
		return fmt.Errorf("route %s: upstream %q is not a URL with a host", r.Name, r.Upstream)
	}
	s.Routes = append(s.Routes, r)
	s.AddRule(rule)
	return nil
}

// routeRule is the egress rule a route's upstream needs: its host and
// port, for cred-proxy only, private when the manifest allows that host's
// private addresses (a local upstream).
func (s *Spec) routeRule(name, upstream string) (egress.Rule, bool) {
	u, err := url.Parse(upstream)
	if err != nil || u.Hostname() == "" {
		return egress.Rule{}, false
	}
	return egress.Rule{Host: u.Hostname(), Port: portOf(u), AllowPrivate: s.PrivateAllowed(u.Hostname()),
		Source: "route " + name, Client: RoleCredProxy}, true
}

// PrivateAllowed carries a manifest rule's allow_private over to the rule
// a route, a repository or an approved request adds for the same host:
// the person who wrote the manifest said that host lives on a private
// address.
func (s *Spec) PrivateAllowed(host string) bool {
	for _, r := range s.Allowlist {
		if r.Source == SourceManifest && strings.EqualFold(r.Host, host) && r.AllowPrivate {
			return true
		}
	}
	return false
}

// currentConfig renders what the agent sees read-only of its own bottle.
func currentConfig(s *Spec) []File {
	cc := stage.CurrentConfig + "/"
	var files []File
	var b strings.Builder
	b.WriteString("# What this bottle may reach through the egress proxy (host:port  source).\n")
	b.WriteString("# Port 0 means 443 for CONNECT and 80 for plain HTTP. Ask for more with the supervise tool request_egress.\n")
	for _, r := range s.Allowlist {
		line := fmt.Sprintf("%s:%d", r.Host, r.Port)
		note := r.Source
		switch r.Client {
		case RoleCredProxy:
			note += " (only through cred-proxy)"
		case RoleGitGate:
			note += " (only through git-gate)"
		}
		fmt.Fprintf(&b, "%-40s %s\n", line, note)
	}
	files = append(files, File{Path: cc + "allowlist.txt", Mode: 0o644, Content: b.String()})
	type ccRoute struct {
		Name     string `json:"name"`
		URL      string `json:"url"`
		Upstream string `json:"upstream"`
		Role     string `json:"role,omitempty"`
	}
	rs := []ccRoute{}
	for _, r := range s.Routes {
		rs = append(rs, ccRoute{Name: r.Name, URL: fmt.Sprintf("http://cred-proxy:%d%s", CredProxyPort, r.Path), Upstream: r.Upstream, Role: r.Role})
	}
	rb, _ := json.MarshalIndent(rs, "", "  ")
	files = append(files, File{Path: cc + "routes.json", Mode: 0o644, Content: string(rb) + "\n"})
	type ccRepo struct {
		Name     string             `json:"name"`
		Upstream string             `json:"upstream"`
		GateURL  string             `json:"gate_url"`
		Push     gitgate.PushPolicy `json:"push"`
	}
	gs := []ccRepo{}
	for _, r := range s.Repos {
		gs = append(gs, ccRepo{Name: r.Name, Upstream: r.Upstream, GateURL: r.GateURL, Push: r.Push})
	}
	gb, _ := json.MarshalIndent(gs, "", "  ")
	files = append(files, File{Path: cc + "repos.json", Mode: 0o644, Content: string(gb) + "\n"})
	if s.AgentDockerfile != "" {
		files = append(files, File{Path: cc + "Dockerfile", Mode: 0o644, Content: s.AgentDockerfile})
	}
	if s.Supervise {
		mcp := fmt.Sprintf("{\"mcpServers\":{\"supervise\":{\"type\":\"http\",\"url\":%q}}}\n", superviseURL)
		files = append(files, File{Path: cc + "mcp.json", Mode: 0o644, Content: mcp})
	}
	return files
}
