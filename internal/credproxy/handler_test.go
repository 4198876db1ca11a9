package credproxy

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/audit"
)

const tok = "sk-real-TOKEN-0123456789/abc+def="

func TestInjectsCredentialAndStripsAgentOnes(t *testing.T) {
	tests := []struct {
		name, header, format, want string
	}{
		{"x-api-key", "x-api-key", "{token}", tok},
		{"bearer", "Authorization", "Bearer {token}", "Bearer " + tok},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := newUpstream(t, nil)
			p := newProxy(t, lr("anthropic", "/anthropic/", up.URL, tt.header, tt.format, tok, "X-Custom-Secret"))
			req := "GET /anthropic/v1/messages?beta=true&k=%2F HTTP/1.1\r\n" +
				"Host: cred-proxy:8080\r\n" +
				"Authorization: Bearer attacker\r\n" +
				"X-Api-Key: attacker\r\n" +
				"Proxy-Authorization: Basic attacker\r\n" +
				"Cookie: session=attacker\r\n" +
				"X-Custom-Secret: attacker\r\n" +
				"X-Forwarded-For: 10.0.0.1\r\n" +
				"X-Forwarded-Host: attacker.example\r\n" +
				"X-Forwarded-Client-Cert: attacker\r\n" +
				"Forwarded: for=attacker\r\n" +
				"X-Real-Ip: 10.0.0.2\r\n" +
				"Accept-Encoding: gzip\r\n" +
				"X-Keep: yes\r\n" +
				// Hop-by-hop trick: ask the proxy to drop the credential headers.
				"Connection: x-api-key, authorization\r\n" +
				"\r\n"
			resp, body := rawDo(t, p.Addr, req)
			if resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("status %d body %q", resp.StatusCode, body)
			}
			reqs := up.requests()
			if len(reqs) != 1 {
				t.Fatalf("upstream got %d requests", len(reqs))
			}
			got := reqs[0]
			if v := got.Header.Values(tt.header); len(v) != 1 || v[0] != tt.want {
				t.Errorf("upstream %s = %q, want exactly [%q]", tt.header, v, tt.want)
			}
			for k, vs := range got.Header {
				for _, v := range vs {
					if strings.Contains(v, "attacker") || strings.HasPrefix(v, "10.0.0.") {
						t.Errorf("agent header reached upstream: %s: %s", k, v)
					}
				}
			}
			for _, k := range []string{"Cookie", "Proxy-Authorization", "X-Custom-Secret", "Forwarded", "X-Real-Ip", "X-Forwarded-For", "X-Forwarded-Host"} {
				if _, ok := got.Header[k]; ok {
					t.Errorf("%s reached upstream", k)
				}
			}
			if got.Header.Get("X-Keep") != "yes" {
				t.Errorf("ordinary header dropped: %v", got.Header)
			}
			if got.Header.Get("Accept-Encoding") != "identity" {
				t.Errorf("Accept-Encoding = %q, want identity", got.Header.Get("Accept-Encoding"))
			}
			if got.Host != up.host() || got.URI != "/v1/messages?beta=true&k=%2F" {
				t.Errorf("upstream saw Host %q URI %q", got.Host, got.URI)
			}
			e := waitEvent(t, p.Audit.String, func(e audit.Event) bool { return e.Kind == "request" })
			if e.Verdict != "allow" || e.Route != "anthropic" || e.Method != "GET" || e.Status != 200 ||
				e.Path != "/anthropic/v1/messages" || e.BytesOut != 2 || e.Sidecar != "cred-proxy" {
				t.Errorf("audit event = %+v", e)
			}
			assertNoToken(t, "audit log", p.Audit.String(), tok)
		})
	}
}

