package docker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/docker"
	"github.com/claude-bottle/claude-bottle/internal/launch"
	"github.com/claude-bottle/claude-bottle/internal/oneline"
	"github.com/claude-bottle/claude-bottle/internal/plan"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

// RunscRuntime is the name gVisor is registered under with the engine.
const RunscRuntime = "runsc"

// probeTimeout bounds one probe container: a hung platform (runsc
// --platform=kvm hangs on some hosts) must not hang every launch. A probe
// takes about a second; the margin is for a loaded host, where 30 s was
// seen to pass (and a timeout's verdict is kept until the next re-probe).
const probeTimeout = 90 * time.Second

// unknownBinaryTTL is how long a verdict about a runtime binary this
// process cannot read (so cannot tell when it changes) stays trusted.
const unknownBinaryTTL = 15 * time.Minute

// runtimeProbe is the verdict on one runtime binary of one engine, cached
// in the state directory: a probe starts a container, and a failed one
// costs a cleanup. It is trusted while the engine, its kernel and the
// binary (size and mtime, else its digest) stay the same; `claude-bottle
// runtime --reprobe` probes again regardless.
type runtimeProbe struct {
	Runtime string `json:"runtime"`
	// Engine is the engine's ID and its kernel: a kernel update can break
	// (or fix) a runtime, as Linux 6.11 did for older runsc.
	Engine string `json:"engine"`
	// Path is the binary as the engine reports it (docker info).
	Path    string    `json:"path"`
	Size    int64     `json:"size,omitempty"`
	ModTime time.Time `json:"mod_time,omitzero"`
	// Digest is the binary's sha256; "" when this process cannot read it.
	Digest  string    `json:"digest,omitempty"`
	Checked time.Time `json:"checked"`
	Works   bool      `json:"works"`
	// Note explains a failure: the likely cause and the fix.
	Note string `json:"note,omitempty"`
	// Ended lists what the cleanup of a failed probe had to end.
	Ended []string `json:"ended,omitempty"`
	// Cached says the verdict came from the state directory.
	Cached bool `json:"-"`
	// Container is the probe container's ID, when one was created.
	Container string `json:"-"`
}

func probeCachePath(state, runtime string) string {
	return filepath.Join(state, "runtime-probe-"+runtime+".json")
}

// probeRuntime says whether containers start under the engine's runtime
// name here, probing only when no cached verdict fits (or force).
func probeRuntime(ctx context.Context, c *docker.Client, log *slog.Logger, state, name, image string, force bool) runtimeProbe {
	p := runtimeProbe{Runtime: name}
	info, err := c.Info(ctx)
	if err != nil {
		p.Note = "cannot read the engine's info: " + oneline.First(err.Error())
		return p
	}
	path, ok := info.RuntimePaths[name]
	if !ok {
		p.Note = fmt.Sprintf("%s is not registered with the Docker engine; install a current gVisor runsc and add it to the runtimes of /etc/docker/daemon.json (README, \"gVisor\")", name)
		return p
	}
	p.Engine, p.Path = info.ID+" "+info.KernelVersion, path
	bin := binaryPath(path)
	if st, err := os.Stat(bin); err == nil {
		p.Size, p.ModTime = st.Size(), st.ModTime().UTC()
	}
	cache := probeCachePath(state, name)
	if !force {
		if old, ok := readProbe(cache); ok && old.fits(p, bin) {
			old.Cached = true
			if old.Size != p.Size || !old.ModTime.Equal(p.ModTime) {
				// Same bytes, new stat (a reinstall): remember the new stat.
				old.Size, old.ModTime = p.Size, p.ModTime
				writeProbe(cache, old)
			}
			return old
		}
	}
	if p.Size > 0 {
		p.Digest, _ = fileDigest(bin)
	}
	definitive := false
	p.Works, p.Note, p.Ended, p.Container, definitive = doProbe(ctx, c, log, name, path, image)
	p.Checked = time.Now().UTC()
	if definitive {
		writeProbe(cache, p)
	}
	return p
}

