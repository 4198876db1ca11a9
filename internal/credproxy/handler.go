package credproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/audit"
	"github.com/claude-bottle/claude-bottle/internal/bufpool"
)

// Handler is the cred-proxy's HTTP handler. Its routes can be swapped
// while it serves (SetRoutes); a request uses the table it started with.
type Handler struct {
	log   *slog.Logger
	audit *audit.Log
	table atomic.Pointer[table]
	proxy *httputil.ReverseProxy
}

// table is one immutable generation of routes.
type table struct {
	routes []route // longest path first
	scrub  *scrubber
}

type route struct {
	LoadedRoute
	upstream *url.URL
	value    string // the header value to inject
	strip    []string
}

// stripAlways are credential and client-identity headers removed from every
// agent request, whatever the route says.
var stripAlways = []string{"Authorization", "Proxy-Authorization", "X-Api-Key", "Cookie", "Forwarded", "X-Real-Ip"}

// reqState carries the routing decision from ServeHTTP into the proxy hooks.
type reqState struct {
	route *route
	rest  string // raw path after the route prefix
	scrub *scrubber
	err   error // set by the error handler
}

type stateKey struct{}

// smallBody is the largest response body scrubbed whole rather than streamed.
const smallBody = 1 << 20

// NewHandler builds a Handler over routes. A nil transport means a clone of
// http.DefaultTransport that reaches upstreams through CONNECT tunnels to
// $HTTPS_PROXY (upstreamTransport). The
// transport's RoundTrip never follows redirects, so a 3xx goes back to the
// agent as is and the token goes only to its route's upstream. A nil audit
// log discards.
func NewHandler(log *slog.Logger, alog *audit.Log, routes []LoadedRoute, transport http.RoundTripper) (*Handler, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if transport == nil {
		transport = upstreamTransport(os.Getenv)
	}
	h := &Handler{log: log, audit: alog}
	h.proxy = &httputil.ReverseProxy{
		Rewrite:   h.rewrite,
		Transport: transport,
		// 0: ReverseProxy still flushes event streams and bodies of
		// unknown length at once (every scrubbed stream is one), and
		// whole small bodies go out in one write.
		FlushInterval:  0,
		BufferPool:     bufpool.New(),
		ModifyResponse: h.modifyResponse,
		ErrorHandler:   h.proxyError,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if err := h.SetRoutes(routes); err != nil {
		return nil, err
	}
	return h, nil
}

// SetRoutes atomically replaces the routes. On error the old ones stay.
func (h *Handler) SetRoutes(routes []LoadedRoute) error {
	if err := (Config{Routes: routeList(routes)}).Validate(); err != nil {
		return err
	}
	t := &table{}
	var tokens []string
	for _, lr := range routes {
		if lr.Token == "" || hasCtl(lr.Token) {
			return fmt.Errorf("route %q: token is empty or has control characters", lr.Name)
		}
		u, err := parseUpstream(lr.Upstream)
		if err != nil {
			return fmt.Errorf("route %q: %w", lr.Name, err)
		}
		strip := slices.Clone(stripAlways)
		for _, s := range lr.StripHeaders {
			strip = append(strip, http.CanonicalHeaderKey(s))
		}
		t.routes = append(t.routes, route{
			LoadedRoute: lr,
			upstream:    u,
			value:       strings.ReplaceAll(lr.Format, "{token}", lr.Token),
			strip:       strip,
		})
		tokens = append(tokens, lr.Token)
	}
	slices.SortFunc(t.routes, func(a, b route) int { return len(b.Path) - len(a.Path) })
	t.scrub = newScrubber(tokens)
	h.table.Store(t)
	return nil
}

func routeList(lrs []LoadedRoute) []Route {
	out := make([]Route, len(lrs))
	for i, lr := range lrs {
		out[i] = lr.Route
	}
	return out
}

// match finds the longest route prefix of the raw path. "/name" alone
// matches route "/name/" with an empty rest.
func (t *table) match(raw string) (*route, string, bool) {
	for i := range t.routes {
		r := &t.routes[i]
		if rest, ok := strings.CutPrefix(raw, r.Path); ok {
			return r, rest, true
		}
		if raw == strings.TrimSuffix(r.Path, "/") {
			return r, "", true
		}
	}
	return nil, "", false
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	raw, _, _ := strings.Cut(r.RequestURI, "?")
	ev := audit.Event{Kind: "request", Client: r.RemoteAddr, Method: r.Method, Path: raw}
	if r.URL.IsAbs() || !strings.HasPrefix(r.RequestURI, "/") {
		// Logging an absolute target would log its query; keep host+path.
		ev.Path = r.URL.Host + r.URL.EscapedPath()
	}
	deny := func(status int, reason, explain string) {
		ev.Status, ev.Verdict, ev.Reason = status, "deny", reason
		ev.DurationMS = ms(time.Since(start))
		h.write(ev)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(status)
		fmt.Fprintf(w, "cred-proxy refused this request: %s.\n%s\n", reason, explain)
	}
	switch r.Method {
	case http.MethodConnect:
		deny(http.StatusMethodNotAllowed, "CONNECT is not supported",
			"cred-proxy is a reverse proxy: send plain requests to http://cred-proxy:8080/ROUTE/path; other hosts go through the egress proxy.")
		return
	case http.MethodTrace, "TRACK":
		deny(http.StatusMethodNotAllowed, r.Method+" is not allowed", "It would echo the injected credential back.")
		return
	}
	if r.URL.IsAbs() || !strings.HasPrefix(r.RequestURI, "/") {
		deny(http.StatusBadRequest, "absolute-form or non-path request target",
			"Send origin-form requests (GET /ROUTE/path) to cred-proxy; do not use it as a forward proxy.")
		return
	}
	if err := checkPath(raw); err != nil {
		deny(http.StatusBadRequest, err.Error(), "Paths must stay inside their route prefix; send a normalized path.")
		return
	}
	t := h.table.Load()
	rt, rest, ok := t.match(raw)
	if !ok {
		var prefixes []string
		for _, r := range t.routes {
			prefixes = append(prefixes, r.Path)
		}
		slices.Sort(prefixes)
		status := http.StatusNotFound
		reason := "no route for this path"
		ev.Status, ev.Verdict, ev.Reason, ev.DurationMS = status, "deny", reason, ms(time.Since(start))
		h.write(ev)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		fmt.Fprintf(w, "cred-proxy refused this request: %s.\nRoutes available: %s\n"+
			"To reach another API with a credential, ask for a route with the supervise MCP tool request_route.\n",
			reason, strings.Join(prefixes, " "))
		return
	}
	ev.Route, ev.Host = rt.Name, rt.upstream.Host
	st := &reqState{route: rt, rest: rest, scrub: t.scrub}
	rec := &recorder{ResponseWriter: w, scrub: t.scrub}
	defer func() {
		// ReverseProxy panics with http.ErrAbortHandler when a stream
		// breaks mid-body; log that request too, then let it unwind.
		p := recover()
		ev.Status, ev.BytesOut, ev.DurationMS = rec.status, rec.bytes, ms(time.Since(start))
		ev.Verdict = "allow"
		switch {
		case p != nil:
			ev.Verdict, ev.Reason = "error", "response stream aborted"
		case st.err != nil:
			ev.Verdict, ev.Reason = "error", t.scrub.String(st.err.Error())
		}
		h.write(ev)
		if p != nil {
			panic(p)
		}
	}()
	h.proxy.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), stateKey{}, st)))
	// What is left in the header map now goes out as trailers, declared
	// or announced late (http.TrailerPrefix), when this handler returns.
	scrubHeader(rec.Header(), t.scrub)
}

