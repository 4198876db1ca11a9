package gitgate

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/logtest"

	"github.com/claude-bottle/claude-bottle/internal/audit"
)

func testLogger(t *testing.T) *slog.Logger { return logtest.New(t) }

// git runs the git CLI and fails the test on error.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := gitTry(dir, args...)
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

func gitTry(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

type fixture struct {
	upstream string // bare repo on disk
	cfgDir   string
	logDir   string
	gate     *gate
	srv      *httptest.Server
}

func writeConfig(t *testing.T, dir string, repos ...Repo) {
	t.Helper()
	b, err := json.Marshal(Config{Repos: repos})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "repos.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// newUpstream makes a bare repo with main (two commits) and agent/old.
func newUpstream(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	up := filepath.Join(root, "up.git")
	git(t, root, "init", "--quiet", "--bare", "--initial-branch=main", up)
	work := filepath.Join(root, "seed")
	git(t, root, "init", "--quiet", "--initial-branch=main", work)
	for i := 0; i < 2; i++ {
		if err := os.WriteFile(filepath.Join(work, "f"), []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		git(t, work, "add", "f")
		git(t, work, "commit", "--quiet", "-m", fmt.Sprint("c", i))
	}
	git(t, work, "push", "--quiet", up, "main", "main:refs/heads/agent/old")
	return up
}

func hookCommand(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return "env GITGATE_HOOK=1 " + shellQuote(self)
}

func newFixture(t *testing.T, upstream string, p PushPolicy) *fixture {
	t.Helper()
	f := &fixture{upstream: upstream, cfgDir: t.TempDir(), logDir: t.TempDir()}
	writeConfig(t, f.cfgDir, Repo{Name: "app", Upstream: upstream, Push: p})
	g, err := newGate(context.Background(), testLogger(t), Options{
		ConfigDir: f.cfgDir, LogDir: f.logDir, Instance: "test", DataDir: t.TempDir(),
		HookCommand: hookCommand(t), AllowFileUpstreams: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.gate = g
	f.srv = httptest.NewServer(g)
	t.Cleanup(func() { f.srv.Close(); g.Close() })
	return f
}

func (f *fixture) clone(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "c")
	git(t, "", "clone", "--quiet", f.srv.URL+"/app.git", dir)
	return dir
}

func (f *fixture) events(t *testing.T) []audit.Event {
	t.Helper()
	fh, err := os.Open(filepath.Join(f.logDir, "git-gate.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var out []audit.Event
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		var e audit.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

func hasEvent(evs []audit.Event, match func(audit.Event) bool) bool {
	for _, e := range evs {
		if match(e) {
			return true
		}
	}
	return false
}

func refs(t *testing.T, bare string) string {
	return git(t, "", "--git-dir", bare, "for-each-ref", "--format=%(refname) %(objectname)")
}

func commit(t *testing.T, dir, content string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "commit", "--quiet", "-am", content)
	return git(t, dir, "rev-parse", "HEAD")
}

func TestPush(t *testing.T) {
	tests := []struct {
		name   string
		policy PushPolicy
		// prepare edits the clone and returns the push arguments.
		prepare func(t *testing.T, dir string) []string
		ok      bool
		ref     string // the ref to check in audit (and upstream when ok)
		reason  string // in the client's output when refused
	}{
		{
			name:   "new allowed branch",
			policy: PushPolicy{Branches: []string{"agent/*"}},
			prepare: func(t *testing.T, dir string) []string {
				commit(t, dir, "x")
				return []string{"HEAD:refs/heads/agent/x"}
			},
			ok: true, ref: "refs/heads/agent/x",
		},
		{
			name:   "fast-forward of allowed branch",
			policy: PushPolicy{Branches: []string{"agent/*"}},
			prepare: func(t *testing.T, dir string) []string {
				git(t, dir, "checkout", "--quiet", "-b", "w", "origin/agent/old")
				commit(t, dir, "ff")
				return []string{"HEAD:refs/heads/agent/old"}
			},
			ok: true, ref: "refs/heads/agent/old",
		},
		{
			name:   "force push to main refused",
			policy: PushPolicy{Branches: []string{"main", "agent/*"}},
			prepare: func(t *testing.T, dir string) []string {
				git(t, dir, "reset", "--quiet", "--hard", "HEAD~1")
				commit(t, dir, "rewrite")
				return []string{"--force", "HEAD:refs/heads/main"}
			},
			ref: "refs/heads/main", reason: "non-fast-forward",
		},
		{
			name:   "force push allowed by policy",
			policy: PushPolicy{Branches: []string{"agent/*"}, Force: true},
			prepare: func(t *testing.T, dir string) []string {
				git(t, dir, "checkout", "--quiet", "-b", "w", "origin/agent/old")
				git(t, dir, "reset", "--quiet", "--hard", "HEAD~1")
				commit(t, dir, "rewrite")
				return []string{"--force", "HEAD:refs/heads/agent/old"}
			},
			ok: true, ref: "refs/heads/agent/old",
		},
		{
			name:    "delete refused",
			policy:  PushPolicy{Branches: []string{"agent/*"}},
			prepare: func(t *testing.T, dir string) []string { return []string{":refs/heads/agent/old"} },
			ref:     "refs/heads/agent/old", reason: "deleting a branch",
		},
		{
			name:    "delete allowed by policy",
			policy:  PushPolicy{Branches: []string{"agent/*"}, Delete: true},
			prepare: func(t *testing.T, dir string) []string { return []string{":refs/heads/agent/old"} },
			ok:      true, ref: "refs/heads/agent/old",
		},
		{
			name:   "branch outside patterns refused",
			policy: PushPolicy{Branches: []string{"agent/*"}},
			prepare: func(t *testing.T, dir string) []string {
				commit(t, dir, "x")
				return []string{"HEAD:refs/heads/feature/x"}
			},
			ref: "refs/heads/feature/x", reason: "not allowed by the push policy",
		},
		{
			name:   "tag refused",
			policy: PushPolicy{Branches: []string{"*"}},
			prepare: func(t *testing.T, dir string) []string {
				git(t, dir, "tag", "-a", "-m", "v1", "v1")
				return []string{"refs/tags/v1"}
			},
			ref: "refs/tags/v1", reason: "pushing tags",
		},
		{
			name:   "tag allowed by policy",
			policy: PushPolicy{Tags: true},
			prepare: func(t *testing.T, dir string) []string {
				git(t, dir, "tag", "-a", "-m", "v1", "v1")
				return []string{"refs/tags/v1"}
			},
			ok: true, ref: "refs/tags/v1",
		},
		{
			name:   "other namespace refused",
			policy: PushPolicy{Branches: []string{"*"}, Tags: true, Force: true, Delete: true},
			prepare: func(t *testing.T, dir string) []string {
				return []string{"HEAD:refs/meta/config"}
			},
			ref: "refs/meta/config", reason: "only refs/heads/ and refs/tags/",
		},
		{
			name:   "one refused update refuses the whole push",
			policy: PushPolicy{Branches: []string{"agent/*"}},
			prepare: func(t *testing.T, dir string) []string {
				commit(t, dir, "x")
				return []string{"--atomic", "HEAD:refs/heads/agent/ok", "HEAD:refs/heads/main"}
			},
			ref: "refs/heads/main", reason: "not allowed by the push policy",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, newUpstream(t), tc.policy)
			dir := f.clone(t)
			args := tc.prepare(t, dir)
			before := refs(t, f.upstream)
			out, err := gitTry(dir, append([]string{"push", "origin"}, args...)...)
			after := refs(t, f.upstream)
			evs := f.events(t)
			if tc.ok {
				if err != nil {
					t.Fatalf("push failed: %v\n%s", err, out)
				}
				if after == before {
					t.Fatalf("upstream unchanged after an allowed push:\n%s", after)
				}
				// The upstream ref is now the client's HEAD (its tag), or gone.
				want := ""
				if !strings.HasPrefix(args[0], ":") {
					src := "HEAD"
					if strings.HasPrefix(tc.ref, "refs/tags/") {
						src = tc.ref
					}
					want = git(t, dir, "rev-parse", src)
				}
				got, _ := gitTry("", "--git-dir", f.upstream, "rev-parse", "--verify", "--quiet", tc.ref)
				if strings.TrimSpace(got) != strings.TrimSpace(want) {
					t.Errorf("upstream %s = %q, want %q", tc.ref, got, want)
				}
				// The mirror stores the update once upstream has it.
				if m := refs(t, f.gate.repos["app"].dir); m != after {
					t.Errorf("mirror refs\n%s\nwant upstream's\n%s", m, after)
				}
				if !hasEvent(evs, func(e audit.Event) bool { return e.Kind == "push" && e.Ref == tc.ref && e.Verdict == "allow" }) {
					t.Errorf("no allow push event for %s in %+v", tc.ref, evs)
				}
				return
			}
			if err == nil {
				t.Fatalf("push succeeded, want refused:\n%s", out)
			}
			if !strings.Contains(out, tc.reason) || !strings.Contains(out, "git-gate: refused") {
				t.Errorf("client output does not explain the refusal (want %q):\n%s", tc.reason, out)
			}
			if after != before {
				t.Errorf("upstream changed by a refused push:\nbefore\n%s\nafter\n%s", before, after)
			}
			if !hasEvent(evs, func(e audit.Event) bool {
				return e.Kind == "push" && e.Ref == tc.ref && e.Verdict == "deny" && strings.Contains(e.Reason, tc.reason)
			}) {
				t.Errorf("no deny push event for %s in %+v", tc.ref, evs)
			}
		})
	}
}

func TestUpstreamRefusesPush(t *testing.T) {
	f := newFixture(t, newUpstream(t), PushPolicy{Branches: []string{"agent/*"}})
	dir := f.clone(t)
	hook := filepath.Join(f.upstream, "hooks", "pre-receive")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\necho upstream says no >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	commit(t, dir, "x")
	out, err := gitTry(dir, "push", "origin", "HEAD:refs/heads/agent/x")
	if err == nil {
		t.Fatalf("push succeeded although upstream refused:\n%s", out)
	}
	if !strings.Contains(out, "upstream says no") {
		t.Errorf("upstream's message not shown:\n%s", out)
	}
	if _, err := gitTry("", "--git-dir", f.gate.repos["app"].dir, "rev-parse", "--verify", "refs/heads/agent/x"); err == nil {
		t.Error("mirror stored a ref upstream refused")
	}
	if !hasEvent(f.events(t), func(e audit.Event) bool { return e.Kind == "push" && e.Verdict == "error" }) {
		t.Error("no error push event")
	}
}

func TestUpstreamDown(t *testing.T) {
	t.Run("cached mirror still serves", func(t *testing.T) {
		f := newFixture(t, newUpstream(t), PushPolicy{})
		f.clone(t)
		if err := os.Rename(f.upstream, f.upstream+".gone"); err != nil {
			t.Fatal(err)
		}
		dir := f.clone(t)
		if got := git(t, dir, "log", "--format=%s", "-1"); got != "c1" {
			t.Errorf("cached clone HEAD = %q, want c1", got)
		}
		if !hasEvent(f.events(t), func(e audit.Event) bool {
			return e.Kind == "fetch" && e.Repo == "app" && e.Verdict == "error" && e.Reason != ""
		}) {
			t.Errorf("no fetch error event in %+v", f.events(t))
		}
	})
	t.Run("empty mirror fails clearly", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "missing.git")
		f := newFixture(t, missing, PushPolicy{})
		out, err := gitTry("", "clone", f.srv.URL+"/app.git", filepath.Join(t.TempDir(), "c"))
		if err == nil {
			t.Fatalf("clone of an unreachable, empty mirror succeeded:\n%s", out)
		}
		if !strings.Contains(out, "git-gate: upstream "+missing+" unreachable") {
			t.Errorf("clone error does not name the upstream:\n%s", out)
		}
	})
}

func TestRefusedRequests(t *testing.T) {
	f := newFixture(t, newUpstream(t), PushPolicy{})
	tests := []struct {
		name, method, path string
		body               string
		status             int
		inBody             string
	}{
		{"dumb info/refs", "GET", "/app.git/info/refs", "", 403, "dumb HTTP"},
		{"dumb HEAD", "GET", "/app.git/HEAD", "", 403, "dumb HTTP"},
		{"dumb objects", "GET", "/app.git/objects/info/packs", "", 403, "dumb HTTP"},
		{"dumb loose object", "GET", "/app.git/objects/ab/cdef", "", 403, "dumb HTTP"},
		{"unknown repo", "GET", "/other.git/info/refs?service=git-upload-pack", "", 403, `unknown repository "other"`},
		{"unknown service", "GET", "/app.git/info/refs?service=git-upload-archive", "", 403, "not served"},
		{"extra query", "GET", "/app.git/info/refs?service=git-upload-pack&x=1", "", 400, "exactly one query parameter"},
		{"query on rpc", "POST", "/app.git/git-upload-pack?x=1", "", 400, "no query parameters"},
		{"rpc by GET", "GET", "/app.git/git-receive-pack", "", 405, "takes POST"},
		{"info/refs by POST", "POST", "/app.git/info/refs?service=git-upload-pack", "", 405, "takes GET"},
		{"other path", "GET", "/app.git/config", "", 403, "not served"},
		{"root", "GET", "/", "", 403, "not served"},
		{"malformed push", "POST", "/app.git/git-receive-pack", "zzzz", 400, "malformed push"},
		{"truncated push", "POST", "/app.git/git-receive-pack", "0010abc", 400, "malformed push"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, f.srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.inBody) || !strings.HasPrefix(string(b), "git-gate: ") {
				t.Errorf("%s %s = %d %q, want %d containing %q", tc.method, tc.path, resp.StatusCode, b, tc.status, tc.inBody)
			}
			if !hasEvent(f.events(t), func(e audit.Event) bool {
				return e.Kind == "http" && e.Verdict == "deny" && e.Status == tc.status && e.Path == req.URL.Path
			}) {
				t.Errorf("no deny event for %s", tc.path)
			}
		})
	}
}

