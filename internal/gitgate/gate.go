package gitgate

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/audit"
	"github.com/claude-bottle/claude-bottle/internal/serve"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

// Environment variables the gate sets on git http-backend; git passes them
// on to the pre-receive hook, which is how HookMain finds its repo, config
// and log (docs/git-gate.md).
const (
	EnvConfig    = "CLAUDE_BOTTLE_GITGATE_CONFIG"     // config directory (repos.json)
	EnvRepo      = "CLAUDE_BOTTLE_GITGATE_REPO"       // repo name
	EnvLogDir    = "CLAUDE_BOTTLE_GITGATE_LOG"        // audit log directory; "" means none
	EnvInstance  = "CLAUDE_BOTTLE_GITGATE_INSTANCE"   // instance name for audit events
	EnvSSH       = "CLAUDE_BOTTLE_GITGATE_SSH"        // GIT_SSH_COMMAND for the upstream
	EnvGit       = "CLAUDE_BOTTLE_GITGATE_GIT"        // git binary
	EnvAllowFile = "CLAUDE_BOTTLE_GITGATE_ALLOW_FILE" // "1": tests' file:// upstreams
	EnvTimeout   = "CLAUDE_BOTTLE_GITGATE_TIMEOUT"    // upstream push timeout, Go duration
)

const (
	maxReceiveBody = 200 << 20
	maxUploadBody  = 10 << 20
	// maxCommandBytes bounds how much of a push the gate reads (and buffers)
	// to find its ref-update commands before git sees the request.
	maxCommandBytes = 16 << 20
	askHint         = "to change what this bottle may push, ask the user through the supervise MCP tools"
)

// Options configures the git-gate sidecar.
type Options struct {
	ConfigDir string // holds repos.json, keys, tokens, known_hosts (read-only)
	LogDir    string // audit log directory; "" means no audit log
	Instance  string
	Listen    string // ":8080" when ""
	// DataDir holds the bare mirrors NAME.git; "" means a fresh directory
	// under os.TempDir(), removed when Run returns.
	DataDir string
	GitPath string // "git" when ""
	// SSHCommand replaces the default GIT_SSH_COMMAND for ssh upstreams
	// ({key} and {known_hosts} are replaced by shell-quoted paths). The
	// default is ssh with the repo's key, a known_hosts file, BatchMode and
	// ProxyCommand "<self> sidecar connect %h %p".
	SSHCommand string
	// HookCommand is the shell command line the pre-receive hook execs; ""
	// means "<self> sidecar git-gate-hook". Tests point it at their own binary.
	HookCommand string
	// FetchTimeout bounds one upstream fetch or push; 0 means 2 minutes.
	FetchTimeout time.Duration
	// AllowFileUpstreams permits file://, http:// and absolute-path
	// upstreams. Tests only.
	AllowFileUpstreams bool
}

