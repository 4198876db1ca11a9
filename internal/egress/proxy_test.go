package egress

import (
	"bufio"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/claude-bottle/claude-bottle/internal/audit"
)

// testPolicy and testAnswers are shared by the proxy tests: what each
// test name is allowed and what it resolves to.
func testPolicy() *Policy {
	return &Policy{Rules: []Rule{
		{Host: "allowed.test", AllowPrivate: true, Source: "manifest"},
		{Host: "rebind.test", AllowPrivate: true},
		{Host: "private.test"},
		{Host: "mixed.test"},
		{Host: "loop.test"},
		{Host: "meta.test"},
		{Host: "mapped.test"},
		{Host: "zero.test", AllowPrivate: true},
		{Host: "unknown.test"},
	}}
}

func testAnswers() map[string][][]string {
	return map[string][][]string{
		"allowed.test": {{"127.0.0.1"}},
		"evil.test":    {{"127.0.0.1"}},
		"rebind.test":  {{"127.0.0.1"}, {"127.0.0.2"}},
		"private.test": {{"10.1.2.3"}},
		"mixed.test":   {{"8.8.8.8", "10.0.0.1"}},
		"loop.test":    {{"127.0.0.1"}},
		"meta.test":    {{"169.254.169.254"}},
		"mapped.test":  {{"::ffff:127.0.0.1"}},
		"zero.test":    {{"0.0.0.0"}},
	}
}

func helloHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s %s", r.Host, r.URL.RequestURI())
	})
}

func TestConnectTLSAllowed(t *testing.T) {
	for _, tt := range []struct {
		name    string
		host    string
		private []string
	}{
		{"allow_private rule", "allowed.test", nil},
		{"private_networks", "loop.test", []string{"127.0.0.0/8"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pol := testPolicy()
			pol.PrivateNetworks = tt.private
			h := newHarness(t, pol, nil, testAnswers())
			up := tlsUpstream(t, helloHandler())
			h.dial.setRedirect("127.0.0.1:443", up.Listener.Addr().String())

			c := h.client()
			resp, err := c.Get("https://" + tt.host + "/path?q=1")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := "hello " + tt.host + " /path?q=1"; string(body) != want {
				t.Fatalf("body %q, want %q", body, want)
			}
			c.CloseIdleConnections()
			ev := waitEvent(t, h.events, "connect allow", func(e audit.Event) bool {
				return e.Kind == "connect" && e.Verdict == "allow"
			})
			if ev.Host != tt.host || ev.Port != 443 || ev.Rule != tt.host+":443" && ev.Rule != tt.host+":443 (manifest)" ||
				ev.BytesIn == 0 || ev.BytesOut == 0 || ev.Client == "" || ev.Method != "CONNECT" || ev.Sidecar != "egress" {
				t.Fatalf("event %+v", ev)
			}
		})
	}
}

func TestConnectRefused(t *testing.T) {
	tests := []struct {
		target string
		status int
		reason string
	}{
		{"evil.test:443", 403, reasonNotAllowed},
		{"allowed.test:8443", 403, reasonWrongPort},
		{"allowed.test", 403, "missing port"},
		{"127.0.0.1:443", 403, reasonIPLiteral},
		{"2130706433:443", 403, reasonIPLiteral},
		{"0177.0.0.1:443", 403, reasonIPLiteral},
		{"0x7f.1:443", 403, reasonIPLiteral},
		{"127.1:443", 403, reasonIPLiteral},
		{"[::1]:443", 403, reasonIPLiteral},
		{"[::ffff:127.0.0.1]:443", 403, reasonIPLiteral},
		{"[fe80::1%25eth0]:443", 403, reasonIPLiteral},
		{"private.test:443", 403, "resolves to a private address (10.1.2.3)"},
		{"mixed.test:443", 403, "resolves to a private address (10.0.0.1)"},
		{"loop.test:443", 403, "resolves to a loopback address"},
		{"meta.test:443", 403, "resolves to a link-local (cloud metadata) address (169.254.169.254)"},
		{"mapped.test:443", 403, "resolves to a loopback address (127.0.0.1)"},
		{"zero.test:443", 403, "resolves to an unspecified address (0.0.0.0)"},
		{"unknown.test:443", 502, "resolve: "},
	}
	h := newHarness(t, testPolicy(), nil, testAnswers())
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			resp, body, _, _ := h.connect(tt.target)
			if resp.StatusCode != tt.status || !strings.Contains(body, tt.reason) {
				t.Fatalf("got %d %q, want %d with %q", resp.StatusCode, body, tt.status, tt.reason)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Fatalf("content type %q", ct)
			}
			verdict := "deny"
			if tt.status == 403 {
				if !strings.Contains(body, "claude-bottle egress: refused CONNECT ") || !strings.Contains(body, "request_egress") {
					t.Fatalf("body %q does not explain itself", body)
				}
			} else {
				verdict = "error"
			}
			waitEvent(t, h.events, tt.target, func(e audit.Event) bool {
				return e.Kind == "connect" && e.Verdict == verdict && strings.Contains(e.Reason, tt.reason)
			})
		})
	}
	if d := h.dial.addrs(); len(d) != 0 {
		t.Fatalf("refused requests dialled %v", d)
	}
}

