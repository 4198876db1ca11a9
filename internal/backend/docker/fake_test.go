package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/docker"
)

// fakeEngine is an engine in memory, strict where the real one is: a name
// is taken once, a container needs its networks and volumes, a network or
// volume in use cannot be removed, a container has an address only while
// it runs. fail, when set, is asked before each call and its error returned.
type fakeEngine struct {
	mu      sync.Mutex
	nets    map[string]docker.NetworkSpec
	vols    map[string]docker.VolumeSpec
	ctrs    map[string]*fakeContainer // by ID
	created []string                  // "KIND NAME", in order
	removed []string
	fail    func(call, name string) error
	nextIP  int
}

type fakeContainer struct {
	spec    docker.ContainerSpec
	running bool
	ips     map[string]string
}

func newFakeEngine() *fakeEngine {
	return &fakeEngine{nets: map[string]docker.NetworkSpec{}, vols: map[string]docker.VolumeSpec{}, ctrs: map[string]*fakeContainer{}}
}

func (f *fakeEngine) check(call, name string) error {
	if f.fail != nil {
		return f.fail(call, name)
	}
	return nil
}

func matches(have, want map[string]string) bool {
	for k, v := range want {
		got, ok := have[k]
		if !ok || (v != "" && got != v) {
			return false
		}
	}
	return true
}

func (f *fakeEngine) CreateNetwork(ctx context.Context, s docker.NetworkSpec) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("CreateNetwork", s.Name); err != nil {
		return "", err
	}
	if _, ok := f.nets[s.Name]; ok {
		return "", fmt.Errorf("create network %s: %w", s.Name, docker.ErrConflict)
	}
	f.nets[s.Name] = s
	f.created = append(f.created, "network "+s.Name)
	return "net-" + s.Name, nil
}

func (f *fakeEngine) RemoveNetwork(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.nets[name]; !ok {
		return nil
	}
	for _, c := range f.ctrs {
		if c.spec.Network == name || slices.ContainsFunc(c.spec.ExtraNetworks, func(a docker.Attach) bool { return a.Network == name }) {
			return fmt.Errorf("remove network %s: container %s is attached", name, c.spec.Name)
		}
	}
	delete(f.nets, name)
	f.removed = append(f.removed, "network "+name)
	return nil
}

func (f *fakeEngine) ListNetworks(ctx context.Context, labels map[string]string) ([]docker.Network, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []docker.Network
	for _, n := range f.nets {
		if matches(n.Labels, labels) {
			out = append(out, docker.Network{ID: "net-" + n.Name, Name: n.Name, Labels: n.Labels})
		}
	}
	return out, nil
}

func (f *fakeEngine) NetworkSubnets(ctx context.Context, name string) ([]string, error) {
	return nil, nil
}

func (f *fakeEngine) CreateVolume(ctx context.Context, s docker.VolumeSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("CreateVolume", s.Name); err != nil {
		return err
	}
	f.vols[s.Name] = s
	f.created = append(f.created, "volume "+s.Name)
	return nil
}

func (f *fakeEngine) RemoveVolume(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.vols[name]; !ok {
		return nil
	}
	for _, c := range f.ctrs {
		for _, m := range c.spec.Mounts {
			if m.Volume && m.Source == name {
				return fmt.Errorf("remove volume %s: in use by %s", name, c.spec.Name)
			}
		}
	}
	delete(f.vols, name)
	f.removed = append(f.removed, "volume "+name)
	return nil
}

func (f *fakeEngine) ListVolumes(ctx context.Context, labels map[string]string) ([]docker.Volume, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []docker.Volume
	for _, v := range f.vols {
		if matches(v.Labels, labels) {
			out = append(out, docker.Volume{Name: v.Name, Labels: v.Labels})
		}
	}
	return out, nil
}

func (f *fakeEngine) find(idOrName string) *fakeContainer {
	if c, ok := f.ctrs[idOrName]; ok {
		return c
	}
	for _, c := range f.ctrs {
		if c.spec.Name == idOrName {
			return c
		}
	}
	return nil
}

