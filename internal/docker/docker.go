// Package docker is the only package that talks to the Docker Engine API; it
// wraps the SDK in the few calls claude-bottle makes and maps engine errors to
// sentinels callers can branch on.
package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// ErrNotFound reports that the engine has no such object (container,
// network, image).
var ErrNotFound = errors.New("not found")

// ErrConflict reports that the object already exists or is in a state that
// forbids the call (a name in use, removing a network that has endpoints).
var ErrConflict = errors.New("conflict")

// Client is a connection to one Docker engine. It is safe for concurrent use.
type Client struct {
	api *client.Client
}

// New connects to the engine named by the usual environment (DOCKER_HOST,
// DOCKER_TLS_VERIFY, DOCKER_CERT_PATH), negotiates the API version and pings
// it, so an unreachable engine fails here with a hint rather than on the
// first real call.
func New(ctx context.Context) (*Client, error) {
	api, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	if _, err := api.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		api.Close()
		host := os.Getenv("DOCKER_HOST")
		if host == "" {
			host = api.DaemonHost()
		}
		return nil, fmt.Errorf("cannot reach the Docker engine (DOCKER_HOST=%s): %w; start dockerd or set DOCKER_HOST", host, err)
	}
	return &Client{api: api}, nil
}

// Close releases the client's idle connections.
func (c *Client) Close() error {
	return c.api.Close()
}

// Info describes the engine.
type Info struct {
	ServerVersion string
	// APIVersion is the version negotiated with the engine.
	APIVersion string
	// Runtimes lists the OCI runtimes the engine knows (runc, runsc, ...), sorted.
	Runtimes []string
	// RuntimePaths maps each runtime to its binary as the engine was told
	// (an absolute path, or a name the engine looks up in its PATH).
	RuntimePaths map[string]string
	// ID identifies the engine; KernelVersion is its host's kernel.
	ID, KernelVersion string
}

// Info returns the engine's version and runtimes.
func (c *Client) Info(ctx context.Context) (Info, error) {
	res, err := c.api.Info(ctx, client.InfoOptions{})
	if err != nil {
		return Info{}, wrap("engine info", err)
	}
	var rts []string
	paths := map[string]string{}
	for name, r := range res.Info.Runtimes {
		rts = append(rts, name)
		paths[name] = r.Path
	}
	slices.Sort(rts)
	return Info{ServerVersion: res.Info.ServerVersion, APIVersion: c.api.ClientVersion(), Runtimes: rts,
		RuntimePaths: paths, ID: res.Info.ID, KernelVersion: res.Info.KernelVersion}, nil
}

// engineError keeps the engine's message while letting errors.Is match our
// sentinel, so callers never import the SDK's error packages.
type engineError struct {
	kind error
	err  error
}

func (e *engineError) Error() string   { return e.err.Error() }
func (e *engineError) Unwrap() []error { return []error{e.kind, e.err} }

// wrap adds op as context and maps the engine's error class to a sentinel.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case cerrdefs.IsNotFound(err):
		err = &engineError{kind: ErrNotFound, err: err}
	case cerrdefs.IsConflict(err):
		err = &engineError{kind: ErrConflict, err: err}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// labelFilters turns a label map into engine filters; an empty value matches
// any object that has the key.
func labelFilters(labels map[string]string) client.Filters {
	f := client.Filters{}
	for k, v := range labels {
		if v == "" {
			f.Add("label", k)
		} else {
			f.Add("label", k+"="+v)
		}
	}
	return f
}
