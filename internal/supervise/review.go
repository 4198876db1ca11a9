package supervise

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/claude-bottle/claude-bottle/internal/audit"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

// Pending is a request found in an instance's stage directory, with its
// decision if it has one (nil: still pending).
type Pending struct {
	Instance string    `json:"instance"`
	Request  Request   `json:"request"`
	Decision *Decision `json:"decision,omitempty"`
}

// Applier makes an approved request real: an egress rule or a credential
// route in the running instance, a Dockerfile for the next launch. It is
// called before the decision is written, so a failure leaves the request
// pending.
type Applier interface {
	Apply(ctx context.Context, instance string, req Request, opts ApplyOptions) error
}

// ErrNotFound is returned when no instance has a request with the ID.
var ErrNotFound = errors.New("no such request")

// List returns every request of every instance under state, oldest first.
// Files that are not valid requests are skipped: they can be neither shown
// nor approved.
func List(state string) ([]Pending, error) {
	insts, err := stage.Instances(state)
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	var out []Pending
	for _, inst := range insts {
		dir := stage.InstanceDir(state, inst)
		reqs, err := readRequests(filepath.Join(dir, stage.SuperviseReqs))
		if err != nil {
			return nil, fmt.Errorf("instance %s: %w", inst, err)
		}
		for _, r := range reqs {
			out = append(out, Pending{Instance: inst, Request: r, Decision: readDecision(filepath.Join(dir, stage.SuperviseDecided), r.ID)})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Request, out[j].Request
		if !a.Created.Equal(b.Created) {
			return a.Created.Before(b.Created)
		}
		return a.ID < b.ID
	})
	return out, nil
}

// Find returns the request with id from whichever instance holds it.
func Find(state, id string) (Pending, error) {
	if err := checkID(id); err != nil {
		return Pending{}, err
	}
	all, err := List(state)
	if err != nil {
		return Pending{}, err
	}
	var found []Pending
	for _, p := range all {
		if p.Request.ID == id {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 0:
		return Pending{}, fmt.Errorf("%s: %w (claude-bottle supervise lists pending ones)", id, ErrNotFound)
	case 1:
		return found[0], nil
	default:
		names := make([]string, len(found))
		for i, p := range found {
			names[i] = p.Instance
		}
		return Pending{}, fmt.Errorf("request %s exists in several instances (%s): refusing to guess", id, strings.Join(names, ", "))
	}
}

// Decide records verdict (Approved or Denied) for request id of instance.
// An approval is applied first; if that fails nothing is written and the
// request stays pending. opts is passed to apply.
func Decide(ctx context.Context, state, instance, id, verdict, message string, apply Applier, opts ApplyOptions) error {
	if err := checkID(id); err != nil {
		return err
	}
	if instance == "" || instance != filepath.Base(instance) || strings.HasPrefix(instance, ".") {
		return fmt.Errorf("invalid instance name %q", instance)
	}
	if verdict != Approved && verdict != Denied {
		return fmt.Errorf("invalid verdict %q: approved or denied", verdict)
	}
	if utf8.RuneCountInString(message) > MaxMessage {
		return fmt.Errorf("message is longer than %d characters", MaxMessage)
	}
	if err := checkText("message", message, "\n\t"); err != nil {
		return err
	}
	dir := stage.InstanceDir(state, instance)
	decDir := filepath.Join(dir, stage.SuperviseDecided)
	req, err := readRequest(filepath.Join(dir, stage.SuperviseReqs), id)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s in instance %s: %w", id, instance, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	decPath := filepath.Join(decDir, id+".json")
	if _, err := os.Lstat(decPath); err == nil {
		prev := readDecision(decDir, id)
		if prev != nil {
			return fmt.Errorf("request %s is already decided: %s", id, prev.Verdict)
		}
		return fmt.Errorf("request %s already has a decision file", id)
	}

	// The instance's decision log, which outlives the instance.
	al, f, err := audit.Open(stage.LogDir(state, instance), instance, "host")
	if err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	defer f.Close()
	// The host's lines redact what the instance's egress canary refuses.
	al.SetSecrets(stageSecrets(dir))
	ev := audit.Event{Kind: "decision", ID: id, Detail: req.Kind + " " + req.What()}
	if req.Egress != nil {
		ev.Host, ev.Port = req.Egress.Host, req.Egress.Port
	}
	if req.Route != nil {
		ev.Route = req.Route.Service
	}

	if verdict == Approved {
		if apply == nil {
			return errors.New("cannot approve: no applier is configured")
		}
		if err := apply.Apply(ctx, instance, req, opts); err != nil {
			ev.Verdict, ev.Reason = "error", "apply failed: "+err.Error()
			_ = al.Write(ev)
			return fmt.Errorf("apply %s (left pending): %w", id, err)
		}
	}
	d := Decision{ID: id, Verdict: verdict, Message: message, Decided: time.Now().UTC()}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(decDir, 0o755); err != nil {
		return fmt.Errorf("decisions dir: %w", err)
	}
	if err := createOnce(decPath, b, 0o644); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("request %s was decided concurrently", id)
		}
		return fmt.Errorf("write decision: %w", err)
	}
	ev.Verdict = "allow"
	if verdict == Denied {
		ev.Verdict, ev.Reason = "deny", "denied by the supervising person"
	}
	if message != "" {
		ev.Detail += " (" + message + ")"
	}
	_ = al.Write(ev)
	return nil
}

// stageSecrets reads the instance's credential values (egress/secrets.json,
// every token the launch resolved) for the log's redactor; none if the
// file is unreadable.
func stageSecrets(dir string) []string {
	var s struct {
		Values []string `json:"values"`
	}
	b, err := os.ReadFile(filepath.Join(dir, stage.EgressSecrets))
	if err == nil {
		_ = json.Unmarshal(b, &s)
	}
	return s.Values
}

// createOnce writes path atomically and only if it does not exist yet:
// link(2) of a complete temp file fails with EEXIST, so two reviewers
// deciding at once cannot overwrite each other's verdict.
func createOnce(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Link(tmp, path)
}
