package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/backend"
	"github.com/claude-bottle/claude-bottle/internal/docker"
	"github.com/claude-bottle/claude-bottle/internal/launch"
	"github.com/claude-bottle/claude-bottle/internal/plan"
	"github.com/claude-bottle/claude-bottle/internal/stage"
	"github.com/claude-bottle/claude-bottle/internal/workback"
)

// RoleHarvest labels the short-lived container that turns the agent's
// workspace into a git bundle.
const RoleHarvest = "harvest"

// stopGrace is how long the agent gets to exit after SIGTERM (Claude Code
// saves its session) before it is killed.
const stopGrace = 3 * time.Second

// harvestTimeout bounds the harvest container: the agent's repository
// config (a clean filter, say) runs there and could stall it.
const harvestTimeout = 2 * time.Minute

// finish ends an instance's agent and brings its work back, before
// teardown removes the workspace: as a branch of the user's repository
// when the workspace came from one (Spec.Work.Mode "branch"), else as a tar
// archive under the state directory. When the branch cannot be made (no
// git in the image, a broken repository), the archive is the fallback, so
// that ending a bottle never loses work.
// Finish implements backend.Backend.
func (b *Backend) Finish(ctx context.Context, bt *backend.Bottle) (backend.Work, error) {
	return b.finish(ctx, bt.Plan, bt.Agent)
}

func (l *Backend) finish(ctx context.Context, p *plan.Plan, agentID string) (backend.Work, error) {
	if agentID == "" {
		return backend.Work{}, errors.New("no agent container")
	}
	// Stop first: copying a workspace that is still being written gives a
	// torn copy. Stopping a stopped container is not an error.
	if err := l.eng.StopContainer(ctx, agentID, stopGrace); err != nil && !errors.Is(err, docker.ErrNotFound) {
		return backend.Work{}, err
	}
	w := p.Spec.Work
	if w.Mode == "branch" {
		res, err := l.harvestBranch(ctx, p)
		if err == nil {
			return res, nil
		}
		l.Log.Warn("the work could not come back as a branch; saving /workspace as an archive", "instance", p.Instance, "err", err)
		archive := workback.ArchivePath(filepath.Join(stage.WorkDir(l.State), p.Instance))
		saved, aerr := l.saveArchive(ctx, agentID, archive)
		if aerr != nil {
			return backend.Work{}, fmt.Errorf("%v; saving /workspace failed too: %w", err, aerr)
		}
		if !saved {
			return backend.Work{Nothing: true}, nil
		}
		return backend.Work{Archive: archive}, fmt.Errorf("the work could not come back as a branch (%v); /workspace is saved in %s", err, archive)
	}
	archive := workback.ArchivePath(filepath.Join(l.State, w.Archive))
	saved, err := l.saveArchive(ctx, agentID, archive)
	if err != nil {
		return backend.Work{}, err
	}
	if !saved {
		return backend.Work{Nothing: true}, nil
	}
	return backend.Work{Archive: archive}, nil
}

// harvestBranch runs workback.Script in a sandbox over the workspace
// volume and fetches the bundle it writes into the user's repository.
func (l *Backend) harvestBranch(ctx context.Context, p *plan.Plan) (backend.Work, error) {
	agent := p.Docker.Container(plan.RoleAgent)
	labels := maps.Clone(agent.Labels)
	labels[plan.LabelRole] = RoleHarvest
	spec := docker.ContainerSpec{
		Name:       p.Instance + "-" + RoleHarvest,
		Image:      agent.Image,
		Entrypoint: []string{"/bin/sh", "-c", workback.Script, "harvest"},
		User:       plan.AgentUser,
		Env:        []string{"BASE=" + p.Spec.Work.Base, "WORKSPACE=" + plan.WorkspaceDir},
		WorkingDir: plan.WorkspaceDir,
		Labels:     labels,
		Network:    "none",
		CapDrop:    []string{"ALL"}, SecurityOpt: []string{"no-new-privileges"},
		ReadOnlyRootfs: true,
		Tmpfs:          map[string]string{"/tmp": "rw,size=256m"},
		Runtime:        agent.Runtime,
		Memory:         1 << 30,
		PidsLimit:      256,
		Mounts:         []docker.Mount{{Source: p.Spec.Workspace, Target: plan.WorkspaceDir, Volume: true}},
	}
	hctx, cancel := context.WithTimeout(ctx, harvestTimeout)
	defer cancel()
	id, err := l.eng.CreateContainer(hctx, spec)
	if err != nil {
		return backend.Work{}, err
	}
	defer l.eng.RemoveContainer(context.WithoutCancel(ctx), id)

	tmp, err := os.MkdirTemp("", "claude-bottle-harvest-")
	if err != nil {
		return backend.Work{}, err
	}
	defer os.RemoveAll(tmp)
	bundle := filepath.Join(tmp, "work.bundle")
	f, err := os.OpenFile(bundle, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return backend.Work{}, err
	}
	var stderr bytes.Buffer
	code, err := l.eng.AttachStart(hctx, id, docker.Streams{Stdout: f, Stderr: &workback.FirstBytes{W: &stderr, N: 4096}})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return backend.Work{}, fmt.Errorf("harvest: %w", err)
	}
	switch code {
	case 0:
	case workback.ExitNothing:
		return backend.Work{Nothing: true}, nil
	default:
		return backend.Work{}, fmt.Errorf("harvest exited %d: %s", code, strings.TrimSpace(stderr.String()))
	}
	r, err := workback.Import(ctx, p.Spec.Work.Repo, bundle, p.Spec.Work.Branch, p.Spec.Work.Base)
	if err != nil {
		return backend.Work{}, err
	}
	return backend.Work{Branch: r.Branch, Repo: p.Spec.Work.Repo, Commits: r.Commits}, nil
}

// saveArchive writes the agent's /workspace as a tar file (owner-only),
// unless it holds nothing. It reports whether it wrote one.
func (l *Backend) saveArchive(ctx context.Context, agentID, path string) (bool, error) {
	rc, err := l.eng.CopyFrom(ctx, agentID, plan.WorkspaceDir)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	return workback.SaveArchive(rc, path)
}

// FinishOrphan implements backend.Backend: it brings back the work of an instance whose launcher is gone
// (killed, or its machine restarted), from the plan it left in its stage
// directory. An instance with no plan or no agent container left has no
// work to bring back: the result is zero.
func (l *Backend) FinishOrphan(ctx context.Context, instance string) (backend.Work, error) {
	p, err := launch.KeptPlan(l.State, instance)
	if err != nil || p.Instance != instance {
		return backend.Work{Nothing: true}, nil
	}
	cs, err := l.eng.ListContainers(ctx, map[string]string{plan.LabelInstance: instance, plan.LabelRole: plan.RoleAgent}, true)
	if err != nil || len(cs) == 0 {
		return backend.Work{Nothing: true}, err
	}
	return l.finish(ctx, p, cs[0].ID)
}