func TestRoutesByLongestPrefixAndJoinsUpstreamPath(t *testing.T) {
	upA := newUpstream(t, nil)
	upB := newUpstream(t, nil)
	p := newProxy(t,
		lr("a", "/a/", upA.URL, "x-api-key", "{token}", "token-aaaaaaaa"),
		lr("ab", "/a/b/", upB.URL+"/base/", "x-api-key", "{token}", "token-bbbbbbbb"),
	)
	tests := []struct {
		path    string
		up      *upstream
		wantURI string
		wantTok string
	}{
		{"/a/b/x?q=1;y", upB, "/base/x?q=1;y", "token-bbbbbbbb"},
		{"/a/bx", upA, "/bx", "token-aaaaaaaa"},
		{"/a/v1%2Fraw", upA, "/v1%2Fraw", "token-aaaaaaaa"},
		{"/a", upA, "/", "token-aaaaaaaa"},
		{"/a/b", upB, "/base/", "token-bbbbbbbb"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			before := len(tt.up.requests())
			resp, _ := rawDo(t, p.Addr, "GET "+tt.path+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			reqs := tt.up.requests()
			if len(reqs) != before+1 {
				t.Fatalf("wrong upstream: %d requests", len(reqs)-before)
			}
			got := reqs[len(reqs)-1]
			if got.URI != tt.wantURI || got.Header.Get("X-Api-Key") != tt.wantTok {
				t.Errorf("got URI %q token %q, want %q %q", got.URI, got.Header.Get("X-Api-Key"), tt.wantURI, tt.wantTok)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	up := newUpstream(t, nil)
	p := newProxy(t, lr("anthropic", "/anthropic/", up.URL, "x-api-key", "{token}", tok),
		lr("other", "/other/", up.URL, "x-api-key", "{token}", "other-token-123"))
	tests := []struct {
		name, line string
		status     int
		reason     string
	}{
		{"dotdot", "GET /anthropic/../other/ HTTP/1.1", 400, `".." segment`},
		{"encoded dotdot", "GET /anthropic/%2e%2e/other HTTP/1.1", 400, `".." segment`},
		{"encoded slash", "GET /anthropic/..%2fother HTTP/1.1", 400, `".." segment`},
		{"double encoded", "GET /anthropic/%252e%252e/other HTTP/1.1", 400, `".." segment`},
		{"absolute form", "GET " + up.URL + "/anthropic/v1?key=secret HTTP/1.1", 400, "absolute-form"},
		{"trace", "TRACE /anthropic/v1 HTTP/1.1", 405, "TRACE is not allowed"},
		{"track", "TRACK /anthropic/v1 HTTP/1.1", 405, "TRACK is not allowed"},
		{"connect", "CONNECT api.anthropic.com:443 HTTP/1.1", 405, "CONNECT is not supported"},
		{"no route", "GET /github/repos?x=1 HTTP/1.1", 404, "no route"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := rawDo(t, p.Addr, tt.line+"\r\nHost: cred-proxy\r\nConnection: close\r\n\r\n")
			if resp.StatusCode != tt.status || !strings.Contains(body, tt.reason) || !strings.Contains(body, "refused") {
				t.Errorf("status %d body %q; want %d with %q", resp.StatusCode, body, tt.status, tt.reason)
			}
			if tt.status == 404 && (!strings.Contains(body, "/anthropic/ /other/") || !strings.Contains(body, "request_route")) {
				t.Errorf("404 body does not list routes and the way to ask: %q", body)
			}
			assertNoToken(t, "refusal body", body, tok)
			e := waitEvent(t, p.Audit.String, func(e audit.Event) bool {
				return e.Verdict == "deny" && strings.Contains(e.Reason, strings.Trim(tt.reason, `"`))
			})
			if e.Status != tt.status || e.Kind != "request" || strings.Contains(e.Path, "?") {
				t.Errorf("audit event = %+v", e)
			}
		})
	}
	if n := len(up.requests()); n != 0 {
		t.Errorf("upstream received %d refused requests", n)
	}
}

func TestRedirectIsNotFollowedAndTokenStaysHome(t *testing.T) {
	other := newUpstream(t, nil)
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/landing", http.StatusFound)
	})
	p := newProxy(t, lr("anthropic", "/anthropic/", up.URL, "Authorization", "Bearer {token}", tok))

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(p.URL + "/anthropic/v1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != other.URL+"/landing" {
		t.Fatalf("got %d Location %q, want the 302 passed back as is", resp.StatusCode, resp.Header.Get("Location"))
	}
	if n := len(other.requests()); n != 0 {
		t.Fatalf("the proxy followed the redirect: other host got %d requests", n)
	}

	// An agent that follows it goes to the other host itself, without the token.
	resp, err = http.Get(p.URL + "/anthropic/v1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := up.requests(); len(got) != 2 || got[1].Header.Get("Authorization") != "Bearer "+tok {
		t.Fatalf("route upstream requests: %+v", got)
	}
	reqs := other.requests()
	if len(reqs) != 1 {
		t.Fatalf("other host got %d requests, want the agent's own 1", len(reqs))
	}
	for k, vs := range reqs[0].Header {
		assertNoToken(t, "other host header "+k, strings.Join(vs, ","), tok)
	}
}

func TestStreamsEachEventAsItArrives(t *testing.T) {
	gotFirst := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-gotFirst:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "data: two\n\n")
	})
	p := newProxy(t, lr("anthropic", "/anthropic/", up.URL, "x-api-key", "{token}", tok))
	// The timeout only turns a buffering bug into a failure, not a hang.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", p.URL+"/anthropic/v1/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	readEvent := func() string {
		var ev strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("read event: %v (so far %q)", err, ev.String())
			}
			ev.WriteString(line)
			if line == "\n" {
				return ev.String()
			}
		}
	}
	if ev := readEvent(); ev != "data: one\n\n" {
		t.Fatalf("event 1 = %q", ev)
	}
	close(gotFirst) // the upstream writes event 2 only now
	if ev := readEvent(); ev != "data: two\n\n" {
		t.Fatalf("event 2 = %q", ev)
	}
}

