package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/backend"
	"github.com/claude-bottle/claude-bottle/internal/docker"
	"github.com/claude-bottle/claude-bottle/internal/images"
	"github.com/claude-bottle/claude-bottle/internal/launch"
	"github.com/claude-bottle/claude-bottle/internal/plan"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

// The Docker backend's operation kinds. Each is one engine call (or one
// write of host files), and each knows how to undo itself.
const (
	// OpImage builds the derived image with the working directory copied
	// in (--cwd). Not undone: the image is per agent and reused.
	OpImage = "image"
	// OpNetwork creates one of the instance's networks.
	OpNetwork = "network"
	// OpStage writes the stage directory: the sidecars' and the agent's
	// files (launch.Prepare).
	OpStage = "stage"
	// OpClaudeState prepares the agent's Claude Code state. Not undone: it
	// is the agent's, kept between runs.
	OpClaudeState = "claude-state"
	// OpVolume creates the workspace volume.
	OpVolume = "volume"
	// OpCreate creates a container (a sidecar, or the agent, last).
	OpCreate = "create"
	// OpStart starts a sidecar.
	OpStart = "start"
	// OpReady runs a sidecar's readiness check until it passes.
	OpReady = "ready"
)

// Operations implements backend.Backend. The order is the order of the
// plan: networks, then the stage files, then the sidecars (each created
// once the sidecars its hosts file names run, then started, then checked),
// and the agent's container last, created once every sidecar runs (its
// resolver is egress's address, its hosts file names each sidecar) while
// they may still be getting ready. Up returns once every op finished.
func (b *Backend) Operations(p *plan.Plan) []plan.Op { return Operations(p) }

// Operations lists the operations that launch p; see Backend.Operations.
func Operations(p *plan.Plan) []plan.Op {
	var ops []plan.Op
	var first []string
	if p.Spec.DerivedImage != "" {
		o := plan.NewOp(OpImage, p.Spec.DerivedImage)
		ops, first = append(ops, o), []string{o.ID}
	}
	var nets []string
	for _, n := range p.Docker.Networks {
		o := plan.NewOp(OpNetwork, n.Name, first...)
		ops, nets = append(ops, o), append(nets, o.ID)
	}
	st := plan.NewOp(OpStage, p.Instance, nets...)
	claude := plan.NewOp(OpClaudeState, p.Agent, st.ID)
	ops = append(ops, st, claude)
	agentAfter := []string{claude.ID}
	for _, c := range p.Docker.Containers {
		if c.Role == plan.RoleAgent {
			continue
		}
		after := []string{st.ID}
		for _, dep := range c.HostsFrom {
			after = append(after, OpStart+" "+dep)
		}
		create := plan.NewOp(OpCreate, c.Role, after...)
		start := plan.NewOp(OpStart, c.Role, create.ID)
		ops = append(ops, create, start)
		agentAfter = append(agentAfter, start.ID)
		if len(c.Health) > 0 {
			ops = append(ops, plan.NewOp(OpReady, c.Role, start.ID))
		}
	}
	vol := plan.NewOp(OpVolume, p.Spec.Workspace, st.ID)
	agentAfter = append(agentAfter, vol.ID)
	ops = append(ops, vol, plan.NewOp(OpCreate, plan.RoleAgent, agentAfter...))
	return ops
}

// undo reverses one finished operation; nil when there is nothing to undo.
type undo func(ctx context.Context) error