// Run serves the gate until ctx is cancelled.
func Run(ctx context.Context, log *slog.Logger, opts Options) error {
	g, err := newGate(ctx, log, opts)
	if err != nil {
		return err
	}
	defer g.Close()
	ln, err := net.Listen("tcp", g.opts.Listen)
	if err != nil {
		return fmt.Errorf("git-gate listen: %w", err)
	}
	srv := &http.Server{Handler: g, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go g.watch(ctx, 250*time.Millisecond)
	log.Info("git-gate listening", "addr", ln.Addr().String())
	if err := serve.HTTP(ctx, srv, ln, nil); err != nil {
		return fmt.Errorf("git-gate: %w", err)
	}
	return nil
}

type gate struct {
	log     *slog.Logger
	audit   *audit.Log
	logFile io.Closer
	opts    Options
	self    string
	keyDir  string // private 0700 copies of keys, and known_hosts when unpinned
	// tofuFile is the known_hosts ssh fills on first use when no host key
	// is pinned ("" when pinned); tofuSeen holds the lines already logged.
	// bg runs the first fetches; Close cancels and waits for them.
	bg       sync.WaitGroup
	bgCancel context.CancelFunc
	tofuMu   sync.Mutex
	tofuFile string
	tofuSeen map[string]bool
	tmpData  bool // DataDir was made by us

	mu       sync.RWMutex
	repos    map[string]*mirror
	cfgBytes []byte
}

// mirror is one bare repository on the gate.
type mirror struct {
	repo    Repo
	dir     string
	ssh     string      // GIT_SSH_COMMAND, "" for non-ssh upstreams
	fetchMu *sync.Mutex // shared by the mirror's successive configs
}

func newGate(ctx context.Context, log *slog.Logger, opts Options) (*gate, error) {
	if opts.Listen == "" {
		opts.Listen = ":8080"
	}
	if opts.GitPath == "" {
		opts.GitPath = "git"
	}
	if opts.FetchTimeout == 0 {
		opts.FetchTimeout = 2 * time.Minute
	}
	gitPath, err := exec.LookPath(opts.GitPath)
	if err != nil {
		return nil, fmt.Errorf("find git: %w", err)
	}
	if opts.GitPath, err = filepath.Abs(gitPath); err != nil {
		return nil, fmt.Errorf("find git: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	ctx, bgCancel := context.WithCancel(ctx)
	g := &gate{log: log, opts: opts, self: self, repos: map[string]*mirror{}, bgCancel: bgCancel}
	ok := false
	defer func() {
		if !ok {
			g.Close()
		}
	}()
	if opts.LogDir != "" {
		if g.audit, g.logFile, err = audit.Open(opts.LogDir, opts.Instance, "git-gate"); err != nil {
			return nil, fmt.Errorf("open audit log: %w", err)
		}
	}
	// Its own log redacts what the decision log does (set by apply).
	g.log = slog.New(g.audit.Handler(log.Handler()))
	if g.keyDir, err = os.MkdirTemp("", "git-gate-keys-"); err != nil {
		return nil, fmt.Errorf("make key directory: %w", err)
	}
	if g.opts.DataDir == "" {
		if g.opts.DataDir, err = os.MkdirTemp("", "git-gate-data-"); err != nil {
			return nil, fmt.Errorf("make data directory: %w", err)
		}
		g.tmpData = true
	}
	if g.opts.DataDir, err = filepath.Abs(g.opts.DataDir); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(opts.ConfigDir, "repos.json"))
	if err != nil {
		return nil, fmt.Errorf("read git-gate config: %w", err)
	}
	if err := g.apply(ctx, b); err != nil {
		return nil, err
	}
	ok = true
	return g, nil
}

// Close removes the private key copies (and a temporary DataDir).
func (g *gate) Close() {
	if g.bgCancel != nil {
		g.bgCancel()
	}
	g.bg.Wait()
	if g.keyDir != "" {
		os.RemoveAll(g.keyDir)
	}
	if g.tmpData {
		os.RemoveAll(g.opts.DataDir)
	}
	if g.logFile != nil {
		g.logFile.Close()
	}
}

// watch polls repos.json (stage.Poll) and applies a changed, valid file;
// an invalid one keeps the old configuration (docs/sidecar-contract.md). A
// file that cannot be read is skipped silently, as a rename in progress
// is. The hook reads repos.json itself, so a policy change applies to the
// next push at once.
func (g *gate) watch(ctx context.Context, every time.Duration) {
	g.mu.RLock()
	last := sha256.Sum256(g.cfgBytes)
	g.mu.RUnlock()
	load := func() ([]byte, [32]byte, error) {
		b, err := os.ReadFile(filepath.Join(g.opts.ConfigDir, "repos.json"))
		if err != nil {
			return nil, sha256.Sum256([]byte("unreadable: " + err.Error())), err
		}
		return b, sha256.Sum256(b), nil
	}
	stage.Poll(ctx, every, last, load, func(b []byte, err error) {
		g.mu.RLock()
		same := bytes.Equal(b, g.cfgBytes)
		g.mu.RUnlock()
		if err != nil || same {
			return
		}
		if err := g.apply(ctx, b); err != nil {
			g.log.Warn("git-gate config not reloaded, keeping the old one", "err", err)
			g.audit.Write(audit.Event{Kind: "reload", Verdict: "error", Reason: err.Error()})
			return
		}
		g.audit.Write(audit.Event{Kind: "reload", Verdict: "allow"})
	})
}

// apply makes the mirrors match a new config. Mirrors of removed repos stay
// on disk but are no longer served.
func (g *gate) apply(ctx context.Context, b []byte) error {
	cfg, err := parseConfig(b, g.opts.AllowFileUpstreams)
	if err != nil {
		return err
	}
	g.audit.SetSecrets(heldSecrets(g.opts.ConfigDir, cfg))
	knownHosts := filepath.Join(g.keyDir, "known_hosts")
	pinned := cfg.KnownHosts != ""
	g.tofuMu.Lock()
	g.tofuFile = ""
	if !pinned {
		g.tofuFile = knownHosts
	}
	g.tofuMu.Unlock()
	if pinned {
		knownHosts = filepath.Join(g.opts.ConfigDir, cfg.KnownHosts)
	}
	repos := map[string]*mirror{}
	var fresh []*mirror
	for _, r := range cfg.Repos {
		m := &mirror{repo: r, dir: filepath.Join(g.opts.DataDir, r.Name+".git"), fetchMu: &sync.Mutex{}}
		if kind, _ := upstreamKind(r.Upstream, g.opts.AllowFileUpstreams); kind == "ssh" {
			key := ""
			if r.KeyFile != "" {
				if key, err = g.copyKey(r); err != nil {
					return err
				}
			}
			m.ssh = sshCommandFor(g.opts.SSHCommand, g.self, key, knownHosts, pinned)
		}
		g.mu.RLock()
		old := g.repos[r.Name]
		g.mu.RUnlock()
		if old != nil && old.repo.Upstream == r.Upstream && old.ssh == m.ssh {
			// A policy change needs no new mirror.
			repos[r.Name] = &mirror{repo: r, dir: old.dir, ssh: old.ssh, fetchMu: old.fetchMu}
			continue
		}
		if old != nil {
			m.fetchMu = old.fetchMu
		}
		if err := g.initMirror(ctx, m); err != nil {
			return err
		}
		repos[r.Name] = m
		fresh = append(fresh, m)
	}
	g.mu.Lock()
	g.repos, g.cfgBytes = repos, b
	g.mu.Unlock()
	// The first fetch runs in the background: the gate is ready (and the
	// bottle's launch goes on) at once, an unreachable upstream does not
	// hold it up, and every client fetch fetches again anyway (waiting for
	// this one first: fetches of a mirror are serialised).
	g.bg.Add(1)
	go func() {
		defer g.bg.Done()
		for _, m := range fresh {
			_ = g.fetch(ctx, m)
			g.log.Info("serving repository", "repo", m.repo.Name, "upstream", m.repo.Upstream)
		}
	}()
	return nil
}

// copyKey copies a key to the private directory: ssh insists on a key file
// owned by its user with mode 0600, which a read-only mount owned by the
// host's uid cannot give.
func (g *gate) copyKey(r Repo) (string, error) {
	b, err := os.ReadFile(filepath.Join(g.opts.ConfigDir, r.KeyFile))
	if err != nil {
		return "", fmt.Errorf("read key for repo %s: %w", r.Name, err)
	}
	dst := filepath.Join(g.keyDir, r.Name+".key")
	if err := os.WriteFile(dst+".tmp", b, 0o600); err != nil {
		return "", fmt.Errorf("copy key for repo %s: %w", r.Name, err)
	}
	if err := os.Rename(dst+".tmp", dst); err != nil {
		return "", fmt.Errorf("copy key for repo %s: %w", r.Name, err)
	}
	return dst, nil
}

func (g *gate) hookCommand() string {
	if g.opts.HookCommand != "" {
		return g.opts.HookCommand
	}
	return shellQuote(g.self) + " sidecar git-gate-hook"
}

func (g *gate) gitEnv() []string { return gitEnvDrop(os.Environ()) }

func (g *gate) initMirror(ctx context.Context, m *mirror) error {
	env := g.gitEnv()
	if _, err := os.Stat(filepath.Join(m.dir, "HEAD")); err != nil {
		if _, err := runGit(ctx, g.opts.GitPath, g.opts.DataDir, env, "init", "--quiet", "--bare", m.dir); err != nil {
			return fmt.Errorf("init mirror %s: %w", m.repo.Name, err)
		}
	}
	// No remote.upstream.fetch: a push from the hook must not update any
	// local ref, which git forbids inside the receive quarantine.
	_, _ = runGit(ctx, g.opts.GitPath, m.dir, env, "config", "--unset-all", "remote.upstream.fetch")
	for _, kv := range [][2]string{
		{"remote.upstream.url", m.repo.Upstream},
		{"http.receivepack", "true"},
		{"receive.denyNonFastForwards", "false"},
		{"receive.denyDeletes", "false"},
		{"core.hooksPath", "hooks"},
		{"gc.auto", "0"},
	} {
		if _, err := runGit(ctx, g.opts.GitPath, m.dir, env, "config", kv[0], kv[1]); err != nil {
			return fmt.Errorf("configure mirror %s: %w", m.repo.Name, err)
		}
	}
	hook := "#!/bin/sh\n# claude-bottle git-gate: checks every push against the policy and forwards it upstream.\nexec " + g.hookCommand() + "\n"
	if err := os.MkdirAll(filepath.Join(m.dir, "hooks"), 0o755); err != nil {
		return fmt.Errorf("install hook for %s: %w", m.repo.Name, err)
	}
	if err := os.WriteFile(filepath.Join(m.dir, "hooks", "pre-receive"), []byte(hook), 0o755); err != nil {
		return fmt.Errorf("install hook for %s: %w", m.repo.Name, err)
	}
	return nil
}

// fetch refreshes a mirror from upstream; failures are logged and audited
// and the caller decides whether the cached content will do.
func (g *gate) fetch(ctx context.Context, m *mirror) error {
	m.fetchMu.Lock()
	defer m.fetchMu.Unlock()
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, g.opts.FetchTimeout)
	defer cancel()
	err := g.fetchLocked(ctx, m)
	ev := audit.Event{Kind: "fetch", Repo: m.repo.Name, Verdict: "allow", DurationMS: float64(time.Since(start).Microseconds()) / 1000}
	if err != nil {
		ev.Verdict, ev.Reason = "error", err.Error()
		g.log.Warn("upstream fetch failed; serving cached mirror", "repo", m.repo.Name, "upstream", m.repo.Upstream, "err", err)
	}
	g.audit.Write(ev)
	if err == nil {
		g.reportTrusted()
	}
	return err
}

// reportTrusted logs each host key ssh trusted on first use, once, so the
// user can pin it (manifest host_keys).
func (g *gate) reportTrusted() {
	g.tofuMu.Lock()
	defer g.tofuMu.Unlock()
	if g.tofuFile == "" {
		return
	}
	b, err := os.ReadFile(g.tofuFile)
	if err != nil {
		return
	}
	if g.tofuSeen == nil {
		g.tofuSeen = map[string]bool{}
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line != "" && !g.tofuSeen[line] {
			g.tofuSeen[line] = true
			g.log.Warn("ssh host key trusted on first use; pin it with host_keys", "known_host", line)
		}
	}
}

func (g *gate) fetchLocked(ctx context.Context, m *mirror) error {
	up, err := upstreamEnv(g.opts.ConfigDir, m.repo, m.ssh, g.opts.AllowFileUpstreams)
	if err != nil {
		return err
	}
	env := append(g.gitEnv(), up...)
	if _, err := runGit(ctx, g.opts.GitPath, m.dir, env, "fetch", "--quiet", "--prune", "--no-write-fetch-head",
		"upstream", "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"); err != nil {
		return err
	}
	// A fresh mirror's HEAD names git's default branch; follow upstream's
	// so clones check out what upstream would.
	if _, err := runGit(ctx, g.opts.GitPath, m.dir, env, "rev-parse", "--verify", "--quiet", "HEAD"); err == nil {
		return nil
	}
	out, err := runGit(ctx, g.opts.GitPath, m.dir, env, "ls-remote", "--symref", "upstream", "HEAD")
	if err != nil {
		return nil // not fatal: the refs are fetched
	}
	for _, line := range strings.Split(string(out), "\n") {
		if target, ok := strings.CutPrefix(line, "ref: "); ok {
			target, _, _ = strings.Cut(target, "\t")
			if strings.HasPrefix(target, "refs/heads/") && validRef(target) {
				_, _ = runGit(ctx, g.opts.GitPath, m.dir, env, "symbolic-ref", "HEAD", target)
			}
		}
	}
	return nil
}

func (g *gate) isEmpty(ctx context.Context, m *mirror) bool {
	out, err := runGit(ctx, g.opts.GitPath, m.dir, g.gitEnv(), "for-each-ref", "--count=1", "--format=%(refname)")
	return err == nil && len(bytes.TrimSpace(out)) == 0
}

// refuse answers a refused request with a plain-text reason and audits it.
func (g *gate) refuse(w http.ResponseWriter, r *http.Request, status int, repo, reason string) {
	g.audit.Write(audit.Event{Kind: "http", Client: r.RemoteAddr, Method: r.Method, Path: r.URL.Path,
		Repo: repo, Status: status, Verdict: "deny", Reason: reason})
	g.log.Info("git-gate refused request", "method", r.Method, "path", r.URL.Path, "status", status, "reason", reason)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	fmt.Fprintf(w, "git-gate: %s\n", reason)
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		io.WriteString(w, "ok\n")
		return
	}
	first, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	name := strings.TrimSuffix(first, ".git")
	if rest == "HEAD" || strings.HasPrefix(rest, "objects/") || (rest == "info/refs" && r.URL.Query().Get("service") == "") ||
		strings.HasPrefix(rest, "info/") && rest != "info/refs" {
		g.refuse(w, r, http.StatusForbidden, name, "the dumb HTTP protocol is not served; use a git client that speaks smart HTTP")
		return
	}
	if rest != "info/refs" && rest != "git-upload-pack" && rest != "git-receive-pack" {
		g.refuse(w, r, http.StatusForbidden, name, fmt.Sprintf("path %q is not served (only /NAME.git/info/refs, git-upload-pack and git-receive-pack)", truncate(r.URL.Path, 200)))
		return
	}
	g.mu.RLock()
	m := g.repos[name]
	var known []string
	for n := range g.repos {
		known = append(known, n)
	}
	g.mu.RUnlock()
	if m == nil || !repoName.MatchString(name) {
		sort.Strings(known)
		g.refuse(w, r, http.StatusForbidden, name, fmt.Sprintf("unknown repository %q (this bottle has: %s); %s", truncate(name, 100), strings.Join(known, ", "),
			"to add one, ask the user through the supervise MCP tools"))
		return
	}
	service := rest
	if rest == "info/refs" {
		if r.Method != http.MethodGet {
			g.refuse(w, r, http.StatusMethodNotAllowed, name, "info/refs takes GET")
			return
		}
		q := r.URL.Query()
		if len(q) != 1 || len(q["service"]) != 1 {
			g.refuse(w, r, http.StatusBadRequest, name, "info/refs takes exactly one query parameter, service")
			return
		}
		service = q.Get("service")
		if service != "git-upload-pack" && service != "git-receive-pack" {
			g.refuse(w, r, http.StatusForbidden, name, fmt.Sprintf("service %q is not served (only git-upload-pack and git-receive-pack)", truncate(service, 100)))
			return
		}
		if err := g.fetch(r.Context(), m); err != nil && g.isEmpty(r.Context(), m) {
			g.refuse(w, r, http.StatusBadGateway, name, fmt.Sprintf("upstream %s unreachable and nothing cached: %v", m.repo.Upstream, err))
			return
		}
	} else {
		if r.Method != http.MethodPost {
			g.refuse(w, r, http.StatusMethodNotAllowed, name, rest+" takes POST")
			return
		}
		if r.URL.RawQuery != "" {
			g.refuse(w, r, http.StatusBadRequest, name, rest+" takes no query parameters")
			return
		}
		limit := int64(maxUploadBody)
		if rest == "git-receive-pack" {
			limit = maxReceiveBody
		}
		if r.ContentLength > limit {
			g.refuse(w, r, http.StatusRequestEntityTooLarge, name, fmt.Sprintf("request body over %d MiB", limit>>20))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		if rest == "git-receive-pack" {
			updates, err := peekRefUpdates(r)
			if err != nil {
				g.refuse(w, r, http.StatusBadRequest, name, "malformed push: "+err.Error())
				return
			}
			g.log.Info("push received", "repo", name, "updates", len(updates))
		}
	}
	g.serveCGI(w, r, m, rest)
}

// peekRefUpdates parses the ref-update commands at the head of a
// receive-pack body and puts back every byte it read, so git sees the
// request unchanged.
func peekRefUpdates(r *http.Request) ([]RefUpdate, error) {
	var seen bytes.Buffer
	tee := io.TeeReader(r.Body, &seen)
	var src io.Reader = tee
	switch enc := r.Header.Get("Content-Encoding"); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		gz, err := gzip.NewReader(tee)
		if err != nil {
			return nil, fmt.Errorf("gzip body: %w", err)
		}
		src = gz
	default:
		return nil, fmt.Errorf("unsupported Content-Encoding %q", enc)
	}
	updates, err := ParseRefUpdates(&limitedReader{r: src, n: maxCommandBytes})
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fmt.Errorf("request body over %d MiB", mbe.Limit>>20)
		}
		return nil, err
	}
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(&seen, r.Body), r.Body}
	return updates, nil
}

