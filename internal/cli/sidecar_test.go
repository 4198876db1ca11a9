package cli

import (
	"io"
	"math"
	"net/http"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/connect/connecttest"
)

func TestProxyGC(t *testing.T) {
	orig := debug.SetGCPercent(100)
	origLimit := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() {
		debug.SetGCPercent(orig)
		debug.SetMemoryLimit(origLimit)
	})

	proxyGC(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != proxyGCPercent {
		t.Fatalf("GC percent %d with GOGC unset, want %d", got, proxyGCPercent)
	}
	if got := debug.SetMemoryLimit(math.MaxInt64); got != proxyMemoryLimit {
		t.Fatalf("memory limit %d with GOMEMLIMIT unset, want %d", got, proxyMemoryLimit)
	}
	proxyGC(func(k string) string {
		switch k {
		case "GOGC":
			return "50"
		case "GOMEMLIMIT":
			return "1GiB"
		}
		return ""
	})
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GC percent %d with GOGC set, want it left alone (100)", got)
	}
	if got := debug.SetMemoryLimit(math.MaxInt64); got != math.MaxInt64 {
		t.Fatalf("memory limit %d with GOMEMLIMIT set, want it left alone", got)
	}
}

// sidecar connect carries stdio through the egress proxy's CONNECT, and
// says why when egress refuses or no proxy is set.
func TestTunnelStdio(t *testing.T) {
	px := connecttest.Start(t, false, func(req *http.Request) string {
		if req.Host != "git.example.test:22" {
			return "HTTP/1.1 403 Forbidden\r\nContent-Length: 12\r\n\r\nnot allowed."
		}
		return "HTTP/1.1 200 OK\r\n\r\nSSH-2.0-fake\n"
	})
	env := func(k string) string {
		if k == "HTTPS_PROXY" {
			return "http://" + px.Addr
		}
		return ""
	}
	stdinR, stdinW := io.Pipe()
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- tunnelStdio(t.Context(), stdinR, &out, "git.example.test", "22", env) }()
	io.WriteString(stdinW, "client hello\n")
	deadline := time.Now().Add(5 * time.Second)
	for out.String() != "SSH-2.0-fake\nclient hello\n" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := out.String(); got != "SSH-2.0-fake\nclient hello\n" {
		t.Fatalf("through the tunnel: %q", got)
	}
	stdinW.Close()
	if err := <-done; err != nil {
		t.Fatalf("end of input: %v", err)
	}
	err := tunnelStdio(t.Context(), strings.NewReader(""), io.Discard, "elsewhere.test", "22", env)
	if err == nil || !strings.Contains(err.Error(), "egress refused elsewhere.test:22: 403 Forbidden: not allowed.") {
		t.Fatalf("refused: %v", err)
	}
	err = tunnelStdio(t.Context(), strings.NewReader(""), io.Discard, "git.example.test", "22", func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "HTTPS_PROXY is not set") {
		t.Fatalf("no proxy: %v", err)
	}
}