func TestConnectBody(t *testing.T) {
	h := newHarness(t, testPolicy(), nil, testAnswers())
	_, body, _, _ := h.connect("evil.test:443")
	want := "claude-bottle egress: refused CONNECT evil.test:443: not in the allowlist.\n" +
		"If you need it, ask with the supervise tool request_egress (host, port, reason); do not retry.\n"
	if body != want {
		t.Fatalf("body %q", body)
	}
}

func TestConnectFirstBytes(t *testing.T) {
	_, pool := upstreamCert(t)
	tests := []struct {
		name   string
		sni    string
		plain  bool
		reason string
	}{
		{"sni mismatch", "evil.test", false, "sni mismatch"},
		{"no sni", "", false, "sni mismatch"},
		{"plain bytes to 443", "", true, "not tls on port 443"},
		{"matching sni", "ALLOWED.test", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, testPolicy(), nil, testAnswers())
			var hits sync.WaitGroup
			up := tlsUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				io.WriteString(w, "reached")
			}))
			h.dial.setRedirect("127.0.0.1:443", up.Listener.Addr().String())
			resp, _, conn, br := h.connect("allowed.test:443")
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if tt.plain {
				io.WriteString(conn, "GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
				if n, err := br.Read(make([]byte, 1)); err == nil {
					t.Fatalf("read %d bytes over a refused tunnel", n)
				}
			} else {
				tc := tls.Client(&bufConn{Conn: conn, r: br}, &tls.Config{ServerName: tt.sni, RootCAs: pool, InsecureSkipVerify: tt.sni == ""})
				err := tc.Handshake()
				if tt.reason == "" {
					if err != nil {
						t.Fatalf("handshake: %v", err)
					}
					req, _ := http.NewRequest("GET", "https://allowed.test/", nil)
					req.Write(tc)
					resp, err := http.ReadResponse(bufio.NewReader(tc), req)
					if err != nil {
						t.Fatal(err)
					}
					b, _ := io.ReadAll(resp.Body)
					if string(b) != "reached" {
						t.Fatalf("body %q", b)
					}
					tc.Close()
					waitEvent(t, h.events, "allow", func(e audit.Event) bool { return e.Kind == "connect" && e.Verdict == "allow" })
					return
				}
				if err == nil {
					t.Fatal("handshake succeeded through a refused tunnel")
				}
			}
			waitEvent(t, h.events, tt.reason, func(e audit.Event) bool {
				return e.Kind == "connect" && e.Verdict == "deny" && e.Reason == tt.reason
			})
		})
	}
}

// bufConn reads through the bufio.Reader that already holds the bytes
// after the CONNECT response.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(b []byte) (int, error) { return c.r.Read(b) }

func TestConnectPlainBytesOtherPort(t *testing.T) {
	echo := echoUpstream(t)
	port := portOf(t, echo)
	pol := &Policy{Rules: []Rule{{Host: "allowed.test", Port: atoi(t, port), AllowPrivate: true}}}
	h := newHarness(t, pol, nil, testAnswers())
	resp, _, conn, br := h.connect("allowed.test:" + port)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	io.WriteString(conn, "hello\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "hello\n" {
		t.Fatalf("echo %q %v", line, err)
	}
	conn.Close()
	ev := waitEvent(t, h.events, "allow", func(e audit.Event) bool { return e.Kind == "connect" && e.Verdict == "allow" })
	if ev.BytesIn != 6 || ev.BytesOut != 6 {
		t.Fatalf("bytes %+v", ev)
	}
}

