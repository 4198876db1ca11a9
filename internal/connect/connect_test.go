package connect

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/connect/connecttest"
)

// fakeProxy answers a CONNECT to target with answer, anything else with
// a 400; a tunnel echoes.
func fakeProxy(t *testing.T, target, answer string) string {
	return connecttest.Start(t, false, func(req *http.Request) string {
		if req.Method != http.MethodConnect || req.Host != target {
			return "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
		}
		return answer
	}).Addr
}

func TestDialTunnels(t *testing.T) {
	// The proxy's 200 and the upstream's first bytes arrive in one write:
	// those bytes must not be lost in the handshake's buffer.
	addr := fakeProxy(t, "upstream.test:443", "HTTP/1.1 200 Connection established\r\n\r\nbanner\n")
	conn, err := Dial(t.Context(), addr, "upstream.test:443")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second)) // bounds a hang
	br := bufio.NewReader(conn)
	if line, err := br.ReadString('\n'); err != nil || line != "banner\n" {
		t.Fatalf("first bytes %q %v", line, err)
	}
	io.WriteString(conn, "ping\n")
	if line, err := br.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("echo %q %v", line, err)
	}
}

func TestDialRefusals(t *testing.T) {
	refused := fakeProxy(t, "upstream.test:443", "HTTP/1.1 403 Forbidden\r\nContent-Length: 40\r\n\r\nhost not in the allowlist: upstream.test")
	_, err := Dial(t.Context(), refused, "upstream.test:443")
	if err == nil || !strings.Contains(err.Error(), "egress refused upstream.test:443: 403 Forbidden: host not in the allowlist") {
		t.Fatalf("refusal: %v", err)
	}

	silent := fakeProxy(t, "upstream.test:443", "")
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := Dial(ctx, silent, "upstream.test:443"); err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("a proxy that never answers: %v after %s", err, time.Since(start))
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	if _, err := Dial(t.Context(), closed, "upstream.test:443"); err == nil || !strings.Contains(err.Error(), "dial egress proxy "+closed) {
		t.Fatalf("no proxy: %v", err)
	}
}

func TestProxyFromEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"HTTPS_PROXY": "http://egress:3128", "HTTP_PROXY": "http://other:1"}, "egress:3128"},
		{map[string]string{"https_proxy": "http://egress:3128/"}, "egress:3128"},
		{map[string]string{"HTTP_PROXY": "http://egress:3128"}, "egress:3128"},
		{map[string]string{"HTTPS_PROXY": "egress:3128"}, "egress:3128"},
		{map[string]string{"HTTPS_PROXY": ""}, ""},
		{nil, ""},
	}
	for _, tc := range cases {
		if got := ProxyFromEnv(env(tc.env), "HTTPS_PROXY", "https_proxy", "HTTP_PROXY"); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.env, got, tc.want)
		}
	}
}
