package egress

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/audit"
	"github.com/claude-bottle/claude-bottle/internal/bufpool"
)

// Resolver looks up a host's addresses; *net.Resolver is one.
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

const (
	dialTimeout    = 10 * time.Second
	resolveTimeout = 10 * time.Second
	// helloTimeout bounds the wait for a ClientHello in a tunnel to port
	// 443, where nothing is relayed before it.
	helloTimeout = 30 * time.Second
	// maxHeaderBytes bounds a request head, and so the copy headConn keeps.
	maxHeaderBytes = 64 << 10
)

const askHint = "If you need it, ask with the supervise tool request_egress (host, port, reason); do not retry.\n"

// config is one loaded policy and secrets file, swapped whole on reload so
// a request sees one consistent version.
type config struct {
	policy  *Policy
	private []netip.Prefix
	canary  *canary
}

// newConfig compiles a validated policy and the secrets (nil: none).
func newConfig(p *Policy, s *Secrets) *config {
	c := &config{policy: p}
	for _, n := range p.PrivateNetworks {
		c.private = append(c.private, netip.MustParsePrefix(n).Masked())
	}
	if s != nil {
		c.canary = newCanary(s.Values)
	}
	return c
}

// proxy is the allowlist proxy: CONNECT tunnels and absolute-form plain
// HTTP, each decided by Decide just before the dial.
type proxy struct {
	clients      answerCache // the reserved sidecars' addresses
	answers      answerCache // allowed names' addresses
	log          *slog.Logger
	audit        *audit.Log
	resolver     Resolver
	dial         func(ctx context.Context, network, addr string) (net.Conn, error)
	cfg          atomic.Pointer[config]
	transport    *http.Transport
	forward      *httputil.ReverseProxy
	helloTimeout time.Duration
}

func newProxy(log *slog.Logger, alog *audit.Log, resolver Resolver, dial func(context.Context, string, string) (net.Conn, error), cfg *config) *proxy {
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	if dial == nil {
		dial = (&net.Dialer{Timeout: dialTimeout}).DialContext
	}
	p := &proxy{log: log, audit: alog, resolver: resolver, dial: dial, helloTimeout: helloTimeout}
	p.clients.keepFailures = true
	p.cfg.Store(cfg)
	p.transport = &http.Transport{
		// Never an environment proxy: this is the way out.
		Proxy: nil,
		// The address was checked before the request reached the
		// transport; dialling it, not the name, is what stops a second
		// lookup from answering differently (DNS rebinding).
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			pin, ok := ctx.Value(pinKey{}).(pinned)
			if !ok {
				return nil, errors.New("no checked address for this request")
			}
			return p.dialPinned(ctx, pin.addrs, pin.port)
		},
		// Connections to upstreams are kept and reused per host:port: each
		// was dialled to an address checked for that host. A policy change
		// closes the idle ones (see reload).
		MaxIdleConns:           256,
		MaxIdleConnsPerHost:    64,
		IdleConnTimeout:        30 * time.Second,
		TLSNextProto:           map[string]func(string, *tls.Conn) http.RoundTripper{},
		MaxResponseHeaderBytes: 1 << 20,
	}
	p.forward = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			for k := range pr.Out.Header {
				if strings.HasPrefix(http.CanonicalHeaderKey(k), "Proxy-") {
					delete(pr.Out.Header, k)
				}
			}
			// A request's trailers arrive after its body, too late for
			// the canary to refuse it: they are not forwarded.
			pr.Out.Trailer = nil
		},
		Transport: p.transport,
		// 0: ReverseProxy still flushes event streams and bodies of unknown
		// length as they come; a plain response goes out in few writes.
		FlushInterval: 0,
		BufferPool:    bufpool.New(),
		ErrorLog:      slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			st := r.Context().Value(forwardKey{}).(*forwardState)
			st.err = err
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprintf(w, "claude-bottle egress: cannot reach %s: %v\n", st.shown, err)
		},
	}
	return p
}

// forwardState carries one plain-HTTP request's description into the
// shared ReverseProxy's error handler, and its upstream error back out.
type forwardState struct {
	shown string
	err   error
}

type forwardKey struct{}

type pinKey struct{}

type pinned struct {
	addrs []netip.Addr
	port  int
}

