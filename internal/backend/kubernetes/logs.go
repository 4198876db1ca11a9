package kubernetes

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/claude-bottle/claude-bottle/internal/audit"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

// The decision logs. Each sidecar pod writes its log to stdout as well as
// to its pod-local file (audit.StdoutEnv); while the bottle runs, the
// launcher follows each pod's log through the API and appends the JSON
// lines to the host's log directory, STATE/logs/INSTANCE/ROLE.jsonl, where
// `claude-bottle logs` reads them as on Docker, and where they outlive the
// bottle. The host's copy has the sidecar's bound.

// maxLogLine bounds one line read from a pod's log.
const maxLogLine = 1 << 20

// followLogs mirrors role's decision log until ctx ends, reconnecting
// when the stream ends (a restarted container) and skipping what it has
// already copied by the kubelet's timestamps.
func (b *Backend) followLogs(ctx context.Context, instance, role string) {
	m := &logMirror{path: filepath.Join(stage.LogDir(b.State, instance), role+".jsonl"), role: role}
	var since time.Time
	for ctx.Err() == nil {
		opts := &corev1.PodLogOptions{Container: role, Follow: true, Timestamps: true}
		if !since.IsZero() {
			opts.SinceTime = &metav1.Time{Time: since.Truncate(time.Second)}
		}
		rc, err := b.cs.CoreV1().Pods(instance).GetLogs(role, opts).Stream(ctx)
		if err == nil {
			since = m.copy(rc, since)
			rc.Close()
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	m.close()
}

// logMirror appends a sidecar's JSON lines to the host's file, bounded as
// the sidecar's own log is (past the bound it counts what it drops).
type logMirror struct {
	path, role string
	f          *os.File
	size       int64
	dropped    audit.Dropped
}

// copy appends every line after since that is one JSON object (the
// sidecar's text log lines on stderr are not); it returns the newest
// timestamp seen.
func (m *logMirror) copy(r interface{ Read([]byte) (int, error) }, since time.Time) time.Time {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLogLine)
	for sc.Scan() {
		ts, line, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || !t.After(since) {
			continue
		}
		since = t
		if !json.Valid([]byte(line)) || !bytes.HasPrefix([]byte(line), []byte("{")) {
			continue
		}
		m.write(line, t)
	}
	return since
}

func (m *logMirror) write(line string, t time.Time) {
	if m.f == nil {
		if err := os.MkdirAll(filepath.Dir(m.path), 0o700); err != nil {
			return
		}
		f, err := os.OpenFile(m.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return
		}
		m.f = f
		if st, err := f.Stat(); err == nil {
			m.size = st.Size()
		}
	}
	if m.size+int64(len(line))+1 > audit.DefaultMaxBytes {
		if m.dropped.Events == 0 {
			m.dropped.First = t
		}
		m.dropped.Events++
		m.dropped.Last = t
		return
	}
	n, _ := m.f.WriteString(line + "\n")
	m.size += int64(n)
}

func (m *logMirror) close() {
	if m.f != nil {
		m.f.Close()
	}
	if m.dropped.Events > 0 {
		m.dropped.Sidecar, m.dropped.MaxBytes = m.role, audit.DefaultMaxBytes
		if b, err := json.Marshal(m.dropped); err == nil {
			_ = stage.WriteFile(filepath.Join(filepath.Dir(m.path), audit.DroppedFile(m.role)), b, 0o600)
		}
	}
}
