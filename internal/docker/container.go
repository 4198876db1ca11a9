package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// ContainerSpec describes a container to create. Zero values mean the
// engine's (or image's) default.
type ContainerSpec struct {
	Name       string
	Image      string
	Cmd        []string
	Entrypoint []string
	Env        []string
	User       string
	WorkingDir string
	Hostname   string
	Labels     map[string]string
	// Network is the network the container is created on, reachable there
	// under Aliases; "" leaves the engine's default bridge, "none" gives it
	// no network at all.
	Network string
	Aliases []string
	// ExtraNetworks are connected after create and before start: API 1.41
	// cannot attach several networks at create.
	ExtraNetworks []Attach
	Mounts        []Mount
	// Tmpfs maps a container path to its mount options ("" for defaults).
	Tmpfs          map[string]string
	CapDrop        []string
	CapAdd         []string
	SecurityOpt    []string
	ReadOnlyRootfs bool
	// Runtime is the OCI runtime (runc, runsc); "" is the engine's default.
	Runtime string
	// Memory in bytes, NanoCPUs in 1e-9 CPUs, PidsLimit in processes; 0 is unlimited.
	Memory    int64
	NanoCPUs  int64
	PidsLimit int64
	// DNS lists resolver IP addresses.
	DNS []string
	// ExtraHosts are hosts-file entries, NAME:IP.
	ExtraHosts []string
	Sysctls    map[string]string
	TTY        bool
	OpenStdin  bool
	// StdinOnce closes the container's stdin when the attached client closes
	// its end, so a process reading stdin sees EOF.
	StdinOnce bool
	// Init runs the engine's tiny init as PID 1 to reap zombies and forward signals.
	Init bool
	// PidMode "host" shares the host's process namespace; "" gives the
	// container its own.
	PidMode string
}

// Attach is a network to connect a container to, with its DNS aliases there.
type Attach struct {
	Network string
	Aliases []string
}

// Mount is a bind mount from the host, or with Volume a named volume.
type Mount struct {
	Source   string
	Target   string
	ReadOnly bool
	// Volume says Source names a volume (VolumeCreate), not a host path.
	Volume bool
}

// Container is a container as listed by the engine.
type Container struct {
	ID string
	// Name is without the engine's leading slash.
	Name    string
	Image   string
	State   string
	Labels  map[string]string
	Created time.Time
}

// ContainerInfo is what claude-bottle reads back from an inspected container.
type ContainerInfo struct {
	ID       string
	Name     string
	State    string
	Running  bool
	ExitCode int
	// IPs maps each attached network's name to the container's IPv4 address there.
	IPs     map[string]string
	Runtime string
	User    string
	Labels  map[string]string
	// Mounts are the container's bind mounts as the engine applied them.
	Mounts []Mount
}

// Streams are the standard streams of an attached container. Nil Stdin
// attaches none; nil Stdout or Stderr discards. TTY must match the
// container's TTY setting: without one the engine multiplexes both outputs.
type Streams struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	TTY    bool
}

// CreateContainer creates (but does not start) a container and returns its
// ID. If connecting an extra network fails, the container is removed again.
func (c *Client) CreateContainer(ctx context.Context, spec ContainerSpec) (string, error) {
	op := "create container " + spec.Name
	cfg := &container.Config{
		Hostname:     spec.Hostname,
		User:         spec.User,
		AttachStdin:  spec.OpenStdin,
		AttachStdout: true,
		AttachStderr: true,
		Tty:          spec.TTY,
		OpenStdin:    spec.OpenStdin,
		StdinOnce:    spec.StdinOnce,
		Env:          spec.Env,
		Cmd:          spec.Cmd,
		Image:        spec.Image,
		WorkingDir:   spec.WorkingDir,
		Entrypoint:   spec.Entrypoint,
		Labels:       spec.Labels,
	}
	hc := &container.HostConfig{
		CapAdd:         spec.CapAdd,
		CapDrop:        spec.CapDrop,
		SecurityOpt:    spec.SecurityOpt,
		ReadonlyRootfs: spec.ReadOnlyRootfs,
		Tmpfs:          spec.Tmpfs,
		Sysctls:        spec.Sysctls,
		Runtime:        spec.Runtime,
		PidMode:        container.PidMode(spec.PidMode),
		ExtraHosts:     spec.ExtraHosts,
	}
	hc.Memory = spec.Memory
	hc.NanoCPUs = spec.NanoCPUs
	if spec.PidsLimit > 0 {
		pl := spec.PidsLimit
		hc.PidsLimit = &pl
	}
	if spec.Init {
		yes := true
		hc.Init = &yes
	}
	for _, s := range spec.DNS {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return "", fmt.Errorf("%s: dns server %q: %w", op, s, err)
		}
		hc.DNS = append(hc.DNS, a)
	}
	for _, m := range spec.Mounts {
		typ := mount.TypeBind
		if m.Volume {
			typ = mount.TypeVolume
		}
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: typ, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	var nc *network.NetworkingConfig
	if spec.Network == "none" {
		hc.NetworkMode = "none"
	} else if spec.Network != "" {
		hc.NetworkMode = container.NetworkMode(spec.Network)
		nc = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			spec.Network: {Aliases: spec.Aliases},
		}}
	}
	res, err := c.api.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: spec.Name, Config: cfg, HostConfig: hc, NetworkingConfig: nc,
	})
	if err != nil {
		return "", wrap(op, err)
	}
	for _, a := range spec.ExtraNetworks {
		// The engine records a connect to a created container without checking
		// the network; it would only fail at start, far from the cause.
		err := c.ConnectNetwork(ctx, a.Network, res.ID, a.Aliases)
		if err == nil {
			_, err = c.api.NetworkInspect(ctx, a.Network, client.NetworkInspectOptions{})
			err = wrap("inspect network "+a.Network, err)
		}
		if err != nil {
			// Best effort: the create error is what the caller needs to see.
			_ = c.RemoveContainer(context.WithoutCancel(ctx), res.ID)
			return "", fmt.Errorf("%s: %w", op, err)
		}
	}
	return res.ID, nil
}

