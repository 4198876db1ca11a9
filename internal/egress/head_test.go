package egress

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The canary reads the whole request head as it is forwarded: the
// request line (method included) and every header name, not only the URL
// and the header values.
func TestCanaryReadsWholeHead(t *testing.T) {
	tests := []struct{ name, head string }{
		{"method", secret + " http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n"},
		{"method hex", hex.EncodeToString([]byte(secret)) + " http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n"},
		{"method other case", strings.ToUpper(secret) + " http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n"},
		{"header name", "GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\nX-" + secret + ": 1\r\n\r\n"},
		// Forwarded canonicalized: X-S3cr3tt0kenvalue42. The name is
		// compared without case, as servers do.
		{"header name other case", "GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\nx-" + strings.ToLower(secret) + ": 1\r\n\r\n"},
		{"folded header value", "GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\nX-A: a\r\n " + secret + "\r\n\r\n"},
	}
	h := newHarness(t, testPolicy(), []string{secret}, testAnswers())
	u := newHTTPUpstream(t, h)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body, _, _ := h.raw(tt.head)
			if resp.StatusCode != 403 || !strings.Contains(body, "secret canary") {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
			if strings.Contains(strings.ToLower(body), strings.ToLower(secret)) {
				t.Fatalf("body echoes the request: %q", body)
			}
		})
	}
	if r := u.last(); r != nil {
		t.Fatalf("a request with the secret reached upstream: %s %v", r.Method, r.Header)
	}
	if strings.Contains(strings.ToLower(h.log.String()), strings.ToLower(secret)) {
		t.Fatal("the audit log holds the secret")
	}
}

// keptConn is one kept-alive client connection to the proxy.
type keptConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialKept(t *testing.T, h *harness) *keptConn {
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second)) // bounds a hang, asserts nothing
	return &keptConn{t: t, c: c, br: bufio.NewReader(c)}
}

// send writes each piece, pausing between them so that each arrives in
// its own read.
func (k *keptConn) send(pieces ...string) {
	k.t.Helper()
	for i, p := range pieces {
		if i > 0 {
			time.Sleep(30 * time.Millisecond)
		}
		if _, err := io.WriteString(k.c, p); err != nil {
			k.t.Fatal(err)
		}
	}
}

// response reads one final response, past any 1xx (egress relays an
// upstream's); ok is false when the proxy closed the connection instead.
func (k *keptConn) response() (code int, body string, ok bool) {
	k.t.Helper()
	resp, err := http.ReadResponse(k.br, &http.Request{Method: "GET"})
	for err == nil && resp.StatusCode < 200 {
		resp, err = http.ReadResponse(k.br, &http.Request{Method: "GET"})
	}
	if err != nil {
		return 0, "", false
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b), true
}

// A request whose body arrives after the proxy has answered must not make
// the next request's checks read that body as its head. Each case sends a
// first request, then (late, once the handler has answered) a body holding
// a harmless head, then a head that must be refused. The refused head must be refused (or the
// connection closed), never forwarded.
func TestHeadChecksCannotBeDesynchronised(t *testing.T) {
	decoy := "GET http://allowed.test/x HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
	evilHost := "GET http://allowed.test/x HTTP/1.1\r\nHost: evil.test\r\n\r\n"
	evilMethod := secret + " http://allowed.test/x HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
	cl := func(first string) string {
		return fmt.Sprintf("%sContent-Length: %d\r\n\r\n", first, len(decoy))
	}
	tests := []struct {
		name   string
		first  string // head answered before its body is read
		body   string // sent after the first answer
		second string
	}{
		{"late body on healthz, host", cl("GET /healthz HTTP/1.1\r\nHost: egress\r\n"), decoy, evilHost},
		{"late body on healthz, method", cl("GET /healthz HTTP/1.1\r\nHost: egress\r\n"), decoy, evilMethod},
		{"late body on origin form", cl("POST /x HTTP/1.1\r\nHost: egress\r\n"), decoy, evilHost},
		{"late chunked body with trailers", "GET /healthz HTTP/1.1\r\nHost: egress\r\nTransfer-Encoding: chunked\r\n\r\n",
			fmt.Sprintf("%x\r\n%s\r\n0\r\nX-T: 1\r\n\r\n", len(decoy), decoy), evilHost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, testPolicy(), []string{secret}, testAnswers())
			u := newHTTPUpstream(t, h)
			k := dialKept(t, h)
			// net/http reads a body the handler left unread before it
			// answers, so the body goes before the first answer is read.
			k.send(tt.first, tt.body)
			if code, body, ok := k.response(); ok && code >= 500 {
				t.Fatalf("first request: %d %q", code, body)
			}
			k.send(tt.second)
			code, body, ok := k.response()
			if ok && code == 200 {
				t.Fatalf("desynchronised request forwarded: %d %q", code, body)
			}
			if r := u.last(); r != nil {
				t.Fatalf("upstream got %s %s", r.Method, r.URL)
			}
		})
	}
}

