package docker

import (
	"context"
	"io"

	"github.com/moby/moby/client"
)

// VolumeSpec describes a named volume to create.
type VolumeSpec struct {
	Name   string
	Labels map[string]string
}

// CreateVolume creates a named local volume. A container that mounts it
// at a path its image fills gets a copy of that content on first use.
func (c *Client) CreateVolume(ctx context.Context, spec VolumeSpec) error {
	_, err := c.api.VolumeCreate(ctx, client.VolumeCreateOptions{Name: spec.Name, Labels: spec.Labels})
	return wrap("create volume "+spec.Name, err)
}

// RemoveVolume removes a volume; a missing one is not an error.
func (c *Client) RemoveVolume(ctx context.Context, name string) error {
	_, err := c.api.VolumeRemove(ctx, name, client.VolumeRemoveOptions{Force: true})
	if err = wrap("remove volume "+name, err); err != nil && !isNotFound(err) {
		return err
	}
	return nil
}

// Volume is a volume as listed by the engine.
type Volume struct {
	Name   string
	Labels map[string]string
}

// ListVolumes returns the volumes carrying every label given (an empty
// value matches any value; nil lists all).
func (c *Client) ListVolumes(ctx context.Context, labels map[string]string) ([]Volume, error) {
	res, err := c.api.VolumeList(ctx, client.VolumeListOptions{Filters: labelFilters(labels)})
	if err != nil {
		return nil, wrap("list volumes", err)
	}
	var out []Volume
	for _, v := range res.Items {
		out = append(out, Volume{Name: v.Name, Labels: v.Labels})
	}
	return out, nil
}

// CopyFrom streams a path of a container (running or stopped, including
// its volumes) as a tar archive whose entries are named from the path's
// base name. The caller closes the reader.
func (c *Client) CopyFrom(ctx context.Context, id, path string) (io.ReadCloser, error) {
	res, err := c.api.CopyFromContainer(ctx, id, client.CopyFromContainerOptions{SourcePath: path})
	if err != nil {
		return nil, wrap("copy "+path+" from container "+id, err)
	}
	return res.Content, nil
}