// server returns the http.Server for the proxy. Each request's raw head is
// kept by headConn, for the Host header check (net/http deletes the header
// after reading it) and the canary; kept-alive connections are captured
// request by request (see headConn for how the copy stays in step).
func (p *proxy) server(ctx context.Context) *http.Server {
	srv := &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 30 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, headKey{}, c)
		},
		ErrorLog: slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	srv.IdleTimeout = time.Minute
	return srv
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if hc, ok := r.Context().Value(headKey{}).(*headConn); ok && r.Method != http.MethodConnect {
		// This request's head is taken now. The copy of the next one
		// starts the moment this body has been read to its end (at once
		// without a body): every byte read after that is the next
		// request's, whenever this handler returns. A body not read to
		// its end closes the connection after the answer, and nothing
		// more is copied from it.
		raw, ok := hc.captured()
		r = r.WithContext(context.WithValue(r.Context(), rawHeadKey{}, keptRaw{raw, ok}))
		body := &readBody{ReadCloser: r.Body, onEOF: hc.next}
		if r.Body == nil || r.Body == http.NoBody {
			body.done.Store(true)
			hc.next()
		} else {
			r.Body = body
		}
		w = &closeIfUnread{ResponseWriter: w, body: body}
		defer func() {
			if !body.done.Load() {
				hc.lose()
			}
		}()
	}
	switch {
	case r.Method == http.MethodConnect:
		p.serveConnect(w, r)
	case r.URL.Scheme != "" || r.URL.Host != "":
		p.serveForward(w, r)
	case r.Method == http.MethodGet && r.URL.Path == "/healthz":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	default:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, "claude-bottle egress is a proxy: send CONNECT host:port or an absolute http:// URL through it (HTTPS_PROXY / HTTP_PROXY); it serves only GET /healthz itself.\n")
	}
}

// failure is why a request did not reach its upstream: a refusal (403,
// verdict deny) or a failure to reach an allowed one (502, verdict error).
type failure struct {
	status int
	reason string
}

func (p *proxy) serveConnect(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	cfg := p.cfg.Load()
	ev := audit.Event{Kind: "connect", Client: r.RemoteAddr, Method: http.MethodConnect}
	target := r.RequestURI
	if enc, ok := cfg.canary.findHost(target); ok {
		p.refuseCanary(w, ev, start, "the CONNECT target", enc)
		return
	}
	req, err := ParseTarget(http.MethodConnect, target)
	if err != nil {
		ev.Host = clip(target)
		p.refuse(w, ev, start, failure{http.StatusForbidden, err.Error()}, "CONNECT "+strconv.Quote(clip(target)))
		return
	}
	host := normalizeHost(req.Host)
	ev.Host, ev.Port = host, req.Port
	shown := "CONNECT " + net.JoinHostPort(host, strconv.Itoa(req.Port))
	addrs, ok := p.admit(w, r, cfg, req, host, &ev, start, shown)
	if !ok {
		return
	}
	up, err := p.dialPinned(r.Context(), addrs, req.Port)
	if err != nil {
		p.refuse(w, ev, start, failure{http.StatusBadGateway, "dial: " + err.Error()}, shown)
		return
	}
	client, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		up.Close()
		p.refuse(w, ev, start, failure{http.StatusInternalServerError, "hijack: " + err.Error()}, shown)
		return
	}
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection Established\r\n\r\n"); err != nil {
		client.Close()
		up.Close()
		ev.Verdict, ev.Reason = "error", "write 200: "+err.Error()
		p.record(ev, start)
		return
	}
	t := p.tunnel(r.Context(), cfg, client, brw.Reader, up, host, req.Port)
	ev.BytesIn, ev.BytesOut = t.in, t.out
	ev.Verdict = "allow"
	if t.reason != "" {
		ev.Verdict, ev.Reason, ev.Detail = "deny", t.reason, t.detail
	}
	p.record(ev, start)
}

type tunnelResult struct {
	in, out        int64
	reason, detail string
}