func (h *Handler) write(ev audit.Event) {
	if err := h.audit.Write(ev); err != nil {
		h.log.Warn("write audit event", "err", err)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// rewrite runs after ReverseProxy has removed hop-by-hop headers (including
// any the agent named in Connection), so nothing can remove what it injects.
func (h *Handler) rewrite(pr *httputil.ProxyRequest) {
	st := pr.In.Context().Value(stateKey{}).(*reqState)
	rt, out := st.route, pr.Out
	base := rt.upstream
	rawPath := strings.TrimSuffix(base.EscapedPath(), "/") + "/" + st.rest
	p, err := url.PathUnescape(rawPath)
	if err != nil {
		// checkPath accepted the same bytes; keep the raw form if not.
		p = rawPath
	}
	out.URL = &url.URL{Scheme: base.Scheme, Host: base.Host, Path: p, RawPath: rawPath, RawQuery: pr.In.URL.RawQuery}
	out.Host = base.Host
	for k := range out.Header {
		if strings.HasPrefix(k, "X-Forwarded-") {
			out.Header.Del(k)
		}
	}
	for _, k := range rt.strip {
		out.Header.Del(k)
	}
	// A 101 stream could not be scrubbed, so never ask for one.
	out.Header.Del("Upgrade")
	out.Header.Del("Connection")
	// A range of an echoed token is not the token: two requests for two
	// halves would each pass the scrubber. Without Range the upstream
	// sends the whole body, which every client must accept.
	out.Header.Del("Range")
	out.Header.Del("If-Range")
	// Compressed bodies cannot be scrubbed. Saying identity (rather than
	// only dropping the header) also stops Go's transport from asking for
	// gzip behind our back.
	out.Header.Set("Accept-Encoding", "identity")
	out.Header.Set(rt.Header, rt.value)
}

var errUnscrubbable = errors.New("upstream response cannot be scrubbed")

func (h *Handler) modifyResponse(resp *http.Response) error {
	st := resp.Request.Context().Value(stateKey{}).(*reqState)
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return fmt.Errorf("%w: protocol upgrade", errUnscrubbable)
	}
	// Every listed coding counts, in every Content-Encoding line: a client
	// decodes them all, and one gzip behind an "identity" would hide a
	// token from the scrubber.
	for _, line := range resp.Header.Values("Content-Encoding") {
		for ce := range strings.SplitSeq(line, ",") {
			if ce = strings.TrimSpace(ce); ce != "" && !strings.EqualFold(ce, "identity") {
				return fmt.Errorf("%w: Content-Encoding %s", errUnscrubbable, ce)
			}
		}
	}
	if resp.Request.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified {
		return nil
	}
	// A small body of known length is scrubbed whole and keeps an exact
	// Content-Length: one write to the agent, no per-chunk flushing.
	// Streams (SSE, unknown length, large bodies) are scrubbed as they pass.
	if resp.ContentLength >= 0 && resp.ContentLength <= smallBody && len(resp.Trailer) == 0 &&
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, err := io.ReadAll(io.LimitReader(resp.Body, smallBody+1))
		resp.Body.Close()
		if err != nil {
			return err
		}
		b = []byte(st.scrub.String(string(b)))
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
		return nil
	}
	// Redaction changes the length, so the agent gets a chunked body.
	resp.ContentLength = -1
	resp.Header.Del("Content-Length")
	resp.Body = newScrubReader(resp.Body, st.scrub)
	return nil
}