func TestClientCancelCancelsUpstream(t *testing.T) {
	started, canceled := make(chan struct{}), make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		// net/http notices a vanished client only once the body is read.
		_, _ = io.ReadAll(r.Body)
		close(started)
		select {
		case <-r.Context().Done():
			close(canceled)
		case <-t.Context().Done():
		}
	})
	p := newProxy(t, lr("anthropic", "/anthropic/", up.URL, "x-api-key", "{token}", tok))
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "POST", p.URL+"/anthropic/v1/messages", strings.NewReader("{}"))
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-started
	cancel()
	select {
	case <-canceled:
	case <-time.After(30 * time.Second): // failure bound only
		t.Fatal("upstream never saw the cancellation")
	}
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("client error = %v", err)
	}
	e := waitEvent(t, p.Audit.String, func(e audit.Event) bool { return e.Kind == "request" })
	if e.Verdict != "error" || e.Route != "anthropic" {
		t.Errorf("audit event = %+v", e)
	}
}

func TestScrubsReflectedToken(t *testing.T) {
	tests := []struct {
		name string
		echo func(string) string
	}{
		{"raw", func(s string) string { return s }},
		{"base64 std", func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }},
		{"base64 std unpadded", func(s string) string { return base64.RawStdEncoding.EncodeToString([]byte(s)) }},
		{"base64 url", func(s string) string { return base64.URLEncoding.EncodeToString([]byte(s)) }},
		{"base64 url unpadded", func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }},
		{"query escape", url.QueryEscape},
		{"path escape", url.PathEscape},
	}
	// known: the upstream sends a Content-Length, and the body is scrubbed
	// whole; otherwise it is chunked and scrubbed as a stream.
	for _, known := range []bool{true, false} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/known-length=%v", tt.name, known), func(t *testing.T) {
				up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
					// Reflect the injected credential, the way a debug endpoint might.
					echoed := tt.echo(r.Header.Get("X-Api-Key"))
					w.Header().Set("X-Echo", "key="+echoed)
					w.Header().Add("Set-Cookie", "k="+echoed)
					if known {
						w.Header().Set("Content-Length", fmt.Sprint(len("start  end\n")+len(echoed)))
					}
					half := len(echoed) / 2
					_, _ = io.WriteString(w, "start "+echoed[:half])
					w.(http.Flusher).Flush() // the token is split across chunks
					_, _ = io.WriteString(w, echoed[half:]+" end\n")
				})
				p := newProxy(t, lr("anthropic", "/anthropic/", up.URL, "x-api-key", "{token}", tok))
				resp, err := http.Get(p.URL + "/anthropic/debug")
				if err != nil {
					t.Fatal(err)
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
				if string(body) != "start "+Redacted+" end\n" {
					t.Errorf("body = %q", body)
				}
				if known && (resp.ContentLength != int64(len(body)) || resp.Header.Get("Content-Length") != fmt.Sprint(len(body))) {
					t.Errorf("Content-Length %d for a scrubbed body of %d bytes", resp.ContentLength, len(body))
				}
				if !known && (resp.ContentLength != -1 || resp.Header.Get("Content-Length") != "") {
					t.Errorf("a stream got a Content-Length: %d", resp.ContentLength)
				}
				if resp.Header.Get("X-Echo") != "key="+Redacted || resp.Header.Get("Set-Cookie") != "k="+Redacted {
					t.Errorf("headers = %v", resp.Header)
				}
				all := fmt.Sprint(resp.Header, string(body))
				assertNoToken(t, "response", all, tok)
			})
		}
	}
}

