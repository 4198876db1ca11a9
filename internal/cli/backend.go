package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/backend"
	dockerbackend "github.com/claude-bottle/claude-bottle/internal/backend/docker"
	"github.com/claude-bottle/claude-bottle/internal/stage"
	"github.com/claude-bottle/claude-bottle/internal/supervise"
)

// backendOptions are the Docker backend's options from the environment.
func backendOptions(g *globals, progress io.Writer) (dockerbackend.Options, error) {
	state, err := stage.StateDir(g.getenv)
	if err != nil {
		return dockerbackend.Options{}, err
	}
	o := dockerbackend.Options{Log: g.log, State: state, Progress: progress, Getenv: g.getenv}
	if v := g.getenv("CLAUDE_BOTTLE_READY_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return o, fmt.Errorf("CLAUDE_BOTTLE_READY_TIMEOUT=%q: %v (use a duration such as 90s)", v, err)
		}
		o.ReadyTimeout = d
	}
	return o, nil
}

// openBackend connects to the backend that runs bottles.
func openBackend(ctx context.Context, g *globals, progress io.Writer) (backend.Backend, error) {
	o, err := backendOptions(g, progress)
	if err != nil {
		return nil, err
	}
	return dockerbackend.New(ctx, o)
}

// openDocker connects to the Docker engine, for the verbs only it has
// (images, runtime).
func openDocker(ctx context.Context, g *globals) (*dockerbackend.Backend, error) {
	o, err := backendOptions(g, nil)
	if err != nil {
		return nil, err
	}
	return dockerbackend.New(ctx, o)
}

// applier makes approvals real on running bottles: host files, which the
// Docker backend's sidecars reload (no engine call).
func applier(g *globals) supervise.Applier {
	// A state directory that cannot be found fails when the applier
	// writes, with the same error.
	o, _ := backendOptions(g, nil)
	return dockerbackend.Offline(o)
}