// fits says whether a cached verdict applies to the binary now: same
// engine, kernel and path, and the same bytes (a matching stat, else a
// matching digest). An unreadable binary is trusted for a while only.
func (old runtimeProbe) fits(now runtimeProbe, bin string) bool {
	if old.Runtime != now.Runtime || old.Engine != now.Engine || old.Path != now.Path {
		return false
	}
	if now.Size == 0 || old.Digest == "" {
		return time.Since(old.Checked) < unknownBinaryTTL
	}
	if old.Size == now.Size && old.ModTime.Equal(now.ModTime) {
		return true
	}
	d, err := fileDigest(bin)
	return err == nil && d == old.Digest
}

// binaryPath is where the engine's runtime binary is on this host: the
// engine takes a bare name from its PATH, which is most likely ours too.
func binaryPath(path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	if p, err := exec.LookPath(path); err == nil {
		return p
	}
	return path
}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func readProbe(path string) (runtimeProbe, bool) {
	var p runtimeProbe
	b, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(b, &p) != nil {
		return p, false
	}
	return p, true
}

func writeProbe(path string, p runtimeProbe) {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return
	}
	// Best effort: without the cache the next launch probes again.
	_ = os.MkdirAll(filepath.Dir(path), 0o700)
	_ = stage.WriteFile(path, b, 0o600)
}

// The roles of the short-lived containers a runtime probe makes.
const (
	roleProbe = "runtime-probe"
	roleReap  = "runtime-reap"
)

// probeLabels marks a probe's container as ours, owned by this process and
// an instance of its own (its name), so that `cleanup` finds and removes it
// when the launcher was killed before its deferred removal ran, and `ps`
// does not list it (List skips these roles).
func probeLabels(role, name string) map[string]string {
	return map[string]string{plan.LabelRole: role, plan.LabelInstance: name, plan.LabelOwner: launch.Owner()}
}

// doProbe starts one container of image under the runtime on the engine's
// default bridge (a network namespace of its own, as a bottle has: that is
// where older runsc fails) and waits for it. definitive says the verdict is
// about the runtime, not about this moment (an interrupted probe, a missing
// image), and may be cached.
func doProbe(ctx context.Context, c *docker.Client, log *slog.Logger, name, path, image string) (works bool, note string, ended []string, id string, definitive bool) {
	if image == "" {
		return false, "no image to probe with (claude-bottle images build makes it)", nil, "", false
	}
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	var err error
	cname := fmt.Sprintf("claude-bottle-%s-probe-%d-%d", name, os.Getpid(), time.Now().UnixNano()%1e6)
	id, err = c.CreateContainer(pctx, docker.ContainerSpec{
		Name: cname, Image: image, Cmd: []string{"version"}, Runtime: name,
		User: plan.SidecarUser, CapDrop: []string{"ALL"}, SecurityOpt: []string{"no-new-privileges"},
		Labels: probeLabels(roleProbe, cname),
	})
	if err != nil {
		return false, fmt.Sprintf("%s (%s): the probe container could not be created: %s", name, path, oneline.First(err.Error())), nil, "", false
	}
	// The removal must run even when ctx is done (Ctrl-C, the timeout).
	defer func() {
		if err := c.RemoveContainer(context.WithoutCancel(ctx), id); err != nil {
			log.Warn("remove runtime probe container", "id", id, "err", err)
		}
	}()
	err = c.StartContainer(pctx, id)
	if err == nil {
		code, werr := c.Wait(pctx, id)
		switch {
		case werr == nil && code == 0:
			return true, "", nil, id, true
		case werr == nil:
			err = fmt.Errorf("the probe container exited %d", code)
		default:
			err = werr
		}
	}
	if ctx.Err() != nil {
		// Interrupted: say nothing about the runtime, but leave nothing.
		ended = reapProbe(context.WithoutCancel(ctx), c, log, id, image)
		return false, "the runtime probe was interrupted", ended, id, false
	}
	// A start that failed after the runtime made its sandbox leaves the
	// sandbox, its gofer and the containerd shim running, and no engine
	// call ends them (the engine deletes only stopped tasks). End them.
	ended = reapProbe(context.WithoutCancel(ctx), c, log, id, image)
	return false, explainProbeFailure(name, path, err, pctx.Err() != nil), ended, id, true
}