func TestPinning(t *testing.T) {
	for _, mode := range []string{"connect", "http"} {
		t.Run(mode, func(t *testing.T) {
			h := newHarness(t, testPolicy(), nil, testAnswers())
			var up *httptest.Server
			want := "127.0.0.1:443"
			if mode == "connect" {
				up = tlsUpstream(t, helloHandler())
			} else {
				up = httptest.NewServer(helloHandler())
				t.Cleanup(up.Close)
				want = "127.0.0.1:80"
			}
			// 127.0.0.2 is loopback too but nothing listens there: a second
			// lookup would fail the request.
			h.dial.setRedirect(want, up.Listener.Addr().String())
			scheme := map[string]string{"connect": "https", "http": "http"}[mode]
			resp, err := h.client().Get(scheme + "://rebind.test/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if n := h.res.count("rebind.test"); n != 1 {
				t.Fatalf("resolver called %d times", n)
			}
			if d := h.dial.addrs(); !slices.Equal(d, []string{want}) {
				t.Fatalf("dialled %v, want [%s]", d, want)
			}
		})
	}
}

// httpUpstream records what reached it.
type httpUpstream struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (u *httpUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.reqs = append(u.reqs, r)
	u.mu.Unlock()
	// Read the body before answering, as most servers do: a body left
	// unread makes the proxy close the agent's connection after the answer.
	io.Copy(io.Discard, r.Body)
	fmt.Fprintf(w, "hello %s %s", r.Host, r.URL.RequestURI())
}

func (u *httpUpstream) last() *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		return nil
	}
	return u.reqs[len(u.reqs)-1]
}

func newHTTPUpstream(t *testing.T, h *harness) *httpUpstream {
	u := &httpUpstream{}
	s := httptest.NewServer(u)
	t.Cleanup(s.Close)
	h.dial.setRedirect("127.0.0.1:80", s.Listener.Addr().String())
	return u
}

func TestHTTPForward(t *testing.T) {
	tests := []struct {
		name string
		head string
	}{
		{"headers", "GET http://allowed.test/p?q=1 HTTP/1.1\r\nHost: allowed.test\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nProxy-Foo: x\r\nProxy-Connection: keep-alive\r\nX-Keep: yes\r\n\r\n"},
		{"host with default port", "GET http://allowed.test/p?q=1 HTTP/1.1\r\nHost: Allowed.Test:80\r\nX-Keep: yes\r\n\r\n"},
		{"http/1.0 without host", "GET http://allowed.test/p?q=1 HTTP/1.0\r\nX-Keep: yes\r\n\r\n"},
		{"bare LF", "GET http://allowed.test/p?q=1 HTTP/1.1\nHost: allowed.test\nX-Keep: yes\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, testPolicy(), nil, testAnswers())
			u := newHTTPUpstream(t, h)
			resp, body, _, _ := h.raw(tt.head)
			if resp.StatusCode != 200 || body != "hello allowed.test /p?q=1" {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
			r := u.last()
			for k := range r.Header {
				if strings.HasPrefix(k, "Proxy-") {
					t.Errorf("upstream got %s", k)
				}
			}
			if r.Header.Get("X-Keep") != "yes" || r.Header.Get("X-Forwarded-For") != "" {
				t.Errorf("upstream headers %v", r.Header)
			}
			ev := waitEvent(t, h.events, "http allow", func(e audit.Event) bool { return e.Kind == "http" && e.Verdict == "allow" })
			if ev.Host != "allowed.test" || ev.Port != 80 || ev.Status != 200 || ev.Path != "/p" || ev.BytesIn != int64(len(body)) || ev.Method != "GET" {
				t.Fatalf("event %+v", ev)
			}
		})
	}
}

