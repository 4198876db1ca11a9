package docker

import (
	"context"
	"fmt"
	"time"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// NetworkSpec describes a bridge network to create.
type NetworkSpec struct {
	Name string
	// Internal cuts the network off from every outside route: the bottle's
	// only ways out are then the sidecars that are also on another network.
	Internal   bool
	Labels     map[string]string
	EnableIPv6 bool
	// Options are bridge driver options (com.docker.network.bridge.*).
	Options map[string]string
}

// Network is a network as listed by the engine.
type Network struct {
	ID      string
	Name    string
	Labels  map[string]string
	Created time.Time
}

// CreateNetwork creates a bridge network and returns its ID. A network with
// the same name is ErrConflict: engines before API 1.44 would otherwise
// happily create a second network of that name.
func (c *Client) CreateNetwork(ctx context.Context, spec NetworkSpec) (string, error) {
	op := fmt.Sprintf("create network %s", spec.Name)
	exists, err := c.NetworkExists(ctx, spec.Name)
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	if exists {
		return "", fmt.Errorf("%s: %w: a network of that name already exists", op, ErrConflict)
	}
	opts := client.NetworkCreateOptions{
		Driver:   "bridge",
		Internal: spec.Internal,
		Labels:   spec.Labels,
		Options:  spec.Options,
	}
	if spec.EnableIPv6 {
		v6 := true
		opts.EnableIPv6 = &v6
	}
	res, err := c.api.NetworkCreate(ctx, spec.Name, opts)
	if err != nil {
		return "", wrap(op, err)
	}
	return res.ID, nil
}

// RemoveNetwork removes a network by name or ID; a missing one is not an error.
func (c *Client) RemoveNetwork(ctx context.Context, name string) error {
	_, err := c.api.NetworkRemove(ctx, name, client.NetworkRemoveOptions{})
	err = wrap("remove network "+name, err)
	if isNotFound(err) {
		return nil
	}
	return err
}

// ListNetworks lists networks carrying all the given labels (an empty value
// matches any value); nil lists every network.
func (c *Client) ListNetworks(ctx context.Context, labels map[string]string) ([]Network, error) {
	return c.listNetworks(ctx, labelFilters(labels))
}

func (c *Client) listNetworks(ctx context.Context, f client.Filters) ([]Network, error) {
	res, err := c.api.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return nil, wrap("list networks", err)
	}
	out := make([]Network, 0, len(res.Items))
	for _, n := range res.Items {
		out = append(out, Network{ID: n.ID, Name: n.Name, Labels: n.Labels, Created: n.Created})
	}
	return out, nil
}

// NetworkExists reports whether a network has exactly this name. It does not
// inspect by name because the engine would also accept an ID prefix.
func (c *Client) NetworkExists(ctx context.Context, name string) (bool, error) {
	nets, err := c.listNetworks(ctx, client.Filters{}.Add("name", name))
	if err != nil {
		return false, err
	}
	for _, n := range nets {
		if n.Name == name {
			return true, nil
		}
	}
	return false, nil
}

// ConnectNetwork attaches a container to a network under the given DNS aliases.
func (c *Client) ConnectNetwork(ctx context.Context, networkName, container string, aliases []string) error {
	_, err := c.api.NetworkConnect(ctx, networkName, client.NetworkConnectOptions{
		Container:      container,
		EndpointConfig: &network.EndpointSettings{Aliases: aliases},
	})
	return wrap(fmt.Sprintf("connect %s to network %s", container, networkName), err)
}

// NetworkSubnets returns a network's IPAM subnets in CIDR form; a missing
// network is ErrNotFound.
func (c *Client) NetworkSubnets(ctx context.Context, name string) ([]string, error) {
	res, err := c.api.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
	if err != nil {
		return nil, wrap("inspect network "+name, err)
	}
	var out []string
	for _, cfg := range res.Network.IPAM.Config {
		if cfg.Subnet.IsValid() {
			out = append(out, cfg.Subnet.String())
		}
	}
	return out, nil
}