// explainProbeFailure names the likely cause of a failed probe and the fix.
func explainProbeFailure(name, path string, err error, timedOut bool) string {
	full := strings.TrimSpace(err.Error())
	// The engine's message ends with the runtime's own, the useful part.
	msg := full
	if r := []rune(msg); len(r) > 200 {
		msg = "…" + string(r[len(r)-200:])
	}
	again := "; then run `claude-bottle runtime --reprobe` (or set runtime: runc)"
	switch {
	case strings.Contains(full, "cannot run with network enabled in root network namespace"):
		return fmt.Sprintf("%s (%s) is too old for this kernel: it takes every network namespace for the host's "+
			"(gVisor issue 10704, Linux 6.11 and later; Debian's and Ubuntu's 2022 packages have it). "+
			"Install a current runsc (README, \"gVisor\") and point the engine's %s runtime at it%s", name, path, name, again)
	case timedOut || errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("a probe container under %s (%s) did not finish within %s: the runtime hangs here "+
			"(runsc --platform=kvm does on some hosts; systrap, the default, does not). Check the runtime's flags "+
			"in /etc/docker/daemon.json%s", name, path, probeTimeout, again)
	}
	return fmt.Sprintf("a container does not start under %s (%s): %s. Check that `%s --version` runs on the engine's host "+
		"and the engine's log%s", name, path, msg, path, again)
}

// reapProbe ends what a failed start of container id left: it runs our own
// binary in a short-lived runc container that sees the host's processes
// and may signal them (CAP_KILL, no network, read-only), which ends only
// the runtime processes and shim that carry this container's ID. It
// returns what was ended.
func reapProbe(ctx context.Context, c *docker.Client, log *slog.Logger, id, image string) []string {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rname := fmt.Sprintf("claude-bottle-runtime-reap-%.12s", id)
	rid, err := c.CreateContainer(ctx, docker.ContainerSpec{
		Name:  rname,
		Image: image, Cmd: []string{"sidecar", "reap", id},
		Runtime: "runc", Network: "none", PidMode: "host", User: "0:0",
		CapDrop: []string{"ALL"}, CapAdd: []string{"KILL"}, SecurityOpt: []string{"no-new-privileges"},
		ReadOnlyRootfs: true,
		Labels:         probeLabels(roleReap, rname),
	})
	if err != nil {
		log.Warn("runtime probe cleanup: create", "err", err)
		return nil
	}
	defer func() {
		if err := c.RemoveContainer(context.WithoutCancel(ctx), rid); err != nil {
			log.Warn("remove runtime probe cleanup container", "id", rid, "err", err)
		}
	}()
	if err := c.StartContainer(ctx, rid); err != nil {
		log.Warn("runtime probe cleanup: start", "err", err)
		return nil
	}
	code, err := c.Wait(ctx, rid)
	out, _ := c.Logs(ctx, rid)
	if err != nil || code != 0 {
		log.Warn("runtime probe cleanup failed", "exit", code, "err", err, "output", oneline.First(string(out)))
	}
	var ended []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if rest, ok := strings.CutPrefix(l, "ended "); ok {
			ended = append(ended, rest)
		}
	}
	return ended
}

// RuntimeReport is what `claude-bottle runtime` shows.
type RuntimeReport struct {
	// Runtimes maps each of the engine's runtimes to its binary.
	Runtimes []string
	Paths    map[string]string
	// Works, Cached, Checked, Digest, Note and Ended are gVisor's verdict.
	Works, Cached bool
	Checked       time.Time
	Digest, Note  string
	Ended         []string
}

// Runtime reports the engine's runtimes and whether gVisor works here,
// from the cached verdict unless reprobe.
func (b *Backend) Runtime(ctx context.Context, reprobe bool) (RuntimeReport, error) {
	info, err := b.client.Info(ctx)
	if err != nil {
		return RuntimeReport{}, err
	}
	tags, err := imageTags(b.Getenv)
	if err != nil {
		return RuntimeReport{}, err
	}
	img, err := b.probeImage(ctx, tags)
	if err != nil {
		return RuntimeReport{}, err
	}
	p := probeRuntime(ctx, b.client, b.Log, b.State, RunscRuntime, img, reprobe)
	return RuntimeReport{Runtimes: info.Runtimes, Paths: info.RuntimePaths, Works: p.Works, Cached: p.Cached,
		Checked: p.Checked, Digest: p.Digest, Note: p.Note, Ended: p.Ended}, nil
}
