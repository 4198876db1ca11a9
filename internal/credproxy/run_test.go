package credproxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/audit"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

func TestRunServesAndReloads(t *testing.T) {
	up1, up2 := newUpstream(t, nil), newUpstream(t, nil)
	dir, logDir := t.TempDir(), t.TempDir()
	routes := func(upstream string) string {
		return `{"routes":[` + routeJSON("anthropic", "/anthropic/", upstream, "x-api-key", "{token}") + `]}`
	}
	writeConfig(t, dir, routes(up1.URL), map[string]string{"anthropic": "token-one-1111\n"})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, testLogger(t), Options{ConfigDir: dir, LogDir: logDir, Instance: "test",
			Listener: ln, PollInterval: 20 * time.Millisecond})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	base := "http://" + ln.Addr().String()
	get := func(path string) int {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := get("/healthz"); s != 200 {
		t.Fatalf("healthz = %d", s)
	}
	if s := get("/anthropic/v1"); s != 200 || up1.requests()[0].Header.Get("X-Api-Key") != "token-one-1111" {
		t.Fatalf("status %d, upstream 1 saw %+v", s, up1.requests())
	}

	// The host rewrites the token and the route, each by atomic rename.
	if err := stage.WriteFile(filepath.Join(dir, "tokens", "anthropic"), []byte("token-two-2222\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	if err := stage.WriteFile(filepath.Join(dir, RoutesFile), []byte(routes(up2.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	usedNew := func() bool {
		get("/anthropic/v1")
		r := up2.requests()
		return len(r) > 0 && r[len(r)-1].Header.Get("X-Api-Key") == "token-two-2222"
	}
	deadline := time.Now().Add(2 * time.Second)
	for !usedNew() {
		if time.Now().After(deadline) {
			t.Fatal("new route and token not in use within 2s")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// The agent sends the credential where the proxy logs it verbatim (the
	// method, the path): the log line redacts it, reloaded token and all.
	req, _ := http.NewRequest("token-two-2222", base+"/anthropic/token-two-2222/"+"dG9rZW4tdHdvLTIyMjI=", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}

	// An invalid change (empty token) is logged and the old config stays.
	if err := stage.WriteFile(filepath.Join(dir, "tokens", "anthropic"), []byte("\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	readLog := func() string {
		b, err := os.ReadFile(filepath.Join(logDir, "cred-proxy.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	e := waitEvent(t, readLog, func(e audit.Event) bool { return e.Kind == "reload" && e.Verdict == "error" })
	if !strings.Contains(e.Reason, "is empty") {
		t.Errorf("reload error reason = %q", e.Reason)
	}
	before := len(up2.requests())
	if s := get("/anthropic/v1"); s != 200 {
		t.Fatalf("status %d after invalid reload", s)
	}
	if r := up2.requests(); len(r) != before+1 || r[before].Header.Get("X-Api-Key") != "token-two-2222" {
		t.Fatalf("old config not kept: %+v", r)
	}
	for _, tk := range []string{"token-one-1111", "token-two-2222", "dG9rZW4tdHdvLTIyMjI"} {
		assertNoToken(t, "audit log", readLog(), tk)
	}
	if !strings.Contains(readLog(), `"method":"`+audit.Redacted+`"`) {
		t.Errorf("no line for the request with the credential as its method:\n%s", readLog())
	}
}

func TestRunRefusesInvalidConfig(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, `{"routes":[`+routeJSON("a", "/a/", "https://x.test", "x-api-key", "{token}")+`]}`, map[string]string{"a": ""})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = Run(t.Context(), testLogger(t), Options{ConfigDir: dir, LogDir: t.TempDir(), Listener: ln})
	if err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Fatalf("Run = %v, want empty-token error", err)
	}
}