func TestScrubsTrailers(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Trail")
		_, _ = io.WriteString(w, "body")
		w.Header().Set("X-Trail", "t="+r.Header.Get("Authorization"))
	})
	p := newProxy(t, lr("anthropic", "/anthropic/", up.URL, "Authorization", "Bearer {token}", tok))
	resp, err := http.Get(p.URL + "/anthropic/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "body" || resp.Trailer.Get("X-Trail") != "t=Bearer "+Redacted {
		t.Errorf("body %q trailer %q", body, resp.Trailer.Get("X-Trail"))
	}
}

func TestCompressedResponseIsRefused(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		_, _ = w.Write([]byte{0x1f, 0x8b, 0, 0})
	})
	p := newProxy(t, lr("anthropic", "/anthropic/", up.URL, "x-api-key", "{token}", tok))
	resp, body := rawDo(t, p.Addr, "GET /anthropic/v1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "cannot be scrubbed") {
		t.Errorf("status %d body %q", resp.StatusCode, body)
	}
	e := waitEvent(t, p.Audit.String, func(e audit.Event) bool { return e.Kind == "request" })
	if e.Verdict != "error" || !strings.Contains(e.Reason, "Content-Encoding gzip") {
		t.Errorf("audit event = %+v", e)
	}
}

func TestSetRoutesSwapsAtomicallyAndKeepsOldOnError(t *testing.T) {
	upA, upB := newUpstream(t, nil), newUpstream(t, nil)
	p := newProxy(t, lr("a", "/a/", upA.URL, "x-api-key", "{token}", "token-aaaaaaaa"))
	if err := p.H.SetRoutes([]LoadedRoute{lr("a", "/a/", upB.URL, "x-api-key", "{token}", "")}); err == nil {
		t.Fatal("empty token accepted")
	}
	get := func() {
		resp, _ := rawDo(t, p.Addr, "GET /a/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	get()
	if len(upA.requests()) != 1 {
		t.Fatal("old route not kept after a failed swap")
	}
	if err := p.H.SetRoutes([]LoadedRoute{lr("a", "/a/", upB.URL, "x-api-key", "{token}", "token-bbbbbbbb")}); err != nil {
		t.Fatal(err)
	}
	get()
	if r := upB.requests(); len(r) != 1 || r[0].Header.Get("X-Api-Key") != "token-bbbbbbbb" {
		t.Fatalf("new route not used: %+v", r)
	}
}
