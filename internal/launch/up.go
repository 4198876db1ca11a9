// Package launch executes a plan against the engine: it stages the host
// files, creates the networks and sidecars, waits for each to be ready,
// runs the agent, and tears everything down again.
package launch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/docker"
	"github.com/claude-bottle/claude-bottle/internal/plan"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

// Launcher runs plans on one engine.
type Launcher struct {
	Docker *docker.Client
	Log    *slog.Logger
	// State is the host state directory (stage.StateDir).
	State string
	// Progress receives one line per phase for a person; nil discards.
	Progress io.Writer
	Getenv   func(string) string
	// ReadyTimeout bounds each sidecar's readiness; 0 means 60 s.
	ReadyTimeout time.Duration
}

// Bottle is a launched instance whose agent has not run yet.
type Bottle struct {
	Plan     *plan.Plan
	StageDir string
	// AgentID is the created (not started) agent container.
	AgentID string
	// Missing lists forwarded variables not set on the host.
	Missing []string
}

func (l *Launcher) progress(format string, args ...any) {
	if l.Progress != nil {
		fmt.Fprintf(l.Progress, format+"\n", args...)
	}
}

// Up stages the instance, creates its networks, starts its sidecars (each
// waited for by its readiness check) and creates the agent container. On
// any error, or when ctx is cancelled, it removes everything it made
// before returning.
//
// claimed is called once the instance's networks exist, so a caller that
// serialises naming across processes can let the next one plan.
func (l *Launcher) Up(ctx context.Context, p *plan.Plan, manifestPath string, claimed func()) (b *Bottle, err error) {
	dir := stage.InstanceDir(l.State, p.Instance)
	b = &Bottle{Plan: p, StageDir: dir}
	defer func() {
		if err != nil {
			if derr := l.Down(context.WithoutCancel(ctx), p.Instance); derr != nil {
				err = fmt.Errorf("%w (and cleaning up failed: %v; run `claude-bottle cleanup`)", err, derr)
			}
			b = nil
		}
	}()
	if err := l.createNetworks(ctx, p.Docker.Networks); err != nil {
		return nil, err
	}
	if claimed != nil {
		claimed()
	}
	if err := Prepare(ctx, p, dir, stage.LogDir(l.State, p.Instance), manifestPath, l.Getenv); err != nil {
		return nil, fmt.Errorf("stage %s: %w", p.Instance, err)
	}
	if err := PrepareClaudeState(stage.ClaudeDir(l.State, p.Agent), &p.Spec); err != nil {
		return nil, err
	}
	if uid := os.Getuid(); uid != 0 && uid != AgentUID {
		// The agent runs as uid 1000 and the state is owner-only.
		l.progress("claude-bottle: your uid is %d, not %d: the agent (uid %d) cannot write its Claude state in %s, so it will not persist", uid, AgentUID, AgentUID, stage.ClaudeDir(l.State, p.Agent))
	}
	// Sidecars start concurrently: none needs another at start (cred-proxy
	// and git-gate reach egress by name only when a request comes). The
	// agent container is created as soon as every sidecar runs (its
	// resolver is egress's address, its hosts file names each sidecar's)
	// while they are still getting ready; it is started only once every
	// sidecar passed its readiness check.
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	agent := p.Docker.Container(plan.RoleAgent)
	createAgent := func() {
		defer wg.Done()
		id, missing, err := l.createAgent(ctx, dir, p, *agent)
		if err != nil {
			fail(err)
			return
		}
		b.AgentID, b.Missing = id, missing
	}
	pending := len(p.Docker.Containers) - 1
	// runs[role] is closed once that sidecar runs, or failed to: a sidecar
	// whose hosts file names another (HostsFrom) is created only then.
	runs := map[string]chan struct{}{}
	for _, c := range p.Docker.Containers {
		runs[c.Role] = make(chan struct{})
	}
	for _, c := range p.Docker.Containers {
		if c.Role == plan.RoleAgent {
			continue
		}
		wg.Add(1)
		go func(c plan.Container) {
			defer wg.Done()
			var once sync.Once
			ran := func() { once.Do(func() { close(runs[c.Role]) }) }
			defer ran()
			started := func() {
				ran()
				mu.Lock()
				pending--
				last := pending == 0
				mu.Unlock()
				if last {
					wg.Add(1)
					go createAgent()
				}
			}
			for _, dep := range c.HostsFrom {
				select {
				case <-runs[dep]:
				case <-ctx.Done():
					fail(ctx.Err())
					return
				}
			}
			hosts, _, err := l.addresses(ctx, p, c.HostsFrom, c.Network)
			if err == nil {
				err = l.startSidecar(ctx, dir, c, hosts, started)
			}
			if err != nil {
				fail(err)
			}
		}(c)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if b.AgentID == "" {
		return nil, errors.New("the agent container was not created")
	}
	return b, nil
}

// createNetworks creates the instance's networks concurrently.
func (l *Launcher) createNetworks(ctx context.Context, nets []plan.Network) error {
	errs := make([]error, len(nets))
	var wg sync.WaitGroup
	for i, n := range nets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := settle(ctx)
			defer cancel()
			_, errs[i] = l.Docker.CreateNetwork(sctx, docker.NetworkSpec{Name: n.Name, Internal: n.Internal, Labels: n.Labels, Options: n.Options})
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// createAgent creates (does not start) the agent container. Its resolver
// is the egress DNS stub: Docker's embedded DNS answers the bottle's own
// names and forwards everything else there, where it is refused and logged.
// Under gVisor the embedded DNS is out of reach (it listens on the
// loopback of the container's network namespace, and gVisor has its own
// loopback): there the resolver is the stub itself, through a resolv.conf
// mounted from the stage directory, and the sidecars' names come from the
// hosts file under either runtime.
func (l *Launcher) createAgent(ctx context.Context, dir string, p *plan.Plan, agent plan.Container) (string, []string, error) {
	spec := l.spec(dir, agent)
	var roles []string
	for _, c := range p.Docker.Containers {
		if c.Role != plan.RoleAgent {
			roles = append(roles, c.Role)
		}
	}
	hosts, addrs, err := l.addresses(ctx, p, roles, agent.Network)
	if err != nil {
		return "", nil, err
	}
	ip := addrs[plan.RoleEgress]
	if ip == "" {
		return "", nil, fmt.Errorf("the bottle has no egress sidecar on %s", agent.Network)
	}
	spec.ExtraHosts = hosts
	spec.DNS = []string{ip}
	if agent.Runtime == "runsc" {
		// In current-config: world-readable like the rest there (the
		// agent reads it), and it holds nothing secret.
		resolv := filepath.Join(dir, stage.CurrentConfig, "resolv.conf")
		if err := stage.WriteFile(resolv, []byte("nameserver "+ip+"\noptions ndots:0\n"), 0o644); err != nil {
			return "", nil, err
		}
		spec.Mounts = append(spec.Mounts, docker.Mount{Source: resolv, Target: "/etc/resolv.conf", ReadOnly: true})
	}
	env, missing := AgentEnv(p, l.Getenv)
	spec.Env = env
	spec.OpenStdin = true
	spec.StdinOnce = true
	spec.Init = true
	sctx, cancel := settle(ctx)
	defer cancel()
	// The workspace outlives the agent container, so that its work can be
	// brought back after the agent stopped, however it stopped.
	if err := l.Docker.CreateVolume(sctx, docker.VolumeSpec{Name: p.Spec.Workspace, Labels: agent.Labels}); err != nil {
		return "", nil, err
	}
	id, err := l.Docker.CreateContainer(sctx, spec)
	if err != nil {
		return "", nil, fmt.Errorf("create agent container: %w", err)
	}
	return id, missing, ctx.Err()
}

// addresses returns hosts-file entries (ROLE:IP) for the sidecars of roles
// on network, and the addresses by role; each must be running.
func (l *Launcher) addresses(ctx context.Context, p *plan.Plan, roles []string, network string) ([]string, map[string]string, error) {
	var hosts []string
	addrs := map[string]string{}
	for _, role := range roles {
		c := p.Docker.Container(role)
		if c == nil {
			return nil, nil, fmt.Errorf("the plan has no %s sidecar", role)
		}
		info, err := l.Docker.InspectContainer(ctx, c.Name)
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
func (l *Launcher) spec(dir string, c plan.Container) docker.ContainerSpec {
	s := docker.ContainerSpec{
		Name: c.Name, Image: c.Image, Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, User: c.User,
		Labels: c.Labels, Network: c.Network, Aliases: c.Aliases, Tmpfs: c.Tmpfs,
		CapDrop: c.CapDrop, SecurityOpt: c.SecurityOpt, ReadOnlyRootfs: c.ReadOnlyRootfs,
		Runtime: c.Runtime, Memory: c.Memory, NanoCPUs: c.NanoCPUs, PidsLimit: c.PidsLimit,
		Sysctls: c.Sysctls, TTY: c.TTY,
	}
	for _, n := range c.Join {
		s.ExtraNetworks = append(s.ExtraNetworks, docker.Attach{Network: n})
	}
	for _, m := range c.Mounts {
		src := m.Source
		switch {
		case m.Volume:
		case m.Stage && m.Source == stage.LogsDir:
			src = stage.LogDir(l.State, filepath.Base(dir))
		case m.Stage && m.Source == stage.ClaudeState:
			src = stage.ClaudeDir(l.State, c.Labels[plan.LabelAgent])
		case m.Stage:
			src = filepath.Join(dir, m.Source)
		}
		s.Mounts = append(s.Mounts, docker.Mount{Source: src, Target: m.Target, ReadOnly: m.ReadOnly, Volume: m.Volume})
	}
	return s
}

func (l *Launcher) startSidecar(ctx context.Context, dir string, c plan.Container, hosts []string, started func()) error {
	spec := l.spec(dir, c)
	spec.ExtraHosts = hosts
	sctx, cancel := settle(ctx)
	id, err := l.Docker.CreateContainer(sctx, spec)
	cancel()
	if err != nil {
		return fmt.Errorf("create %s sidecar: %w", c.Role, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := l.Docker.StartContainer(ctx, id); err != nil {
		return fmt.Errorf("start %s sidecar: %w", c.Role, err)
	}
	if started != nil {
		started()
	}
	if len(c.Health) == 0 {
		return nil
	}
	if err := l.waitReady(ctx, id, c); err != nil {
		return err
	}
	l.progress("  %s ready", c.Role)
	return nil
}

// waitReady runs the readiness check until it passes, the container dies,
// or the timeout passes. It backs off from 20 ms to 250 ms between tries.
func (l *Launcher) waitReady(ctx context.Context, id string, c plan.Container) error {
	timeout := l.ReadyTimeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	delay := 20 * time.Millisecond
	var last string
	for {
		code, out, err := l.Docker.Exec(ctx, id, c.Health, "")
		if err == nil && code == 0 {
			return nil
		}
		if err == nil {
			last = strings.TrimSpace(string(out))
		} else {
			last = err.Error()
		}
		info, ierr := l.Docker.InspectContainer(context.WithoutCancel(ctx), id)
		if ierr == nil && !info.Running {
			logs, _ := l.Docker.Logs(context.WithoutCancel(ctx), id)
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

// Run attaches the agent's streams, starts it and returns its exit code.
func (l *Launcher) Run(ctx context.Context, b *Bottle, streams docker.Streams) (int, error) {
	return l.Docker.AttachStart(ctx, b.AgentID, streams)
}

// Down removes every container and network of an instance, and its stage
// directory. Containers go first (a network with members cannot be
// removed); it lists twice so a container created concurrently with the
// first pass is caught by the second.
func (l *Launcher) Down(ctx context.Context, instance string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var errs []error
	for pass := 0; pass < 2; pass++ {
		cs, err := l.Docker.ListContainers(ctx, map[string]string{plan.LabelInstance: instance}, true)
		if err != nil {
			return err
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, c := range cs {
			wg.Add(1)
			go func(id, name string) {
				defer wg.Done()
				if err := l.Docker.RemoveContainer(ctx, id); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("remove container %s: %w", name, err))
					mu.Unlock()
				}
			}(c.ID, c.Name)
		}
		wg.Wait()
	}
	vs, err := l.Docker.ListVolumes(ctx, map[string]string{plan.LabelInstance: instance})
	if err != nil {
		errs = append(errs, err)
	}
	for _, v := range vs {
		if err := l.Docker.RemoveVolume(ctx, v.Name); err != nil {
			errs = append(errs, err)
		}
	}
	ns, err := l.Docker.ListNetworks(ctx, map[string]string{plan.LabelInstance: instance})
	if err != nil {
		errs = append(errs, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, n := range ns {
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			if err := l.Docker.RemoveNetwork(ctx, name); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("remove network %s: %w", name, err))
				mu.Unlock()
			}
		}(n.Name)
	}
	wg.Wait()
	if l.State != "" {
		if err := os.RemoveAll(stage.InstanceDir(l.State, instance)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