// tunnel relays between the hijacked client and upstream until either side
// ends or ctx is done. The client's first bytes are checked before any of
// them go upstream: a TLS ClientHello must name the CONNECT host (else a
// shared front could route it anywhere: domain fronting), and port 443
// carries only TLS. Other ports relay upstream's bytes at once, because
// server-first protocols (SSH, SMTP) would otherwise wait forever.
func (p *proxy) tunnel(ctx context.Context, cfg *config, client net.Conn, br *bufio.Reader, up net.Conn, host string, port int) tunnelResult {
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			client.Close()
			up.Close()
		})
	}
	defer context.AfterFunc(ctx, closeBoth)()
	defer closeBoth()

	// Bytes are relayed between the raw TCP connections, so the kernel can
	// splice them; the head-keeping wrapper has no more work on a tunnel.
	rawClient := client
	if hc, ok := client.(*headConn); ok {
		rawClient = hc.Conn
	}
	var in atomic.Int64
	down := make(chan struct{})
	started := false
	startDown := func() {
		started = true
		go func() {
			defer close(down)
			n, _ := io.Copy(rawClient, up)
			in.Store(n)
			closeBoth()
		}()
	}
	finish := func(res tunnelResult) tunnelResult {
		closeBoth()
		if started {
			<-down
		}
		res.in = in.Load()
		return res
	}

	tlsPort := port == 443
	if tlsPort {
		client.SetReadDeadline(time.Now().Add(p.helloTimeout))
	} else {
		startDown()
	}
	var consumed []byte
	first, err := br.Peek(1)
	switch {
	case err != nil && tlsPort:
		return finish(tunnelResult{reason: "no tls client hello", detail: err.Error()})
	case err != nil:
		// The client sent nothing; whatever the server says is relayed.
	case first[0] == 0x16: // TLS handshake record
		client.SetReadDeadline(time.Now().Add(p.helloTimeout))
		sni, b, err := readClientHello(br)
		consumed = b
		if err != nil {
			return finish(tunnelResult{reason: "malformed tls client hello", detail: err.Error()})
		}
		if _, ok := cfg.canary.findHost(sni); ok {
			return finish(tunnelResult{reason: "secret canary", detail: "in the tls server name"})
		}
		if normalizeHost(sni) != host {
			return finish(tunnelResult{reason: "sni mismatch", detail: "client hello names " + strconv.Quote(clip(sni))})
		}
	case tlsPort:
		return finish(tunnelResult{reason: "not tls on port 443"})
	}
	client.SetReadDeadline(time.Time{})
	if !started {
		startDown()
	}
	n, err := up.Write(consumed)
	out := int64(n)
	if err == nil && br.Buffered() > 0 {
		// What the client sent beyond the hello, already in the reader.
		b, _ := br.Peek(br.Buffered())
		m, werr := up.Write(b)
		out += int64(m)
		br.Discard(m)
		err = werr
	}
	if err == nil {
		m, err := io.Copy(up, rawClient)
		out += m
		// The client is done sending; let upstream answer before closing.
		if cw, ok := up.(interface{ CloseWrite() error }); ok && err == nil {
			cw.CloseWrite()
			<-down
		}
	}
	return finish(tunnelResult{out: out})
}

func (p *proxy) serveForward(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	cfg := p.cfg.Load()
	ev := audit.Event{Kind: "http", Client: r.RemoteAddr, Method: r.Method}
	if !knownMethod(r.Method) {
		// Until the canary has read it, or when it refuses, an unusual
		// method may be a credential: neither logged nor repeated.
		ev.Method = ""
	}
	head, reason := keptHead(r)
	if reason != "" {
		p.refuse(w, ev, start, failure{http.StatusForbidden, reason}, "this request")
		return
	}
	if where, enc, ok := canaryInRequest(cfg.canary, r, head); ok {
		p.refuseCanary(w, ev, start, where, enc)
		return
	}
	ev.Method = r.Method
	req, err := ParseTarget(r.Method, r.RequestURI)
	if err != nil {
		ev.Host = clip(r.URL.Host)
		p.refuse(w, ev, start, failure{http.StatusForbidden, err.Error()}, r.Method+" "+strconv.Quote(clip(r.RequestURI)))
		return
	}
	host := normalizeHost(req.Host)
	ev.Host, ev.Port, ev.Path = host, req.Port, clip(r.URL.Path)
	shown := r.Method + " " + net.JoinHostPort(host, strconv.Itoa(req.Port))
	if reason := checkHostHeader(r, head, host, req.Port); reason != "" {
		p.refuse(w, ev, start, failure{http.StatusForbidden, reason}, shown)
		return
	}
	addrs, ok := p.admit(w, r, cfg, req, host, &ev, start, shown)
	if !ok {
		return
	}

	body := &countingBody{ReadCloser: r.Body}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = body
	}
	cw := &countingWriter{ResponseWriter: w}
	st := &forwardState{shown: shown}
	ctx := context.WithValue(r.Context(), pinKey{}, pinned{addrs: addrs, port: req.Port})
	ctx = context.WithValue(ctx, forwardKey{}, st)
	p.forward.ServeHTTP(cw, r.WithContext(ctx))

	ev.Verdict, ev.Status = "allow", cw.status
	ev.BytesIn, ev.BytesOut = cw.n, body.n.Load()
	if st.err != nil {
		ev.Verdict, ev.Reason = "error", "upstream: "+st.err.Error()
	}
	p.record(ev, start)
}

