// Package backend is the seam between the CLI and what runs bottles: the
// CLI parses flags and prints, a Backend turns a plan into its own
// operations and runs them. The Docker engine is the first backend
// (internal/backend/docker).
package backend

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/plan"
	"github.com/claude-bottle/claude-bottle/internal/supervise"
)

// Backend runs bottles on one kind of engine. Every method that talks to
// the engine takes ctx first; none prints to the user's terminal except
// through the progress writer it was made with.
type Backend interface {
	// Name is the backend's name as `--backend` spells it.
	Name() string
	// Close releases the connection to the engine.
	Close() error

	// Facts gathers what planning needs to know of this host and engine
	// (whether gVisor works here, ...). With req.Build it first builds the
	// images that are missing (run); without, it builds and starts nothing
	// (plan).
	Facts(ctx context.Context, req FactsRequest) (plan.Host, error)
	// Observe reads what exists already that bears on naming, and the
	// subnets of the networks egress joins (join). A caller that plans
	// concurrently with other launchers holds a lock from here until Up
	// says the name is claimed.
	Observe(ctx context.Context, join []string) (plan.Observed, error)
	// Operations lists, in order, the operations Up performs for p. It is
	// pure: `plan` prints it without an engine.
	Operations(p *plan.Plan) []plan.Op
	// Up runs p's operations: after it returns without error every sidecar
	// is ready and the agent is created, not started. On error or when
	// ctx ends, everything Up created is removed before it returns.
	Up(ctx context.Context, p *plan.Plan, opts UpOptions) (*Bottle, error)
	// Attach connects streams to the agent, starts it and returns its exit
	// code.
	Attach(ctx context.Context, b *Bottle, s Streams) (int, error)
	// Resize sets the agent's terminal size.
	Resize(ctx context.Context, b *Bottle, height, width uint) error
	// Finish stops the agent and brings its work back (Spec.Work).
	Finish(ctx context.Context, b *Bottle) (Work, error)
	// Down removes everything of an instance. It is idempotent.
	Down(ctx context.Context, instance string) error

	// List returns the bottles the engine runs (ps).
	List(ctx context.Context) ([]Instance, error)
	// Orphans lists what belongs to no live launcher (cleanup).
	Orphans(ctx context.Context) ([]Orphan, error)
	// FinishOrphan brings back the work of an instance whose launcher is
	// gone, from what it left behind.
	FinishOrphan(ctx context.Context, instance string) (Work, error)

	// Apply makes an approved supervise request real in a running bottle.
	Apply(ctx context.Context, instance string, req supervise.Request, opts supervise.ApplyOptions) error
}

// FactsRequest says what Facts is for.
type FactsRequest struct {
	// Agent is the agent to be planned.
	Agent string
	// Build builds the missing images first (for run); Need says which.
	Build bool
	Need  Images
	// ExtraCA is the path of a PEM bundle image builds trust ("" none).
	ExtraCA string
}

// Images says which images a bottle needs.
type Images struct {
	Sidecar, GitGate, Agent bool
}

// UpOptions are what Up needs beside the plan.
type UpOptions struct {
	// ManifestPath is the manifest's absolute path (shown to the agent).
	ManifestPath string
	// Claimed is called once the instance's name is taken in the engine,
	// so a caller that serialises naming across processes can let the next
	// one plan. It may be called before Up returns, or not at all on error.
	Claimed func()
}

// Bottle is an instance whose sidecars are ready and whose agent has not
// started yet.
type Bottle struct {
	Plan *plan.Plan
	// Agent is the backend's handle of the agent (a container ID).
	Agent string
	// Missing lists forwarded variables not set on the host.
	Missing []string
}

// Streams are the agent's standard streams.
type Streams struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	TTY            bool
}

// Instance is one bottle as `ps` shows it.
type Instance struct {
	Instance string
	Agent    string
	// Runtime is the agent's OCI runtime; Runtimes maps every role to its
	// runtime, and RuntimeReason says why (plan.Reason*).
	Runtime       string
	Runtimes      map[string]string
	RuntimeReason string
	Sidecars      []string
	Created       time.Time
	// Live says its launcher still runs.
	Live bool
}

// Orphan is a resource that belongs to no live bottle.
type Orphan struct {
	Kind     string // container, network or volume
	Name     string
	Instance string
}

// Work says what became of the agent's work.
type Work struct {
	// Branch and Repo: the work came back as this branch of Repo.
	Branch, Repo string
	Commits      int
	// Archive: /workspace was saved as this tar file.
	Archive string
	// Nothing: there was nothing new to bring back.
	Nothing bool
}

// String is the one line run prints about it.
func (w Work) String() string {
	switch {
	case w.Branch != "":
		return fmt.Sprintf("the agent's work is on branch %s in %s (%d new commit(s); uncommitted changes, if any, are the last one)", w.Branch, w.Repo, w.Commits)
	case w.Archive != "":
		return fmt.Sprintf("the agent's /workspace is saved in %s", w.Archive)
	default:
		return "the agent left no new work in /workspace"
	}
}