func TestHTTPRefused(t *testing.T) {
	tests := []struct {
		name   string
		head   string
		reason string
	}{
		{"not allowed", "GET http://evil.test/ HTTP/1.1\r\nHost: evil.test\r\n\r\n", reasonNotAllowed},
		{"userinfo", "GET http://allowed.test@evil.test/ HTTP/1.1\r\nHost: evil.test\r\n\r\n", "userinfo in url"},
		{"userinfo with password", "GET http://allowed.test:80@evil.test/ HTTP/1.1\r\nHost: evil.test\r\n\r\n", "userinfo in url"},
		{"host header mismatch", "GET http://allowed.test/ HTTP/1.1\r\nHost: evil.test\r\n\r\n", "host header mismatch"},
		{"host header other port", "GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test:8080\r\n\r\n", "host header mismatch"},
		{"host mismatch bare LF", "GET http://allowed.test/ HTTP/1.1\nHost: evil.test\n\n", "host header mismatch"},
		{"https url", "GET https://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n", "only http:// URLs"},
		{"ip literal", "GET http://127.0.0.1/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", reasonIPLiteral},
		{"integer ip", "GET http://2130706433/ HTTP/1.1\r\nHost: 2130706433\r\n\r\n", reasonIPLiteral},
		{"bracketed ipv6", "GET http://[::1]/ HTTP/1.1\r\nHost: [::1]\r\n\r\n", reasonIPLiteral},
		{"wrong port", "GET http://allowed.test:8080/ HTTP/1.1\r\nHost: allowed.test:8080\r\n\r\n", reasonWrongPort},
		{"private answer", "GET http://private.test/ HTTP/1.1\r\nHost: private.test\r\n\r\n", "resolves to a private address"},
		{"websocket to refused host", "GET http://evil.test/ws HTTP/1.1\r\nHost: evil.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", reasonNotAllowed},
	}
	h := newHarness(t, testPolicy(), nil, testAnswers())
	u := newHTTPUpstream(t, h)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body, _, _ := h.raw(tt.head)
			if resp.StatusCode != 403 || !strings.Contains(body, tt.reason) || !strings.Contains(body, "request_egress") {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
			waitEvent(t, h.events, tt.name, func(e audit.Event) bool {
				return e.Kind == "http" && e.Verdict == "deny" && strings.Contains(e.Reason, tt.reason)
			})
		})
	}
	// net/http answers 400 to a repeated Host header before the proxy sees it.
	if resp, _, _, _ := h.raw("GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\nHost: evil.test\r\n\r\n"); resp.StatusCode != 400 {
		t.Fatalf("two Host headers: %d", resp.StatusCode)
	}
	if r := u.last(); r != nil {
		t.Fatalf("a refused request reached upstream: %v", r.URL)
	}
}

func TestOriginForm(t *testing.T) {
	h := newHarness(t, testPolicy(), nil, testAnswers())
	resp, body, _, _ := h.raw("GET /healthz HTTP/1.1\r\nHost: egress\r\n\r\n")
	if resp.StatusCode != 200 || body != "ok\n" {
		t.Fatalf("healthz: %d %q", resp.StatusCode, body)
	}
	resp, body, _, _ = h.raw("GET /other HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
	if resp.StatusCode != 400 || !strings.Contains(body, "is a proxy") {
		t.Fatalf("origin form: %d %q", resp.StatusCode, body)
	}
}

func TestWebsocketUpgrade(t *testing.T) {
	h := newHarness(t, testPolicy(), nil, testAnswers())
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want upgrade", 400)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		io.Copy(c, brw)
	}))
	t.Cleanup(up.Close)
	h.dial.setRedirect("127.0.0.1:80", up.Listener.Addr().String())
	resp, _, conn, br := h.raw("GET http://allowed.test/ws HTTP/1.1\r\nHost: allowed.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	io.WriteString(conn, "ping\n")
	if line, err := br.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("echo %q %v", line, err)
	}
}