// execute runs ops, each once every op in its After finished, as many at
// once as that allows. When one fails (or ctx ends), no further op starts,
// the running ones are cancelled and waited for, and then every op that
// did something is undone, in the reverse of the order they finished.
// It returns the first failure, joined with any failure to undo.
func execute(ctx context.Context, ops []plan.Op, run func(context.Context, plan.Op) (undo, error)) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type result struct {
		i    int
		undo undo
		err  error
	}
	results := make(chan result)
	done := map[string]bool{}
	started := make([]bool, len(ops))
	running := 0
	var failure error
	next := func() {
		for i, o := range ops {
			if started[i] || failure != nil || ctx.Err() != nil {
				continue
			}
			ready := true
			for _, a := range o.After {
				ready = ready && done[a]
			}
			if !ready {
				continue
			}
			started[i] = true
			running++
			go func() {
				u, err := run(ctx, o)
				results <- result{i, u, err}
			}()
		}
	}
	var undos []undo
	next()
	for running > 0 {
		r := <-results
		running--
		if r.undo != nil {
			undos = append(undos, r.undo)
		}
		switch {
		case r.err != nil && failure == nil:
			failure = r.err
			cancel(r.err)
		case r.err == nil:
			done[ops[r.i].ID] = true
		}
		next()
	}
	if failure == nil {
		failure = context.Cause(ctx)
	}
	if failure == nil && len(done) < len(ops) {
		var never []string
		for i, o := range ops {
			if !started[i] {
				never = append(never, o.ID)
			}
		}
		failure = fmt.Errorf("operations whose prerequisites never finished: %s", strings.Join(never, ", "))
	}
	if failure == nil {
		return nil
	}
	var errs []error
	uctx := context.WithoutCancel(ctx)
	for i := len(undos) - 1; i >= 0; i-- {
		if err := undos[i](uctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w (and undoing what was done failed: %v)", failure, err)
	}
	return failure
}

// Up implements backend.Backend: it runs Operations(p). On failure, after
// the undo, it also removes whatever still carries the instance's label (a
// create the engine finished after its call was abandoned).
func (b *Backend) Up(ctx context.Context, p *plan.Plan, opts backend.UpOptions) (*backend.Bottle, error) {
	l := &launcher{Backend: b, p: p, opts: opts, dir: stage.InstanceDir(b.State, p.Instance), ids: map[string]string{}}
	l.bottle = &backend.Bottle{Plan: p}
	if p.Spec.DerivedImage != "" {
		// The build can take minutes: let other runs plan meanwhile.
		l.claim()
	}
	err := execute(ctx, Operations(p), l.run)
	if err == nil && l.bottle.Agent == "" {
		err = errors.New("the agent container was not created")
	}
	if err != nil {
		if derr := b.Down(context.WithoutCancel(ctx), p.Instance); derr != nil {
			err = fmt.Errorf("%w (and cleaning up failed: %v; run `claude-bottle cleanup`)", err, derr)
		}
		return nil, err
	}
	return l.bottle, nil
}

// launcher is the state of one Up: the containers made so far.
type launcher struct {
	*Backend
	p      *plan.Plan
	opts   backend.UpOptions
	dir    string
	once   sync.Once
	mu     sync.Mutex
	ids    map[string]string // role -> container ID
	bottle *backend.Bottle
}

func (l *launcher) claim() {
	if l.opts.Claimed != nil {
		l.once.Do(l.opts.Claimed)
	}
}

func (l *launcher) id(role string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ids[role]
}