// Honest kept-alive traffic still passes: a body sent with its head, a
// head split across many small writes, a chunked body with trailers, and
// Expect: 100-continue; each checked on its own head.
func TestKeptAliveHonestRequests(t *testing.T) {
	h := newHarness(t, testPolicy(), []string{secret}, testAnswers())
	newHTTPUpstream(t, h)
	k := dialKept(t, h)
	want := func(what string, code int, body string) {
		t.Helper()
		got, b, ok := k.response()
		if !ok || got != code || !strings.Contains(b, body) {
			t.Fatalf("%s: %d %q (open %v), want %d %q", what, got, b, ok, code, body)
		}
	}
	k.send("POST http://allowed.test/a HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 4\r\n\r\nbody")
	want("body with head", 200, "hello allowed.test /a")

	head := "GET http://allowed.test/b HTTP/1.1\r\nHost: allowed.test\r\nX-Many: small writes\r\n\r\n"
	var pieces []string
	for i := 0; i < len(head); i += 7 {
		pieces = append(pieces, head[i:min(i+7, len(head))])
	}
	k.send(pieces...)
	want("head in small writes", 200, "hello allowed.test /b")

	k.send("POST http://allowed.test/c HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n",
		"4\r\nbody\r\n", "0\r\nX-T: 1\r\n\r\n")
	want("chunked with trailers", 200, "hello allowed.test /c")

	k.send("POST http://allowed.test/d HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
	if line, err := k.br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("expect: %q %v", line, err)
	}
	k.br.ReadString('\n')
	k.send("body")
	want("expect 100-continue", 200, "hello allowed.test /d")

	k.send("GET http://allowed.test/e HTTP/1.1\r\nHost: evil.test\r\n\r\n")
	want("mismatch after all that", 403, "host header mismatch")
}

// Pipelined heads (sent before the previous answer) are never forwarded
// on a head that was not checked, whether the first request has a body
// or none.
func TestPipelinedHeadsRefused(t *testing.T) {
	for _, first := range []string{
		"POST http://allowed.test/a HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 0\r\n\r\n",
		"GET http://allowed.test/a HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
	} {
		for _, second := range []string{
			"GET http://allowed.test/b HTTP/1.1\r\nHost: evil.test\r\n\r\n",
			secret + " http://allowed.test/b HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
		} {
			h := newHarness(t, testPolicy(), []string{secret}, testAnswers())
			u := newHTTPUpstream(t, h)
			k := dialKept(t, h)
			k.send(first + second)
			k.response()
			if code, body, ok := k.response(); ok && code == 200 {
				t.Fatalf("pipelined %q after %q forwarded: %q", second, first, body)
			}
			for _, r := range u.reqs {
				if r.URL.Path == "/b" {
					t.Fatalf("upstream got %s %s", r.Method, r.URL)
				}
			}
		}
	}
}

