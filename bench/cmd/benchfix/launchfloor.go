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
	sidecars := fs.Int("sidecars", 1, "sidecar containers")
	outside := fs.Bool("outside", false, "also create an outside network, joined by the first sidecar")
	fs.Parse(args)

	dc, err := docker.New(ctx)
	if err != nil {
		return err
	}
	defer dc.Close()
	cleanup := context.WithoutCancel(ctx)
	var made []string
	var nets []string
	defer func() {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, id := range made {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if rerr := dc.RemoveContainer(cleanup, id); rerr != nil {
					mu.Lock()
					err = errors.Join(err, rerr)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		for _, n := range nets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if rerr := dc.RemoveNetwork(cleanup, n); rerr != nil {
					mu.Lock()
					err = errors.Join(err, rerr)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}()

	specs := []docker.NetworkSpec{{Name: *prefix + "-net", Internal: true}}
	if *outside {
		specs = append(specs, docker.NetworkSpec{Name: *prefix + "-out"})
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, s := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, cerr := dc.CreateNetwork(ctx, s)
			mu.Lock()
			defer mu.Unlock()
			if cerr != nil {
				errs = append(errs, cerr)
				return
			}
			nets = append(nets, s.Name)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for i := range *sidecars {
		wg.Add(1)
		go func() {
			defer wg.Done()
			spec := docker.ContainerSpec{Name: fmt.Sprintf("%s-side%d", *prefix, i), Image: *image,
				Entrypoint: []string{"sleep"}, Cmd: []string{"300"}, Network: *prefix + "-net"}
			if i == 0 && *outside {
				spec.ExtraNetworks = []docker.Attach{{Network: *prefix + "-out"}}
			}
			id, cerr := dc.CreateContainer(ctx, spec)
			mu.Lock()
			if cerr == nil {
				made = append(made, id)
			}
			mu.Unlock()
			if cerr == nil {
				cerr = dc.StartContainer(ctx, id)
			}
			if cerr != nil {
				mu.Lock()
				errs = append(errs, cerr)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
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