func TestCanary(t *testing.T) {
	type tcase struct {
		name string
		head string
	}
	var tests []tcase
	for _, e := range encodings {
		v := e.enc(secret)
		tests = append(tests,
			tcase{"url " + e.name, "GET http://allowed.test/x?q=" + v + " HTTP/1.1\r\nHost: allowed.test\r\n\r\n"},
			tcase{"path " + e.name, "GET http://allowed.test/" + v + " HTTP/1.1\r\nHost: allowed.test\r\n\r\n"},
			tcase{"header " + e.name, "GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\nX-Data: " + v + "\r\n\r\n"},
		)
	}
	for _, host := range []string{
		strings.ToLower(secret) + ".evil.test",
		"s3cr3tT0k.enValue42.evil.test",
		hex.EncodeToString([]byte(secret)) + ".evil.test",
	} {
		tests = append(tests,
			tcase{"connect " + host, "CONNECT " + host + ":443 HTTP/1.1\r\nHost: " + host + ":443\r\n\r\n"},
			tcase{"http host " + host, "GET http://" + host + "/ HTTP/1.1\r\nHost: " + host + "\r\n\r\n"},
		)
	}
	tests = append(tests, tcase{"basic auth", "GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\nAuthorization: Basic " +
		encodings[5].enc(secret) + "\r\n\r\n"})

	h := newHarness(t, testPolicy(), []string{secret, "short"}, testAnswers())
	u := newHTTPUpstream(t, h)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body, _, _ := h.raw(tt.head)
			if resp.StatusCode != 403 || !strings.Contains(body, "secret canary") {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
			if strings.Contains(strings.ToLower(body), strings.ToLower(secret)) || strings.Contains(body, "evil") {
				t.Fatalf("body echoes the request: %q", body)
			}
		})
	}
	evs := waitEvent(t, h.events, "canary", func(e audit.Event) bool { return e.Reason == "secret canary" })
	if evs.Verdict != "deny" || evs.Host != "" {
		t.Fatalf("event %+v", evs)
	}
	n := 0
	for _, e := range h.events() {
		if e.Reason == "secret canary" {
			n++
		}
	}
	if n != len(tests) {
		t.Fatalf("%d canary events for %d refusals", n, len(tests))
	}
	logText := strings.ToLower(h.log.String())
	for _, e := range encodings {
		if strings.Contains(logText, strings.ToLower(e.enc(secret))) {
			t.Fatalf("audit log holds the secret (%s)", e.name)
		}
	}
	if r := u.last(); r != nil {
		t.Fatalf("a request with the secret reached upstream: %v", r.URL)
	}
	// Values under 8 bytes are not canaries.
	resp, body, _, _ := h.raw("GET http://allowed.test/?q=short HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("short value refused: %d %q", resp.StatusCode, body)
	}
}

func atoi(t *testing.T, s string) int {
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// localhost is loopback by definition: refused as such (403), not left to
// a resolver that may fail (502) or answer anything.
func TestLocalhostRefusedAsLoopback(t *testing.T) {
	h := newHarness(t, &Policy{Rules: []Rule{{Host: "localhost"}, {Host: "api.localhost"}}}, nil, nil)
	for _, target := range []string{"localhost:443", "api.localhost:443"} {
		resp, body, _, _ := h.connect(target)
		if resp.StatusCode != 403 || !strings.Contains(body, "loopback") {
			t.Errorf("CONNECT %s: %d %q", target, resp.StatusCode, body)
		}
	}
	if n := h.res.count("localhost") + h.res.count("api.localhost"); n != 0 {
		t.Errorf("resolver asked %d times for localhost", n)
	}
}

// The proxy tells sidecars from the agent by address, as the bottle's DNS
// names them; a failed lookup leaves the reserved rules closed.
func TestProxyReservedForSidecarAddress(t *testing.T) {
	pol := &Policy{Rules: []Rule{{Host: "upstream.test", Port: 443, Client: "cred-proxy"}}}
	h := newHarness(t, pol, nil, map[string][][]string{"upstream.test": {{"93.184.216.34"}}, "cred-proxy": {{"10.9.9.9"}}})
	// The test client connects from 127.0.0.1, which is not cred-proxy.
	resp, body, _, _ := h.connect("upstream.test:443")
	if resp.StatusCode != 403 || !strings.Contains(body, "reserved for the cred-proxy sidecar") {
		t.Fatalf("agent use of a reserved rule: %d %q", resp.StatusCode, body)
	}
	h2 := newHarness(t, pol, nil, map[string][][]string{"upstream.test": {{"127.0.0.1"}}, "cred-proxy": {{"127.0.0.1"}}})
	if role := h2.p.clientRole(t.Context(), h2.p.cfg.Load(), "127.0.0.1:5555"); role != "cred-proxy" {
		t.Fatalf("role %q", role)
	}
	if role := h2.p.clientRole(t.Context(), h2.p.cfg.Load(), "127.0.0.2:5555"); role != "" {
		t.Fatalf("role for another address %q", role)
	}
}
