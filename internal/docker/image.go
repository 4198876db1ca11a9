package docker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"
)

// BuildSpec describes an image build with the engine's classic builder.
type BuildSpec struct {
	Tag string
	// Context is a tar stream holding the Dockerfile and every file it copies.
	Context io.Reader
	// Dockerfile is the Dockerfile's path inside Context; "" means "Dockerfile".
	Dockerfile string
	Labels     map[string]string
	BuildArgs  map[string]*string
}

// Image is a local image.
type Image struct {
	ID      string
	Tags    []string
	Labels  map[string]string
	Created time.Time
}

// buildTail is how many lines of build output a failed build's error carries.
const buildTail = 15

// BuildImage builds and tags an image, writing the builder's output to
// progress (nil discards). A failed build's error carries the last lines of
// output, since that is where the cause is.
func (c *Client) BuildImage(ctx context.Context, spec BuildSpec, progress io.Writer) error {
	op := "build image " + spec.Tag
	if progress == nil {
		progress = io.Discard
	}
	res, err := c.api.ImageBuild(ctx, spec.Context, client.ImageBuildOptions{
		Tags:        []string{spec.Tag},
		Dockerfile:  spec.Dockerfile,
		Labels:      spec.Labels,
		BuildArgs:   spec.BuildArgs,
		Remove:      true,
		ForceRemove: true,
		Version:     build.BuilderV1,
	})
	if err != nil {
		return wrap(op, err)
	}
	defer res.Body.Close()

	var tail []string
	keep := func(text string) {
		for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
			if strings.TrimSpace(l) == "" {
				continue
			}
			tail = append(tail, l)
			if len(tail) > buildTail {
				tail = tail[1:]
			}
		}
	}
	dec := json.NewDecoder(bufio.NewReader(res.Body))
	for {
		var m struct {
			Stream      string `json:"stream"`
			Status      string `json:"status"`
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("%s: read build output: %w", op, err)
		}
		msg := m.Error
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			msg = m.ErrorDetail.Message
		}
		if msg != "" {
			if len(tail) == 0 {
				return fmt.Errorf("%s: %s", op, msg)
			}
			return fmt.Errorf("%s: %s\nlast build output:\n%s", op, msg, strings.Join(tail, "\n"))
		}
		text := m.Stream
		if text == "" && m.Status != "" {
			text = m.Status + "\n"
		}
		if text != "" {
			keep(text)
			if _, err := io.WriteString(progress, text); err != nil {
				return fmt.Errorf("%s: write progress: %w", op, err)
			}
		}
	}
}

// InspectImage returns a local image; the bool is false (and the error nil)
// when there is none by that reference.
func (c *Client) InspectImage(ctx context.Context, ref string) (Image, bool, error) {
	res, err := c.api.ImageInspect(ctx, ref)
	if err != nil {
		err = wrap("inspect image "+ref, err)
		if isNotFound(err) {
			return Image{}, false, nil
		}
		return Image{}, false, err
	}
	img := Image{ID: res.ID, Tags: res.RepoTags}
	if res.Config != nil {
		img.Labels = res.Config.Labels
	}
	if t, err := time.Parse(time.RFC3339Nano, res.Created); err == nil {
		img.Created = t
	}
	return img, true, nil
}

// ImageLabels returns a local image's labels; the bool says whether the
// image exists.
func (c *Client) ImageLabels(ctx context.Context, ref string) (map[string]string, bool, error) {
	img, ok, err := c.InspectImage(ctx, ref)
	return img.Labels, ok, err
}

// ListImages lists local images carrying all the given labels (an empty
// value matches any value).
func (c *Client) ListImages(ctx context.Context, labels map[string]string) ([]Image, error) {
	res, err := c.api.ImageList(ctx, client.ImageListOptions{Filters: labelFilters(labels)})
	if err != nil {
		return nil, wrap("list images", err)
	}
	out := make([]Image, 0, len(res.Items))
	for _, s := range res.Items {
		out = append(out, Image{ID: s.ID, Tags: s.RepoTags, Labels: s.Labels, Created: time.Unix(s.Created, 0)})
	}
	return out, nil
}

// RemoveImage removes an image reference (untagging it, and deleting the
// image when no other tag is left); a missing one is not an error. An image
// a container still uses is ErrConflict: it is never pulled from under one.
func (c *Client) RemoveImage(ctx context.Context, ref string) error {
	_, err := c.api.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: true})
	err = wrap("remove image "+ref, err)
	if isNotFound(err) {
		return nil
	}
	return err
}

// TagImage gives the image source the additional reference target.
func (c *Client) TagImage(ctx context.Context, source, target string) error {
	_, err := c.api.ImageTag(ctx, client.ImageTagOptions{Source: source, Target: target})
	return wrap(fmt.Sprintf("tag image %s as %s", source, target), err)
}
