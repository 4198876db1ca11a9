package cli

import (
	"context"
	"os"
	"path/filepath"

	"github.com/claude-bottle/claude-bottle/internal/docker"
	"github.com/claude-bottle/claude-bottle/internal/images"
	"github.com/claude-bottle/claude-bottle/internal/launch"
	"github.com/claude-bottle/claude-bottle/internal/plan"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

// hostFacts gathers what the plan needs to know about this host.
func hostFacts(ctx context.Context, g *globals, c *docker.Client, state, sidecarImage, agent string) plan.Host {
	h := plan.Host{
		Env:   map[string]string{},
		Owner: launch.Owner(),
		UID:   os.Getuid(),
		GID:   os.Getgid(),
	}
	for _, k := range []string{"CLAUDE_BOTTLE_IMAGE", "CLAUDE_BOTTLE_IMAGE_TAG", "CLAUDE_BOTTLE_DERIVED_IMAGE", "CLAUDE_BOTTLE_CONTAINER", "CLAUDE_BOTTLE_RUNTIME"} {
		if v := g.getenv(k); v != "" {
			h.Env[k] = v
		}
	}
	h.AgentDockerfile = string(images.AgentDockerfile())
	if b := approvedDockerfile(state, agent); b != nil {
		h.AgentDockerfile = string(b)
	}
	if g.getenv("CLAUDE_BOTTLE_RUNTIME") == "runc" {
		// Asked not to use gVisor: no probe container either.
		return h
	}
	if c != nil {
		p := probeRuntime(ctx, c, g.log, state, runscRuntime, sidecarImage, false)
		h.Runsc, h.RunscNote = p.Works, p.Note
	}
	return h
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