func (f *fakeEngine) CreateContainer(ctx context.Context, s docker.ContainerSpec) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("CreateContainer", s.Name); err != nil {
		return "", err
	}
	if f.find(s.Name) != nil {
		return "", fmt.Errorf("create container %s: %w", s.Name, docker.ErrConflict)
	}
	nets := []string{s.Network}
	for _, a := range s.ExtraNetworks {
		nets = append(nets, a.Network)
	}
	for _, n := range nets {
		if _, ok := f.nets[n]; !ok && n != "none" {
			return "", fmt.Errorf("create container %s: network %s: %w", s.Name, n, docker.ErrNotFound)
		}
	}
	for _, m := range s.Mounts {
		if _, ok := f.vols[m.Source]; m.Volume && !ok {
			return "", fmt.Errorf("create container %s: volume %s: %w", s.Name, m.Source, docker.ErrNotFound)
		}
	}
	id := "id-" + s.Name
	f.ctrs[id] = &fakeContainer{spec: s, ips: map[string]string{}}
	f.created = append(f.created, "container "+s.Name)
	return id, nil
}

func (f *fakeEngine) StartContainer(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.find(id)
	if c == nil {
		return fmt.Errorf("start %s: %w", id, docker.ErrNotFound)
	}
	if err := f.check("StartContainer", c.spec.Name); err != nil {
		return err
	}
	c.running = true
	nets := []string{c.spec.Network}
	for _, a := range c.spec.ExtraNetworks {
		nets = append(nets, a.Network)
	}
	for _, n := range nets {
		f.nextIP++
		c.ips[n] = fmt.Sprintf("10.0.0.%d", f.nextIP)
	}
	return nil
}

func (f *fakeEngine) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.find(id); c != nil {
		c.running = false
	}
	return nil
}

func (f *fakeEngine) RemoveContainer(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.find(id)
	if c == nil {
		return nil
	}
	delete(f.ctrs, "id-"+c.spec.Name)
	f.removed = append(f.removed, "container "+c.spec.Name)
	return nil
}

func (f *fakeEngine) ListContainers(ctx context.Context, labels map[string]string, all bool) ([]docker.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []docker.Container
	for id, c := range f.ctrs {
		if matches(c.spec.Labels, labels) && (all || c.running) {
			out = append(out, docker.Container{ID: id, Name: c.spec.Name, Labels: c.spec.Labels})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (f *fakeEngine) InspectContainer(ctx context.Context, id string) (docker.ContainerInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.find(id)
	if c == nil {
		return docker.ContainerInfo{}, fmt.Errorf("inspect %s: %w", id, docker.ErrNotFound)
	}
	ips := map[string]string{}
	if c.running {
		ips = c.ips
	}
	return docker.ContainerInfo{ID: "id-" + c.spec.Name, Name: c.spec.Name, Running: c.running, IPs: ips, Labels: c.spec.Labels}, nil
}

func (f *fakeEngine) Exec(ctx context.Context, id string, cmd []string, user string) (int, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.find(id)
	if c == nil || !c.running {
		return 0, nil, errors.New("container is not running")
	}
	if err := f.check("Exec", c.spec.Name); err != nil {
		return 1, []byte(err.Error()), nil
	}
	return 0, nil, nil
}

func (f *fakeEngine) Logs(ctx context.Context, id string) ([]byte, error) { return nil, nil }

func (f *fakeEngine) AttachStart(ctx context.Context, id string, s docker.Streams) (int, error) {
	return 0, f.StartContainer(ctx, id)
}

func (f *fakeEngine) ResizeTTY(ctx context.Context, id string, height, width uint) error { return nil }

func (f *fakeEngine) CopyFrom(ctx context.Context, id, path string) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader("")), nil
}

// left is what exists in the engine.
func (f *fakeEngine) left() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.ctrs {
		out = append(out, "container "+c.spec.Name)
	}
	for n := range f.nets {
		out = append(out, "network "+n)
	}
	for v := range f.vols {
		out = append(out, "volume "+v)
	}
	sort.Strings(out)
	return out
}
