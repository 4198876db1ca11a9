// Package e2etest is the harness of the black-box scenarios: it builds the
// claude-bottle binary once per test process, makes sure the images exist,
// gives each test its own state directory and manifest, runs the binary,
// and builds and starts fixture containers on networks the test owns.
package e2etest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/docker"
	"github.com/claude-bottle/claude-bottle/internal/plan"
)

// Engine returns a client for the real engine. Without one the test fails
// when CI=true (a skipped suite must never pass as green) and skips
// otherwise, saying how to start it.
func Engine(t testing.TB) *docker.Client {
	t.Helper()
	if testing.Short() {
		// The -short tier runs no engine, whatever CI says: it is the
		// seconds-long check before the real suites.
		t.Skip("-short: this test needs the Docker engine")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := docker.New(ctx)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but the Docker engine is unreachable: %v", err)
		}
		t.Skipf("no Docker engine (%v): start dockerd to run the e2e scenarios", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Root is the module root.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Binary builds claude-bottle (static, as the sidecar image needs) once per
// test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("claude-bottle-e2e-%d", os.Getpid()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "claude-bottle")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/claude-bottle")
		cmd.Dir = Root()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

var (
	imgOnce sync.Once
	imgErr  error
)

// Images builds (or reuses) the project's images once per test process,
// before any scenario's own timeout starts.
func Images(t testing.TB) {
	t.Helper()
	bin := Binary(t)
	imgOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "images", "build")
		cmd.Env = os.Environ()
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			imgErr = fmt.Errorf("claude-bottle images build: %v\n%s", err, tailLines(out.String(), 30))
		}
	})
	if imgErr != nil {
		t.Fatal(imgErr)
	}
}

// Env is one test's isolated claude-bottle world: a working directory with
// a manifest, and a state directory.
type Env struct {
	T     testing.TB
	Bin   string
	Dir   string
	State string
	// Vars are extra environment variables for every command.
	Vars map[string]string
	// Runtime is the OCI runtime every bottle of this env must run under
	// (CLAUDE_BOTTLE_RUNTIME is set to it, so the CLI fails rather than
	// falls back); "" lets the bottle decide.
	Runtime string
}

// wantRuntime is the runtime bottles must get: the caller's explicit
// CLAUDE_BOTTLE_RUNTIME (.ci/run runs part of e2e/run again with runc, as
// on a host without gVisor), else runsc under CI (which installs gVisor, so
// a missing or broken runsc fails the suites instead of passing on runc).
func wantRuntime() string {
	if v := os.Getenv("CLAUDE_BOTTLE_RUNTIME"); v != "" {
		if v == "auto" {
			return ""
		}
		return v
	}
	if os.Getenv("CI") == "true" {
		return "runsc"
	}
	return ""
}

