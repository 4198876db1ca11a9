package audit

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestWriteStampsAndOmits(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, "claude-bottle-x", "egress")
	l.now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	if err := l.Write(Event{Kind: "connect", Host: "a.test", Port: 443, Verdict: "deny", Reason: "not in allowlist"}); err != nil {
		t.Fatal(err)
	}
	got := strings.TrimSpace(buf.String())
	want := `{"time":"2026-01-02T03:04:05Z","instance":"claude-bottle-x","sidecar":"egress","kind":"connect","host":"a.test","port":443,"verdict":"deny","reason":"not in allowlist"}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	var e Event
	if err := json.Unmarshal([]byte(got), &e); err != nil || e.Host != "a.test" {
		t.Fatalf("round trip: %v %+v", err, e)
	}
}

func TestNilLogDiscards(t *testing.T) {
	var l *Log
	if err := l.Write(Event{Kind: "x"}); err != nil {
		t.Fatal(err)
	}
}
