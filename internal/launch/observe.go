package launch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/docker"
	"github.com/claude-bottle/claude-bottle/internal/plan"
)

// Owner is the owner label value of this launcher: HOST/PID.
func Owner() string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s/%d", h, os.Getpid())
}

// OwnerAlive says whether the launcher named by an owner label still runs.
// A launcher on another host (a shared engine) is assumed alive: we cannot
// tell, and removing a stranger's bottle is worse than keeping an orphan.
// No owner label at all means not ours to judge: alive.
func OwnerAlive(owner string) bool {
	host, pidS, ok := strings.Cut(owner, "/")
	if !ok {
		return true
	}
	if h, _ := os.Hostname(); h != host {
		return true
	}
	pid, err := strconv.Atoi(pidS)
	if err != nil || pid <= 0 {
		return false
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Observe reads the engine state that bears on naming: every container and
// network whose name could collide with an instance's, and the subnets of
// the networks the egress sidecar will join.
func Observe(ctx context.Context, c *docker.Client, join []string) (plan.Observed, error) {
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
			live = OwnerAlive(x.Labels[plan.LabelOwner])
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
			live = OwnerAlive(x.Labels[plan.LabelOwner])
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
			live = OwnerAlive(x.Labels[plan.LabelOwner])
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

// Running is one bottle as `ps` shows it.
type Running struct {
	Instance string
	Agent    string
	// Runtime is the agent's OCI runtime; Runtimes maps every container's
	// role to its runtime, and RuntimeReason says why (plan.Reason*).
	Runtime       string
	Runtimes      map[string]string
	RuntimeReason string
	Sidecars      []string
	Created       time.Time
	Live          bool
}

// List groups the engine's claude-bottle containers by instance.
func List(ctx context.Context, c *docker.Client) ([]Running, error) {
	cs, err := c.ListContainers(ctx, map[string]string{plan.LabelInstance: ""}, true)
	if err != nil {
		return nil, err
	}
	by := map[string]*Running{}
	for _, x := range cs {
		inst := x.Labels[plan.LabelInstance]
		if inst == "" {
			continue
		}
		r := by[inst]
		if r == nil {
			r = &Running{Instance: inst, Agent: x.Labels[plan.LabelAgent], Live: OwnerAlive(x.Labels[plan.LabelOwner]),
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
	out := make([]Running, 0, len(by))
	for _, r := range by {
		sort.Strings(r.Sidecars)
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Instance < out[j].Instance })
	return out, nil
}

// Orphan is a resource that belongs to no live bottle.
type Orphan struct {
	Kind     string // container, network or volume
	Name     string
	Instance string
}

// Orphans lists the labelled containers and networks whose launcher is gone.
func Orphans(ctx context.Context, c *docker.Client) ([]Orphan, error) {
	var out []Orphan
	cs, err := c.ListContainers(ctx, map[string]string{plan.LabelInstance: ""}, true)
	if err != nil {
		return nil, err
	}
	for _, x := range cs {
		if !OwnerAlive(x.Labels[plan.LabelOwner]) {
			out = append(out, Orphan{Kind: "container", Name: x.Name, Instance: x.Labels[plan.LabelInstance]})
		}
	}
	ns, err := c.ListNetworks(ctx, map[string]string{plan.LabelInstance: ""})
	if err != nil {
		return nil, err
	}
	for _, x := range ns {
		if !OwnerAlive(x.Labels[plan.LabelOwner]) {
			out = append(out, Orphan{Kind: "network", Name: x.Name, Instance: x.Labels[plan.LabelInstance]})
		}
	}
	vs, err := c.ListVolumes(ctx, map[string]string{plan.LabelInstance: ""})
	if err != nil {
		return nil, err
	}
	for _, x := range vs {
		if !OwnerAlive(x.Labels[plan.LabelOwner]) {
			out = append(out, Orphan{Kind: "volume", Name: x.Name, Instance: x.Labels[plan.LabelInstance]})
		}
	}
	return out, nil
}
