package supervise

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/claude-bottle/claude-bottle/internal/audit"
	"github.com/claude-bottle/claude-bottle/internal/serve"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

// Options configures the supervise sidecar. Zero values take the defaults
// in docs/sidecar-contract.md.
type Options struct {
	LogDir   string // audit log directory; "" discards audit events
	Instance string
	Listen   string // ":8080" when empty
	// RequestsDir and DecisionsDir default to /var/lib/supervise/requests
	// and /var/lib/supervise/decisions. DecisionsDir is only ever read.
	RequestsDir, DecisionsDir string
	// CurrentConfigDir, optional, holds allowlist.txt shown by list_requests.
	CurrentConfigDir string
	MaxPending       int // DefaultMaxPending when 0
	// Remote, when set, carries requests and decisions instead of the
	// shared directories (a bottle on a cluster).
	Remote Remote
}

// MaxWait bounds get_request's wait_seconds.
const MaxWait = 300

// Run serves the MCP endpoint at /mcp and GET /healthz until ctx is done.
func Run(ctx context.Context, log *slog.Logger, opts Options) error {
	if opts.Listen == "" {
		opts.Listen = ":8080"
	}
	if opts.RequestsDir == "" {
		opts.RequestsDir = stage.ContainerSuperviseRoot + "/requests"
	}
	if opts.DecisionsDir == "" {
		opts.DecisionsDir = stage.ContainerSuperviseRoot + "/decisions"
	}
	if err := os.MkdirAll(opts.RequestsDir, 0o755); err != nil {
		return fmt.Errorf("requests dir: %w", err)
	}
	var al *audit.Log
	if opts.LogDir != "" {
		l, f, err := audit.Open(opts.LogDir, opts.Instance, "supervise")
		if err != nil {
			return fmt.Errorf("open audit log: %w", err)
		}
		defer f.Close()
		al = l
	}
	log = slog.New(al.Handler(log.Handler()))
	q := &Queue{
		RequestsDir:      opts.RequestsDir,
		DecisionsDir:     opts.DecisionsDir,
		CurrentConfigDir: opts.CurrentConfigDir,
		MaxPending:       opts.MaxPending,
		Remote:           opts.Remote,
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           Handler(log, NewServer(log, al, q)),
		ReadHeaderTimeout: 10 * time.Second,
	}
	log.Info("supervise listening", "addr", ln.Addr().String(), "requests", opts.RequestsDir, "decisions", opts.DecisionsDir)
	return serve.HTTP(ctx, srv, ln, nil)
}

// Handler serves s at /mcp and answers GET /healthz with 200.
func Handler(log *slog.Logger, s *mcp.Server) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/mcp", mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s },
		&mcp.StreamableHTTPOptions{Logger: log, MaxRequestBodyBytes: 1 << 20}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// Tool inputs. Fields without omitempty are required in the generated
// schema; the jsonschema tag is the description the agent reads.
type egressIn struct {
	Host   string `json:"host" jsonschema:"DNS name to reach, e.g. api.example.com; *.example.com asks for every subdomain (not the apex). No IP addresses."`
	Port   int    `json:"port,omitempty" jsonschema:"TCP port, 1-65535; 443 when left out"`
	Reason string `json:"reason" jsonschema:"why you need it, 1-1000 characters, for the person who decides"`
}

type routeIn struct {
	Service  string `json:"service" jsonschema:"short name for the route, 1-41 of [a-z0-9-], e.g. github"`
	Upstream string `json:"upstream" jsonschema:"https base URL of the API, e.g. https://api.github.com; no credentials, query or fragment"`
	Reason   string `json:"reason" jsonschema:"why you need it, 1-1000 characters, for the person who decides"`
}

type dockerfileIn struct {
	Content string `json:"content" jsonschema:"the full new Dockerfile (not a diff), at most 64 KiB, with a FROM instruction"`
	Reason  string `json:"reason" jsonschema:"why you need it, 1-1000 characters, for the person who decides"`
}

type listIn struct{}

type getIn struct {
	ID          string `json:"id" jsonschema:"request id returned when it was filed, e.g. r-20261129-180000-1a2b3c4d"`
	WaitSeconds int    `json:"wait_seconds,omitempty" jsonschema:"0-300: block up to this many seconds until the request is decided; 0 returns at once"`
}

