package egress

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable time for the answer cache.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestAnswerCache(t *testing.T) {
	res := newFakeResolver(map[string][][]string{"a.test": {{"127.0.0.1"}, {"127.0.0.2"}}})
	clock := &fakeClock{t: time.Unix(1000, 0)}
	c := &answerCache{now: clock.now}
	ctx := context.Background()
	get := func() string {
		t.Helper()
		a, err := c.lookup(ctx, res, "a.test.")
		if err != nil || len(a) != 1 {
			t.Fatalf("lookup: %v %v", a, err)
		}
		return a[0].IP.String()
	}
	if got := get(); got != "127.0.0.1" {
		t.Fatalf("first answer %s", got)
	}
	clock.add(answerTTL - time.Millisecond)
	if got := get(); got != "127.0.0.1" || res.count("a.test") != 1 {
		t.Fatalf("within the TTL: answer %s, %d lookups; want the kept answer, 1 lookup", got, res.count("a.test"))
	}
	clock.add(time.Millisecond)
	if got := get(); got != "127.0.0.2" || res.count("a.test") != 2 {
		t.Fatalf("at the TTL: answer %s, %d lookups; want a new lookup", got, res.count("a.test"))
	}
	c.reset()
	get()
	if n := res.count("a.test"); n != 3 {
		t.Fatalf("after reset: %d lookups, want 3", n)
	}
	// Failures are not kept.
	for range 2 {
		if _, err := c.lookup(ctx, res, "missing.test."); err == nil {
			t.Fatal("missing.test resolved")
		}
	}
	if n := res.count("missing.test"); n != 2 {
		t.Fatalf("failed lookups: %d, want 2 (not kept)", n)
	}

	// The reserved sidecars' cache keeps failures too, for the same TTL.
	kept := &answerCache{now: clock.now, keepFailures: true}
	for range 2 {
		if a, err := kept.lookup(ctx, res, "gone.test."); err == nil || a != nil {
			t.Fatalf("gone.test: %v %v", a, err)
		}
	}
	if n := res.count("gone.test"); n != 1 {
		t.Fatalf("failed lookups with keepFailures: %d, want 1 (kept)", n)
	}
	clock.add(answerTTL)
	kept.lookup(ctx, res, "gone.test.")
	if n := res.count("gone.test"); n != 2 {
		t.Fatalf("after the TTL: %d lookups, want 2", n)
	}
}

func TestAnswerCacheBounded(t *testing.T) {
	answers := map[string][][]string{}
	for i := range maxAnswers + 10 {
		answers[fmt.Sprintf("n%d.test", i)] = [][]string{{"127.0.0.1"}}
	}
	res := newFakeResolver(answers)
	c := &answerCache{}
	for i := range maxAnswers + 10 {
		if _, err := c.lookup(context.Background(), res, fmt.Sprintf("n%d.test.", i)); err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		n := len(c.entries)
		c.mu.Unlock()
		if n > maxAnswers {
			t.Fatalf("%d kept answers, bound is %d", n, maxAnswers)
		}
	}
}

// A kept answer is checked again on every request, against the policy of
// that moment: a rule that loses allow_private refuses the loopback
// address it had accepted a moment before, without a new lookup.
func TestKeptAnswerRechecked(t *testing.T) {
	h := newHarness(t, testPolicy(), nil, testAnswers())
	up := httptest.NewServer(helloHandler())
	t.Cleanup(up.Close)
	h.dial.setRedirect("127.0.0.1:80", up.Listener.Addr().String())
	get := func() (int, string) {
		t.Helper()
		resp, err := h.client().Get("http://allowed.test/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != http.StatusOK {
		t.Fatalf("first request: %d %s", code, body)
	}
	// Swap the policy without the reload's reset, so the answer is kept.
	strict := &Policy{Rules: []Rule{{Host: "allowed.test", Source: "manifest"}}}
	if err := strict.Validate(); err != nil {
		t.Fatal(err)
	}
	h.p.cfg.Store(newConfig(strict, &Secrets{}))
	code, body := get()
	if code != http.StatusForbidden || !strings.Contains(body, "resolves to a loopback address") {
		t.Fatalf("after the policy change: %d %q, want 403 resolves to a loopback address", code, body)
	}
	if n := h.res.count("allowed.test"); n != 1 {
		t.Fatalf("%d lookups, want 1 (the kept answer, checked again)", n)
	}
}

// An allowed request whose upstream cannot be reached answers 502 naming
// the request, and its log line says "error" with the upstream's reason
// (the shared ReverseProxy hands both back through the request's state).
func TestForwardUpstreamError(t *testing.T) {
	h := newHarness(t, testPolicy(), nil, testAnswers())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close() // nothing listens there now
	h.dial.setRedirect("127.0.0.1:80", closed)
	for range 2 { // twice: one request's state must not leak into the next
		resp, err := h.client().Get("http://allowed.test/x")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(b), "claude-bottle egress: cannot reach GET allowed.test:80: ") {
			t.Fatalf("got %d %q", resp.StatusCode, b)
		}
	}
	var errs int
	for _, e := range h.events() {
		if e.Kind == "http" && e.Verdict == "error" && strings.HasPrefix(e.Reason, "upstream: ") && e.Host == "allowed.test" {
			errs++
		}
	}
	if errs != 2 {
		t.Fatalf("%d error events, want 2: %+v", errs, h.events())
	}
}
