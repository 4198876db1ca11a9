package credproxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// upstreamTransport reaches every upstream, http and https alike, through
// a CONNECT tunnel to the egress proxy named by $HTTPS_PROXY (or
// $HTTP_PROXY). A tunnel and never absolute-form for plain http: the
// injected credential must not travel in headers the egress proxy reads,
// where its secret canary would (rightly, for any other sender) refuse it.
// Egress still decides on the CONNECT host and port. No proxy variable
// means direct connections.
func upstreamTransport(getenv func(string) string) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	// Every agent request goes to one of a few upstreams: keep enough idle
	// connections (and tunnels) per host that concurrent requests reuse
	// them instead of dialing (through egress) each time. The default of 2
	// made 64 concurrent clients open a connection for most requests.
	t.MaxIdleConns = 512
	t.MaxIdleConnsPerHost = 256
	var proxy string
	for _, k := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"} {
		if v := getenv(k); v != "" {
			proxy = v
			break
		}
	}
	if proxy == "" {
		return t
	}
	addr := proxy
	if u, err := url.Parse(proxy); err == nil && u.Host != "" {
		addr = u.Host
	}
	t.DialContext = func(ctx context.Context, network, target string) (net.Conn, error) {
		return dialConnect(ctx, addr, target)
	}
	return t
}

// dialConnect opens a CONNECT tunnel to target through the proxy at addr.
func dialConnect(ctx context.Context, addr, target string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial egress proxy %s: %w", addr, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	conn.SetDeadline(deadline)
	if _, err := fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target); err != nil {
		conn.Close()
		return nil, err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("egress proxy: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		conn.Close()
		return nil, fmt.Errorf("egress refused %s: %s: %s", target, resp.Status, strings.TrimSpace(string(body)))
	}
	conn.SetDeadline(time.Time{})
	if br.Buffered() > 0 {
		return &bufferedConn{Conn: conn, r: br}, nil
	}
	return conn, nil
}

// bufferedConn keeps bytes the proxy sent right after its 200.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