func TestOversizeBody(t *testing.T) {
	f := newFixture(t, newUpstream(t), PushPolicy{})
	for _, tc := range []struct {
		path string
		size int64
	}{
		{"/app.git/git-receive-pack", maxReceiveBody + 1},
		{"/app.git/git-upload-pack", maxUploadBody + 1},
	} {
		t.Run(tc.path, func(t *testing.T) {
			conn, err := net.Dial("tcp", f.srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			// Only the header is sent: the gate must refuse on Content-Length.
			fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", tc.path, tc.size)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "over") {
				t.Errorf("status %d %q, want 413", resp.StatusCode, b)
			}
		})
	}
}

func TestServes(t *testing.T) {
	f := newFixture(t, newUpstream(t), PushPolicy{})
	for _, tc := range []struct{ path, contentType string }{
		{"/healthz", ""},
		{"/app.git/info/refs?service=git-upload-pack", "application/x-git-upload-pack-advertisement"},
		{"/app/info/refs?service=git-upload-pack", "application/x-git-upload-pack-advertisement"},
		{"/app.git/info/refs?service=git-receive-pack", "application/x-git-receive-pack-advertisement"},
	} {
		resp, err := http.Get(f.srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || (tc.contentType != "" && resp.Header.Get("Content-Type") != tc.contentType) {
			t.Errorf("GET %s = %d %s", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	// The path without .git works for a real client too.
	git(t, "", "clone", "--quiet", f.srv.URL+"/app", filepath.Join(t.TempDir(), "c"))
	// So does the v0 protocol.
	git(t, "", "-c", "protocol.version=0", "clone", "--quiet", f.srv.URL+"/app.git", filepath.Join(t.TempDir(), "v0"))
}

func TestHookOutsideGateRefuses(t *testing.T) {
	var stderr strings.Builder
	code := HookMain(context.Background(), strings.NewReader(strings.Repeat("0", 40)+" "+strings.Repeat("1", 40)+" refs/heads/x\n"), &stderr, nil)
	if code == 0 || !strings.Contains(stderr.String(), "push refused") {
		t.Errorf("HookMain without gate env = %d %q, want refusal", code, stderr.String())
	}
}

func TestTokenUpstream(t *testing.T) {
	up := newUpstream(t)
	git(t, "", "--git-dir", up, "config", "http.receivepack", "true")
	const token = "s3cret-token"
	var bad atomic.Int32
	backend := &cgi.Handler{
		Path: mustLookPath(t, "git"), Args: []string{"http-backend"},
		Env:        []string{"GIT_PROJECT_ROOT=" + filepath.Dir(up), "GIT_HTTP_EXPORT_ALL=1"},
		InheritEnv: []string{"PATH", "HOME", "GIT_CONFIG_NOSYSTEM", "GIT_CONFIG_GLOBAL"},
	}
	upSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Token") != "token "+token {
			bad.Add(1)
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	defer upSrv.Close()

	cfgDir, logDir := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(filepath.Join(cfgDir, "tokens"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfgDir, "tokens", "app"), []byte(token+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	writeConfig(t, cfgDir, Repo{Name: "app", Upstream: upSrv.URL + "/up.git", TokenFile: "tokens/app",
		Header: "X-Token", Format: "token {token}", Push: PushPolicy{Branches: []string{"agent/*"}}})
	g, err := newGate(context.Background(), testLogger(t), Options{ConfigDir: cfgDir, LogDir: logDir, DataDir: t.TempDir(),
		HookCommand: hookCommand(t), AllowFileUpstreams: true})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	srv := httptest.NewServer(g)
	defer srv.Close()

	dir := filepath.Join(t.TempDir(), "c")
	git(t, "", "clone", "--quiet", srv.URL+"/app.git", dir)
	want := commit(t, dir, "via token")
	git(t, dir, "push", "--quiet", "origin", "HEAD:refs/heads/agent/t")
	if got := git(t, "", "--git-dir", up, "rev-parse", "refs/heads/agent/t"); got != want {
		t.Errorf("upstream agent/t = %s, want %s", got, want)
	}
	if n := bad.Load(); n != 0 {
		t.Errorf("%d upstream requests without the token header", n)
	}
	// The agent puts the credential where the gate and its hook log what
	// they refuse: the method and path of a request, a pushed ref's name.
	req, _ := http.NewRequest(token, srv.URL+"/"+token+".git/info/refs", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	if _, err := gitTry(dir, "push", "--quiet", "origin", "HEAD:refs/heads/"+token); err == nil {
		t.Error("a push outside agent/* was accepted")
	}
	logs, err := os.ReadFile(filepath.Join(logDir, "git-gate.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(logs), token) {
		t.Errorf("audit log contains the token:\n%s", logs)
	}
	for _, want := range []string{`"method":"` + audit.Redacted, `"ref":"refs/heads/` + audit.Redacted} {
		if !strings.Contains(string(logs), want) {
			t.Errorf("audit log lacks %s:\n%s", want, logs)
		}
	}
}

func mustLookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReloadAddsRepo(t *testing.T) {
	f := newFixture(t, newUpstream(t), PushPolicy{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.gate.watch(ctx, 10*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()

	lib := newUpstream(t)
	writeConfig(t, f.cfgDir, Repo{Name: "app", Upstream: f.upstream}, Repo{Name: "lib", Upstream: lib})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(f.srv.URL + "/lib.git/info/refs?service=git-upload-pack")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lib not served after reload: %d", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
	git(t, "", "clone", "--quiet", f.srv.URL+"/lib.git", filepath.Join(t.TempDir(), "lib"))

	// An invalid file keeps the old config.
	if err := os.WriteFile(filepath.Join(f.cfgDir, "repos.json"), []byte(`{"repos":[{"name":"../x"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for !hasEvent(f.events(t), func(e audit.Event) bool { return e.Kind == "reload" && e.Verdict == "error" }) {
		if time.Now().After(deadline) {
			t.Fatal("no reload error event for an invalid config")
		}
		time.Sleep(20 * time.Millisecond)
	}
	git(t, "", "clone", "--quiet", f.srv.URL+"/lib.git", filepath.Join(t.TempDir(), "lib2"))
}

// TestSSHUpstream runs an ssh upstream through a stand-in ssh that checks
// it got the gate's private key copy and runs git's remote command locally.
func TestSSHUpstream(t *testing.T) {
	up := newUpstream(t)
	root := filepath.Dir(up)
	fake := filepath.Join(t.TempDir(), "fake-ssh")
	script := `#!/bin/sh
echo "$@" >> ` + shellQuote(filepath.Join(root, "ssh.log")) + `
key=""
while [ $# -gt 1 ]; do
	case "$1" in
	-i) key="$2"; shift 2 ;;
	-o|-p) shift 2 ;;
	*) shift ;;
	esac
done
[ -n "$key" ] && [ "$(stat -c %a "$key")" = 600 ] && [ "$(cat "$key")" = "KEY" ] || { echo "fake-ssh: bad key $key" >&2; exit 255; }
cd ` + shellQuote(root) + ` && exec sh -c "$1"
`
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cfgDir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(cfgDir, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfgDir, "keys", "app"), []byte("KEY"), 0o400); err != nil {
		t.Fatal(err)
	}
	writeConfig(t, cfgDir, Repo{Name: "app", Upstream: "git@upstream.test:up.git", KeyFile: "keys/app",
		Push: PushPolicy{Branches: []string{"agent/*"}}})
	g, err := newGate(context.Background(), testLogger(t), Options{ConfigDir: cfgDir, DataDir: t.TempDir(),
		SSHCommand: shellQuote(fake) + " -i {key} -o UserKnownHostsFile={known_hosts}", HookCommand: hookCommand(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	defer func() { srv.Close(); g.Close() }()

	dir := filepath.Join(t.TempDir(), "c")
	git(t, "", "clone", "--quiet", srv.URL+"/app.git", dir)
	want := commit(t, dir, "over ssh")
	git(t, dir, "push", "--quiet", "origin", "HEAD:refs/heads/agent/s")
	if got := git(t, "", "--git-dir", up, "rev-parse", "refs/heads/agent/s"); got != want {
		t.Errorf("upstream agent/s = %s, want %s", got, want)
	}
	if _, err := os.Stat(g.keyDir); err != nil {
		t.Fatal(err)
	}
	g.Close()
	if _, err := os.Stat(g.keyDir); !os.IsNotExist(err) {
		t.Errorf("key copy survives Close: %v", err)
	}
}

func TestRun(t *testing.T) {
	cfgDir := t.TempDir()
	writeConfig(t, cfgDir, Repo{Name: "app", Upstream: newUpstream(t)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- Run(ctx, testLogger(t), Options{ConfigDir: cfgDir, Listen: addr, HookCommand: hookCommand(t), AllowFileUpstreams: true})
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("gate not healthy: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	git(t, "", "clone", "--quiet", "http://"+addr+"/app.git", filepath.Join(t.TempDir(), "c"))
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