// run performs one operation: the executor's switch.
func (l *launcher) run(ctx context.Context, o plan.Op) (undo, error) {
	if l.failOp != nil {
		if err := l.failOp(o); err != nil {
			return nil, err
		}
	}
	p := l.p
	switch o.Kind {
	case OpImage:
		return nil, l.buildImage(ctx)
	case OpNetwork:
		n := p.Docker.Network(o.Target)
		if n == nil {
			return nil, fmt.Errorf("the plan has no network %s", o.Target)
		}
		sctx, cancel := settle(ctx)
		defer cancel()
		if _, err := l.eng.CreateNetwork(sctx, docker.NetworkSpec{Name: n.Name, Internal: n.Internal, Labels: n.Labels, Options: n.Options}); err != nil {
			return nil, err
		}
		return func(ctx context.Context) error { return l.eng.RemoveNetwork(ctx, n.Name) }, ctx.Err()
	case OpStage:
		// The instance's networks exist: its name is taken.
		l.claim()
		rm := func(context.Context) error { return os.RemoveAll(l.dir) }
		if err := launch.Prepare(ctx, p, l.dir, stage.LogDir(l.State, p.Instance), l.opts.ManifestPath, l.Getenv); err != nil {
			return rm, fmt.Errorf("stage %s: %w", p.Instance, err)
		}
		return rm, nil
	case OpClaudeState:
		if err := launch.PrepareClaudeState(stage.ClaudeDir(l.State, p.Agent), &p.Spec); err != nil {
			return nil, err
		}
		if uid := os.Getuid(); uid != 0 && uid != launch.AgentUID {
			// The agent runs as uid 1000 and the state is owner-only.
			l.progress("claude-bottle: your uid is %d, not %d: the agent (uid %d) cannot write its Claude state in %s, so it will not persist", uid, launch.AgentUID, launch.AgentUID, stage.ClaudeDir(l.State, p.Agent))
		}
		return nil, nil
	case OpVolume:
		sctx, cancel := settle(ctx)
		defer cancel()
		// The workspace outlives the agent container, so that its work can
		// be brought back after the agent stopped, however it stopped.
		if err := l.eng.CreateVolume(sctx, docker.VolumeSpec{Name: o.Target, Labels: p.Docker.Container(plan.RoleAgent).Labels}); err != nil {
			return nil, err
		}
		return func(ctx context.Context) error { return l.eng.RemoveVolume(ctx, o.Target) }, ctx.Err()
	case OpCreate:
		c := p.Docker.Container(o.Target)
		if c == nil {
			return nil, fmt.Errorf("the plan has no %s container", o.Target)
		}
		var id string
		var err error
		if c.Role == plan.RoleAgent {
			id, err = l.createAgent(ctx, *c)
		} else {
			id, err = l.createSidecar(ctx, *c)
		}
		if id == "" {
			return nil, err
		}
		l.mu.Lock()
		l.ids[c.Role] = id
		l.mu.Unlock()
		return func(ctx context.Context) error { return l.eng.RemoveContainer(ctx, id) }, err
	case OpStart:
		if err := l.eng.StartContainer(ctx, l.id(o.Target)); err != nil {
			return nil, fmt.Errorf("start %s sidecar: %w", o.Target, err)
		}
		return nil, nil
	case OpReady:
		if err := l.waitReady(ctx, l.id(o.Target), *p.Docker.Container(o.Target)); err != nil {
			return nil, err
		}
		l.progress("  %s ready", o.Target)
		return nil, nil
	}
	return nil, fmt.Errorf("unknown operation %q", o.ID)
}

// buildImage builds the derived image: the agent image with the working
// directory copied to /workspace, never the files the manifest names as
// secrets.
func (l *launcher) buildImage(ctx context.Context) error {
	if l.client == nil {
		return errors.New("no engine to build the workspace image with")
	}
	s := &l.p.Spec
	if err := images.BuildWorkspace(ctx, l.client, l.Log, s.Image, s.DerivedImage, s.Cwd, secretFiles(s), l.Progress); err != nil {
		return fmt.Errorf("--cwd: %w", err)
	}
	return nil
}

// secretFiles lists the host files the bottle reads secrets from: --cwd
// never copies them into the agent's workspace.
func secretFiles(s *plan.Spec) []string {
	var out []string
	for _, r := range s.Routes {
		for _, c := range r.Credentials {
			if c.File != "" {
				out = append(out, c.File)
			}
		}
	}
	for _, r := range s.Repos {
		if r.Key != "" {
			out = append(out, r.Key)
		}
		if r.Token != nil && r.Token.File != "" {
			out = append(out, r.Token.File)
		}
	}
	return out
}

// createSidecar creates a sidecar's container; its hosts file names the
// sidecars of HostsFrom, which run by now (the op waits for their start).
func (l *launcher) createSidecar(ctx context.Context, c plan.Container) (string, error) {
	hosts, _, err := l.addresses(ctx, c.HostsFrom, c.Network)
	if err != nil {
		return "", err
	}
	spec := l.spec(c)
	spec.ExtraHosts = hosts
	sctx, cancel := settle(ctx)
	defer cancel()
	id, err := l.eng.CreateContainer(sctx, spec)
	if err != nil {
		return "", fmt.Errorf("create %s sidecar: %w", c.Role, err)
	}
	return id, ctx.Err()
}