// knownMethod reports whether m is one of the methods of RFC 9110 or
// WebDAV, which cannot hold a credential.
func knownMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace,
		"PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "REPORT", "SEARCH":
		return true
	}
	return false
}

// keptHead returns the request's head as read from the connection, or why
// it cannot be had.
func keptHead(r *http.Request) (requestHead, string) {
	const pipelined = "cannot read the request head (send one request at a time, each after the previous answer, on a connection that has not been closed by the proxy)"
	kept, ok := r.Context().Value(rawHeadKey{}).(keptRaw)
	if !ok {
		return requestHead{}, "cannot read the request head"
	}
	if !kept.ok {
		return requestHead{}, pipelined
	}
	head, err := verifyHead(kept.raw, r)
	if err != nil {
		return requestHead{}, pipelined
	}
	return head, ""
}

// canaryInRequest looks for a secret in everything a plain-HTTP request
// sends upstream except the body: the whole head as read from the
// connection (request line, every header name and value), and the parsed
// forms that may differ from the raw bytes (the URL host and Host headers,
// compared as host names; header names, compared without case as servers
// do and as they are forwarded, canonicalized).
func canaryInRequest(c *canary, r *http.Request, head requestHead) (where, enc string, found bool) {
	method, rest, _ := strings.Cut(head.line, " ")
	target, _, _ := strings.Cut(rest, " ")
	if enc, ok := c.find(method); ok {
		return "the method", enc, true
	}
	if enc, ok := c.find(target); ok {
		return "the URL", enc, true
	}
	if enc, ok := c.find(head.line); ok {
		return "the request line", enc, true
	}
	if enc, ok := c.findHost(r.URL.Host); ok {
		return "the URL host", enc, true
	}
	for _, v := range head.hosts {
		if enc, ok := c.findHost(v); ok {
			return "the Host header", enc, true
		}
	}
	for k, vs := range r.Header {
		if enc, ok := c.findName(k); ok {
			return "a header name", enc, true
		}
		for _, v := range vs {
			if enc, ok := c.find(v); ok {
				return "the " + k + " header", enc, true
			}
		}
	}
	if enc, ok := c.find(head.raw); ok {
		return "the request head", enc, true
	}
	return "", "", false
}

// checkHostHeader refuses a Host header that names another host than the
// URL: net/http would ignore it, but a confused upstream or front might
// route by it. HTTP/1.0 may omit it.
func checkHostHeader(r *http.Request, head requestHead, host string, port int) string {
	values := head.hosts
	if len(values) == 0 && !r.ProtoAtLeast(1, 1) {
		return ""
	}
	if len(values) != 1 {
		return "host header mismatch"
	}
	h, p, err := ParseHostPort(values[0], 80)
	if err != nil || normalizeHost(h) != host || p != port {
		return "host header mismatch"
	}
	return ""
}

// admit judges a parsed request, CONNECT or plain: the policy, for the
// client the request comes from, then the addresses host (the request's,
// normalized) resolves to.
// On a refusal it has answered and logged (ev carries the request's
// fields); otherwise ev has the rule that allowed it and addrs are the
// checked addresses to dial, pinned.
func (p *proxy) admit(w http.ResponseWriter, r *http.Request, cfg *config, req Request, host string, ev *audit.Event, start time.Time, shown string) (addrs []netip.Addr, ok bool) {
	req.Client = p.clientRole(r.Context(), cfg, r.RemoteAddr)
	v := Decide(cfg.policy, req)
	if !v.Allow {
		p.refuse(w, *ev, start, failure{http.StatusForbidden, v.Reason}, shown)
		return nil, false
	}
	ev.Rule = v.Rule
	addrs, f := p.check(r.Context(), cfg, host, v.AllowPrivate)
	if f != nil {
		p.refuse(w, *ev, start, *f, shown)
		return nil, false
	}
	return addrs, true
}

