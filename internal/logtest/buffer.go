package logtest

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/claude-bottle/claude-bottle/internal/audit"
)

// Buffer is a decision-log destination a test can read while a server
// writes to it. The zero value is ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Events parses everything written so far as audit events.
func (b *Buffer) Events(t testing.TB) []audit.Event { return ParseEvents(t, b.String()) }

// ParseEvents parses JSON lines of audit events; a line that is not one
// fails the test.
func ParseEvents(t testing.TB, data string) []audit.Event {
	t.Helper()
	var out []audit.Event
	for line := range strings.SplitSeq(strings.TrimSpace(data), "\n") {
		if line == "" {
			continue
		}
		var e audit.Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		out = append(out, e)
	}
	return out
}
