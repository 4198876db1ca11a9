package kubernetes

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/audit"
)

// The host's copy of a pod's log: JSON lines only (not the sidecar's text
// log), each once across reconnections, bounded as the sidecar's own log
// with the drops counted.
func TestLogMirror(t *testing.T) {
	dir := t.TempDir()
	m := &logMirror{path: filepath.Join(dir, "egress.jsonl"), role: "egress"}
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	at := func(s int) string { return t0.Add(time.Duration(s) * time.Millisecond).Format(time.RFC3339Nano) }
	first := strings.Join([]string{
		at(1) + ` {"kind":"decision","host":"a.example"}`,
		at(2) + ` time=2026-12-03T10:00:00Z level=INFO msg="egress serving"`,
		at(3) + ` {"kind":"decision","host":"b.example"}`,
		at(4) + ` {"truncated":`,
	}, "\n") + "\n"
	since := m.copy(strings.NewReader(first), time.Time{})
	// A reconnection replays from the second: what was copied is skipped.
	again := at(3) + ` {"kind":"decision","host":"b.example"}` + "\n" + at(5) + ` {"kind":"decision","host":"c.example"}` + "\n"
	m.copy(strings.NewReader(again), since)
	m.close()
	got, _ := os.ReadFile(m.path)
	want := `{"kind":"decision","host":"a.example"}` + "\n" + `{"kind":"decision","host":"b.example"}` + "\n" + `{"kind":"decision","host":"c.example"}` + "\n"
	if string(got) != want {
		t.Fatalf("mirrored:\n%s\nwant:\n%s", got, want)
	}
	if st, _ := os.Stat(m.path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode())
	}

	// Past the bound: nothing more is written, and the drops are counted.
	full := &logMirror{path: filepath.Join(dir, "cred-proxy.jsonl"), role: "cred-proxy"}
	if err := os.WriteFile(full.path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(full.path, audit.DefaultMaxBytes-10); err != nil { // sparse
		t.Fatal(err)
	}
	full.copy(strings.NewReader(at(6)+` {"kind":"decision","host":"d.example"}`+"\n"+at(7)+` {"kind":"decision","host":"e.example"}`+"\n"), time.Time{})
	full.close()
	var d audit.Dropped
	b, err := os.ReadFile(filepath.Join(dir, audit.DroppedFile("cred-proxy")))
	if err != nil || json.Unmarshal(b, &d) != nil || d.Events != 2 || d.Sidecar != "cred-proxy" {
		t.Errorf("dropped %s (%v)", b, err)
	}
	if st, _ := os.Stat(full.path); st.Size() != audit.DefaultMaxBytes-10 {
		t.Errorf("wrote past the bound: %d bytes", st.Size())
	}
}
