package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/docker"
	"github.com/claude-bottle/claude-bottle/internal/images"
	"github.com/claude-bottle/claude-bottle/internal/launch"
	"github.com/claude-bottle/claude-bottle/internal/oneline"
	"github.com/claude-bottle/claude-bottle/internal/plan"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

// runscProbe is cached in the state directory: probing starts a container.
type runscProbe struct {
	Checked time.Time `json:"checked"`
	Works   bool      `json:"works"`
	Note    string    `json:"note,omitempty"`
}

const runscProbeTTL = 15 * time.Minute

// hostFacts gathers what the plan needs to know about this host.
func hostFacts(ctx context.Context, g *globals, c *docker.Client, state, sidecarImage, agent string) plan.Host {
	h := plan.Host{
		Env:   map[string]string{},
		Owner: launch.Owner(),
		UID:   os.Getuid(),
		GID:   os.Getgid(),
	}
	for _, k := range []string{"CLAUDE_BOTTLE_IMAGE", "CLAUDE_BOTTLE_IMAGE_TAG", "CLAUDE_BOTTLE_DERIVED_IMAGE", "CLAUDE_BOTTLE_CONTAINER"} {
		if v := g.getenv(k); v != "" {
			h.Env[k] = v
		}
	}
	h.AgentDockerfile = string(images.AgentDockerfile())
	if b := approvedDockerfile(state, agent); b != nil {
		h.AgentDockerfile = string(b)
	}
	if g.getenv("CLAUDE_BOTTLE_RUNTIME") == "runc" {
		h.RunscNote = "CLAUDE_BOTTLE_RUNTIME=runc"
		return h
	}
	if c != nil {
		h.Runsc, h.RunscNote = probeRunsc(ctx, c, state, sidecarImage)
	}
	return h
}

// probeRunsc says whether containers start under gVisor here. Registered
// is not enough: on some hosts runsc is installed yet cannot start a
// container, and the agent must then fall back to runc with a notice.
func probeRunsc(ctx context.Context, c *docker.Client, state, image string) (bool, string) {
	cache := filepath.Join(state, "runsc-probe.json")
	if b, err := os.ReadFile(cache); err == nil {
		var p runscProbe
		if json.Unmarshal(b, &p) == nil && time.Since(p.Checked) < runscProbeTTL {
			return p.Works, p.Note
		}
	}
	works, note := doProbe(ctx, c, image)
	if b, err := json.Marshal(runscProbe{Checked: time.Now(), Works: works, Note: note}); err == nil {
		_ = os.MkdirAll(state, 0o700)
		_ = stage.WriteFile(cache, b, 0o600)
	}
	return works, note
}

func doProbe(ctx context.Context, c *docker.Client, image string) (bool, string) {
	info, err := c.Info(ctx)
	if err != nil {
		return false, "cannot read engine info: " + err.Error()
	}
	if !slices.Contains(info.Runtimes, "runsc") {
		return false, "runsc is not registered with the Docker engine"
	}
	if image == "" {
		return false, "no probe image"
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	name := fmt.Sprintf("claude-bottle-runsc-probe-%d", os.Getpid())
	id, err := c.CreateContainer(ctx, docker.ContainerSpec{Name: name, Image: image, Cmd: []string{"version"}, Runtime: "runsc",
		Labels: map[string]string{plan.LabelRole: "runsc-probe"}})
	if err != nil {
		return false, "runsc probe: " + oneline.First(err.Error())
	}
	defer c.RemoveContainer(context.WithoutCancel(ctx), id)
	if err := c.StartContainer(ctx, id); err != nil {
		return false, "a container did not start under runsc: " + oneline.First(err.Error())
	}
	code, err := c.Wait(ctx, id)
	if err != nil || code != 0 {
		return false, fmt.Sprintf("a probe container under runsc failed (exit %d)", code)
	}
	return true, ""
}

// approvedDockerfile is a Dockerfile approved through supervise for the
// agent's next launch, or nil.
func approvedDockerfile(state, agent string) []byte {
	b, err := os.ReadFile(filepath.Join(stage.AgentDir(state, agent), "Dockerfile"))
	if err != nil {
		return nil
	}
	return b
}

// imageTags are the image references images.Ensure builds, as the plan
// will name them (CLAUDE_BOTTLE_IMAGE_TAG).
func imageTags(g *globals) (images.Set, error) {
	refs, err := plan.Refs(map[string]string{"CLAUDE_BOTTLE_IMAGE_TAG": g.getenv("CLAUDE_BOTTLE_IMAGE_TAG")})
	if err != nil {
		return images.Set{}, err
	}
	return images.Set{Agent: refs.Agent, Sidecar: refs.Sidecar, GitGate: refs.GitGate}, nil
}
