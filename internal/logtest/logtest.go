// Package logtest gives tests a *slog.Logger that writes to t.Log while the
// test runs and drops what goroutines log after it ended (tailscale's
// WhileTestRunningLogger idea), so a late line never fails a test.
package logtest

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// New returns a debug-level logger writing to t.Log until t ends.
func New(t testing.TB) *slog.Logger {
	w := &writer{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type writer struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *writer) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(b)))
	}
	return len(b), nil
}
