package docker

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/claude-bottle/claude-bottle/internal/backend"
	"github.com/claude-bottle/claude-bottle/internal/docker"
	"github.com/claude-bottle/claude-bottle/internal/launch"
	"github.com/claude-bottle/claude-bottle/internal/plan"
)

// Observe reads the engine state that bears on naming: every container and
// network whose name could collide with an instance's, and the subnets of
// the networks the egress sidecar will join.
func Observe(ctx context.Context, c engine, join []string) (plan.Observed, error) {
	var obs plan.Observed
	// Every name counts, not only ours: a pinned name may collide with any
	// container, and a stranger's container is never an orphan of ours.
	rs, err := resources(ctx, c, nil)
	if err != nil {
		return obs, err
	}
	for _, r := range rs {
		live := true
		if _, ours := r.labels[plan.LabelInstance]; ours {
			live = launch.OwnerAlive(r.labels[plan.LabelOwner])
		}
		obs.Resources = append(obs.Resources, plan.Resource{Name: r.name, Kind: r.kind, Live: live})
	}
	for _, n := range join {
		subnets, err := c.NetworkSubnets(ctx, n)
		if errors.Is(err, docker.ErrNotFound) {
			return obs, fmt.Errorf("the bottle's egress.networks names %q, but no Docker network has that name; create it or remove it from the manifest", n)
		}
		if err != nil {
			return obs, err
		}
		if obs.Subnets == nil {
			obs.Subnets = map[string][]string{}
		}
		obs.Subnets[n] = subnets
	}
	return obs, nil
}

// List implements backend.Backend: it groups the engine's claude-bottle containers by instance.
func (b *Backend) List(ctx context.Context) ([]backend.Instance, error) {
	c := b.eng
	cs, err := c.ListContainers(ctx, map[string]string{plan.LabelInstance: ""}, true)
	if err != nil {
		return nil, err
	}
	by := map[string]*backend.Instance{}
	for _, x := range cs {
		inst := x.Labels[plan.LabelInstance]
		if role := x.Labels[plan.LabelRole]; inst == "" || role == roleProbe || role == roleReap {
			continue
		}
		r := by[inst]
		if r == nil {
			r = &backend.Instance{Instance: inst, Agent: x.Labels[plan.LabelAgent], Live: launch.OwnerAlive(x.Labels[plan.LabelOwner]),
				Runtimes: map[string]string{}}
			by[inst] = r
		}
		role := x.Labels[plan.LabelRole]
		if rt := x.Labels[plan.LabelRuntime]; rt != "" {
			r.Runtimes[role] = rt
		}
		if why := x.Labels[plan.LabelRuntimeReason]; why != "" {
			r.RuntimeReason = why
		}
		if role == plan.RoleAgent {
			r.Runtime = x.Labels[plan.LabelRuntime]
			r.Created = x.Created
		} else {
			r.Sidecars = append(r.Sidecars, role)
			if r.Created.IsZero() || x.Created.Before(r.Created) {
				r.Created = x.Created
			}
		}
	}
	out := make([]backend.Instance, 0, len(by))
	for _, r := range by {
		sort.Strings(r.Sidecars)
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Instance < out[j].Instance })
	return out, nil
}

// Orphans implements backend.Backend: it lists the labelled containers,
// networks and volumes whose launcher is gone.
func (b *Backend) Orphans(ctx context.Context) ([]backend.Orphan, error) {
	rs, err := resources(ctx, b.eng, map[string]string{plan.LabelInstance: ""})
	if err != nil {
		return nil, err
	}
	var out []backend.Orphan
	for _, r := range rs {
		if !launch.OwnerAlive(r.labels[plan.LabelOwner]) {
			out = append(out, backend.Orphan{Kind: r.kind, Name: r.name, Instance: r.labels[plan.LabelInstance]})
		}
	}
	return out, nil
}

// resource is a container, network or volume, with its labels.
type resource struct {
	kind, name string
	labels     map[string]string
}

// resources lists every container (running or not), network and volume
// that carries labels (an empty value matches any).
func resources(ctx context.Context, c engine, labels map[string]string) ([]resource, error) {
	var out []resource
	cs, err := c.ListContainers(ctx, labels, true)
	if err != nil {
		return nil, err
	}
	for _, x := range cs {
		out = append(out, resource{"container", x.Name, x.Labels})
	}
	ns, err := c.ListNetworks(ctx, labels)
	if err != nil {
		return nil, err
	}
	for _, x := range ns {
		out = append(out, resource{"network", x.Name, x.Labels})
	}
	vs, err := c.ListVolumes(ctx, labels)
	if err != nil {
		return nil, err
	}
	for _, x := range vs {
		out = append(out, resource{"volume", x.Name, x.Labels})
	}
	return out, nil
}
