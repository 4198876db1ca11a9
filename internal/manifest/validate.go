package manifest

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/claude-bottle/claude-bottle/internal/giturl"
)

var (
	// Names end up in container, network and file names.
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,40}$`)
	envRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// Docker's own network name rule.
	networkRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
	memoryRE  = regexp.MustCompile(`^([0-9]+)([bkmgBKMG]?)$`)
	// Route paths are compared byte for byte, so they hold plain segments
	// only (the same rule cred-proxy applies to routes.json).
	routePathRE = regexp.MustCompile(`^/([A-Za-z0-9_~-][A-Za-z0-9._~-]*/)+$`)
	// registryRE: HOST[:PORT][/PATH...], lowercase, no scheme, no tag.
	registryRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)*$`)
	// A Kubernetes object name (DNS subdomain).
	k8sNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$`)
)

// Backends are the values of the manifest's backend key.
const (
	BackendDocker     = "docker"
	BackendKubernetes = "kubernetes"
)

// RoleAnthropicBaseURL marks the route Claude Code is pointed at.
const RoleAnthropicBaseURL = "anthropic-base-url"

// minMemory is the smallest limit Docker accepts.
const minMemory = 6 << 20

// Validate checks the manifest as a whole: names, cross references, files
// that must exist, and every value the sidecars will rely on. It reports
// every problem, one per line, located in the file when the manifest was
// read from one.
func (m *Manifest) Validate() error {
	p := &problems{file: m.Path, pos: m.pos}
	if m.Version != 0 && m.Version != 1 {
		p.add("version", "unsupported version %d; this claude-bottle reads version 1", m.Version)
	}
	if len(m.Agents) == 0 {
		p.add("agents", "at least one agent is required")
	}
	for _, name := range slices.Sorted(maps.Keys(m.Agents)) {
		m.validateAgent(p, name, m.Agents[name])
	}
	for _, name := range slices.Sorted(maps.Keys(m.Bottles)) {
		m.validateBottle(p, name, m.Bottles[name])
	}
	switch m.Backend {
	case "", BackendDocker, BackendKubernetes:
	default:
		p.add("backend", "must be docker or kubernetes, got %q", m.Backend)
	}
	if m.Images.CACerts != "" {
		if msg := readableFile(m.Images.CACerts, "CA bundle"); msg != "" {
			p.add("images.ca_certs", "%s", msg)
		}
	}
	return p.err()
}

func checkName(p *problems, field, name string) {
	if !nameRE.MatchString(name) {
		p.add(field, "name %q must match %s (it becomes part of container names)", name, nameRE)
	}
}

func (m *Manifest) validateAgent(p *problems, name string, a *Agent) {
	f := "agents." + name
	checkName(p, f, name)
	if a == nil {
		a = &Agent{}
	}
	switch _, ok := m.Bottles[a.Bottle]; {
	case a.Bottle == "":
		p.add(f+".bottle", "bottle is required: name one of the bottles")
	case !ok:
		p.add(f+".bottle", "bottle %q is not defined under bottles (defined: %s)", a.Bottle, list(slices.Sorted(maps.Keys(m.Bottles))))
	}
	if len(a.Command) == 0 {
		p.add(f+".command", "must not be empty; leave it out for [claude]")
	} else if a.Command[0] == "" {
		p.add(f+".command[0]", "the program name must not be empty")
	}
	for i, arg := range a.Command {
		if strings.ContainsRune(arg, 0) {
			p.add(fmt.Sprintf("%s.command[%d]", f, i), "contains a NUL byte")
		}
	}
	if strings.ContainsRune(a.Prompt, 0) {
		p.add(f+".prompt", "contains a NUL byte")
	}
	bases := map[string]int{}
	for i, s := range a.Skills {
		sf := fmt.Sprintf("%s.skills[%d]", f, i)
		if s == "" {
			p.add(sf, "must name a file")
			continue
		}
		if msg := readableFile(s, "skill file"); msg != "" {
			p.add(sf, "%s", msg)
		}
		// A skill is named by its file name without the extension.
		base := strings.TrimSuffix(filepath.Base(s), filepath.Ext(s))
		if j, dup := bases[base]; dup {
			p.add(sf, "has the same name as skills[%d] (%s); one would hide the other", j, base)
		}
		bases[base] = i
	}
	for _, k := range slices.Sorted(maps.Keys(a.Env)) {
		ef := f + ".env." + k
		if !envRE.MatchString(k) {
			p.add(ef, "%q is not a valid variable name (letters, digits and _, not starting with a digit)", k)
		}
		v := a.Env[k]
		if strings.ContainsAny(v, "\n\r") {
			p.add(ef, "value contains a newline, which an env file cannot hold; put multi-line text in a skill or prompt")
		}
		if strings.ContainsRune(v, 0) {
			p.add(ef, "value contains a NUL byte")
		}
	}
	seen := map[string]int{}
	for i, k := range a.ForwardEnv {
		ff := fmt.Sprintf("%s.forward_env[%d]", f, i)
		switch j, dup := seen[k]; {
		case !envRE.MatchString(k):
			p.add(ff, "%q is not a valid variable name (letters, digits and _, not starting with a digit)", k)
		case dup:
			p.add(ff, "%s is already forwarded by forward_env[%d]", k, j)
		default:
			if _, lit := a.Env[k]; lit {
				p.add(ff, "%s is also set under env; keep one of them", k)
			}
		}
		seen[k] = i
	}
}

func (m *Manifest) validateBottle(p *problems, name string, b *Bottle) {
	f := "bottles." + name
	checkName(p, f, name)
	if b == nil {
		b = &Bottle{}
	}
	switch b.Runtime {
	case "auto", "runsc", "runc":
	default:
		p.add(f+".runtime", "must be auto, runsc or runc, got %q", b.Runtime)
	}
	if rc := b.Kubernetes.RuntimeClass; rc != "" && !k8sNameRE.MatchString(rc) {
		p.add(f+".kubernetes.runtime_class", "must be a Kubernetes object name (lowercase letters, digits, '-' and '.'), got %q", rc)
	}
	if r := b.Kubernetes.Registry; r != "" && !registryRE.MatchString(r) {
		p.add(f+".kubernetes.registry", "must be a registry host with an optional path and no tag, such as registry.example.com/team, got %q", r)
	}
	for i, c := range b.Kubernetes.ClusterCIDRs {
		if _, err := netip.ParsePrefix(c); err != nil {
			p.add(fmt.Sprintf("%s.kubernetes.cluster_cidrs[%d]", f, i), "must be a CIDR such as 10.96.0.0/12, got %q", c)
		}
	}
	for i, pe := range b.Kubernetes.EgressPeers {
		pf := fmt.Sprintf("%s.kubernetes.egress_peers[%d]", f, i)
		// The API server's own rules (apimachinery's validation).
		if len(validation.IsDNS1123Label(pe.Namespace)) > 0 {
			p.add(pf+".namespace", "must be a namespace name (lowercase letters, digits and '-', at most 63), got %q", pe.Namespace)
		}
		for _, k := range slices.Sorted(maps.Keys(pe.Pods)) {
			if len(validation.IsQualifiedName(k)) > 0 {
				p.add(pf+".pods", "label key %q is not a Kubernetes label key (such as app or example.com/tier)", k)
			}
			if len(validation.IsValidLabelValue(pe.Pods[k])) > 0 {
				p.add(pf+".pods."+k, "must be a Kubernetes label value (at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit), got %q", pe.Pods[k])
			}
		}
		for j, port := range pe.Ports {
			if port < 1 || port > 65535 {
				p.add(fmt.Sprintf("%s.ports[%d]", pf, j), "must be a port 1-65535, got %d", port)
			}
		}
	}
	r := b.Resources
	if n, ok := parseMemory(r.Memory); !ok {
		p.add(f+".resources.memory", "must be a size like 512m or 4g, got %q", r.Memory)
	} else if n < minMemory {
		p.add(f+".resources.memory", "must be at least 6m (Docker's minimum), got %q", r.Memory)
	}
	if !(r.CPUs > 0) {
		p.add(f+".resources.cpus", "must be greater than 0, got %v", r.CPUs)
	}
	if r.PIDs <= 0 {
		p.add(f+".resources.pids", "must be greater than 0, got %d", r.PIDs)
	}
	m.validateEgress(p, f+".egress", b.Egress)
	m.validateRoutes(p, f+".cred_proxy.routes", b.CredProxy.Routes)
	m.validateRepos(p, f+".git.repos", b.Git.Repos)
}

// parseMemory reads a Docker memory size: bytes, or a k/m/g suffix.
func parseMemory(s string) (int64, bool) {
	g := memoryRE.FindStringSubmatch(s)
	if g == nil {
		return 0, false
	}
	n, err := strconv.ParseInt(g[1], 10, 64)
	if err != nil {
		return 0, false
	}
	shift := map[string]uint{"": 0, "b": 0, "k": 10, "m": 20, "g": 30}[strings.ToLower(g[2])]
	if n > (1<<62)>>shift {
		return 0, false
	}
	return n << shift, true
}

func (m *Manifest) validateEgress(p *problems, f string, e Egress) {
	type hp struct {
		host string
		port int
	}
	seen := map[hp]int{}
	for i, r := range e.Allow {
		rf := fmt.Sprintf("%s.allow[%d]", f, i)
		if r.Host == "" {
			p.add(rf+".host", "host is required")
		} else if msg := checkHost(r.Host, true); msg != "" {
			p.add(rf+".host", "%s", msg)
		}
		if r.Port != 0 || m.has(rf+".port") {
			if r.Port < 1 || r.Port > 65535 {
				p.add(rf+".port", "must be 1-65535, got %d", r.Port)
			}
		}
		k := hp{strings.ToLower(r.Host), r.Port}
		if j, dup := seen[k]; dup && r.Host != "" {
			p.add(rf, "allows the same host and port as allow[%d]", j)
		}
		seen[k] = i
	}
	nets := map[string]int{}
	for i, n := range e.Networks {
		nf := fmt.Sprintf("%s.networks[%d]", f, i)
		if !networkRE.MatchString(n) {
			p.add(nf, "%q is not a Docker network name", n)
		}
		if j, dup := nets[n]; dup {
			p.add(nf, "%q is already listed at networks[%d]", n, j)
		}
		nets[n] = i
	}
}

// checkHost says what is wrong with an allowlist or upstream host, or "".
func checkHost(host string, wildcard bool) string {
	bare := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if net.ParseIP(bare) != nil || strings.Count(bare, ":") > 1 {
		return fmt.Sprintf("%q: IP addresses cannot be allowed; name the host", host)
	}
	if strings.ContainsAny(host, ":/") {
		return fmt.Sprintf("%q must be a bare host name, with no scheme, port or path (the port goes under port)", host)
	}
	name := host
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		if !wildcard {
			return fmt.Sprintf("%q: a wildcard is not allowed here", host)
		}
		if !strings.Contains(rest, ".") {
			return fmt.Sprintf("%q is too broad; a wildcard needs a domain of at least two labels, like *.example.com", host)
		}
		name = rest
	}
	if strings.Contains(name, "*") {
		return fmt.Sprintf("%q is not a valid wildcard; only a leading \"*.\" is allowed, like *.example.com", host)
	}
	if msg := checkDNSName(name); msg != "" {
		return fmt.Sprintf("%q is not a valid host name: %s", host, msg)
	}
	return ""
}

func checkDNSName(name string) string {
	if len(name) > 253 {
		return "longer than 253 characters"
	}
	if strings.HasSuffix(name, ".") {
		return "remove the trailing dot"
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" {
			return "empty label"
		}
		if len(l) > 63 {
			return "a label is longer than 63 characters"
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "a label starts or ends with \"-\""
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Sprintf("%q is not allowed (letters, digits, \"-\" and \".\" only)", c)
			}
		}
	}
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" {
		return "the last label is numeric; IP addresses cannot be allowed; name the host"
	}
	return ""
}

// uniqueName checks the name of list[i] (field rf): present, well formed,
// and not already taken by an earlier entry (names maps the ones seen).
func uniqueName(p *problems, rf, list, name string, i int, names map[string]int) {
	if name == "" {
		p.add(rf+".name", "name is required")
		return
	}
	checkName(p, rf+".name", name)
	if j, dup := names[name]; dup {
		p.add(rf+".name", "%q is already the name of %s[%d]", name, list, j)
	}
	names[name] = i
}

func (m *Manifest) validateRoutes(p *problems, f string, routes []Route) {
	names := map[string]int{}
	anthropic := -1
	for i, r := range routes {
		rf := fmt.Sprintf("%s[%d]", f, i)
		uniqueName(p, rf, "routes", r.Name, i, names)
		switch r.Role {
		case "":
		case RoleAnthropicBaseURL:
			if anthropic >= 0 {
				p.add(rf+".role", "only one route may have role %s; routes[%d] already has it", RoleAnthropicBaseURL, anthropic)
			} else {
				anthropic = i
			}
		default:
			p.add(rf+".role", "unknown role %q; the only role is %s", r.Role, RoleAnthropicBaseURL)
		}
		if msg := checkRoutePath(r.Path); msg != "" {
			p.add(rf+".path", "%s", msg)
		} else {
			for j := range i {
				q := routes[j].Path
				switch {
				case q == r.Path:
					p.add(rf+".path", "%q is already the path of routes[%d]", r.Path, j)
				case strings.HasPrefix(r.Path, q), strings.HasPrefix(q, r.Path):
					p.add(rf+".path", "%q overlaps routes[%d].path %q (one is a prefix of the other)", r.Path, j, q)
				}
			}
		}
		if msg := checkUpstream(r.Upstream); msg != "" {
			p.add(rf+".upstream", "%s", msg)
		}
		if len(r.Credentials) == 0 {
			p.add(rf+".credentials", "at least one credential is required")
		}
		for j := range r.Credentials {
			checkCredential(p, fmt.Sprintf("%s.credentials[%d]", rf, j), r.Credentials[j])
		}
		for j, h := range r.StripHeaders {
			if !validHeaderName(h) {
				p.add(fmt.Sprintf("%s.strip_headers[%d]", rf, j), "%q is not a valid header name", h)
			}
		}
	}
}

func checkRoutePath(s string) string {
	switch {
	case s == "":
		return `path is required, like "/anthropic/"`
	case !strings.HasPrefix(s, "/") || !strings.HasSuffix(s, "/"):
		return fmt.Sprintf(`must start and end with "/", like "/anthropic/", got %q`, s)
	case s == "/":
		return `"/" would capture every request; name a prefix like "/anthropic/"`
	case path.Clean(s)+"/" != s:
		return fmt.Sprintf(`%q is not clean (no "//", "." or ".." segments)`, s)
	case !routePathRE.MatchString(s):
		return fmt.Sprintf(`%q may hold only letters, digits, "-", "_", ".", "~" and "/", and no segment may start with "."`, s)
	}
	return ""
}

func checkUpstream(s string) string {
	if s == "" {
		return "upstream is required, like https://api.example.com"
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Sprintf("not a valid URL: %v", err)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return fmt.Sprintf("must be an absolute http or https URL, got %q", s)
	case u.Host == "":
		return fmt.Sprintf("%q has no host", s)
	case u.User != nil:
		return "must not contain a user or password; the credential goes under credentials"
	case u.RawQuery != "" || u.ForceQuery:
		return fmt.Sprintf("%q must not have a query", s)
	case u.Fragment != "":
		return fmt.Sprintf("%q must not have a fragment", s)
	}
	if msg := checkHost(u.Hostname(), false); msg != "" {
		return msg
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Sprintf("port must be 1-65535, got %q", port)
		}
	}
	return ""
}

// hopHeaders are dropped or rewritten by the proxy machinery itself, so a
// token put in one would never arrive.
var hopHeaders = []string{
	"Connection", "Content-Length", "Host", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func checkCredential(p *problems, f string, c Credential) {
	var sources []string
	if c.Env != "" {
		sources = append(sources, "env")
	}
	if c.File != "" {
		sources = append(sources, "file")
	}
	if len(c.Command) > 0 {
		sources = append(sources, "command")
	}
	switch len(sources) {
	case 0:
		p.add(f, "no token source: set one of env, file or command")
	case 1:
	default:
		p.add(f, "more than one token source (%s); set exactly one", strings.Join(sources, ", "))
	}
	if c.Env != "" && !envRE.MatchString(c.Env) {
		p.add(f+".env", "%q is not a valid variable name", c.Env)
	}
	if len(c.Command) > 0 && c.Command[0] == "" {
		p.add(f+".command[0]", "the program name must not be empty")
	}
	if !validHeaderName(c.Header) {
		p.add(f+".header", "%q is not a valid header name", c.Header)
	} else if slices.ContainsFunc(hopHeaders, func(h string) bool { return strings.EqualFold(h, c.Header) }) {
		p.add(f+".header", "%s is a hop-by-hop or framing header and cannot carry a token", c.Header)
	}
	if !strings.Contains(c.Format, "{token}") {
		p.add(f+".format", "must contain {token}, got %q", c.Format)
	}
	if strings.ContainsFunc(c.Format, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		p.add(f+".format", "must not contain control characters (a newline would split the header)")
	}
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// upstreamKind classifies a git upstream as "ssh" or "https", or says
// what is wrong with it. The syntax is giturl's, as git-gate reads it;
// which schemes a manifest may use is decided here.
func upstreamKind(s string) (kind, problem string) {
	u, err := giturl.Parse(s)
	if err != nil {
		return "", err.Error()
	}
	switch u.Scheme {
	case "https":
		if u.User != "" {
			return "", "must not contain a user or password; the credential goes under token"
		}
		return "https", ""
	case "ssh":
		return "ssh", ""
	case "http":
		return "", "plain http is not allowed for git; use https or ssh"
	}
	return "", fmt.Sprintf("must be an ssh (user@host:path or ssh://host/path) or https URL, got %q", s)
}

func (m *Manifest) validateRepos(p *problems, f string, repos []Repo) {
	names := map[string]int{}
	for i, r := range repos {
		rf := fmt.Sprintf("%s[%d]", f, i)
		uniqueName(p, rf, "repos", r.Name, i, names)
		kind, msg := upstreamKind(r.Upstream)
		if msg != "" {
			p.add(rf+".upstream", "%s", msg)
		}
		switch kind {
		case "ssh":
			if r.Key == "" {
				p.add(rf+".key", "ssh upstreams need key: a private key file")
			} else if msg := checkKey(r.Key); msg != "" {
				p.add(rf+".key", "%s", msg)
			}
			if r.Token != nil {
				p.add(rf+".token", "token is for https upstreams; ssh uses key")
			}
		case "https":
			if r.Token == nil {
				p.add(rf+".token", "https upstreams need token: a credential with env, file or command")
			} else {
				checkCredential(p, rf+".token", *r.Token)
			}
			if r.Key != "" {
				p.add(rf+".key", "key is for ssh upstreams; https uses token")
			}
		}
		for j, line := range r.HostKeys {
			if strings.ContainsAny(line, "\r\n\x00") || len(strings.Fields(line)) < 3 {
				p.add(fmt.Sprintf("%s.host_keys[%d]", rf, j), "must be one known_hosts line: HOST KEYTYPE KEY")
			}
		}
		for j, pat := range r.Push.Branches {
			bf := fmt.Sprintf("%s.push.branches[%d]", rf, j)
			if pat == "" {
				p.add(bf, "pattern must not be empty")
			} else if _, err := path.Match(pat, ""); err != nil {
				p.add(bf, "%q is not a valid pattern (path.Match syntax, like agent/*)", pat)
			}
		}
	}
}

// checkKey says what is wrong with an SSH private key file, or "". ssh
// itself refuses a key others can read; refusing here says so before launch.
func checkKey(file string) string {
	fi, err := os.Stat(file)
	switch {
	case os.IsNotExist(err):
		return fmt.Sprintf("key file %s does not exist", file)
	case err != nil:
		return fmt.Sprintf("key file: %v", err)
	case !fi.Mode().IsRegular():
		return fmt.Sprintf("key file %s is not a regular file", file)
	case fi.Mode().Perm()&0o077 != 0:
		return fmt.Sprintf("key file %s is accessible by group or others (mode %04o); run: chmod 600 %s", file, fi.Mode().Perm(), file)
	}
	f, err := os.Open(file)
	if err != nil {
		return fmt.Sprintf("key file: %v", err)
	}
	f.Close()
	return ""
}

// readableFile says what keeps file from being read, or "".
func readableFile(file, what string) string {
	fi, err := os.Stat(file)
	switch {
	case os.IsNotExist(err):
		return fmt.Sprintf("%s %s does not exist", what, file)
	case err != nil:
		return fmt.Sprintf("%s: %v", what, err)
	case !fi.Mode().IsRegular():
		return fmt.Sprintf("%s %s is not a regular file", what, file)
	}
	f, err := os.Open(file)
	if err != nil {
		return fmt.Sprintf("%s: %v", what, err)
	}
	f.Close()
	return ""
}

func list(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
