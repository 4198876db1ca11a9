// Package audit owns the one JSONL event format every sidecar writes: one
// line per decision, kept on the host, shown by `claude-bottle logs`.
package audit

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Event is one line of a bottle's decision log. Fields that do not apply
// are omitted. No field ever holds a credential.
type Event struct {
	Time     time.Time `json:"time"`
	Instance string    `json:"instance,omitempty"`
	// Sidecar is egress, cred-proxy, git-gate, supervise or host.
	Sidecar string `json:"sidecar"`
	// Kind says what happened: connect, http, dns, request, fetch, push,
	// reload, proposal, decision, ...
	Kind   string `json:"kind"`
	Client string `json:"client,omitempty"`
	Method string `json:"method,omitempty"`
	Host   string `json:"host,omitempty"`
	Port   int    `json:"port,omitempty"`
	Path   string `json:"path,omitempty"`
	Route  string `json:"route,omitempty"`
	Repo   string `json:"repo,omitempty"`
	Ref    string `json:"ref,omitempty"`
	Old    string `json:"old,omitempty"`
	New    string `json:"new,omitempty"`
	Status int    `json:"status,omitempty"`
	// Verdict is allow, deny or error.
	Verdict string `json:"verdict,omitempty"`
	// Rule is the allowlist rule that allowed; Reason says why it was refused.
	Rule       string  `json:"rule,omitempty"`
	Reason     string  `json:"reason,omitempty"`
	BytesIn    int64   `json:"bytes_in,omitempty"`
	BytesOut   int64   `json:"bytes_out,omitempty"`
	DurationMS float64 `json:"duration_ms,omitempty"`
	ID         string  `json:"id,omitempty"`
	Detail     string  `json:"detail,omitempty"`
}

// Log appends events as JSON lines. The zero value discards; a nil *Log too.
type Log struct {
	mu       sync.Mutex
	w        io.Writer
	instance string
	sidecar  string
	now      func() time.Time
}

// New returns a Log writing to w, stamping every event with instance and sidecar.
func New(w io.Writer, instance, sidecar string) *Log {
	return &Log{w: w, instance: instance, sidecar: sidecar, now: time.Now}
}

// Open appends to DIR/SIDECAR.jsonl, creating it 0600. Close the file when done.
func Open(dir, instance, sidecar string) (*Log, *os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, sidecar+".jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, err
	}
	return New(f, instance, sidecar), f, nil
}

// Write appends one event. Errors are returned but callers usually cannot
// do better than carry on: the decision itself has been taken already.
func (l *Log) Write(e Event) error {
	if l == nil || l.w == nil {
		return nil
	}
	if e.Time.IsZero() {
		e.Time = l.now().UTC()
	}
	if e.Instance == "" {
		e.Instance = l.instance
	}
	if e.Sidecar == "" {
		e.Sidecar = l.sidecar
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err = l.w.Write(b)
	return err
}
