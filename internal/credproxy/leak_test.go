package credproxy

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/audit"
)

// readAll sends req to addr and returns every byte the agent's side of
// the connection receives until the proxy closes it: informational
// responses, the final head, the body and the trailers alike.
func readAll(t *testing.T, addr, req string) string {
	t.Helper()
	c := sendRaw(t, addr, req)
	defer c.Close()
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Each case is an upstream that reflects the injected credential through
// one part of a response. Whatever the part, no form of the token may be
// among the bytes the agent's connection receives.
func TestNoTokenFormReachesAgent(t *testing.T) {
	echo := func(r *http.Request) string { return r.Header.Get("X-Api-Key") }
	tests := []struct {
		name string
		h    http.HandlerFunc
		want string // the final status line's code
	}{
		{"103 early hints echoing the request", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</"+url.PathEscape(echo(r))+">; rel=preload")
			w.Header().Set("X-Echo", echo(r))
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Del("Link")
			w.Header().Del("X-Echo")
			_, _ = io.WriteString(w, "ok")
		}, "200"},
		{"102 then 103 echoing in header names", func(w http.ResponseWriter, r *http.Request) {
			w.Header()["X-"+echo(r)] = []string{"1"}
			w.WriteHeader(http.StatusProcessing)
			w.WriteHeader(http.StatusEarlyHints)
			clear(w.Header())
			_, _ = io.WriteString(w, "ok")
		}, "200"},
		{"final header value and name", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Echo", "k="+echo(r))
			w.Header()["X-"+echo(r)] = []string{"1"}
			_, _ = io.WriteString(w, "ok")
		}, "200"},
		{"announced trailer", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-Trail")
			_, _ = io.WriteString(w, "body")
			w.Header().Set("X-Trail", echo(r))
		}, "200"},
		{"trailer announced late", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "body")
			w.(http.Flusher).Flush()
			w.Header().Set(http.TrailerPrefix+"X-Late", echo(r))
			w.Header().Set(http.TrailerPrefix+"X-"+echo(r), "1")
		}, "200"},
		{"chunked body split across flushes", func(w http.ResponseWriter, r *http.Request) {
			k := echo(r)
			for i := range len(k) {
				_, _ = io.WriteString(w, k[i:i+1])
				w.(http.Flusher).Flush()
			}
		}, "200"},
		{"event stream", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "data: %s\n\n", echo(r))
			w.(http.Flusher).Flush()
			fmt.Fprintf(w, "data: %s\n\n", url.QueryEscape(echo(r)))
		}, "200"},
		{"error status with the token in its body", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, "bad key %s", echo(r))
		}, "400"},
		{"compressed body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "br")
			_, _ = io.WriteString(w, echo(r))
		}, "502"},
		{"compression behind identity", func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Encoding"] = []string{"identity", "gzip"}
			gz := gzip.NewWriter(w)
			_, _ = io.WriteString(gz, echo(r))
			gz.Close()
		}, "502"},
		{"compression in a list", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "identity, gzip")
			gz := gzip.NewWriter(w)
			_, _ = io.WriteString(gz, echo(r))
			gz.Close()
		}, "502"},
		{"a range of the echoed token", func(w http.ResponseWriter, r *http.Request) {
			// Serves byte ranges of a body holding the token, as
			// http.ServeContent does for any static resource.
			http.ServeContent(w, r, "", time.Time{}, strings.NewReader("key="+echo(r)))
		}, "200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream(t, tt.h)
			p := newProxy(t, lr("anthropic", "/anthropic/", up.URL, "x-api-key", "{token}", tok))
			// The Range asks for the token without its first byte, which
			// the scrubber would not recognise; the proxy drops it.
			got := readAll(t, p.Addr, "GET /anthropic/x HTTP/1.1\r\nHost: x\r\nRange: bytes=5-\r\nConnection: close\r\n\r\n")
			assertNoToken(t, "what the agent received", got, tok)
			if !strings.HasPrefix(got, "HTTP/1.1 "+tt.want+" ") {
				t.Errorf("response starts %q, want status %s", clipTest(got), tt.want)
			}
		})
	}
}