// NewEnv makes a working directory holding manifest (if not "") and a
// fresh state directory. It checks at cleanup that the state directory
// holds no instance stage directory any more.
func NewEnv(t testing.TB, manifest string) *Env {
	t.Helper()
	e := &Env{T: t, Bin: Binary(t), Dir: t.TempDir(), State: t.TempDir(), Vars: map[string]string{}, Runtime: wantRuntime()}
	if e.Runtime != "" {
		e.Vars["CLAUDE_BOTTLE_RUNTIME"] = e.Runtime
	}
	if manifest != "" {
		if err := os.WriteFile(filepath.Join(e.Dir, "claude-bottle.yaml"), []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// TermEnv is what a person's shell would have for this env: its state
// directory and variables (for a command started in a terminal).
func (e *Env) TermEnv() map[string]string {
	env := map[string]string{"CLAUDE_BOTTLE_STATE_DIR": e.State}
	for k, v := range e.Vars {
		env[k] = v
	}
	return env
}

// Pending is the part of `claude-bottle supervise --json` the tests read.
type Pending struct {
	Instance string `json:"instance"`
	Request  struct {
		ID     string `json:"id"`
		Kind   string `json:"kind"`
		Reason string `json:"reason"`
		Egress *struct {
			Host string `json:"host"`
			Port int    `json:"port"`
		} `json:"egress"`
	} `json:"request"`
	Decision *struct {
		Verdict string `json:"verdict"`
		Message string `json:"message"`
	} `json:"decision"`
}

// SuperviseList is `supervise --json ARGS...`, parsed.
func (e *Env) SuperviseList(ctx context.Context, args ...string) []Pending {
	e.T.Helper()
	r := e.Run(ctx, append([]string{"supervise", "--json"}, args...)...)
	if r.Code != 0 {
		e.T.Fatalf("supervise --json: %s", r)
	}
	var ps []Pending
	if err := json.Unmarshal([]byte(r.Stdout), &ps); err != nil {
		e.T.Fatalf("supervise --json output: %v\n%s", err, r.Stdout)
	}
	return ps
}

// Result is what one command did.
type Result struct {
	Stdout, Stderr string
	Code           int
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout ---\n%s\n--- stderr ---\n%s", r.Code, r.Stdout, r.Stderr)
}

// Command prepares the binary with args in the env's directory.
func (e *Env) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, e.Bin, args...)
	cmd.Dir = e.Dir
	cmd.Env = append(os.Environ(), "CLAUDE_BOTTLE_STATE_DIR="+e.State)
	for k, v := range e.Vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// Run runs the binary to completion.
func (e *Env) Run(ctx context.Context, args ...string) Result {
	e.T.Helper()
	cmd := e.Command(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	default:
		e.T.Fatalf("run %v: %v", args, err)
	}
	return r
}

// Unique returns a short random name with prefix, for resources a test makes.
func Unique(prefix string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// AssertGone fails the test if any container, network or volume of
// instance remains, or its stage directory.
func AssertGone(t testing.TB, c *docker.Client, state, instance string) {
	t.Helper()
	ctx := context.Background()
	cs, err := c.ListContainers(ctx, map[string]string{plan.LabelInstance: instance}, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range cs {
		t.Errorf("container %s of %s remains", x.Name, instance)
	}
	ns, err := c.ListNetworks(ctx, map[string]string{plan.LabelInstance: instance})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		t.Errorf("network %s of %s remains", n.Name, instance)
	}
	vs, err := c.ListVolumes(ctx, map[string]string{plan.LabelInstance: instance})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		t.Errorf("volume %s of %s remains", v.Name, instance)
	}
	if _, err := os.Stat(filepath.Join(state, "instances", instance)); err == nil {
		t.Errorf("stage directory of %s remains", instance)
	}
}

// AssertRuntime checks, while instance runs, that the engine runs its agent
// under the env's runtime, every container under the runtime its plan
// label names, and that ps says so.
func (e *Env) AssertRuntime(c *docker.Client, instance string) {
	t := e.T
	t.Helper()
	if e.Runtime == "" {
		return
	}
	ctx := context.Background()
	cs, err := c.ListContainers(ctx, map[string]string{plan.LabelInstance: instance}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) == 0 {
		t.Fatalf("no running container of %s", instance)
	}
	for _, x := range cs {
		info, err := c.InspectContainer(ctx, x.ID)
		if err != nil {
			t.Fatal(err)
		}
		if x.Labels[plan.LabelRole] == plan.RoleAgent && info.Runtime != e.Runtime {
			t.Errorf("agent %s runs under %q, want %q", x.Name, info.Runtime, e.Runtime)
		}
		if want := x.Labels[plan.LabelRuntime]; info.Runtime != want {
			t.Errorf("container %s runs under %q, its plan said %q", x.Name, info.Runtime, want)
		}
	}
	r := e.Run(ctx, "ps")
	for _, l := range strings.Split(r.Stdout, "\n") {
		if strings.HasPrefix(l, instance+" ") {
			if !strings.Contains(l, " "+e.Runtime+" ") && !strings.Contains(l, "agent="+e.Runtime) {
				t.Errorf("ps does not say %s: %q", e.Runtime, l)
			}
			return
		}
	}
	t.Errorf("ps does not list %s:\n%s", instance, r)
}

// Network creates an internal network for fixtures (a test's "internet":
// no route anywhere real) and removes it at cleanup.
func Network(t testing.TB, c *docker.Client) string {
	t.Helper()
	name := Unique("cbtest-net")
	if _, err := c.CreateNetwork(context.Background(), docker.NetworkSpec{Name: name, Internal: true, Labels: map[string]string{"dev.claude-bottle.test": "1"}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.RemoveNetwork(context.Background(), name); err != nil {
			t.Errorf("remove fixture network %s: %v", name, err)
		}
	})
	return name
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Started is a command of the env running in the background.
type Started struct {
	stdout, stderr lockedBuffer
	done           chan struct{}
	err            error
}

// Start starts the binary with args and does not wait. When ctx ends, or
// at the test's cleanup, a command still running is interrupted as Ctrl-C
// would (so that run removes its bottle) and killed a minute later.
func (e *Env) Start(ctx context.Context, args ...string) *Started {
	e.T.Helper()
	ctx, cancel := context.WithCancel(ctx)
	cmd := e.Command(ctx, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = time.Minute
	s := &Started{done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &s.stdout, &s.stderr
	if err := cmd.Start(); err != nil {
		cancel()
		e.T.Fatal(err)
	}
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	e.T.Cleanup(func() {
		cancel()
		<-s.done
	})
	return s
}

// Exited reports whether the command has ended, and its error.
func (s *Started) Exited() (bool, error) {
	select {
	case <-s.done:
		return true, s.err
	default:
		return false, nil
	}
}

// Wait waits for the command's end and returns its error, or ctx's.
func (s *Started) Wait(ctx context.Context) error {
	select {
	case <-s.done:
		return s.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stdout and Stderr are what the command printed so far.
func (s *Started) Stdout() string { return s.stdout.String() }
func (s *Started) Stderr() string { return s.stderr.String() }

// AwaitRequest polls `supervise --json`, as the person on the host
// watches, until instance has a request; it fails if s ends first or
// nothing comes within d.
func (e *Env) AwaitRequest(ctx context.Context, s *Started, instance string, d time.Duration) Pending {
	e.T.Helper()
	deadline := time.Now().Add(d)
	for {
		if ended, err := s.Exited(); ended {
			e.T.Fatalf("the command ended before the agent asked (%v)\nstdout:\n%s\nstderr:\n%s", err, s.Stdout(), s.Stderr())
		}
		for _, p := range e.SuperviseList(ctx) {
			if p.Instance == instance {
				return p
			}
		}
		if time.Now().After(deadline) {
			e.T.Fatalf("no request within %s\nstderr:\n%s", d, s.Stderr())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// lockedBuffer is a bytes.Buffer safe to read while a command writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
