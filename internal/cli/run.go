package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/claude-bottle/claude-bottle/internal/backend"
	"github.com/claude-bottle/claude-bottle/internal/launch"
	"github.com/claude-bottle/claude-bottle/internal/manifest"
	"github.com/claude-bottle/claude-bottle/internal/plan"
	"github.com/claude-bottle/claude-bottle/internal/stage"
	"github.com/claude-bottle/claude-bottle/internal/workback"
)

func newRunCmd(g *globals) *cobra.Command {
	var cwd bool
	var caCerts string
	cmd := &cobra.Command{
		Use:   "run [AGENT] [-- CMD ARGS...]",
		Short: "Run an agent in a new bottle; everything is removed when it exits",
		Long: `Run an agent in a new bottle. Builds or reuses the images, creates the bottle's
networks and sidecars, waits for each to be ready, then attaches the agent (Claude Code,
autonomous unless the agent says autonomous: false). When the agent exits, on Ctrl-C
before it is attached, on SIGTERM or when the terminal closes (SIGHUP), the agent's work
comes back (with --cwd in a git repository: as the branch claude-bottle/INSTANCE; else
/workspace is saved under the state directory's work/), then every container, volume,
network and stage file of the bottle is removed. The agent's exit code is run's exit
code. See docs/run.md.

With -- CMD ARGS, the agent container runs that command instead of the agent's own.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, command, err := agentArgs("run", args, cmd.ArgsLenAtDash())
			if err != nil {
				return err
			}
			return runBottle(cmd.Context(), g, name, command, cwd, caCerts)
		},
	}
	cmd.Flags().BoolVar(&cwd, "cwd", false, "copy the working directory into a derived image (honours .claude-bottle-ignore or .dockerignore)")
	cmd.Flags().StringVar(&caCerts, "ca-certs", "", "PEM bundle of extra CA certificates for image builds (default $CLAUDE_BOTTLE_EXTRA_CA, else the manifest's images.ca_certs)")
	return cmd
}

// loadManifest finds and loads the manifest strictly, before any engine call.
func loadManifest(g *globals) (*manifest.Manifest, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	return manifest.Find(wd, g.manifest)
}

// phases prints how long each launch phase took, for the benchmark, when
// CLAUDE_BOTTLE_TIMINGS=1.
type phases struct {
	w    io.Writer
	last time.Time
}

func (p *phases) mark(name string) {
	if p.w == nil {
		return
	}
	now := time.Now()
	fmt.Fprintf(p.w, "claude-bottle: timing %s %.0f ms\n", name, float64(now.Sub(p.last).Microseconds())/1000)
	p.last = now
}

func runBottle(ctx context.Context, g *globals, name string, command []string, cwd bool, caFlag string) error {
	t := &phases{last: time.Now()}
	if g.getenv("CLAUDE_BOTTLE_TIMINGS") == "1" {
		t.w = g.stderr
	}
	m, err := loadManifest(g)
	if err != nil {
		return err
	}
	agent, err := plan.PickAgent(m, name)
	if err != nil {
		return err
	}
	bottle := m.Bottles[m.Agents[agent].Bottle]
	g.fromManifest, g.kube = m.Backend, bottle.Kubernetes
	// A missing token is known now: say so before the engine is asked and
	// before minutes of image builds.
	if err := credentialsPresent(bottle, g.getenv); err != nil {
		return err
	}
	state, err := stage.StateDir(g.getenv)
	if err != nil {
		return err
	}
	tty := isTerminal(g.stdin) && isTerminal(g.stdout)
	var progress io.Writer
	if isTerminal(g.stderr) {
		progress = g.stderr
	}
	ca, err := extraCA(caFlag, g.getenv, func() (*manifest.Manifest, error) { return m, nil })
	if err != nil {
		return err
	}
	be, err := openBackend(ctx, g, progress)
	if err != nil {
		return err
	}
	defer be.Close()

	host, err := be.Facts(ctx, backend.FactsRequest{Agent: agent, Build: true, ExtraCA: ca, Need: backend.Images{
		Sidecar: true, GitGate: len(bottle.Git.Repos) > 0, Agent: g.getenv("CLAUDE_BOTTLE_IMAGE") == "",
	}})
	if err != nil {
		return err
	}
	t.mark("images")
	host.RouteCredential = routeCredentials(bottle, g.getenv)
	wd, _ := os.Getwd()
	opts := plan.Options{Agent: agent, Command: command, TTY: tty}
	if cwd {
		opts.Cwd = wd
		if opts.CwdRepo, err = cwdRepo(ctx, wd); err != nil {
			return err
		}
	}

	// Observing and claiming a name happen under a host-wide lock, so
	// concurrent runs of one agent get distinct instances. Up releases it
	// once the name is taken (or before a --cwd image build).
	unlock, err := lockFile(ctx, filepath.Join(state, "launch.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	obs, err := be.Observe(ctx, bottle.Egress.Networks)
	if err != nil {
		return err
	}
	p, err := plan.Build(m, opts, obs, host)
	if err != nil {
		return err
	}
	p.Backend, p.Operations = be.Name(), be.Operations(p)
	for _, n := range p.Notes {
		fmt.Fprintf(g.stderr, "claude-bottle: %s\n", n)
	}
	if p.Spec.Work.Mode == "branch" {
		// Name the branch now, so that what run promises is what it does
		// (unless another run takes the name meanwhile: then a suffix).
		if b, err := workback.FreeBranch(ctx, p.Spec.Work.Repo, p.Spec.Work.Branch); err == nil {
			p.Spec.Work.Branch = b
		}
	}
	switch {
	case p.Spec.Work.Mode == "branch":
		fmt.Fprintf(g.stderr, "claude-bottle: when the bottle ends, the agent's commits and uncommitted changes come back to %s as branch %s\n", p.Spec.Work.Repo, p.Spec.Work.Branch)
	case cwd:
		fmt.Fprintf(g.stderr, "claude-bottle: %s is not the top of a git repository: when the bottle ends, /workspace is saved under %s (nothing is written back into %s)\n", wd, stage.WorkDir(state), wd)
	case len(command) == 0 && workback.TopLevel(ctx, wd) != "":
		fmt.Fprintf(g.stderr, "claude-bottle: the agent starts in an empty /workspace; with --cwd it gets a copy of this repository and its work comes back as a branch\n")
	}
	t.mark("plan")
	if progress != nil {
		fmt.Fprintf(progress, "claude-bottle: starting %s\n", p.Instance)
	}
	manifestPath := m.Path
	if manifestPath != "" {
		manifestPath, _ = filepath.Abs(manifestPath)
	}
	b, err := be.Up(ctx, p, backend.UpOptions{ManifestPath: manifestPath, Claimed: unlock})
	unlock()
	if err != nil {
		if ctx.Err() != nil {
			return &exitError{code: signalCode(ctx), err: fmt.Errorf("interrupted while starting %s; everything it created was removed", p.Instance)}
		}
		return fmt.Errorf("start %s: %w", p.Instance, err)
	}
	t.mark("start")
	// However the agent ends (its own exit, Ctrl-C, SIGTERM, a closed
	// terminal), its work comes back before teardown removes the bottle.
	// Neither waits on ctx: a signal must not cut them short.
	defer func() {
		fctx := context.WithoutCancel(ctx)
		work, err := be.Finish(fctx, b)
		switch {
		case err != nil:
			fmt.Fprintf(g.stderr, "claude-bottle: bringing the work back: %v\n", err)
		case work.Nothing:
		default:
			fmt.Fprintf(g.stderr, "claude-bottle: %s\n", work)
		}
		t.mark("finish")
		if err := be.Down(fctx, p.Instance); err != nil {
			fmt.Fprintf(g.stderr, "claude-bottle: teardown of %s: %v\n", p.Instance, err)
		}
		t.mark("teardown")
	}()
	for _, n := range b.Missing {
		fmt.Fprintf(g.stderr, "claude-bottle: %s is to be forwarded but is not set on the host; the agent will not have it\n", n)
	}

	streams := backend.Streams{Stdin: g.stdin, Stdout: g.stdout, Stderr: g.stderr, TTY: tty}
	var restore func()
	if tty {
		restore, err = rawTerminal(ctx, g, be, b)
		if err != nil {
			return err
		}
	}
	code, err := be.Attach(ctx, b, streams)
	if restore != nil {
		restore()
	}
	t.mark("agent")
	if err != nil {
		if ctx.Err() != nil {
			return &exitError{code: signalCode(ctx), err: fmt.Errorf("%v; %s is being removed", context.Cause(ctx), p.Instance)}
		}
		return fmt.Errorf("agent: %w", err)
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}

func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// rawTerminal puts the host terminal in raw mode and keeps the agent's TTY
// size in step with it. The returned func restores the terminal.
func rawTerminal(ctx context.Context, g *globals, be backend.Backend, b *backend.Bottle) (func(), error) {
	in := g.stdin.(*os.File)
	out := g.stdout.(*os.File)
	old, err := term.MakeRaw(int(in.Fd()))
	if err != nil {
		return nil, fmt.Errorf("terminal raw mode: %w", err)
	}
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	done := make(chan struct{})
	resize := func() {
		if w, h, err := term.GetSize(int(out.Fd())); err == nil {
			_ = be.Resize(ctx, b, uint(h), uint(w))
		}
	}
	go func() {
		// The container starts right after attach; size it as soon as it runs.
		for i := 0; i < 20; i++ {
			resize()
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
		for {
			select {
			case <-winch:
				resize()
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(winch)
		close(done)
		_ = term.Restore(int(in.Fd()), old)
	}, nil
}

// cwdRepo says whether dir is the top of a git working tree, and at which
// commit. Only then can the agent's work come back as a branch: the copy
// of a subdirectory has no history to build on.
func cwdRepo(ctx context.Context, dir string) (*plan.GitRepo, error) {
	top := workback.TopLevel(ctx, dir)
	if top == "" {
		return nil, nil
	}
	real, _ := filepath.EvalSymlinks(dir)
	if top != dir && top != real {
		return nil, nil
	}
	if fi, err := os.Stat(filepath.Join(dir, ".git")); err != nil || !fi.IsDir() {
		return nil, nil // a linked worktree or submodule: its .git points outside the copy
	}
	head, err := workback.Head(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("--cwd: %w", err)
	}
	return &plan.GitRepo{Root: dir, Head: head}, nil
}

// routeCredentials finds, for each route, which of its credentials is set
// on this host (without reading any secret), so that the plan can give
// Claude Code a placeholder of the same kind.
func routeCredentials(b *manifest.Bottle, getenv func(string) string) map[string]int {
	out := map[string]int{}
	for _, r := range b.CredProxy.Routes {
		for i, c := range r.Credentials {
			if launch.CredentialSet(c, getenv) {
				out[r.Name] = i
				break
			}
		}
	}
	return out
}

// credentialsPresent fails when a route has none of its credentials set on
// this host (launch would fail the same way, later).
func credentialsPresent(b *manifest.Bottle, getenv func(string) string) error {
	set := routeCredentials(b, getenv)
	for _, r := range b.CredProxy.Routes {
		if _, ok := set[r.Name]; !ok {
			return launch.NoToken(fmt.Sprintf("route %q (%s)", r.Name, r.Path), r.Credentials)
		}
	}
	return nil
}
