package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/claude-bottle/claude-bottle/internal/manifest"
)

func newValidateCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "validate",
		Short: "Check the manifest and say what is wrong, with file:line:column",
		Long: `validate loads the manifest (-f, else ./claude-bottle.yaml, else the built-in
default) exactly as run would, checks every field, reference and file it names,
and reports each problem as FILE:LINE:COL: FIELD: MESSAGE. It makes no engine calls.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cwd, err := os.Getwd()
			if err != nil {
				return fmt.Errorf("find working directory: %w", err)
			}
			m, err := manifest.Find(cwd, g.manifest)
			if err != nil {
				return err
			}
			name := m.Path
			if name == "" {
				name = "built-in default manifest"
			}
			fmt.Fprintf(g.stdout, "%s: ok (%s, %s)\n", name,
				nounCount(len(m.Agents), "agent"), nounCount(len(m.Bottles), "bottle"))
			return nil
		},
	}
}

func nounCount(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func newInitCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "init [--force]",
		Short: "Write the default manifest to ./claude-bottle.yaml",
		Long: `init writes the built-in default manifest, with comments, to ./claude-bottle.yaml
(or the -f path) so that you can edit it. It refuses to overwrite an existing
file unless --force is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path := g.manifest
			if path == "" {
				path = manifest.FileName
			}
			flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
			if force {
				flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
			}
			f, err := os.OpenFile(path, flags, 0o644)
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s already exists; use --force to overwrite it", path)
			}
			if err != nil {
				return fmt.Errorf("write manifest: %w", err)
			}
			_, werr := f.Write(manifest.DefaultYAML())
			if err := errors.Join(werr, f.Close()); err != nil {
				return fmt.Errorf("write manifest: %w", err)
			}
			fmt.Fprintf(g.stdout, "wrote %s; edit it, then run: claude-bottle validate\n", path)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "overwrite an existing file")
	return cmd
}

func newSchemaCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the manifest's JSON Schema (for editors)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := manifest.Schema()
			if err != nil {
				return err
			}
			_, err = g.stdout.Write(b)
			return err
		},
	}
}
