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
	cs, err := c.ListContainers(ctx, nil, true)
	if err != nil {
		return obs, err
	}
	// Every name counts, not only ours: a pinned name may collide with any
	// container, and a stranger's container is never an orphan of ours.
	for _, x := range cs {
		live := true
		if _, ours := x.Labels[plan.LabelInstance]; ours {
			live = launch.OwnerAlive(x.Labels[plan.LabelOwner])
		}
		obs.Resources = append(obs.Resources, plan.Resource{Name: x.Name, Kind: "container", Live: live})
	}
	ns, err := c.ListNetworks(ctx, nil)
	if err != nil {
		return obs, err
	}
	for _, x := range ns {
		live := true
		if _, ours := x.Labels[plan.LabelInstance]; ours {
			live = launch.OwnerAlive(x.Labels[plan.LabelOwner])
		}
		obs.Resources = append(obs.Resources, plan.Resource{Name: x.Name, Kind: "network", Live: live})
	}
	vs, err := c.ListVolumes(ctx, nil)
	if err != nil {
		return obs, err
	}
	for _, x := range vs {
		live := true
		if _, ours := x.Labels[plan.LabelInstance]; ours {
			live = launch.OwnerAlive(x.Labels[plan.LabelOwner])
		}
		obs.Resources = append(obs.Resources, plan.Resource{Name: x.Name, Kind: "volume", Live: live})
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
		if inst == "" {
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

// Orphans implements backend.Backend: it lists the labelled containers and networks whose launcher is gone.
func (b *Backend) Orphans(ctx context.Context) ([]backend.Orphan, error) {
	c := b.eng
	var out []backend.Orphan
	cs, err := c.ListContainers(ctx, map[string]string{plan.LabelInstance: ""}, true)
	if err != nil {
		return nil, err
	}
	for _, x := range cs {
		if !launch.OwnerAlive(x.Labels[plan.LabelOwner]) {
			out = append(out, backend.Orphan{Kind: "container", Name: x.Name, Instance: x.Labels[plan.LabelInstance]})
		}
	}
	ns, err := c.ListNetworks(ctx, map[string]string{plan.LabelInstance: ""})
	if err != nil {
		return nil, err
	}
	for _, x := range ns {
		if !launch.OwnerAlive(x.Labels[plan.LabelOwner]) {
			out = append(out, backend.Orphan{Kind: "network", Name: x.Name, Instance: x.Labels[plan.LabelInstance]})
		}
	}
	vs, err := c.ListVolumes(ctx, map[string]string{plan.LabelInstance: ""})
	if err != nil {
		return nil, err
	}
	for _, x := range vs {
		if !launch.OwnerAlive(x.Labels[plan.LabelOwner]) {
			out = append(out, backend.Orphan{Kind: "volume", Name: x.Name, Instance: x.Labels[plan.LabelInstance]})
		}
	}
	return out, nil
}
