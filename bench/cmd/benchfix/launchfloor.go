package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sync"

	"github.com/claude-bottle/claude-bottle/internal/docker"
)

// launchFloor does, through the same engine client as claude-bottle and
// with nothing else, what any bottle of this shape needs per run: create a
// private (internal) network, and an outside one when -outside; create and
// start -sidecars containers on it (concurrently; the first also joins the
// outside network); create, start and wait for the agent container running
// `true`; then remove every container and network. No staging, readiness
// checks, hardening or labels. bench/launch.sh times it beside the bare
// `docker run --rm` and the real `claude-bottle run`: the engine's share
// of a launch, which no launcher design that keeps this shape can avoid.
func launchFloor(ctx context.Context, args []string) (err error) {
	fs := flag.NewFlagSet("launchfloor", flag.ExitOnError)
	image := fs.String("image", "claude-bottle-agent:local", "image for every container")
	prefix := fs.String("prefix", "cbfloor", "name prefix of everything made")
	nsidecars := fs.Int("sidecars", 1, "sidecar containers")
	outside := fs.Bool("outside", false, "also create an outside network, joined by the first sidecar")
	fs.Parse(args)

	dc, err := docker.New(ctx)
	if err != nil {
		return err
	}
	defer dc.Close()
	cleanup := context.WithoutCancel(ctx)
	var mu sync.Mutex
	var made, nets []string
	defer func() {
		err = errors.Join(err,
			concurrently(made, func(id string) error { return dc.RemoveContainer(cleanup, id) }),
			concurrently(nets, func(n string) error { return dc.RemoveNetwork(cleanup, n) }))
	}()

	specs := []docker.NetworkSpec{{Name: *prefix + "-net", Internal: true}}
	if *outside {
		specs = append(specs, docker.NetworkSpec{Name: *prefix + "-out"})
	}
	err = concurrently(specs, func(s docker.NetworkSpec) error {
		if _, err := dc.CreateNetwork(ctx, s); err != nil {
			return err
		}
		mu.Lock()
		nets = append(nets, s.Name)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	sidecars := make([]docker.ContainerSpec, *nsidecars)
	for i := range sidecars {
		sidecars[i] = docker.ContainerSpec{Name: fmt.Sprintf("%s-side%d", *prefix, i), Image: *image,
			Entrypoint: []string{"sleep"}, Cmd: []string{"300"}, Network: *prefix + "-net"}
		if i == 0 && *outside {
			sidecars[i].ExtraNetworks = []docker.Attach{{Network: *prefix + "-out"}}
		}
	}
	err = concurrently(sidecars, func(spec docker.ContainerSpec) error {
		id, err := dc.CreateContainer(ctx, spec)
		if err != nil {
			return err
		}
		mu.Lock()
		made = append(made, id)
		mu.Unlock()
		return dc.StartContainer(ctx, id)
	})
	if err != nil {
		return err
	}
	id, err := dc.CreateContainer(ctx, docker.ContainerSpec{Name: *prefix + "-agent", Image: *image, Cmd: []string{"true"}, Network: *prefix + "-net"})
	if err != nil {
		return err
	}
	made = append(made, id)
	code, err := dc.AttachStart(ctx, id, docker.Streams{})
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("agent exited %d", code)
	}
	return nil
}

// concurrently runs f on every item at once and joins their errors.
func concurrently[T any](items []T, f func(T) error) error {
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(it)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
