package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	dockerbackend "github.com/claude-bottle/claude-bottle/internal/backend/docker"
	"github.com/claude-bottle/claude-bottle/internal/images"
	"github.com/claude-bottle/claude-bottle/internal/manifest"
)

func newImagesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "images",
		Short: "Build and list claude-bottle's own images",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newImagesBuildCmd(g), newImagesLsCmd(g))
	return cmd
}

func newImagesBuildCmd(g *globals) *cobra.Command {
	var agentOnly bool
	var caCerts string
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Build the agent, sidecar and git-gate images (each only if its inputs changed)",
		Long: `Build the agent, sidecar and git-gate images. An image is rebuilt only when
its inputs (Dockerfile, the claude-bottle binary, extra CA certificates) changed;
builds from concurrent runs on one host are serialized.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			ca, err := extraCA(caCerts, g.getenv, func() (*manifest.Manifest, error) { return loadManifest(g) })
			if err != nil {
				return err
			}
			// Build output is for a person watching; logs and pipes stay quiet.
			var progress io.Writer
			if isTerminal(g.stderr) {
				progress = g.stderr
			}
			o, err := backendOptions(g, progress)
			if err != nil {
				return err
			}
			be, err := dockerbackend.New(ctx, o)
			if err != nil {
				return err
			}
			defer be.Close()
			set, err := be.BuildImages(ctx, ca, images.Need{Agent: true, Sidecar: !agentOnly, GitGate: !agentOnly})
			if err != nil {
				return fmt.Errorf("images: %w", err)
			}
			for _, tag := range []string{set.Agent, set.Sidecar, set.GitGate} {
				if tag != "" {
					fmt.Fprintln(g.stdout, tag)
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&agentOnly, "agent-only", false, "build only the agent image")
	cmd.Flags().StringVar(&caCerts, "ca-certs", "", "PEM bundle of extra CA certificates for the builds (default $CLAUDE_BOTTLE_EXTRA_CA, else the manifest's images.ca_certs)")
	return cmd
}

func newImagesLsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List claude-bottle's images with their input hash",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			be, err := openDocker(ctx, g)
			if err != nil {
				return err
			}
			defer be.Close()
			imgs, err := be.Images(ctx)
			if err != nil {
				return fmt.Errorf("images: %w", err)
			}
			type row struct{ name, kind, hash, created, id string }
			var rows []row
			for _, img := range imgs {
				tags := img.Tags
				if len(tags) == 0 {
					tags = []string{"<none>"}
				}
				for _, tag := range tags {
					rows = append(rows, row{
						name:    tag,
						kind:    img.Labels[images.KindLabel],
						hash:    shortDigest(img.Labels[images.HashLabel]),
						created: img.Created.Local().Format(time.DateTime),
						id:      shortDigest(strings.TrimPrefix(img.ID, "sha256:")),
					})
				}
			}
			slices.SortFunc(rows, func(a, b row) int { return strings.Compare(a.name, b.name) })
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "IMAGE\tKIND\tINPUT HASH\tCREATED\tID")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.name, r.kind, r.hash, r.created, r.id)
			}
			return tw.Flush()
		},
	}
}

// extraCA picks the bundle of extra CA certificates for image builds, the
// same for run and images build: the --ca-certs flag, else
// $CLAUDE_BOTTLE_EXTRA_CA, else the manifest's images.ca_certs. The
// manifest is loaded only when neither of the first two is set, so a
// build given a bundle does not need a manifest.
func extraCA(flag string, getenv func(string) string, load func() (*manifest.Manifest, error)) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if v := getenv("CLAUDE_BOTTLE_EXTRA_CA"); v != "" {
		return v, nil
	}
	m, err := load()
	if err != nil {
		return "", err
	}
	return m.Images.CACerts, nil
}

// shortDigest abbreviates a hex digest as docker does; "" shows as "-".
func shortDigest(s string) string {
	switch {
	case s == "":
		return "-"
	case len(s) > 12:
		return s[:12]
	}
	return s
}