// createAgent creates (does not start) the agent container. Its resolver
// is the egress DNS stub: Docker's embedded DNS answers the bottle's own
// names and forwards everything else there, where it is refused and logged.
// Under gVisor the embedded DNS is out of reach (it listens on the
// loopback of the container's network namespace, and gVisor has its own
// loopback): there the resolver is the stub itself, through a resolv.conf
// mounted from the stage directory, and the sidecars' names come from the
// hosts file under either runtime.
func (l *launcher) createAgent(ctx context.Context, agent plan.Container) (string, error) {
	p := l.p
	spec := l.spec(agent)
	var roles []string
	for _, c := range p.Docker.Containers {
		if c.Role != plan.RoleAgent {
			roles = append(roles, c.Role)
		}
	}
	hosts, addrs, err := l.addresses(ctx, roles, agent.Network)
	if err != nil {
		return "", err
	}
	ip := addrs[plan.RoleEgress]
	if ip == "" {
		return "", fmt.Errorf("the bottle has no egress sidecar on %s", agent.Network)
	}
	spec.ExtraHosts = hosts
	spec.DNS = []string{ip}
	if agent.Runtime == "runsc" {
		// In current-config: world-readable like the rest there (the
		// agent reads it), and it holds nothing secret.
		resolv := filepath.Join(l.dir, stage.CurrentConfig, "resolv.conf")
		if err := stage.WriteFile(resolv, []byte("nameserver "+ip+"\noptions ndots:0\n"), 0o644); err != nil {
			return "", err
		}
		spec.Mounts = append(spec.Mounts, docker.Mount{Source: resolv, Target: "/etc/resolv.conf", ReadOnly: true})
	}
	env, missing := launch.AgentEnv(p, l.Getenv)
	spec.Env = env
	sctx, cancel := settle(ctx)
	defer cancel()
	id, err := l.eng.CreateContainer(sctx, spec)
	if err != nil {
		return "", fmt.Errorf("create agent container: %w", err)
	}
	l.mu.Lock()
	l.bottle.Agent, l.bottle.Missing = id, missing
	l.mu.Unlock()
	return id, ctx.Err()
}

// addresses returns hosts-file entries (ROLE:IP) for the sidecars of roles
// on network, and the addresses by role; each must be running.
func (l *launcher) addresses(ctx context.Context, roles []string, network string) ([]string, map[string]string, error) {
	var hosts []string
	addrs := map[string]string{}
	for _, role := range roles {
		c := l.p.Docker.Container(role)
		if c == nil {
			return nil, nil, fmt.Errorf("the plan has no %s sidecar", role)
		}
		info, err := l.eng.InspectContainer(ctx, c.Name)
		if err != nil {
			return nil, nil, err
		}
		addr := info.IPs[network]
		if addr == "" {
			return nil, nil, fmt.Errorf("%s sidecar has no address on %s", role, network)
		}
		addrs[role] = addr
		hosts = append(hosts, role+":"+addr)
	}
	return hosts, addrs, nil
}

// settle gives an engine call that creates something a context that
// Ctrl-C does not cut short. A create whose request is abandoned midway may
// still complete in the engine, after teardown has listed what to remove:
// letting it finish (bounded) means teardown sees everything. The caller
// checks ctx afterwards.
func settle(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
}

