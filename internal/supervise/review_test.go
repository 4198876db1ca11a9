package supervise

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/stage"
)

type applied struct {
	instance string
	req      Request
	opts     ApplyOptions
}

type fakeApplier struct {
	calls []applied
	err   error
}

func (f *fakeApplier) Apply(_ context.Context, instance string, req Request, opts ApplyOptions) error {
	f.calls = append(f.calls, applied{instance, req, opts})
	return f.err
}

// stageRequest writes a request as the sidecar would into instance's stage dir.
func stageRequest(t *testing.T, state, instance string, r Request) {
	t.Helper()
	q := &Queue{
		RequestsDir:  filepath.Join(stage.InstanceDir(state, instance), stage.SuperviseReqs),
		DecisionsDir: filepath.Join(stage.InstanceDir(state, instance), stage.SuperviseDecided),
	}
	for _, d := range []string{q.RequestsDir, q.DecisionsDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := json.Marshal(r)
	if err := os.WriteFile(filepath.Join(q.RequestsDir, r.ID+".json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func egressReq(id string, created time.Time) Request {
	return Request{ID: id, Kind: KindEgress, Created: created, Reason: "need it", Egress: &EgressAsk{Host: "example.com", Port: 443}}
}

func TestListAcrossInstancesSorted(t *testing.T) {
	state := t.TempDir()
	t0 := time.Date(2026, 11, 29, 18, 0, 0, 0, time.UTC)
	stageRequest(t, state, "b", egressReq("r-2", t0.Add(2*time.Second)))
	stageRequest(t, state, "a", egressReq("r-3", t0.Add(3*time.Second)))
	stageRequest(t, state, "a", egressReq("r-1", t0.Add(1*time.Second)))
	// Not requests: skipped, never shown or decidable.
	bad := egressReq("r-4", t0)
	bad.Reason = "\x1b]0;evil\a"
	stageRequest(t, state, "a", bad)
	reqDir := filepath.Join(stage.InstanceDir(state, "a"), stage.SuperviseReqs)
	if err := os.Symlink("/etc/hostname", filepath.Join(reqDir, "r-5.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(reqDir, "r-6.json"), []byte(`{"id":"r-7","kind":"egress"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	ps, err := List(state)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.Instance+"/"+p.Request.ID)
	}
	if strings.Join(got, " ") != "a/r-1 b/r-2 a/r-3" {
		t.Fatalf("List: %v", got)
	}
	if _, err := Find(state, "r-4"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Find invalid request: %v", err)
	}
	empty, err := List(t.TempDir())
	if err != nil || len(empty) != 0 {
		t.Fatalf("List of empty state: %v %v", empty, err)
	}
}

func TestDecide(t *testing.T) {
	t0 := time.Now().UTC()
	cases := []struct {
		name      string
		verdict   string
		applyErr  error
		nilApply  bool
		opts      ApplyOptions
		wantErr   string
		wantCalls int
		wantFile  bool
	}{
		{name: "approve", verdict: Approved, opts: ApplyOptions{Persist: true}, wantCalls: 1, wantFile: true},
		{name: "deny", verdict: Denied, wantCalls: 0, wantFile: true},
		{name: "apply fails", verdict: Approved, applyErr: errors.New("policy.json is read-only"), wantErr: "policy.json is read-only", wantCalls: 1},
		{name: "no applier", verdict: Approved, nilApply: true, wantErr: "no applier"},
		{name: "bad verdict", verdict: "maybe", wantErr: "invalid verdict"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			state := t.TempDir()
			stageRequest(t, state, "inst", egressReq("r-1", t0))
			fa := &fakeApplier{err: c.applyErr}
			var ap Applier = fa
			if c.nilApply {
				ap = nil
			}
			err := Decide(context.Background(), state, "inst", "r-1", c.verdict, "msg", ap, c.opts)
			if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("Decide: %v, want %q", err, c.wantErr)
			}
			if len(fa.calls) != c.wantCalls {
				t.Fatalf("apply calls %d, want %d", len(fa.calls), c.wantCalls)
			}
			if c.wantCalls == 1 && (fa.calls[0].instance != "inst" || fa.calls[0].req.ID != "r-1" || fa.calls[0].opts != c.opts) {
				t.Fatalf("apply call %+v", fa.calls[0])
			}
			d := readDecision(filepath.Join(stage.InstanceDir(state, "inst"), stage.SuperviseDecided), "r-1")
			if (d != nil) != c.wantFile {
				t.Fatalf("decision %+v, want file %v", d, c.wantFile)
			}
			if d != nil && (d.Verdict != c.verdict || d.Message != "msg") {
				t.Fatalf("decision %+v", d)
			}
			log, _ := os.ReadFile(filepath.Join(stage.LogDir(state, "inst"), "host.jsonl"))
			if c.wantFile && !strings.Contains(string(log), `"kind":"decision"`) {
				t.Fatalf("no decision audited: %q", log)
			}
			if c.applyErr != nil && !strings.Contains(string(log), `"verdict":"error"`) {
				t.Fatalf("apply failure not audited: %q", log)
			}
			if c.wantFile {
				err := Decide(context.Background(), state, "inst", "r-1", Denied, "", fa, ApplyOptions{})
				if err == nil || !strings.Contains(err.Error(), "already decided") {
					t.Fatalf("second decision: %v", err)
				}
			}
		})
	}
}

func TestDecideRefusesBadNames(t *testing.T) {
	state := t.TempDir()
	stageRequest(t, state, "inst", egressReq("r-1", time.Now()))
	for _, c := range []struct{ instance, id, want string }{
		{"inst", "../r-1", "invalid request id"},
		{"../inst", "r-1", "invalid instance"},
		{"inst", "r-2", "no such request"},
		{"other", "r-1", "no such request"},
	} {
		err := Decide(context.Background(), state, c.instance, c.id, Denied, "", nil, ApplyOptions{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Decide(%q, %q): %v, want %q", c.instance, c.id, err, c.want)
		}
	}
	stageRequest(t, state, "other", egressReq("r-1", time.Now()))
	if _, err := Find(state, "r-1"); err == nil || !strings.Contains(err.Error(), "several instances") {
		t.Errorf("ambiguous Find: %v", err)
	}
}
