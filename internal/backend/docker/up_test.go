package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/backend"
	"github.com/claude-bottle/claude-bottle/internal/docker"
	"github.com/claude-bottle/claude-bottle/internal/golden"
	"github.com/claude-bottle/claude-bottle/internal/manifest"
	"github.com/claude-bottle/claude-bottle/internal/plan"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

// --cwd never copies a file the bottle reads a secret from.
func TestSecretFilesOfABottle(t *testing.T) {
	s := &plan.Spec{
		Routes: []plan.Route{{Credentials: []manifest.Credential{{Env: "X"}, {File: "/w/token"}}}},
		Repos:  []plan.Repo{{Key: "/w/deploy_key"}, {Token: &manifest.Credential{File: "/w/gh"}}},
	}
	got := strings.Join(secretFiles(s), ",")
	if got != "/w/token,/w/deploy_key,/w/gh" {
		t.Fatalf("secret files %q", got)
	}
}

var testEnv = map[string]string{
	"ANTHROPIC_API_KEY": "sk-ant-api03-test-key-for-the-fake-engine",
	"GITHUB_TOKEN":      "ghp_testtokenforthefakeengine0000000000",
}

// testPlans are the bottles the hermetic tests launch: the default one
// (egress, cred-proxy, supervise), the same with --cwd (a derived image),
// and a full one with all four sidecars, under runc and under gVisor.
func testPlans(t *testing.T) map[string]*plan.Plan {
	t.Helper()
	if err := os.Chmod(filepath.Join("..", "..", "plan", "testdata", "keys", "deploy"), 0o600); err != nil {
		t.Fatal(err)
	}
	full, err := manifest.Load(filepath.Join("testdata", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	host := plan.Host{Env: map[string]string{}, Owner: "testhost/1", UID: os.Getuid(), GID: os.Getgid(),
		AgentDockerfile: "FROM debian:bookworm-slim\n", RunscNote: "runsc is not registered with the Docker engine"}
	out := map[string]*plan.Plan{}
	runsc := host
	runsc.Runsc, runsc.RunscNote = true, ""
	for name, tc := range map[string]struct {
		m    *manifest.Manifest
		opts plan.Options
		host plan.Host
	}{
		"default":     {manifest.Default(), plan.Options{Agent: "claude"}, host},
		"default-cwd": {manifest.Default(), plan.Options{Agent: "claude", Cwd: "/home/me/src/app"}, host},
		"full":        {full, plan.Options{Agent: "dev"}, host},
		// Under gVisor a sidecar's hosts file names egress: it waits for it.
		"full-runsc": {full, plan.Options{Agent: "dev"}, runsc},
	} {
		p, err := plan.Build(tc.m, tc.opts, plan.Observed{}, tc.host)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = p
	}
	return out
}

// The operation list is what `plan --json` prints: pinned by golden files
// (go test ./internal/backend/docker -update rewrites them).
func TestOperationsGolden(t *testing.T) {
	for name, p := range testPlans(t) {
		t.Run(name, func(t *testing.T) {
			ops := Operations(p)
			js, err := json.MarshalIndent(ops, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			var txt strings.Builder
			plan.WriteOps(&txt, ops, "")
			for ext, got := range map[string][]byte{".json": append(js, '\n'), ".txt": []byte(txt.String())} {
				golden.Check(t, "./internal/backend/docker", filepath.Join("testdata", "ops-"+name+ext), got)
			}
		})
	}
}

// What the goldens show, asserted directly so that a careless -update
// cannot hide a broken order: every op's prerequisites come before it and
// exist, each sidecar is created, started and (with a check) made ready,
// and the agent is created last, after every sidecar started.
func TestOperationsOrder(t *testing.T) {
	for name, p := range testPlans(t) {
		ops := Operations(p)
		seen := map[string]bool{}
		for _, o := range ops {
			if seen[o.ID] {
				t.Errorf("%s: %s twice", name, o.ID)
			}
			for _, a := range o.After {
				if !seen[a] {
					t.Errorf("%s: %s waits for %q, which does not come before it", name, o.ID, a)
				}
			}
			seen[o.ID] = true
		}
		last := ops[len(ops)-1]
		if last.ID != OpCreate+" "+plan.RoleAgent {
			t.Errorf("%s: the last op is %s, want the agent's create", name, last.ID)
		}
		for _, c := range p.Docker.Containers {
			if c.Role == plan.RoleAgent {
				continue
			}
			for _, k := range []string{OpCreate, OpStart, OpReady} {
				if !seen[k+" "+c.Role] {
					t.Errorf("%s: no %s %s", name, k, c.Role)
				}
			}
			if !slices.Contains(last.After, OpStart+" "+c.Role) {
				t.Errorf("%s: the agent does not wait for %s to start", name, c.Role)
			}
		}
		if first := ops[0]; (p.Spec.DerivedImage != "") != (first.Kind == OpImage) {
			t.Errorf("%s: first op %s with derived image %q", name, first.ID, p.Spec.DerivedImage)
		}
	}
}

func testBackend(t *testing.T, eng *fakeEngine) *Backend {
	t.Helper()
	return &Backend{
		Options: Options{Log: slog.New(slog.NewTextHandler(t.Output(), nil)), State: t.TempDir(),
			Getenv: func(k string) string { return testEnv[k] }, ReadyTimeout: 300 * time.Millisecond},
		eng: eng,
	}
}

// Up on the fake engine makes exactly the plan's networks, sidecars, agent
// and volume, the sidecars running and the agent created; Down removes all.
func TestUpDown(t *testing.T) {
	for name, p := range testPlans(t) {
		if p.Spec.DerivedImage != "" {
			continue // the image build needs the real engine (e2e/run)
		}
		t.Run(name, func(t *testing.T) {
			eng := newFakeEngine()
			b := testBackend(t, eng)
			claimed := 0
			bt, err := b.Up(context.Background(), p, backend.UpOptions{Claimed: func() { claimed++ }})
			if err != nil {
				t.Fatal(err)
			}
			if claimed != 1 {
				t.Errorf("claimed called %d times", claimed)
			}
			var want []string
			for _, n := range p.Docker.Networks {
				want = append(want, "network "+n.Name)
			}
			for _, c := range p.Docker.Containers {
				want = append(want, "container "+c.Name)
			}
			want = append(want, "volume "+p.Spec.Workspace)
			sort.Strings(want)
			if got := eng.left(); !slices.Equal(got, want) {
				t.Errorf("after Up the engine has\n%v\nwant\n%v", got, want)
			}
			for _, c := range p.Docker.Containers {
				info, err := eng.InspectContainer(context.Background(), c.Name)
				if err != nil || info.Running == (c.Role == plan.RoleAgent) {
					t.Errorf("%s: running=%v err=%v", c.Role, info.Running, err)
				}
			}
			for _, c := range eng.ctrs {
				agent := c.spec.Labels[plan.LabelRole] == plan.RoleAgent
				if c.spec.OpenStdin != agent || c.spec.StdinOnce != agent || c.spec.Init != agent || (len(c.spec.DNS) == 1) != agent {
					t.Errorf("%s: stdin %v once %v init %v dns %v", c.spec.Name, c.spec.OpenStdin, c.spec.StdinOnce, c.spec.Init, c.spec.DNS)
				}
			}
			if bt.Agent != "id-"+p.Docker.Container(plan.RoleAgent).Name {
				t.Errorf("agent handle %q", bt.Agent)
			}
			if _, err := os.Stat(filepath.Join(stage.InstanceDir(b.State, p.Instance), stage.PlanFile)); err != nil {
				t.Errorf("stage directory: %v", err)
			}
			ps, err := b.List(context.Background())
			if err != nil || len(ps) != 1 || ps[0].Instance != p.Instance || !ps[0].Live || len(ps[0].Sidecars) != len(p.Docker.Containers)-1 {
				t.Errorf("List: %+v %v", ps, err)
			}
			if orphans, err := b.Orphans(context.Background()); err != nil || len(orphans) != 0 {
				t.Errorf("Orphans of a live bottle: %v %v", orphans, err)
			}
			if err := b.Down(context.Background(), p.Instance); err != nil {
				t.Fatal(err)
			}
			if left := eng.left(); len(left) != 0 {
				t.Errorf("after Down: %v", left)
			}
			if _, err := os.Stat(stage.InstanceDir(b.State, p.Instance)); !os.IsNotExist(err) {
				t.Errorf("stage directory after Down: %v", err)
			}
		})
	}
}

// A failure at any operation of the default and the full bottle leaves
// nothing: what the finished operations created is removed (each thing
// once, nothing that was never made), and so is the stage directory.
// Failures are injected twice over: before the op runs, and as the
// engine's own error for the op's call.
func TestUpFailsAtEveryOperationAndLeavesNothing(t *testing.T) {
	for name, p := range testPlans(t) {
		if p.Spec.DerivedImage != "" {
			continue
		}
		ops := Operations(p)
		for k, op := range ops {
			for _, how := range []string{"op", "engine"} {
				if call, _ := engineCall(p, op); how == "engine" && call == "" {
					continue // no engine call: the op injection covers it
				}
				t.Run(fmt.Sprintf("%s/%02d-%s/%s", name, k+1, strings.ReplaceAll(op.ID, " ", "-"), how), func(t *testing.T) {
					eng := newFakeEngine()
					b := testBackend(t, eng)
					boom := fmt.Errorf("injected failure at %s", op.ID)
					switch how {
					case "op":
						b.failOp = func(o plan.Op) error {
							if o.ID == op.ID {
								return boom
							}
							return nil
						}
					case "engine":
						call, target := engineCall(p, op)
						eng.fail = func(c, n string) error {
							if c == call && n == target {
								return boom
							}
							return nil
						}
					}
					_, err := b.Up(context.Background(), p, backend.UpOptions{})
					if err == nil || !strings.Contains(err.Error(), boom.Error()) {
						t.Fatalf("Up: %v, want the injected failure", err)
					}
					if left := eng.left(); len(left) != 0 {
						t.Errorf("left behind: %v", left)
					}
					created := slices.Sorted(slices.Values(eng.created))
					removed := slices.Sorted(slices.Values(eng.removed))
					if !slices.Equal(created, removed) {
						t.Errorf("created %v\nremoved %v", created, removed)
					}
					if _, err := os.Stat(stage.InstanceDir(b.State, p.Instance)); !os.IsNotExist(err) {
						t.Errorf("stage directory left: %v", err)
					}
				})
			}
		}
	}
}

// engineCall is the fake engine's call (and its name argument) that an op
// makes, "" when it makes none.
func engineCall(p *plan.Plan, o plan.Op) (call, name string) {
	switch o.Kind {
	case OpNetwork:
		return "CreateNetwork", o.Target
	case OpVolume:
		return "CreateVolume", o.Target
	case OpCreate:
		return "CreateContainer", p.Docker.Container(o.Target).Name
	case OpStart:
		return "StartContainer", p.Docker.Container(o.Target).Name
	case OpReady:
		return "Exec", p.Docker.Container(o.Target).Name
	}
	return "", ""
}

// Ctrl-C while a sidecar is getting ready: Up returns the cancellation
// and leaves nothing.
func TestUpCancelledLeavesNothing(t *testing.T) {
	p := testPlans(t)["full"]
	eng := newFakeEngine()
	b := testBackend(t, eng)
	ctx, cancel := context.WithCancel(context.Background())
	eng.fail = func(call, name string) error {
		if call == "Exec" && name == p.Docker.Container(plan.RoleGitGate).Name {
			cancel()
			return errors.New("not ready yet")
		}
		return nil
	}
	_, err := b.Up(ctx, p, backend.UpOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Up: %v, want context.Canceled", err)
	}
	if left := eng.left(); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

// A runtime probe's container left by a killed launcher is an orphan that
// cleanup removes, and never a bottle that ps lists; a live launcher's is
// neither.
func TestProbeContainersOfAKilledLauncher(t *testing.T) {
	eng := newFakeEngine()
	b := testBackend(t, eng)
	ctx := context.Background()
	dead := "claude-bottle-runsc-probe-1-1"
	l := probeLabels(roleProbe, dead)
	host, _, _ := strings.Cut(l[plan.LabelOwner], "/")
	l[plan.LabelOwner] = host + "/999999999" // no such process
	for _, s := range []docker.ContainerSpec{
		{Name: dead, Network: "none", Labels: l},
		{Name: "claude-bottle-runtime-reap-live", Network: "none", Labels: probeLabels(roleReap, "claude-bottle-runtime-reap-live")},
	} {
		if _, err := eng.CreateContainer(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if ps, err := b.List(ctx); err != nil || len(ps) != 0 {
		t.Errorf("List shows probe containers: %+v %v", ps, err)
	}
	orphans, err := b.Orphans(ctx)
	if err != nil || len(orphans) != 1 || orphans[0].Name != dead || orphans[0].Instance != dead {
		t.Fatalf("Orphans = %+v %v, want only %s", orphans, err, dead)
	}
	if err := b.Down(ctx, dead); err != nil {
		t.Fatal(err)
	}
	if got := eng.left(); !slices.Equal(got, []string{"container claude-bottle-runtime-reap-live"}) {
		t.Errorf("after cleanup of the orphan the engine has %v", got)
	}
}