// spec turns a planned container into an engine spec.
func (l *launcher) spec(c plan.Container) docker.ContainerSpec {
	s := docker.ContainerSpec{
		Name: c.Name, Image: c.Image, Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, User: c.User,
		Labels: c.Labels, Network: c.Network, Aliases: c.Aliases, Tmpfs: c.Tmpfs,
		CapDrop: c.CapDrop, SecurityOpt: c.SecurityOpt, ReadOnlyRootfs: c.ReadOnlyRootfs,
		Runtime: c.Runtime, Memory: c.Memory, NanoCPUs: c.NanoCPUs, PidsLimit: c.PidsLimit,
		Sysctls: c.Sysctls, TTY: c.TTY, OpenStdin: c.Stdin, StdinOnce: c.Stdin, Init: c.Init,
	}
	for _, n := range c.Join {
		s.ExtraNetworks = append(s.ExtraNetworks, docker.Attach{Network: n})
	}
	for _, m := range c.Mounts {
		src := m.Source
		switch {
		case m.Volume:
		case m.Stage && m.Source == stage.LogsDir:
			src = stage.LogDir(l.State, l.p.Instance)
		case m.Stage && m.Source == stage.ClaudeState:
			src = stage.ClaudeDir(l.State, c.Labels[plan.LabelAgent])
		case m.Stage:
			src = filepath.Join(l.dir, m.Source)
		}
		s.Mounts = append(s.Mounts, docker.Mount{Source: src, Target: m.Target, ReadOnly: m.ReadOnly, Volume: m.Volume})
	}
	return s
}

// waitReady runs the readiness check until it passes, the container dies,
// or the timeout passes. It backs off from 20 ms to 250 ms between tries.
func (l *launcher) waitReady(ctx context.Context, id string, c plan.Container) error {
	timeout := l.ReadyTimeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	delay := 20 * time.Millisecond
	var last string
	for {
		code, out, err := l.eng.Exec(ctx, id, c.Health, "")
		if err == nil && code == 0 {
			return nil
		}
		if err == nil {
			last = strings.TrimSpace(string(out))
		} else {
			last = err.Error()
		}
		info, ierr := l.eng.InspectContainer(context.WithoutCancel(ctx), id)
		if ierr == nil && !info.Running {
			logs, _ := l.eng.Logs(context.WithoutCancel(ctx), id)
			return fmt.Errorf("%s sidecar exited (code %d) before it was ready: %s", c.Role, info.ExitCode, tail(string(logs), 5))
		}
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("%s sidecar not ready after %s: %s", c.Role, timeout, last)
			}
			return ctx.Err()
		case <-time.After(delay):
		}
		if delay < 250*time.Millisecond {
			delay *= 2
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// Attach implements backend.Backend.
func (b *Backend) Attach(ctx context.Context, bt *backend.Bottle, s backend.Streams) (int, error) {
	return b.eng.AttachStart(ctx, bt.Agent, docker.Streams{Stdin: s.Stdin, Stdout: s.Stdout, Stderr: s.Stderr, TTY: s.TTY})
}

// Resize implements backend.Backend.
func (b *Backend) Resize(ctx context.Context, bt *backend.Bottle, height, width uint) error {
	return b.eng.ResizeTTY(ctx, bt.Agent, height, width)
}

// Down implements backend.Backend: it removes every container and network of an instance, and its stage
// directory. Containers go first (a network with members cannot be
// removed); it lists twice so a container created concurrently with the
// first pass is caught by the second.
func (b *Backend) Down(ctx context.Context, instance string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var errs []error
	for pass := 0; pass < 2; pass++ {
		cs, err := b.eng.ListContainers(ctx, map[string]string{plan.LabelInstance: instance}, true)
		if err != nil {
			return err
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, c := range cs {
			wg.Add(1)
			go func(id, name string) {
				defer wg.Done()
				if err := b.eng.RemoveContainer(ctx, id); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("remove container %s: %w", name, err))
					mu.Unlock()
				}
			}(c.ID, c.Name)
		}
		wg.Wait()
	}
	vs, err := b.eng.ListVolumes(ctx, map[string]string{plan.LabelInstance: instance})
	if err != nil {
		errs = append(errs, err)
	}
	for _, v := range vs {
		if err := b.eng.RemoveVolume(ctx, v.Name); err != nil {
			errs = append(errs, err)
		}
	}
	ns, err := b.eng.ListNetworks(ctx, map[string]string{plan.LabelInstance: instance})
	if err != nil {
		errs = append(errs, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, n := range ns {
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			if err := b.eng.RemoveNetwork(ctx, name); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("remove network %s: %w", name, err))
				mu.Unlock()
			}
		}(n.Name)
	}
	wg.Wait()
	if b.State != "" {
		if err := os.RemoveAll(stage.InstanceDir(b.State, instance)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
