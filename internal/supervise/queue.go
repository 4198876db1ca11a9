// Package supervise owns the supervise sidecar (an MCP server through which
// the agent asks for changes to its own bottle), the request queue on the
// host, and the host-side review that decides.
package supervise

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/jsonstrict"
	"github.com/claude-bottle/claude-bottle/internal/manifest"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

// Request kinds.
const (
	KindEgress     = "egress"
	KindRoute      = "route"
	KindDockerfile = "dockerfile"
)

// Verdicts.
const (
	Approved = "approved"
	Denied   = "denied"
)

// Request is supervise/requests/ID.json, written only by the sidecar.
type Request struct {
	ID         string         `json:"id"`
	Kind       string         `json:"kind"`
	Created    time.Time      `json:"created"`
	Reason     string         `json:"reason"`
	Egress     *EgressAsk     `json:"egress,omitempty"`
	Route      *RouteAsk      `json:"route,omitempty"`
	Dockerfile *DockerfileAsk `json:"dockerfile,omitempty"`
}

// EgressAsk asks for one allowlist rule.
type EgressAsk struct {
	Host string `json:"host"`
	Port int    `json:"port,omitempty"`
}

// RouteAsk asks for a credential route; the agent never names a token.
type RouteAsk struct {
	Service  string `json:"service"`
	Upstream string `json:"upstream"`
}

// DockerfileAsk proposes a whole new Dockerfile for the next launch.
type DockerfileAsk struct {
	Content string `json:"content"`
}

// Decision is supervise/decisions/ID.json, written only by the host.
type Decision struct {
	ID      string    `json:"id"`
	Verdict string    `json:"verdict"`
	Message string    `json:"message,omitempty"`
	Decided time.Time `json:"decided"`
}

// ApplyOptions says how an approval is applied.
type ApplyOptions struct {
	// Persist also writes the change into the agent's manifest (or agent
	// directory) so it outlives this instance. False: this instance only.
	Persist bool
	// Credential is the token source the person picked for a route
	// approval; nil for other kinds (a route approval without one fails).
	Credential *manifest.Credential
}

// Status is a request with its decision, if any.
type Status struct {
	Request  Request
	Decision *Decision // nil while pending
}

// State is pending, approved or denied.
func (s Status) State() string {
	if s.Decision == nil {
		return "pending"
	}
	return s.Decision.Verdict
}

// Queue is the sidecar's view of one bottle's requests: it writes into
// RequestsDir and only ever reads DecisionsDir, which the host owns.
type Queue struct {
	RequestsDir  string
	DecisionsDir string
	// CurrentConfigDir, if set, holds allowlist.txt, shown to the agent.
	CurrentConfigDir string
	// MaxPending caps undecided requests; 0 means DefaultMaxPending.
	MaxPending int
	// Remote, when set, is where requests go to the host and decisions
	// come from (a cluster's API); RequestsDir stays the local record and
	// DecisionsDir is not read.
	Remote Remote

	mu  sync.Mutex // serialises the pending count with the write
	now func() time.Time
}

// Remote carries requests to the host and decisions back when the host
// cannot share a directory with the sidecar (a bottle on a cluster).
type Remote interface {
	// Publish hands a filed request, as raw JSON, to the host.
	Publish(ctx context.Context, req Request, raw []byte) error
	// Decision returns id's valid decision, or nil while it has none.
	Decision(id string) *Decision
}

// decision is id's decision from wherever the host writes them.
func (q *Queue) decision(id string) *Decision {
	if q.Remote != nil {
		return q.Remote.Decision(id)
	}
	return readDecision(q.DecisionsDir, id)
}

// ErrTooMany is returned by File when MaxPending requests are undecided.
var ErrTooMany = errors.New("too many pending requests: wait for decisions (get_request with wait_seconds) before filing more")

// File validates req, gives it an ID and a creation time, and writes it
// into RequestsDir. Kind, Reason and exactly one ask must be set.
func (q *Queue) File(req Request) (Request, error) {
	now := time.Now
	if q.now != nil {
		now = q.now
	}
	req.Created = now().UTC()
	id, err := newID(req.Created)
	if err != nil {
		return Request{}, err
	}
	req.ID = id
	if err := req.Validate(); err != nil {
		return Request{}, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	all, err := q.List()
	if err != nil {
		return Request{}, err
	}
	max := q.MaxPending
	if max <= 0 {
		max = DefaultMaxPending
	}
	pending := 0
	for _, s := range all {
		if s.Decision == nil {
			pending++
		}
	}
	if pending >= max {
		return Request{}, ErrTooMany
	}
	b, err := json.MarshalIndent(req, "", "  ")
	if err != nil {
		return Request{}, err
	}
	// 0644: a request holds no secret, and the host may run as another
	// uid than the sidecar.
	path := filepath.Join(q.RequestsDir, req.ID+".json")
	if err := stage.WriteFile(path, b, 0o644); err != nil {
		return Request{}, fmt.Errorf("write request: %w", err)
	}
	if q.Remote != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := q.Remote.Publish(ctx, req, b); err != nil {
			os.Remove(path)
			return Request{}, fmt.Errorf("the request could not reach the host (%w); it was not filed: try again", err)
		}
	}
	return req, nil
}

