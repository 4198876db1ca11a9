package credproxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// connectProxy is a minimal CONNECT-only proxy that records every request
// line it sees and refuses anything that is not CONNECT.
type connectProxy struct {
	mu    sync.Mutex
	lines []string
	ln    net.Listener
}

func startConnectProxy(t *testing.T) *connectProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &connectProxy{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *connectProxy) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.lines = append(p.lines, req.Method+" "+req.RequestURI+" "+strings.Join(req.Header.Values("X-Api-Key"), ","))
	p.mu.Unlock()
	if req.Method != http.MethodConnect {
		io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
		return
	}
	up, err := net.Dial("tcp", req.RequestURI)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	defer up.Close()
	io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	go io.Copy(up, br)
	io.Copy(c, up)
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
	env := map[string]string{"HTTPS_PROXY": "http://" + px.ln.Addr().String()}
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
	px.mu.Lock()
	defer px.mu.Unlock()
	if len(px.lines) != 1 || !strings.HasPrefix(px.lines[0], "CONNECT "+strings.TrimPrefix(up.URL, "http://")+" ") || strings.Contains(px.lines[0], "sk-") {
		t.Fatalf("proxy saw %q", px.lines)
	}
}

// A refused CONNECT becomes a 502 for the agent, with egress's reason.
func TestUpstreamTunnelRefused(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			http.ReadRequest(bufio.NewReader(c))
			io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 21\r\n\r\nnot in the allowlist\n")
			c.Close()
		}
	}()
	env := map[string]string{"HTTP_PROXY": "http://" + ln.Addr().String()}
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
