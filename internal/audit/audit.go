// Package audit owns the one JSONL event format every sidecar writes: one
// line per decision, kept on the host, shown by `claude-bottle logs`.
//
// Every line passes one writer, which is where the log's promises are kept
// for every sidecar at once: no known credential in any field (Redactor),
// no character a terminal would act on or a reader cannot see
// (safetext.JSON), and a bound on the file's size, past which events are
// counted, not written (DroppedFile).
package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/safetext"
)

// Event is one line of a bottle's decision log. Fields that do not apply
// are omitted. No field ever holds a credential the writer was told of:
// Write redacts every string field.
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

// DefaultMaxBytes bounds each sidecar's log file of an instance. The DNS
// stub alone logs every query the agent makes, so without a bound the
// agent could fill the host's disk; five sidecars at this size stay under
// 200 MiB per instance.
const DefaultMaxBytes int64 = 32 << 20

// Log appends events as JSON lines. The zero value discards; a nil *Log too.
type Log struct {
	mu       sync.Mutex
	w        io.Writer
	instance string
	sidecar  string
	now      func() time.Time
	redact   *Redactor

	// The bound: max (0: none) over size, the bytes written so far, and
	// what could not be written, recorded in dropPath when it is set.
	max, size int64
	dropped   Dropped
	dropPath  string
	dropSaved time.Time
	// flushPending: a timer will save the count.
	flushPending bool
	file         *os.File
}

// Dropped is a sidecar's DroppedFile: how many events its full log did not
// take, and when the first and the last of them came.
type Dropped struct {
	Sidecar string `json:"sidecar"`
	Events  int64  `json:"events"`
	// MaxBytes is the bound the log reached.
	MaxBytes int64     `json:"max_bytes,omitempty"`
	First    time.Time `json:"first,omitzero"`
	Last     time.Time `json:"last,omitzero"`
}

// DroppedFile is the name of the file beside SIDECAR.jsonl that counts the
// events the bounded log dropped.
func DroppedFile(sidecar string) string { return sidecar + ".dropped.json" }

// New returns a Log writing to w, stamping every event with instance and
// sidecar. It has no bound; Open's logs do.
func New(w io.Writer, instance, sidecar string) *Log {
	return &Log{w: w, instance: instance, sidecar: sidecar, now: time.Now}
}

// StdoutEnv, set to 1 in a sidecar's environment, makes Open's log also
// write every line to stdout (the Kubernetes backend's sidecar pods).
const StdoutEnv = "CLAUDE_BOTTLE_AUDIT_STDOUT"

// Open appends to DIR/SIDECAR.jsonl, creating it 0600, bounded at
// DefaultMaxBytes (SetLimit changes it). Close the returned Closer (the
// Log itself) when done: it records the final count of dropped events.
func Open(dir, instance, sidecar string) (*Log, io.Closer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, sidecar+".jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, err
	}
	l := New(f, instance, sidecar)
	if os.Getenv(StdoutEnv) == "1" {
		// On a cluster the host reads a pod's log through the API: every
		// line goes to stdout too (within the same bound).
		l.w = io.MultiWriter(f, os.Stdout)
	}
	l.file = f
	l.max = DefaultMaxBytes
	if info, err := f.Stat(); err == nil {
		l.size = info.Size()
	}
	// A restarted sidecar goes on counting where it stopped.
	l.dropPath = filepath.Join(dir, DroppedFile(sidecar))
	if b, err := os.ReadFile(l.dropPath); err == nil {
		_ = json.Unmarshal(b, &l.dropped)
	}
	l.dropped.Sidecar = sidecar
	return l, l, nil
}

// SetLimit bounds the log at max bytes; 0 removes the bound.
func (l *Log) SetLimit(max int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.max = max
}

// SetSecrets makes every later line redact these credential values (see
// Redactor); a sidecar calls it with what it holds, again on reload.
func (l *Log) SetSecrets(values []string) {
	if l == nil {
		return
	}
	r := NewRedactor(values)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.redact = r
}

// Dropped returns the count of events the bound has dropped so far.
func (l *Log) Dropped() int64 {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dropped.Events
}

// Close records the dropped count and closes the file Open opened.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dropped.Events > 0 {
		l.saveDropped()
	}
	if l.file != nil {
		return l.file.Close()
	}
	return nil
}

// Write appends one event. Errors are returned but callers usually cannot
// do better than carry on: the decision itself has been taken already. An
// event past the bound is counted, not written, and is no error.
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
	l.mu.Lock()
	defer l.mu.Unlock()
	redactFields(&e, l.redact)
	b, err := line(e)
	if err != nil {
		return err
	}
	if l.max > 0 && l.size+int64(len(b)) > l.max {
		return l.drop(e.Time)
	}
	n, err := l.w.Write(b)
	l.size += int64(n)
	return err
}

// line is the event as one JSON line that shows every character as itself.
func line(e Event) ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	return safetext.JSON(append(b, '\n')), nil
}

// drop counts an event the full log cannot take. The first one writes a
// last line saying so (allowed past the bound: it is one line, once per
// file).
func (l *Log) drop(at time.Time) error {
	if l.dropped.Events == 0 || l.dropped.First.IsZero() {
		l.dropped.First = at
	}
	l.dropped.Events++
	l.dropped.Last = at
	l.dropped.MaxBytes = l.max
	if l.dropped.Events == 1 {
		b, err := line(Event{Time: at, Instance: l.instance, Sidecar: l.sidecar, Kind: "log-full", Verdict: "error",
			Reason: fmt.Sprintf("the log reached its bound of %d bytes; later events are only counted", l.max),
			Detail: DroppedFile(l.sidecar)})
		if err == nil {
			n, _ := l.w.Write(b)
			l.size += int64(n)
		}
	}
	// A bottle's teardown kills its sidecars: the count must be on disk
	// promptly, not at Close. It is saved at once when the last save is
	// older than dropFlush, else by a timer that fires dropFlush later.
	if now := time.Now(); now.Sub(l.dropSaved) >= dropFlush {
		l.saveDropped()
		l.dropSaved = now
	} else if !l.flushPending {
		l.flushPending = true
		time.AfterFunc(dropFlush, func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.flushPending = false
			l.saveDropped()
			l.dropSaved = time.Now()
		})
	}
	return nil
}

// dropFlush is how long a dropped event may go uncounted on disk.
const dropFlush = 100 * time.Millisecond

// saveDropped writes the count by rename, so a reader never sees half of it.
func (l *Log) saveDropped() {
	if l.dropPath == "" {
		return
	}
	b, err := json.Marshal(l.dropped)
	if err != nil {
		return
	}
	tmp := l.dropPath + ".tmp"
	if os.WriteFile(tmp, append(b, '\n'), 0o600) == nil {
		_ = os.Rename(tmp, l.dropPath)
	}
}

var stringType = reflect.TypeFor[string]()

// redactFields runs r over every string field of e, found by reflection so
// that a field added later is covered without anyone remembering to.
func redactFields(e *Event, r *Redactor) {
	if r == nil {
		return
	}
	v := reflect.ValueOf(e).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Type() == stringType {
			f.SetString(r.Redact(f.String()))
		}
	}
}