// Tool outputs.
type filedOut struct {
	ID      string `json:"id"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

// RequestView is a request as the agent sees it.
type RequestView struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	What    string `json:"what"`
	Reason  string `json:"reason"`
	Created string `json:"created"`
	// Status is pending, approved or denied.
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
	Decided string `json:"decided,omitempty"`
}

type listOut struct {
	Requests []RequestView `json:"requests"`
	// CurrentAllowlist is the bottle's egress allowlist when known.
	CurrentAllowlist []string `json:"current_allowlist,omitempty"`
}

func view(s Status) RequestView {
	v := RequestView{
		ID:      s.Request.ID,
		Kind:    s.Request.Kind,
		What:    s.Request.What(),
		Reason:  s.Request.Reason,
		Created: s.Request.Created.Format(time.RFC3339),
		Status:  s.State(),
	}
	if s.Decision != nil {
		v.Message = s.Decision.Message
		v.Decided = s.Decision.Decided.Format(time.RFC3339)
	}
	return v
}

// NewServer returns the MCP server with the five supervise tools, filing
// into q and auditing to a (nil discards).
func NewServer(log *slog.Logger, a *audit.Log, q *Queue) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "claude-bottle-supervise", Version: "1"}, &mcp.ServerOptions{
		Instructions: "Ask the person supervising this bottle for changes to it: an egress host, a credential route, or a new Dockerfile. " +
			"File a request, then call get_request with wait_seconds to wait for the decision.",
		Logger: log,
	})
	t := &tools{log: log, audit: a, q: q}
	mcp.AddTool(s, &mcp.Tool{
		Name: "request_egress",
		Description: "Ask the person supervising this bottle to allow an outbound host. Use it after the egress proxy refused a request " +
			"with 403 (\"not in the allowlist\"), for a host you really need. If approved, the host is allowed live, no restart. " +
			"Returns a request id; then call get_request with wait_seconds to wait for the decision.",
	}, t.requestEgress)
	mcp.AddTool(s, &mcp.Tool{
		Name: "request_route",
		Description: "Ask for a credential route: an authenticated path to an API through the cred-proxy (http://cred-proxy:8080/SERVICE/). " +
			"You never name, see or send a token: on approval the person picks the token source and the proxy injects it. " +
			"Use it when you need an API that requires authentication you do not have. Returns a request id for get_request.",
	}, t.requestRoute)
	mcp.AddTool(s, &mcp.Tool{
		Name: "propose_dockerfile",
		Description: "Propose a whole new Dockerfile for this bottle's agent image, e.g. to add a tool or package you need. " +
			"It never changes the running bottle: if approved, it applies at the next launch. The person sees a diff against " +
			"the current one (/etc/claude-bottle/current-config/Dockerfile). Returns a request id for get_request.",
	}, t.proposeDockerfile)
	mcp.AddTool(s, &mcp.Tool{
		Name: "list_requests",
		Description: "List this bottle's requests, oldest first, each with its status (pending, approved or denied) and the " +
			"person's message, plus the current egress allowlist when known. Use it to avoid asking twice.",
	}, t.listRequests)
	mcp.AddTool(s, &mcp.Tool{
		Name: "get_request",
		Description: "Get one request's status: pending, approved or denied, with the person's message. With wait_seconds (1-300) " +
			"it blocks until the request is decided or the time is up, whichever is first; call it again if still pending.",
	}, t.getRequest)
	return s
}

type tools struct {
	log   *slog.Logger
	audit *audit.Log
	q     *Queue
}

// file files req and audits the outcome; refusals are audited as deny
// and returned as tool errors that say what is allowed.
func (t *tools) file(tool string, req Request) (*mcp.CallToolResult, filedOut, error) {
	ev := audit.Event{Kind: "proposal", Detail: tool}
	if req.Egress != nil {
		ev.Host, ev.Port = req.Egress.Host, req.Egress.Port
	}
	if req.Route != nil {
		ev.Route, ev.Host = req.Route.Service, req.Route.Upstream
	}
	filed, err := t.q.File(req)
	if err != nil {
		return t.refuse(tool, ev, err)
	}
	ev.ID, ev.Verdict, ev.Detail = filed.ID, "pending", filed.Kind+" "+filed.What()
	_ = t.audit.Write(ev)
	t.log.Info("request filed", "id", filed.ID, "kind", filed.Kind, "what", filed.What())
	out := filedOut{
		ID:     filed.ID,
		Status: "pending",
		Message: fmt.Sprintf("filed %s (%s). A person decides; call get_request with id %q and wait_seconds up to %d to wait for the decision.",
			filed.ID, filed.What(), filed.ID, MaxWait),
	}
	return nil, out, nil
}

// refuse audits a refused filing as deny and returns the tool error that
// says what is allowed.
func (t *tools) refuse(tool string, ev audit.Event, err error) (*mcp.CallToolResult, filedOut, error) {
	ev.Kind, ev.Verdict, ev.Reason = "proposal", "deny", err.Error()
	if ev.Detail == "" {
		ev.Detail = tool
	}
	_ = t.audit.Write(ev)
	t.log.Info("request refused", "tool", tool, "err", err)
	return nil, filedOut{}, fmt.Errorf("%s refused: %w", tool, err)
}

func (t *tools) requestEgress(_ context.Context, _ *mcp.CallToolRequest, in egressIn) (*mcp.CallToolResult, filedOut, error) {
	if in.Port == 0 {
		in.Port = 443
	}
	host, err := aLabel(in.Host)
	if err != nil {
		return t.refuse("request_egress", audit.Event{Host: in.Host, Port: in.Port}, err)
	}
	return t.file("request_egress", Request{
		Kind: KindEgress, Reason: in.Reason,
		Egress: &EgressAsk{Host: host, Port: in.Port},
	})
}

func (t *tools) requestRoute(_ context.Context, _ *mcp.CallToolRequest, in routeIn) (*mcp.CallToolResult, filedOut, error) {
	upstream, err := aLabelURL(in.Upstream)
	if err != nil {
		return t.refuse("request_route", audit.Event{Route: in.Service, Host: in.Upstream}, err)
	}
	return t.file("request_route", Request{
		Kind: KindRoute, Reason: in.Reason,
		Route: &RouteAsk{Service: in.Service, Upstream: upstream},
	})
}

func (t *tools) proposeDockerfile(_ context.Context, _ *mcp.CallToolRequest, in dockerfileIn) (*mcp.CallToolResult, filedOut, error) {
	return t.file("propose_dockerfile", Request{
		Kind: KindDockerfile, Reason: in.Reason,
		Dockerfile: &DockerfileAsk{Content: in.Content},
	})
}

func (t *tools) listRequests(_ context.Context, _ *mcp.CallToolRequest, _ listIn) (*mcp.CallToolResult, listOut, error) {
	all, err := t.q.List()
	if err != nil {
		return nil, listOut{}, fmt.Errorf("list requests: %w", err)
	}
	out := listOut{Requests: make([]RequestView, 0, len(all)), CurrentAllowlist: t.allowlist()}
	for _, s := range all {
		out.Requests = append(out.Requests, view(s))
	}
	return nil, out, nil
}

func (t *tools) allowlist() []string {
	if t.q.CurrentConfigDir == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(t.q.CurrentConfigDir, "allowlist.txt"))
	if err != nil {
		return nil
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func (t *tools) getRequest(ctx context.Context, _ *mcp.CallToolRequest, in getIn) (*mcp.CallToolResult, RequestView, error) {
	if in.WaitSeconds < 0 || in.WaitSeconds > MaxWait {
		return nil, RequestView{}, fmt.Errorf("wait_seconds %d is out of range: give 0-%d", in.WaitSeconds, MaxWait)
	}
	st, err := t.q.Wait(ctx, in.ID, time.Duration(in.WaitSeconds)*time.Second)
	if err != nil {
		if errors.Is(err, ErrNoRequest) {
			return nil, RequestView{}, fmt.Errorf("no request %q in this bottle: list_requests shows the ids", in.ID)
		}
		return nil, RequestView{}, err
	}
	return nil, view(st), nil
}
