package egress

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A token that is already lower case is caught in any other case too.
func TestCanaryLowercaseTokenOtherCase(t *testing.T) {
	c := newCanary([]string{"sk-canary-lower-0123456789"})
	for _, s := range []string{"q=SK-CANARY-LOWER-0123456789", "Sk-Canary-Lower-0123456789", "x sk-canary-lower-0123456789"} {
		if _, ok := c.find(s); !ok {
			t.Errorf("canary missed %q", s)
		}
	}
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

// A secret in a Host header is refused as a secret, not merely as a
// mismatch, so the agent is told never to send credentials.
func TestCanaryInHostHeader(t *testing.T) {
	h := newHarness(t, &Policy{Rules: []Rule{{Host: "allowed.test"}}}, []string{"sk-host-header-0123456789"}, map[string][][]string{"allowed.test": {{"93.184.216.34"}}})
	resp, body, _, _ := h.raw("GET http://allowed.test/ HTTP/1.1\r\nHost: sk-host-header-0123456789.allowed.test\r\n\r\n")
	if resp.StatusCode != 403 || !strings.Contains(body, "credential") {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if strings.Contains(body, "sk-host-header") || strings.Contains(h.log.String(), "sk-host-header") {
		t.Fatal("the secret was echoed")
	}
}

// A rule reserved for a sidecar serves that sidecar only: the agent gets
// a refusal that says where to go instead.
func TestDecideReservedRules(t *testing.T) {
	p := &Policy{Rules: []Rule{
		{Host: "api.anthropic.com", Port: 443, Client: "cred-proxy", Source: "route anthropic"},
		{Host: "github.com", Port: 22, Client: "git-gate", Source: "git app"},
		{Host: "github.com", Port: 443, Source: "manifest"},
	}}
	cases := []struct {
		req    Request
		allow  bool
		reason string
	}{
		{Request{Method: "CONNECT", Host: "api.anthropic.com", Port: 443, Client: "cred-proxy"}, true, ""},
		{Request{Method: "CONNECT", Host: "api.anthropic.com", Port: 443}, false, "reserved for the cred-proxy sidecar"},
		{Request{Method: "CONNECT", Host: "api.anthropic.com", Port: 443, Client: "git-gate"}, false, "reserved for the cred-proxy sidecar"},
		{Request{Method: "CONNECT", Host: "github.com", Port: 22, Client: "git-gate"}, true, ""},
		{Request{Method: "CONNECT", Host: "github.com", Port: 22}, false, "port not in the allowlist"},
		{Request{Method: "CONNECT", Host: "github.com", Port: 443}, true, ""},
	}
	for _, tc := range cases {
		v := Decide(p, tc.req)
		if v.Allow != tc.allow || !strings.Contains(v.Reason, tc.reason) {
			t.Errorf("%+v: %+v", tc.req, v)
		}
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

// A kept-alive client connection carries several requests, each checked
// on its own head: two allowed ones, then a Host mismatch, refused (and
// the connection closed after the refusal).
func TestKeepAliveRequestsCheckedEach(t *testing.T) {
	h := newHarness(t, testPolicy(), nil, testAnswers())
	newHTTPUpstream(t, h)
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	send := func(head string) (int, string) {
		t.Helper()
		if _, err := io.WriteString(c, head); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	if code, body := send("GET http://allowed.test/one HTTP/1.1\r\nHost: allowed.test\r\n\r\n"); code != 200 || body != "hello allowed.test /one" {
		t.Fatalf("first: %d %q", code, body)
	}
	if code, body := send("GET http://allowed.test/two HTTP/1.1\r\nHost: allowed.test\r\n\r\n"); code != 200 || body != "hello allowed.test /two" {
		t.Fatalf("second: %d %q", code, body)
	}
	if code, body := send("GET http://allowed.test/three HTTP/1.1\r\nHost: evil.test\r\n\r\n"); code != 403 || !strings.Contains(body, "host header mismatch") {
		t.Fatalf("third (mismatch): %d %q", code, body)
	}
}

// Pipelined requests cannot be checked one head at a time: the second is
// refused rather than forwarded unchecked.
func TestPipelinedSecondRequestRefused(t *testing.T) {
	h := newHarness(t, testPolicy(), nil, testAnswers())
	newHTTPUpstream(t, h)
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET http://allowed.test/a HTTP/1.1\r\nHost: allowed.test\r\n\r\nGET http://allowed.test/b HTTP/1.1\r\nHost: evil.test\r\n\r\n")
	br := bufio.NewReader(c)
	var codes []int
	for i := 0; i < 2; i++ {
		resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
		if err != nil {
			break
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
	if len(codes) == 2 && codes[1] == 200 {
		t.Fatalf("pipelined request with a mismatched Host was forwarded: %v", codes)
	}
}