// limitedReader is io.LimitReader that fails instead of reporting EOF.
type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, fmt.Errorf("ref-update commands over %d MiB", maxCommandBytes>>20)
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

func (g *gate) serveCGI(w http.ResponseWriter, r *http.Request, m *mirror, rest string) {
	// http-backend sees one canonical path whatever spelling the client used.
	r2 := r.Clone(r.Context())
	r2.Body = r.Body
	r2.URL.Path = "/" + m.repo.Name + ".git/" + rest
	r2.URL.RawPath = ""
	allowFile := ""
	if g.opts.AllowFileUpstreams {
		allowFile = "1"
	}
	h := &cgi.Handler{
		Path: g.opts.GitPath,
		Args: []string{"http-backend"},
		Dir:  g.opts.DataDir,
		Env: []string{
			"GIT_PROJECT_ROOT=" + g.opts.DataDir,
			"GIT_HTTP_EXPORT_ALL=1",
			EnvConfig + "=" + g.opts.ConfigDir,
			EnvRepo + "=" + m.repo.Name,
			EnvLogDir + "=" + g.opts.LogDir,
			EnvInstance + "=" + g.opts.Instance,
			EnvSSH + "=" + m.ssh,
			EnvGit + "=" + g.opts.GitPath,
			EnvAllowFile + "=" + allowFile,
			EnvTimeout + "=" + g.opts.FetchTimeout.String(),
		},
		InheritEnv: []string{"PATH", "HOME", "TMPDIR", "LANG", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
			"NO_PROXY", "no_proxy", "GIT_CONFIG_NOSYSTEM", "GIT_CONFIG_GLOBAL"},
		Logger: slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
		Stderr: &lineLogger{log: g.log, repo: m.repo.Name},
	}
	h.ServeHTTP(w, r2)
}

// lineLogger sends http-backend's stderr (not the hook's, which goes to
// the client) to the gate's log.
type lineLogger struct {
	log  *slog.Logger
	repo string
}

func (l *lineLogger) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		if line != "" {
			l.log.Warn("git http-backend", "repo", l.repo, "stderr", line)
		}
	}
	return len(p), nil
}

func durationEnv(s string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d
	}
	return def
}