func scrubHeader(hd http.Header, s *scrubber) {
	for k, vs := range hd {
		if s.String(k) != k {
			delete(hd, k)
			continue
		}
		for i, v := range vs {
			vs[i] = s.String(v)
		}
	}
}

func (h *Handler) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	st := r.Context().Value(stateKey{}).(*reqState)
	st.err = err
	msg := st.scrub.String(err.Error())
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// The agent went away; nobody reads this answer.
		h.log.Debug("client canceled request", "route", st.route.Name)
	} else {
		h.log.Warn("upstream request failed", "route", st.route.Name, "err", msg)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusBadGateway)
	fmt.Fprintf(w, "cred-proxy: upstream for route %s failed: %s\n", st.route.Name, msg)
}

// recorder is the one way from the proxy to the agent: every response
// head goes through its WriteHeader, which scrubs the whole header map
// whatever filled it (upstream headers, the error page), and drops
// informational (1xx) responses. ReverseProxy relays an upstream's 1xx
// from inside RoundTrip, before ModifyResponse, so an upstream echoing the
// request in a 103 Early Hints would otherwise hand the agent its token.
// None carries anything the agent needs: the agent-facing server answers
// Expect: 100-continue itself when the body is first read, 102 is
// obsolete and 103 is a hint for browsers. Bodies are scrubbed in
// ModifyResponse (scrubReader), trailers by ServeHTTP after the proxy
// returns. It also notes what the agent was sent, for the audit line.
type recorder struct {
	http.ResponseWriter
	scrub  *scrubber
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if code < 200 {
		// ReverseProxy clears the header map after relaying a 1xx.
		return
	}
	if r.status != 0 {
		return
	}
	r.status = code
	scrubHeader(r.Header(), r.scrub)
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Flush lets ReverseProxy push each streamed chunk through at once.
func (r *recorder) Flush() {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(r.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection underneath
// (deadlines; never Hijack, which would bypass the scrubbing: a 101 is
// refused in ModifyResponse).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
