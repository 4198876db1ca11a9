// Package connect owns the client side of an HTTP CONNECT tunnel: how the
// sidecars behind the egress proxy reach anything outside the bottle
// (cred-proxy's upstream transport, git-gate's ssh ProxyCommand). Egress
// decides on the CONNECT host and port; nothing here decides anything.
package connect

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

// HandshakeTimeout bounds the proxy's answer to a CONNECT when ctx has no
// earlier deadline: a proxy that accepts and never answers must not hang
// a fetch forever. The tunnel itself has no deadline.
const HandshakeTimeout = 30 * time.Second

// Dial opens a tunnel to target (host:port) through the proxy at proxy
// (host:port). Bytes the proxy sent right after its 200 are kept for the
// first reads. A refusal is an error carrying the proxy's status and the
// start of its body, which says why.
func Dial(ctx context.Context, proxy, target string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", proxy)
	if err != nil {
		return nil, fmt.Errorf("dial egress proxy %s: %w", proxy, err)
	}
	deadline := time.Now().Add(HandshakeTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	conn.SetDeadline(deadline)
	if _, err := fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target); err != nil {
		conn.Close()
		return nil, fmt.Errorf("egress proxy: %w", err)
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

// ProxyFromEnv returns the address of the proxy named by the first of
// names that is set: the host:port of a URL (http://egress:3128), or the
// value as it stands when it is not one (egress:3128; a wrong value then
// fails at Dial, naming it). "" when none is set.
func ProxyFromEnv(getenv func(string) string, names ...string) string {
	for _, k := range names {
		v := getenv(k)
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err == nil && u.Host != "" {
			return u.Host
		}
		return v
	}
	return ""
}

// bufferedConn keeps bytes the proxy sent right after its 200.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite half-closes the tunnel when the connection under it can, as
// a *net.TCPConn can: the far end then sees the end of what was sent.
func (c *bufferedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
