// Package docker is the Docker Engine backend: it turns a plan into
// operations on one engine (networks, stage files, containers, readiness
// checks), runs them, and undoes them in reverse when one fails. up.go
// holds the whole launch sequence.
package docker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/backend"
	"github.com/claude-bottle/claude-bottle/internal/docker"
	"github.com/claude-bottle/claude-bottle/internal/images"
	"github.com/claude-bottle/claude-bottle/internal/launch"
	"github.com/claude-bottle/claude-bottle/internal/plan"
	"github.com/claude-bottle/claude-bottle/internal/supervise"
)

// Name is this backend's name.
const Name = "docker"

// engine is what the launch sequence asks of the Docker engine;
// *docker.Client is the real one, tests hand in a fake.
type engine interface {
	CreateNetwork(ctx context.Context, spec docker.NetworkSpec) (string, error)
	RemoveNetwork(ctx context.Context, name string) error
	ListNetworks(ctx context.Context, labels map[string]string) ([]docker.Network, error)
	NetworkSubnets(ctx context.Context, name string) ([]string, error)
	CreateVolume(ctx context.Context, spec docker.VolumeSpec) error
	RemoveVolume(ctx context.Context, name string) error
	ListVolumes(ctx context.Context, labels map[string]string) ([]docker.Volume, error)
	CreateContainer(ctx context.Context, spec docker.ContainerSpec) (string, error)
	StartContainer(ctx context.Context, id string) error
	StopContainer(ctx context.Context, id string, timeout time.Duration) error
	RemoveContainer(ctx context.Context, id string) error
	ListContainers(ctx context.Context, labels map[string]string, all bool) ([]docker.Container, error)
	InspectContainer(ctx context.Context, id string) (docker.ContainerInfo, error)
	Exec(ctx context.Context, id string, cmd []string, user string) (int, []byte, error)
	Logs(ctx context.Context, id string) ([]byte, error)
	AttachStart(ctx context.Context, id string, s docker.Streams) (int, error)
	ResizeTTY(ctx context.Context, id string, height, width uint) error
	CopyFrom(ctx context.Context, id, path string) (io.ReadCloser, error)
}

// Options configure a Backend.
type Options struct {
	Log *slog.Logger
	// State is the host state directory (stage.StateDir).
	State string
	// Progress receives one line per phase for a person; nil discards.
	Progress io.Writer
	Getenv   func(string) string
	// ReadyTimeout bounds each sidecar's readiness; 0 means 60 s.
	ReadyTimeout time.Duration
}

// Backend runs bottles on one Docker engine.
type Backend struct {
	Options
	// client is the real engine (image builds and runtime probes need it);
	// nil in hermetic tests, which use eng only.
	client *docker.Client
	eng    engine
	// failOp, when set (tests), is consulted before each operation runs.
	failOp func(plan.Op) error
}

var _ backend.Backend = (*Backend)(nil)

// New connects to the engine the environment names (DOCKER_HOST, else the
// local socket).
func New(ctx context.Context, o Options) (*Backend, error) {
	c, err := docker.New(ctx)
	if err != nil {
		return nil, err
	}
	return &Backend{Options: o, client: c, eng: c}, nil
}

// Name implements backend.Backend.
func (b *Backend) Name() string { return Name }

// Close implements backend.Backend.
func (b *Backend) Close() error {
	if b.client == nil {
		return nil
	}
	return b.client.Close()
}

// Client is the engine client, for the Docker-only verbs (images, runtime).
func (b *Backend) Client() *docker.Client { return b.client }

func (b *Backend) progress(format string, args ...any) {
	if b.Progress != nil {
		fmt.Fprintf(b.Progress, format+"\n", args...)
	}
}

// Apply implements backend.Backend: the sidecars reload their stage files,
// so an approval is a rewrite of those files on the host.
func (b *Backend) Apply(ctx context.Context, instance string, req supervise.Request, opts supervise.ApplyOptions) error {
	a := &launch.Applier{State: b.State, Getenv: b.Getenv, Confirm: 5 * time.Second}
	return a.Apply(ctx, instance, req, opts)
}

// Facts implements backend.Backend.
func (b *Backend) Facts(ctx context.Context, req backend.FactsRequest) (plan.Host, error) {
	tags, err := imageTags(b.Getenv)
	if err != nil {
		return plan.Host{}, err
	}
	sidecar := ""
	if req.Build {
		set, err := images.Ensure(ctx, b.client, b.Log, images.Options{
			ExtraCA: req.ExtraCA, Progress: b.Progress, AgentDockerfile: launch.ApprovedDockerfile(b.State, req.Agent), Tags: tags,
		}, images.Need{Sidecar: req.Need.Sidecar, GitGate: req.Need.GitGate, Agent: req.Need.Agent})
		if err != nil {
			return plan.Host{}, fmt.Errorf("images: %w", err)
		}
		sidecar = set.Sidecar
	} else if sidecar, err = b.probeImage(ctx, tags); err != nil {
		return plan.Host{}, err
	}
	host := launch.HostFacts(b.State, req.Agent, b.Getenv)
	if b.Getenv("CLAUDE_BOTTLE_RUNTIME") != "runc" {
		// Asked not to use gVisor: no probe container either.
		p := probeRuntime(ctx, b.client, b.Log, b.State, RunscRuntime, sidecar, false)
		host.Runsc, host.RunscNote = p.Works, p.Note
	}
	return host, nil
}

// Observe implements backend.Backend.
func (b *Backend) Observe(ctx context.Context, join []string) (plan.Observed, error) {
	return Observe(ctx, b.eng, join)
}

// imageTags are the image references images.Ensure builds, as the plan
// will name them (CLAUDE_BOTTLE_IMAGE_TAG).
func imageTags(getenv func(string) string) (images.Set, error) {
	refs, err := plan.Refs(map[string]string{"CLAUDE_BOTTLE_IMAGE_TAG": getenv("CLAUDE_BOTTLE_IMAGE_TAG")})
	if err != nil {
		return images.Set{}, err
	}
	return images.Set{Agent: refs.Agent, Sidecar: refs.Sidecar, GitGate: refs.GitGate}, nil
}

// probeImage is the image a probe runs (the sidecar image, our own binary),
// or "" when it is not built yet: plan builds nothing, so it does not probe.
func (b *Backend) probeImage(ctx context.Context, tags images.Set) (string, error) {
	if _, ok, _ := b.client.ImageLabels(ctx, tags.Sidecar); !ok {
		return "", nil
	}
	return tags.Sidecar, nil
}

// Offline is a Backend without an engine: it can list a plan's operations
// and apply approvals (host files), and nothing else.
func Offline(o Options) *Backend { return &Backend{Options: o} }

// BuildImages builds the images of need whose inputs changed (the
// `images build` verb); extraCA is a PEM bundle's path, "" for none.
func (b *Backend) BuildImages(ctx context.Context, extraCA string, need images.Need) (images.Set, error) {
	tags, err := imageTags(b.Getenv)
	if err != nil {
		return images.Set{}, err
	}
	return images.Ensure(ctx, b.client, b.Log, images.Options{ExtraCA: extraCA, Progress: b.Progress, Tags: tags}, need)
}

// Images lists the images this program built (the `images ls` verb).
func (b *Backend) Images(ctx context.Context) ([]docker.Image, error) {
	return b.client.ListImages(ctx, map[string]string{images.KindLabel: ""})
}