// The proxy's own 502 page quotes the transport's error, which may quote
// the request it failed to send.
func TestErrorPageIsScrubbed(t *testing.T) {
	buf := &syncBuf{}
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return nil, errors.New("cannot send header x-api-key: " + r.Header.Get("X-Api-Key"))
	})
	h, err := NewHandler(testLogger(t), audit.New(buf, "test", "cred-proxy"),
		[]LoadedRoute{lr("anthropic", "/anthropic/", "https://api.example.test", "x-api-key", "{token}", tok)}, rt)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	got := readAll(t, ln.Addr().String(), "GET /anthropic/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	assertNoToken(t, "the 502 page", got, tok)
	if !strings.HasPrefix(got, "HTTP/1.1 502 ") || !strings.Contains(got, Redacted) {
		t.Errorf("got %q", got)
	}
	assertNoToken(t, "the audit log", buf.String(), tok)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func clipTest(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

// Dropping upstream 1xx responses must not break Expect: 100-continue:
// the agent-facing server sends its own 100 when the proxy reads the body.
func TestExpectContinueStillWorks(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %s", b)
	})
	p := newProxy(t, lr("anthropic", "/anthropic/", up.URL, "x-api-key", "{token}", tok))
	c := sendRaw(t, p.Addr, "POST /anthropic/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
	first := make([]byte, len("HTTP/1.1 100 Continue\r\n\r\n"))
	if _, err := io.ReadFull(c, first); err != nil || string(first) != "HTTP/1.1 100 Continue\r\n\r\n" {
		t.Fatalf("first bytes %q, %v", first, err)
	}
	io.WriteString(c, "hello")
	rest, _ := io.ReadAll(c)
	if !strings.HasPrefix(string(rest), "HTTP/1.1 200 ") || !strings.HasSuffix(string(rest), "got hello") {
		t.Errorf("response %q", rest)
	}
}

// pipeListener serves connections made with net.Pipe, so a fuzz run opens
// no sockets.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

func (l *pipeListener) dial() net.Conn {
	client, server := net.Pipe()
	l.conns <- server
	return client
}

// FuzzResponseToAgent sends an arbitrary upstream response, "{T}" standing
// for the injected token the upstream echoes, through the proxy and a real
// http.Transport and http.Server, and checks every byte the agent receives.
func FuzzResponseToAgent(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 103 Early Hints\r\nLink: {T}\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 100 Continue\r\nX: {T}\r\n\r\nHTTP/1.1 102 Processing\r\nX-{T}: 1\r\n\r\nHTTP/1.1 200 OK\r\n\r\n{T}",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3\r\n{T}\r\n0\r\nX-T: {T}\r\nX-Late: {T}\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: {T}\n\n",
		"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer {T}\r\nContent-Length: 4\r\n\r\n{T}",
		"HTTP/1.0 200 OK\r\nX: a\r\n {T}\r\n\r\n{T}",
		"HTTP/1.1 418 {T}\r\nContent-Length: 0\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, resp string) {
		if len(resp) > 8192 {
			return
		}
		resp = strings.ReplaceAll(resp, "{T}", tok)
		up := &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				c, s := net.Pipe()
				go func() {
					defer s.Close()
					_ = s.SetDeadline(time.Now().Add(5 * time.Second))
					br := bufio.NewReader(s)
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					_, _ = io.WriteString(s, resp)
				}()
				return c, nil
			},
		}
		h, err := NewHandler(slog.New(slog.DiscardHandler), nil,
			[]LoadedRoute{lr("r", "/r/", "http://upstream.test", "x-api-key", "{token}", tok)}, up)
		if err != nil {
			t.Fatal(err)
		}
		ln := newPipeListener()
		srv := &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0)}
		go srv.Serve(ln)
		defer srv.Close()
		c := ln.dial()
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second)) // bounds a hang, asserts nothing
		go io.WriteString(c, "GET /r/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		b, _ := io.ReadAll(c)
		got := strings.ReplaceAll(string(b), Redacted, "\x00")
		for _, form := range tokenForms(tok) {
			if strings.Contains(got, form) {
				t.Fatalf("the agent received form %q of the token:\n%q", form, b)
			}
		}
	})
}
