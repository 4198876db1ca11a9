// Package connecttest is a fake egress proxy for the tests of CONNECT
// clients (package connect, cred-proxy's transport, sidecar connect). It
// listens on loopback only.
package connecttest

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// Proxy is a running fake proxy.
type Proxy struct {
	// Addr is its host:port on 127.0.0.1.
	Addr string
	mu   sync.Mutex
	reqs []*http.Request
}

// Start serves until the test ends. answer gets each request head and
// returns the raw response to write: one that starts "HTTP/1.1 200"
// opens the tunnel (bytes after the head are the upstream's first, as a
// proxy may send them in the same packet); anything else is written and
// the connection closed; "" never answers. A tunnel reaches the real
// target when dial is set (a loopback server the test made), else echoes.
func Start(t testing.TB, dial bool, answer func(*http.Request) string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &Proxy{Addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c, dial, answer)
		}
	}()
	return p
}

// Requests returns the request heads seen so far.
func (p *Proxy) Requests() []*http.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*http.Request(nil), p.reqs...)
}

func (p *Proxy) serve(c net.Conn, dial bool, answer func(*http.Request) string) {
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.reqs = append(p.reqs, req)
	p.mu.Unlock()
	resp := answer(req)
	switch {
	case resp == "":
		io.Copy(io.Discard, br)
		return
	case !strings.HasPrefix(resp, "HTTP/1.1 200"):
		io.WriteString(c, resp)
		return
	}
	if !dial {
		io.WriteString(c, resp)
		io.Copy(c, br) // echo: what the client sends comes back
		return
	}
	up, err := net.Dial("tcp", req.RequestURI)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	defer up.Close()
	io.WriteString(c, resp)
	go io.Copy(up, br)
	io.Copy(c, up)
}