// check resolves host and checks every answer, so a name with one public
// and one private address cannot be used to reach the private one. It
// returns the addresses to dial.
func (p *proxy) check(ctx context.Context, cfg *config, host string, allowPrivate bool) ([]netip.Addr, *failure) {
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	// localhost and its subdomains are loopback by definition (RFC 6761);
	// the resolver is not asked (and a fully qualified "localhost." would
	// skip /etc/hosts and fail instead of being refused for what it is).
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		if what := checkAddr(netip.MustParseAddr("127.0.0.1"), allowPrivate, cfg.private); what != "" {
			return nil, &failure{http.StatusForbidden, "resolves to a " + what + " address"}
		}
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	// Fully qualified, so no search domain is tried first.
	answers, err := p.answers.lookup(ctx, p.resolver, host+".")
	if err != nil {
		return nil, &failure{http.StatusBadGateway, "resolve: " + err.Error()}
	}
	if len(answers) == 0 {
		return nil, &failure{http.StatusBadGateway, "resolve: no addresses"}
	}
	addrs := make([]netip.Addr, 0, len(answers))
	for _, a := range answers {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			return nil, &failure{http.StatusForbidden, "resolves to an invalid address"}
		}
		ip = ip.Unmap()
		if what := checkAddr(ip, allowPrivate, cfg.private); what != "" {
			article := "a"
			if strings.ContainsRune("aeiou", rune(what[0])) {
				article = "an"
			}
			return nil, &failure{http.StatusForbidden, fmt.Sprintf("resolves to %s %s address (%s)", article, what, ip)}
		}
		addrs = append(addrs, ip)
	}
	return addrs, nil
}

// dialPinned dials the checked addresses in order, never the name.
func (p *proxy) dialPinned(ctx context.Context, addrs []netip.Addr, port int) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	err := errors.New("no address to dial")
	for _, a := range addrs {
		var c net.Conn
		c, err = p.dial(ctx, "tcp", netip.AddrPortFrom(a, uint16(port)).String())
		if err == nil {
			return c, nil
		}
	}
	return nil, err
}

// refuse answers a refusal (or a failure to reach an allowed upstream) and
// records it.
func (p *proxy) refuse(w http.ResponseWriter, ev audit.Event, start time.Time, f failure, shown string) {
	ev.Verdict, ev.Reason, ev.Status = "deny", f.reason, f.status
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Connection", "close")
	w.WriteHeader(f.status)
	if f.status == http.StatusForbidden {
		fmt.Fprintf(w, "claude-bottle egress: refused %s: %s.\n%s", shown, f.reason, askHint)
	} else {
		ev.Verdict = "error"
		fmt.Fprintf(w, "claude-bottle egress: cannot reach %s: %s.\n", shown, f.reason)
	}
	p.record(ev, start)
}

// refuseCanary refuses a request that carries a secret. Neither the answer
// nor the log repeats the host, URL or header, which hold the secret.
func (p *proxy) refuseCanary(w http.ResponseWriter, ev audit.Event, start time.Time, where, enc string) {
	ev.Verdict, ev.Reason, ev.Status = "deny", "secret canary", http.StatusForbidden
	ev.Detail = fmt.Sprintf("a credential value (%s) appeared in %s", enc, where)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusForbidden)
	what := ev.Method
	if what == "" {
		what = "this request"
	}
	fmt.Fprintf(w, "claude-bottle egress: refused %s: a credential value appeared in %s (secret canary).\nCredentials are added by the cred-proxy; never send them yourself. Do not retry.\n", what, where)
	p.record(ev, start)
}

func (p *proxy) record(ev audit.Event, start time.Time) {
	ev.DurationMS = float64(time.Since(start).Microseconds()) / 1000
	if err := p.audit.Write(ev); err != nil {
		p.log.Error("write audit event", "err", err)
	}
	// The decision log has every line; the process log (the container's
	// output) repeats refusals and errors only, which is what a person
	// reading `docker logs` looks for, and spares a write per request.
	level := slog.LevelDebug
	if ev.Verdict != "allow" {
		level = slog.LevelWarn
	}
	p.log.Log(context.Background(), level, ev.Kind, "client", ev.Client, "method", ev.Method,
		"host", ev.Host, "port", ev.Port, "verdict", ev.Verdict, "rule", ev.Rule, "reason", ev.Reason)
}

// clip bounds what a client wrote before it goes into a log line or answer.
func clip(s string) string {
	const max = 200
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

type countingBody struct {
	io.ReadCloser
	n atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// countingWriter records the status and body size of a response. Unwrap
// lets ReverseProxy reach Flush and Hijack (websocket upgrades) through it.
type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *countingWriter) WriteHeader(code int) {
	if w.status == 0 || w.status < 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
