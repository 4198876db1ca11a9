package docker

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/claude-bottle/claude-bottle/e2e/e2etest"
	"github.com/claude-bottle/claude-bottle/internal/docker"
	"github.com/claude-bottle/claude-bottle/internal/plan"
)

// failingRuntime is registered by .ci/runsc: it makes a gVisor sandbox and
// then refuses to start it, the shape of a runsc too old for the kernel.
const failingRuntime = "claude-bottle-ci-failing"

// needRuntime fails (CI=true) or skips when the engine lacks a runtime.
func needRuntime(t *testing.T, c *docker.Client, name string) {
	t.Helper()
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := info.RuntimePaths[name]; ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but the engine has no runtime %q; .ci/runsc build && .ci/runsc register adds it", name)
	}
	t.Skipf("the engine has no runtime %q (.ci/runsc registers it)", name)
}

// strays counts the processes a failed runtime start leaks, engine-wide:
// runsc processes and containerd shims that name a container the engine
// no longer has.
func strays(t *testing.T, c *docker.Client) []string {
	t.Helper()
	cs, err := c.ListContainers(context.Background(), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	procs, err := readProcs("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range procs {
		n := p.name()
		if !strings.HasPrefix(n, "runsc") && !strings.HasPrefix(n, "containerd-shim") {
			continue
		}
		known := slices.ContainsFunc(cs, func(x docker.Container) bool { return p.mentions(x.ID) })
		if !known {
			out = append(out, n)
		}
	}
	return out
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

// A failed probe ends everything the failed start left (the sandbox, its
// gofer, the shim), removes its containers, explains itself, and is cached
// per binary until --reprobe.
func TestFailedProbeLeavesNothing(t *testing.T) {
	c := e2etest.Engine(t)
	needRuntime(t, c, failingRuntime)
	e2etest.Images(t)
	tags, err := imageTags(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	state := t.TempDir()
	before := strays(t, c)

	p := probeRuntime(ctx, c, testLogger(t), state, failingRuntime, tags.Sidecar, false)
	if p.Works || p.Cached || p.Container == "" {
		t.Fatalf("probe of a failing runtime: works=%v cached=%v container=%q", p.Works, p.Cached, p.Container)
	}
	for _, want := range []string{failingRuntime, "runsc-fails-start", "--version", "claude-bottle runtime --reprobe"} {
		if !strings.Contains(p.Note, want) {
			t.Errorf("note lacks %q: %s", want, p.Note)
		}
	}
	ended := strings.Join(p.Ended, "\n")
	for _, want := range []string{"runsc-sandbox", "runsc-gofer", "containerd-shim"} {
		if !strings.Contains(ended, want) {
			t.Errorf("cleanup did not end a %s; it ended:\n%s", want, ended)
		}
	}
	procs, err := readProcs("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range procs {
		if x.mentions(p.Container) {
			t.Errorf("process %d %v still names the probe container", x.pid, x.argv)
		}
	}
	for _, role := range []string{"runtime-probe", "runtime-reap"} {
		cs, err := c.ListContainers(ctx, map[string]string{plan.LabelRole: role}, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range cs {
			if x.ID == p.Container || strings.Contains(x.Name, p.Container[:12]) {
				t.Errorf("container %s (%s) remains", x.Name, role)
			}
		}
	}
	if after := strays(t, c); len(after) > len(before) {
		t.Errorf("stray runtime processes: %d before the probe, %d after: %v", len(before), len(after), after)
	}

	// Cached: no second container, the same verdict.
	again := probeRuntime(ctx, c, testLogger(t), state, failingRuntime, tags.Sidecar, false)
	if !again.Cached || again.Works || again.Note != p.Note || !again.Checked.Equal(p.Checked) {
		t.Errorf("second probe: cached=%v works=%v checked %v (first %v)", again.Cached, again.Works, again.Checked, p.Checked)
	}
	forced := probeRuntime(ctx, c, testLogger(t), state, failingRuntime, tags.Sidecar, true)
	if forced.Cached || forced.Works || forced.Container == p.Container {
		t.Errorf("--reprobe: cached=%v works=%v", forced.Cached, forced.Works)
	}
	if after := strays(t, c); len(after) > len(before) {
		t.Errorf("stray runtime processes after the re-probe: %v", after)
	}
}

// Under CI the engine's runsc is the current gVisor, and it works.
func TestRunscProbeWorks(t *testing.T) {
	c := e2etest.Engine(t)
	needRuntime(t, c, RunscRuntime)
	e2etest.Images(t)
	tags, err := imageTags(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	p := probeRuntime(context.Background(), c, testLogger(t), t.TempDir(), RunscRuntime, tags.Sidecar, false)
	if !p.Works {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but runsc does not work: %s", p.Note)
		}
		t.Skipf("runsc does not work here: %s", p.Note)
	}
	if p.Digest == "" || len(p.Ended) != 0 {
		t.Errorf("digest %q, ended %v", p.Digest, p.Ended)
	}
	// Runtime (the `runtime` verb): probes once, then the verdict is
	// cached, until reprobe.
	b, err := New(context.Background(), Options{Log: testLogger(t), State: t.TempDir(), Getenv: os.Getenv})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for i, tc := range []struct {
		reprobe, cached bool
	}{{false, false}, {false, true}, {true, false}} {
		r, err := b.Runtime(context.Background(), tc.reprobe)
		if err != nil || !r.Works || r.Cached != tc.cached || r.Paths[RunscRuntime] == "" {
			t.Errorf("%d: reprobe=%v: works=%v cached=%v (want %v) paths %v err %v", i, tc.reprobe, r.Works, r.Cached, tc.cached, r.Paths, err)
		}
	}
}

// A cached verdict holds while the binary's bytes do, whatever its mtime,
// and not for another engine, kernel, path or content.
func TestProbeCacheFits(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "runsc")
	if err := os.WriteFile(bin, []byte("binary one"), 0o755); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(bin)
	d, _ := fileDigest(bin)
	old := runtimeProbe{Runtime: "runsc", Engine: "E 6.18", Path: bin, Size: st.Size(), ModTime: st.ModTime(), Digest: d,
		Checked: time.Now().Add(-48 * time.Hour), Works: true}
	now := old
	if !old.fits(now, bin) {
		t.Error("same stat: does not fit")
	}
	for name, mod := range map[string]func(*runtimeProbe){
		"engine": func(p *runtimeProbe) { p.Engine = "F 6.18" },
		"kernel": func(p *runtimeProbe) { p.Engine = "E 6.19" },
		"path":   func(p *runtimeProbe) { p.Path = "/usr/bin/runsc" },
	} {
		n := now
		mod(&n)
		if old.fits(n, bin) {
			t.Errorf("another %s fits", name)
		}
	}
	touched := now
	touched.ModTime = now.ModTime.Add(time.Minute)
	if !old.fits(touched, bin) {
		t.Error("same bytes, new mtime: does not fit")
	}
	if err := os.WriteFile(bin, []byte("binary two"), 0o755); err != nil {
		t.Fatal(err)
	}
	if old.fits(touched, bin) {
		t.Error("new bytes fit")
	}
	unread := now
	unread.Size = 0
	if old.fits(unread, bin) {
		t.Error("an unreadable binary's verdict of two days ago fits")
	}
}

// The failure explanation names the cause and the fix.
func TestExplainProbeFailure(t *testing.T) {
	old := explainProbeFailure("runsc", "/usr/bin/runsc", errors.New(`start container x: OCI runtime start failed: starting container: setting up network: creating interfaces from net namespace "/proc/1/ns/net": cannot run with network enabled in root network namespace: unknown`), false)
	for _, want := range []string{"too old for this kernel", "10704", "README", "--reprobe"} {
		if !strings.Contains(old, want) {
			t.Errorf("old-runsc note lacks %q: %s", want, old)
		}
	}
	hung := explainProbeFailure("runsc", "/usr/bin/runsc", context.DeadlineExceeded, true)
	if !strings.Contains(hung, "kvm") || !strings.Contains(hung, "--reprobe") {
		t.Errorf("hang note: %s", hung)
	}
}

// reap ends the shim's descendants and runsc processes naming the ID, then
// the shim; nothing else, even a process whose arguments name the ID.
func TestReapRuntimeChoosesOnlyTheContainersProcesses(t *testing.T) {
	id := strings.Repeat("ab", 32)
	other := strings.Repeat("cd", 32)
	root := t.TempDir()
	mk := func(pid, ppid int, argv ...string) {
		d := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, "cmdline"), []byte(strings.Join(argv, "\x00")+"\x00"), 0o644)
		os.WriteFile(filepath.Join(d, "stat"), []byte(strconv.Itoa(pid)+" (x y) S "+strconv.Itoa(ppid)+" 0 0"), 0o644)
	}
	mk(10, 1, "/usr/bin/containerd-shim-runc-v2", "-namespace", "moby", "-id", id)
	mk(11, 10, "runsc-gofer", "--root=/run", "gofer", "--bundle", "/b/"+id)
	mk(12, 10, "runsc-sandbox", "boot", id)
	mk(13, 12, "exe")
	mk(20, 1, "/usr/bin/containerd-shim-runc-v2", "-namespace", "moby", "-id", other)
	mk(21, 20, "runsc-sandbox", "boot", other)
	mk(30, 1, "runsc-sandbox", "boot", id) // reparented
	mk(40, 1, "tail", "-f", "/var/run/docker/"+id+"/log.json")
	var killed []string
	kill := func(pid int, sig syscall.Signal) error {
		killed = append(killed, strconv.Itoa(pid)+":"+sig.String())
		os.RemoveAll(filepath.Join(root, strconv.Itoa(pid)))
		return nil
	}
	var out bytes.Buffer
	if err := reapRuntime(context.Background(), root, id, kill, &out); err != nil {
		t.Fatal(err)
	}
	want := []string{"11:killed", "12:killed", "13:killed", "30:killed", "10:terminated"}
	if strings.Join(killed, " ") != strings.Join(want, " ") {
		t.Errorf("signals %v, want %v", killed, want)
	}
	if !strings.Contains(out.String(), "ended 12 runsc-sandbox") {
		t.Errorf("output: %s", out.String())
	}
	if err := reapRuntime(context.Background(), root, "abc", kill, &out); err == nil {
		t.Error("a short ID was accepted")
	}
}