// StartContainer starts a created container.
func (c *Client) StartContainer(ctx context.Context, id string) error {
	_, err := c.api.ContainerStart(ctx, id, client.ContainerStartOptions{})
	return wrap("start container "+id, err)
}

// StopContainer sends the stop signal and kills after timeout.
func (c *Client) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	secs := int(timeout.Round(time.Second) / time.Second)
	_, err := c.api.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &secs})
	return wrap("stop container "+id, err)
}

// KillContainer sends signal ("" means SIGKILL) to the container's PID 1.
func (c *Client) KillContainer(ctx context.Context, id, signal string) error {
	_, err := c.api.ContainerKill(ctx, id, client.ContainerKillOptions{Signal: signal})
	return wrap("kill container "+id, err)
}

// RemoveContainer force-removes a container and its anonymous volumes; a
// missing one is not an error.
func (c *Client) RemoveContainer(ctx context.Context, id string) error {
	_, err := c.api.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	err = wrap("remove container "+id, err)
	if isNotFound(err) {
		return nil
	}
	return err
}

// ListContainers lists containers carrying all the given labels (an empty
// value matches any value); all includes stopped ones.
func (c *Client) ListContainers(ctx context.Context, labels map[string]string, all bool) ([]Container, error) {
	res, err := c.api.ContainerList(ctx, client.ContainerListOptions{All: all, Filters: labelFilters(labels)})
	if err != nil {
		return nil, wrap("list containers", err)
	}
	out := make([]Container, 0, len(res.Items))
	for _, s := range res.Items {
		var name string
		if len(s.Names) > 0 {
			name = strings.TrimPrefix(s.Names[0], "/")
		}
		out = append(out, Container{
			ID: s.ID, Name: name, Image: s.Image, State: string(s.State),
			Labels: s.Labels, Created: time.Unix(s.Created, 0),
		})
	}
	return out, nil
}

// InspectContainer returns a container's state, addresses and identity.
func (c *Client) InspectContainer(ctx context.Context, id string) (ContainerInfo, error) {
	res, err := c.api.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return ContainerInfo{}, wrap("inspect container "+id, err)
	}
	r := res.Container
	info := ContainerInfo{ID: r.ID, Name: strings.TrimPrefix(r.Name, "/"), IPs: map[string]string{}}
	if r.State != nil {
		info.State = string(r.State.Status)
		info.Running = r.State.Running
		info.ExitCode = r.State.ExitCode
	}
	if r.HostConfig != nil {
		info.Runtime = r.HostConfig.Runtime
	}
	if r.Config != nil {
		info.User = r.Config.User
		info.Labels = r.Config.Labels
	}
	for _, m := range r.Mounts {
		info.Mounts = append(info.Mounts, Mount{Source: m.Source, Target: m.Destination, ReadOnly: !m.RW})
	}
	if r.NetworkSettings != nil {
		for name, ep := range r.NetworkSettings.Networks {
			if ep != nil && ep.IPAddress.IsValid() {
				info.IPs[name] = ep.IPAddress.String()
			}
		}
	}
	return info, nil
}

