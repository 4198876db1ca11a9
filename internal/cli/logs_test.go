package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/audit"
)

func TestLogsMergedByTime(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "egress.jsonl"), []byte(
		`{"time":"2026-01-01T00:00:01Z","sidecar":"egress","kind":"a"}`+"\n"+
			`{"time":"2026-01-01T00:00:03Z","sidecar":"egress","kind":"c"}`+"\n"+
			`{"time":"2026-01-01T00:00:04Z","sidecar":"egress","kind":"partial`), 0o600)
	os.WriteFile(filepath.Join(dir, "supervise.jsonl"), []byte(
		`{"time":"2026-01-01T00:00:02Z","sidecar":"supervise","kind":"b"}`+"\n"), 0o600)
	var out bytes.Buffer
	if err := showLogs(context.Background(), &out, dir, false); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		i := strings.Index(l, `"kind":"`)
		kinds = append(kinds, l[i+8:i+9])
	}
	if got := strings.Join(kinds, ""); got != "abc" {
		t.Fatalf("order %q (a partial last line must wait until it is whole):\n%s", got, out.String())
	}
}

// hiddenChars are what an agent puts in a host or path to act on the
// person's terminal or hide text from them.
var hiddenChars = []string{"\u202e", "\u009b", "\x1b", "\u200b", "\U000E0041", "\x07"}

func assertShownEscaped(t *testing.T, what, out string) {
	t.Helper()
	for _, c := range hiddenChars {
		if strings.Contains(out, c) {
			t.Errorf("%s prints %q raw:\n%q", what, c, out)
		}
	}
}

// `logs` shows every line escaped, whatever the file holds (a line from an
// older writer, or written raw by anyone), and says how many events a full
// log dropped.
func TestLogsEscapeAndReportDropped(t *testing.T) {
	dir := t.TempDir()
	raw := `{"time":"2026-01-01T00:00:01Z","sidecar":"egress","kind":"dns","host":"evil` + "\u202e\u009b31m\x1b[2J\u200b\U000E0041\x07" + `.test"}` + "\n"
	os.WriteFile(filepath.Join(dir, "egress.jsonl"), []byte(raw), 0o600)
	os.WriteFile(filepath.Join(dir, audit.DroppedFile("egress")),
		[]byte(`{"sidecar":"egress","events":1234,"first":"2026-01-01T00:00:02Z","last":"2026-01-01T00:00:09Z"}`), 0o600)
	var out bytes.Buffer
	if err := showLogs(context.Background(), &out, dir, false); err != nil {
		t.Fatal(err)
	}
	assertShownEscaped(t, "logs", out.String())
	if !strings.Contains(out.String(), `evil\u202e\u009b31m\u001b[2J\u200b\udb40\udc41\u0007.test`) {
		t.Errorf("the host is not shown escaped:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "1234 events were dropped") {
		t.Errorf("logs does not say how many events were dropped:\n%s", out.String())
	}
}

// `logs -f` escapes what it follows, and reports drops as they grow.
func TestLogsFollowEscapes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "egress.jsonl")
	os.WriteFile(path, nil, 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- showLogs(ctx, &out, dir, true) }()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"time":"2026-01-01T00:00:01Z","kind":"http","path":"/` + "\u202e\u009b" + `"}` + "\n")
	f.Close()
	os.WriteFile(filepath.Join(dir, audit.DroppedFile("egress")), []byte(`{"sidecar":"egress","events":7}`), 0o600)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "7 events were dropped") || !strings.Contains(out.String(), `"kind":"http"`) {
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	assertShownEscaped(t, "logs -f", out.String())
	for _, want := range []string{`"path":"/\u202e\u009b"`, "7 events were dropped"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("logs -f lacks %s:\n%s", want, out.String())
		}
	}
}
