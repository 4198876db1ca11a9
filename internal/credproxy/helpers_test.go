package credproxy

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/logtest"

	"github.com/claude-bottle/claude-bottle/internal/audit"
)

func testLogger(t *testing.T) *slog.Logger { return logtest.New(t) }

// syncBuf is an audit sink tests can read while the proxy writes.
type syncBuf = logtest.Buffer

func parseEvents(t *testing.T, data string) []audit.Event { return logtest.ParseEvents(t, data) }

// waitFor polls cond until it holds; the deadline only bounds a failure.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitEvent(t *testing.T, read func() string, pred func(audit.Event) bool) audit.Event {
	t.Helper()
	var got audit.Event
	waitFor(t, "audit event", func() bool {
		for _, e := range parseEvents(t, read()) {
			if pred(e) {
				got = e
				return true
			}
		}
		return false
	})
	return got
}

// seen is what an upstream received.
type seen struct {
	Header http.Header
	URI    string
	Host   string
}

type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

// newUpstream records every request, then hands it to h (nil: 200 "ok").
func newUpstream(t *testing.T, h http.HandlerFunc) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.reqs = append(u.reqs, seen{Header: r.Header.Clone(), URI: r.RequestURI, Host: r.Host})
		u.mu.Unlock()
		if h == nil {
			_, _ = io.WriteString(w, "ok")
			return
		}
		h(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) requests() []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seen(nil), u.reqs...)
}

func (u *upstream) host() string { return u.Listener.Addr().String() }

type proxyEnv struct {
	URL   string
	Addr  string
	H     *Handler
	Audit *syncBuf
}

func newProxy(t *testing.T, routes ...LoadedRoute) *proxyEnv {
	t.Helper()
	buf := &syncBuf{}
	h, err := NewHandler(testLogger(t), audit.New(buf, "test", "cred-proxy"), routes, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &proxyEnv{URL: srv.URL, Addr: srv.Listener.Addr().String(), H: h, Audit: buf}
}

func (p *proxyEnv) events(t *testing.T) []audit.Event { return parseEvents(t, p.Audit.String()) }

func lr(name, path, upstream, header, format, token string, strip ...string) LoadedRoute {
	return LoadedRoute{Route: Route{Name: name, Path: path, Upstream: upstream, Header: header, Format: format,
		StripHeaders: strip, TokenFile: "tokens/" + name}, Token: token}
}

// sendRaw writes req to addr byte for byte, as an agent could, and returns
// the open connection.
func sendRaw(t *testing.T, addr, req string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second)) // bounds a hang, asserts nothing
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	return c
}

// rawDo sends req (sendRaw) and reads one response.
func rawDo(t *testing.T, addr, req string) (*http.Response, string) {
	t.Helper()
	c := sendRaw(t, addr, req)
	defer c.Close()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// assertNoToken fails if any encoding of tok appears in s.
func assertNoToken(t *testing.T, where, s, tok string) {
	t.Helper()
	for _, f := range tokenForms(tok) {
		if strings.Contains(s, f) {
			t.Errorf("%s holds the token (form %q): %q", where, f, s)
		}
	}
}