// List returns every request in RequestsDir with its decision, oldest
// first. Files that are not valid requests are skipped.
func (q *Queue) List() ([]Status, error) {
	reqs, err := readRequests(q.RequestsDir)
	if err != nil {
		return nil, err
	}
	out := make([]Status, 0, len(reqs))
	for _, r := range reqs {
		out = append(out, Status{Request: r, Decision: q.decision(r.ID)})
	}
	return out, nil
}

// ErrNoRequest is returned for an ID that is not in this bottle's queue.
var ErrNoRequest = errors.New("no such request in this bottle: list_requests shows the ids")

// Get returns one request's status.
func (q *Queue) Get(id string) (Status, error) {
	if err := checkID(id); err != nil {
		return Status{}, err
	}
	r, err := readRequest(q.RequestsDir, id)
	if errors.Is(err, os.ErrNotExist) {
		return Status{}, fmt.Errorf("%s: %w", id, ErrNoRequest)
	}
	if err != nil {
		return Status{}, err
	}
	return Status{Request: r, Decision: q.decision(id)}, nil
}

// Wait returns id's status once it is decided, after d, or when ctx is
// done, whichever is first. It polls because the decisions directory is a
// bind mount, where change notification is not reliable.
func (q *Queue) Wait(ctx context.Context, id string, d time.Duration) (Status, error) {
	st, err := q.Get(id)
	if err != nil || st.Decision != nil || d <= 0 {
		return st, err
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return st, nil
		case <-timer.C:
			return st, nil
		case <-tick.C:
			if dec := q.decision(id); dec != nil {
				st.Decision = dec
				return st, nil
			}
		}
	}
}

func newID(t time.Time) (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	return "r-" + t.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:]), nil
}

// readFile reads a regular file of at most maxRequestFile bytes. Symlinks
// are refused: the directory is writable from inside a container and the
// host reads it, possibly as root.
func readFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxRequestFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxRequestFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxRequestFile)
	}
	return b, nil
}

// readRequest reads and validates dir/ID.json; its id must match its name.
func readRequest(dir, id string) (Request, error) {
	b, err := readFile(filepath.Join(dir, id+".json"))
	if err != nil {
		return Request{}, err
	}
	return ParseRequest(b, id)
}

// ParseRequest decodes and validates a request that must carry id: what
// the host accepts from a sidecar, by file or through a cluster's API.
func ParseRequest(b []byte, id string) (Request, error) {
	if len(b) > maxRequestFile {
		return Request{}, fmt.Errorf("request %s is larger than %d bytes", id, maxRequestFile)
	}
	var r Request
	if err := jsonstrict.Decode(b, &r); err != nil {
		return Request{}, fmt.Errorf("request %s: %w", id, err)
	}
	if r.ID != id {
		return Request{}, fmt.Errorf("request %s carries id %q", id, r.ID)
	}
	if err := r.Validate(); err != nil {
		return Request{}, fmt.Errorf("request %s: %w", id, err)
	}
	return r, nil
}

// readRequests returns the valid requests in dir, oldest first. A missing
// directory is an empty queue.
func readRequests(dir string) ([]Request, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read requests: %w", err)
	}
	var out []Request
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !ValidID(id) {
			continue
		}
		r, err := readRequest(dir, id)
		if err != nil {
			continue // not a request we can show or decide: fail closed
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// readDecision returns the valid decision for id, or nil. A decision that
// does not parse, or names another id, counts as none: pending is the
// closed state.
func readDecision(dir, id string) *Decision {
	b, err := readFile(filepath.Join(dir, id+".json"))
	if err != nil {
		return nil
	}
	return ParseDecision(b, id)
}

// ParseDecision returns the valid decision for id in b, or nil.
func ParseDecision(b []byte, id string) *Decision {
	var d Decision
	if len(b) > maxRequestFile || jsonstrict.Decode(b, &d) != nil || d.ID != id || d.Validate() != nil {
		return nil
	}
	return &d
}