// Exec runs cmd in a running container as user ("" is the container's user)
// without a TTY or stdin, and returns its exit code and its stdout and stderr
// interleaved as they arrived.
func (c *Client) Exec(ctx context.Context, id string, cmd []string, user string) (int, []byte, error) {
	op := fmt.Sprintf("exec %q in %s", strings.Join(cmd, " "), id)
	ex, err := c.api.ExecCreate(ctx, id, client.ExecCreateOptions{
		User: user, Cmd: cmd, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return 0, nil, wrap(op, err)
	}
	att, err := c.api.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		return 0, nil, wrap(op, err)
	}
	defer att.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, att.Reader); err != nil {
		return 0, out.Bytes(), fmt.Errorf("%s: read output: %w", op, err)
	}
	// The stream ends when the process exits, but the engine may record the
	// exit code a moment later.
	for {
		ins, err := c.api.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
		if err != nil {
			return 0, out.Bytes(), wrap(op, err)
		}
		if !ins.Running {
			return ins.ExitCode, out.Bytes(), nil
		}
		select {
		case <-ctx.Done():
			return 0, out.Bytes(), fmt.Errorf("%s: %w", op, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Wait blocks until the container is not running and returns its exit code.
func (c *Client) Wait(ctx context.Context, id string) (int, error) {
	return c.wait(ctx, id, c.api.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning}))
}

func (c *Client) wait(ctx context.Context, id string, w client.ContainerWaitResult) (int, error) {
	select {
	case r := <-w.Result:
		if r.Error != nil && r.Error.Message != "" {
			return int(r.StatusCode), fmt.Errorf("wait for container %s: %s", id, r.Error.Message)
		}
		return int(r.StatusCode), nil
	case err := <-w.Error:
		return 0, wrap("wait for container "+id, err)
	case <-ctx.Done():
		return 0, fmt.Errorf("wait for container %s: %w", id, ctx.Err())
	}
}

// Logs returns the last 200 lines of the container's output, stdout and
// stderr interleaved.
func (c *Client) Logs(ctx context.Context, id string) ([]byte, error) {
	op := "logs of container " + id
	ins, err := c.api.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return nil, wrap(op, err)
	}
	rc, err := c.api.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: "200"})
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rc.Close()
	var out bytes.Buffer
	if ins.Container.Config != nil && ins.Container.Config.Tty {
		_, err = io.Copy(&out, rc)
	} else {
		_, err = stdcopy.StdCopy(&out, &out, rc)
	}
	if err != nil {
		return out.Bytes(), fmt.Errorf("%s: %w", op, err)
	}
	return out.Bytes(), nil
}

// ResizeTTY sets the container's terminal size.
func (c *Client) ResizeTTY(ctx context.Context, id string, height, width uint) error {
	_, err := c.api.ContainerResize(ctx, id, client.ContainerResizeOptions{Height: height, Width: width})
	return wrap("resize tty of container "+id, err)
}

// AttachStart attaches to a created container, starts it, pumps the streams
// until it exits and returns its exit code. Attaching before start is what
// guarantees no early output is lost. It returns only once all output has
// been copied; it does not wait for s.Stdin, which may never end.
func (c *Client) AttachStart(ctx context.Context, id string, s Streams) (int, error) {
	op := "run container " + id
	stdout, stderr := s.Stdout, s.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	att, err := c.api.ContainerAttach(ctx, id, client.ContainerAttachOptions{
		Stream: true, Stdin: s.Stdin != nil, Stdout: true, Stderr: true,
	})
	if err != nil {
		return 0, wrap(op, err)
	}
	defer att.Close()

	// Registered before start so that even an instant exit is seen.
	waitCtx, cancelWait := context.WithCancel(ctx)
	defer cancelWait()
	w := c.api.ContainerWait(waitCtx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})

	outDone := make(chan error, 1)
	go func() {
		var err error
		if s.TTY {
			_, err = io.Copy(stdout, att.Reader)
		} else {
			_, err = stdcopy.StdCopy(stdout, stderr, att.Reader)
		}
		outDone <- err
	}()
	if s.Stdin != nil {
		go func() {
			_, _ = io.Copy(att.Conn, s.Stdin)
			// Half-close so the process sees EOF while its output keeps flowing.
			_ = att.CloseWrite()
		}()
	}

	if err := c.StartContainer(ctx, id); err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	code, err := c.wait(ctx, id, w)
	if err != nil {
		return code, fmt.Errorf("%s: %w", op, err)
	}
	select {
	case err := <-outDone:
		if err != nil && !errors.Is(err, io.EOF) {
			return code, fmt.Errorf("%s: copy output: %w", op, err)
		}
	case <-ctx.Done():
		return code, fmt.Errorf("%s: copy output: %w", op, ctx.Err())
	}
	return code, nil
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
