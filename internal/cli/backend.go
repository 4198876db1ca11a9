package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/backend"
	dockerbackend "github.com/claude-bottle/claude-bottle/internal/backend/docker"
	kubebackend "github.com/claude-bottle/claude-bottle/internal/backend/kubernetes"
	"github.com/claude-bottle/claude-bottle/internal/launch"
	"github.com/claude-bottle/claude-bottle/internal/manifest"
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

// backendName is what runs bottles: --backend, else the manifest's, else
// docker.
func (g *globals) backendName() (string, error) {
	name := g.backend
	if name == "" {
		name = g.fromManifest
	}
	switch name {
	case "", manifest.BackendDocker:
		return manifest.BackendDocker, nil
	case manifest.BackendKubernetes:
		return name, nil
	}
	return "", fmt.Errorf("--backend %q: must be docker or kubernetes", name)
}

// manifestBackend, for the verbs that do not otherwise read the manifest
// (ps, cleanup), takes the backend from ./claude-bottle.yaml (or -f) when
// --backend is not given. A manifest that does not load says nothing: it
// must not stop `ps` (run and validate report it).
func (g *globals) manifestBackend() {
	if g.backend != "" || g.fromManifest != "" {
		return
	}
	if m, err := loadManifest(g); err == nil {
		g.fromManifest = m.Backend
	}
}

// openBackend connects to the backend that runs bottles.
func openBackend(ctx context.Context, g *globals, progress io.Writer) (backend.Backend, error) {
	name, err := g.backendName()
	if err != nil {
		return nil, err
	}
	if name == manifest.BackendKubernetes {
		return openKube(ctx, g, progress)
	}
	o, err := backendOptions(g, progress)
	if err != nil {
		return nil, err
	}
	return dockerbackend.New(ctx, o)
}

// kubeOptions are the Kubernetes backend's options.
func kubeOptions(g *globals, progress io.Writer) (kubebackend.Options, error) {
	d, err := backendOptions(g, progress)
	if err != nil {
		return kubebackend.Options{}, err
	}
	return kubebackend.Options{Log: d.Log, State: d.State, Getenv: d.Getenv, Kubeconfig: g.kubeconfig, Context: g.kubeContext,
		Bottle: g.kube, ReadyTimeout: d.ReadyTimeout, Progress: progress}, nil
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

// applier makes approvals real on running bottles. A Docker bottle's are
// host files its sidecars reload (no engine call); a Kubernetes bottle's
// are copied into its ConfigMaps and Secrets too. The instance's kept plan
// says which backend runs it.
func applier(g *globals) supervise.Applier {
	return applyFunc(func(ctx context.Context, instance string, req supervise.Request, opts supervise.ApplyOptions) error {
		// A state directory that cannot be found fails when the applier
		// writes, with the same error.
		o, _ := backendOptions(g, nil)
		if plannedBackend(o.State, instance) == manifest.BackendKubernetes {
			// Its progress says what the (up to a minute's) wait is for.
			be, err := openKube(ctx, g, g.stderr)
			if err != nil {
				return err
			}
			return be.Apply(ctx, instance, req, opts)
		}
		return dockerbackend.Offline(o).Apply(ctx, instance, req, opts)
	})
}

type applyFunc func(ctx context.Context, instance string, req supervise.Request, opts supervise.ApplyOptions) error

func (f applyFunc) Apply(ctx context.Context, instance string, req supervise.Request, opts supervise.ApplyOptions) error {
	return f(ctx, instance, req, opts)
}

// plannedBackend reads the backend an instance was launched on from its
// kept plan ("" when there is none).
func plannedBackend(state, instance string) string {
	p, err := launch.KeptPlan(state, instance)
	if err != nil {
		return ""
	}
	return p.Backend
}

// openKube connects to the cluster kubectl would use (or the flags name).
func openKube(ctx context.Context, g *globals, progress io.Writer) (*kubebackend.Backend, error) {
	o, err := kubeOptions(g, progress)
	if err != nil {
		return nil, err
	}
	cfg, err := kubebackend.RESTConfig(g.kubeconfig, g.kubeContext)
	if err != nil {
		return nil, err
	}
	return kubebackend.New(ctx, o, cfg)
}