// FuzzCapturedHead feeds a request stream to the capture in small reads
// and to net/http's request parser. Whenever the parser accepts a head,
// the capture must hold exactly the bytes the parser consumed for it, and
// verifyHead must accept it for that request and return its Host headers.
func FuzzCapturedHead(f *testing.F) {
	for _, s := range []string{
		"GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n",
		"POST http://a.test/x HTTP/1.1\nHost: a.test\nContent-Length: 3\n\nabcGET / HTTP/1.1\r\n\r\n",
		"GET http://a.test/ HTTP/1.1\r\nHost: a\r\nHost: b\r\nX: 1\r\n  folded\r\n\r\n",
		"s3cr3t http://a.test/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\nTrailer: X\r\nPragma: no-cache\r\n\r\n0\r\n\r\n",
	} {
		f.Add(s, uint8(3))
	}
	f.Fuzz(func(t *testing.T, stream string, step uint8) {
		if len(stream) > 4*maxHeaderBytes {
			return
		}
		src := strings.NewReader(stream)
		br := bufio.NewReader(src)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		consumed := len(stream) - src.Len() - br.Buffered()
		var head []byte
		complete := false
		n := int(step%16) + 1
		for i := 0; i < len(stream) && !complete; i += n {
			head, complete = captureHead(head, complete, []byte(stream[i:min(i+n, len(stream))]))
		}
		if !complete || string(head) != stream[:consumed] {
			t.Fatalf("captured %q, net/http read the head %q", head, stream[:consumed])
		}
		got, err := verifyHead(head, req)
		if err != nil {
			t.Fatalf("verifyHead refused the head net/http parsed: %v", err)
		}
		if got.raw != string(head) || !strings.HasPrefix(got.raw, got.line) {
			t.Fatalf("head %q line %q", got.raw, got.line)
		}
	})
}

// Once lost, a connection keeps no head again: every later request on it
// is refused rather than checked on bytes that may be a body.
func TestLostConnectionKeepsNoHead(t *testing.T) {
	c := &headConn{}
	c.keep([]byte("GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n"))
	if _, ok := c.captured(); !ok {
		t.Fatal("a whole head was not kept")
	}
	c.lose()
	c.next()
	c.keep([]byte("GET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n"))
	if h, ok := c.captured(); ok {
		t.Fatalf("a lost connection kept %q", h)
	}
}

// A keep-alive client that sends its next request the moment it has read
// a large answer (whose last bytes left before the handler returned) gets
// each request checked and forwarded, not refused as pipelined: the copy
// of the next head starts when the previous request's body ends, not when
// its handler returns.
func TestKeptAliveAfterLargeAnswer(t *testing.T) {
	h := newHarness(t, testPolicy(), nil, testAnswers())
	big := strings.Repeat("x", 256<<10)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(big)))
		io.WriteString(w, big)
	}))
	t.Cleanup(s.Close)
	h.dial.setRedirect("127.0.0.1:80", s.Listener.Addr().String())
	k := dialKept(t, h)
	for i := range 30 {
		k.send(fmt.Sprintf("GET http://allowed.test/%d HTTP/1.1\r\nHost: allowed.test\r\n\r\n", i))
		code, body, ok := k.response()
		if !ok || code != 200 || len(body) != len(big) {
			t.Fatalf("request %d: %d (open %v) %.200q", i, code, ok, body)
		}
	}
}

// A chunked request's trailers come after its body, too late for the
// canary to refuse the request: they are not forwarded.
func TestRequestTrailersNotForwarded(t *testing.T) {
	h := newHarness(t, testPolicy(), []string{secret}, testAnswers())
	u := newHTTPUpstream(t, h)
	k := dialKept(t, h)
	k.send("POST http://allowed.test/t HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n",
		"4\r\nbody\r\n0\r\nX-T: "+secret+"\r\n\r\n")
	if code, body, ok := k.response(); !ok || code != 200 {
		t.Fatalf("%d %q", code, body)
	}
	r := u.last()
	if r == nil || len(r.Trailer) != 0 {
		t.Fatalf("upstream got trailers %v", r)
	}
}

// A kept-alive client connection carries several requests, each checked
// on its own head: two allowed ones, then a Host mismatch, refused.
func TestKeepAliveRequestsCheckedEach(t *testing.T) {
	h := newHarness(t, testPolicy(), nil, testAnswers())
	newHTTPUpstream(t, h)
	k := dialKept(t, h)
	for _, step := range []struct {
		head, body string
		code       int
	}{
		{"GET http://allowed.test/one HTTP/1.1\r\nHost: allowed.test\r\n\r\n", "hello allowed.test /one", 200},
		{"GET http://allowed.test/two HTTP/1.1\r\nHost: allowed.test\r\n\r\n", "hello allowed.test /two", 200},
		{"GET http://allowed.test/three HTTP/1.1\r\nHost: evil.test\r\n\r\n", "host header mismatch", 403},
	} {
		k.send(step.head)
		if code, body, ok := k.response(); !ok || code != step.code || !strings.Contains(body, step.body) {
			t.Fatalf("%q: %d %q (open %v)", step.head, code, body, ok)
		}
	}
}
