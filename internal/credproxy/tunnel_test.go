package credproxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/claude-bottle/claude-bottle/internal/connect/connecttest"
)

// startConnectProxy is a CONNECT-only proxy to the real (loopback)
// target; it refuses anything that is not CONNECT.
func startConnectProxy(t *testing.T) *connecttest.Proxy {
	return connecttest.Start(t, true, func(req *http.Request) string {
		if req.Method != http.MethodConnect {
			return "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
		}
		return "HTTP/1.1 200 Connection established\r\n\r\n"
	})
}

// A plain-http upstream is reached through a CONNECT tunnel: the proxy
// sees the host and port only, never the injected credential.
func TestUpstreamThroughConnectTunnel(t *testing.T) {
	var got string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get("X-Api-Key")
		io.WriteString(w, "upstream ok")
	}))
	defer up.Close()
	px := startConnectProxy(t)
	env := map[string]string{"HTTPS_PROXY": "http://" + px.Addr}
	tr := upstreamTransport(func(k string) string { return env[k] })
	routes := []LoadedRoute{{Route: Route{Name: "r", Path: "/r/", Upstream: up.URL, Header: "x-api-key", Format: "{token}", TokenFile: "tokens/r"}, Token: "sk-tunnel-token-123456"}}
	h, err := NewHandler(nil, nil, routes, tr)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/r/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "upstream ok" || got != "sk-tunnel-token-123456" {
		t.Fatalf("status %d body %q upstream saw %q", resp.StatusCode, body, got)
	}
	// What the proxy saw: the request line and every header.
	var lines []string
	for _, r := range px.Requests() {
		var hdr strings.Builder
		r.Header.Write(&hdr)
		lines = append(lines, r.Method+" "+r.RequestURI+" "+hdr.String())
	}
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "CONNECT "+strings.TrimPrefix(up.URL, "http://")+" ") || strings.Contains(lines[0], "sk-") {
		t.Fatalf("proxy saw %q", lines)
	}
}

// A refused CONNECT becomes a 502 for the agent, with egress's reason.
func TestUpstreamTunnelRefused(t *testing.T) {
	px := connecttest.Start(t, false, func(*http.Request) string {
		return "HTTP/1.1 403 Forbidden\r\nContent-Length: 21\r\n\r\nnot in the allowlist\n"
	})
	env := map[string]string{"HTTP_PROXY": "http://" + px.Addr}
	tr := upstreamTransport(func(k string) string { return env[k] })
	routes := []LoadedRoute{{Route: Route{Name: "r", Path: "/r/", Upstream: "http://refused.test", Header: "x-api-key", Format: "{token}", TokenFile: "tokens/r"}, Token: "sk-tunnel-token-123456"}}
	h, err := NewHandler(nil, nil, routes, tr)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/r/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
}
