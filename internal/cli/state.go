package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/claude-bottle/claude-bottle/internal/stage"
)

func newStateCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "state",
		Short: "List or remove what outlives a bottle: each agent's Claude state, saved workspaces",
		Long: `Each agent keeps its Claude Code state (settings, history, sessions: what
claude --continue and --resume need) in the state directory, owner-only, shared by
that agent's bottles and no other agent's. It never holds a real token. Workspaces
that had no git repository to come back to are saved there as tar files.`,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "ls",
		Short: "List agents with kept Claude state, and saved workspaces",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			state, err := stage.StateDir(g.getenv)
			if err != nil {
				return err
			}
			ents, err := os.ReadDir(filepath.Join(state, "agents"))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			for _, e := range ents {
				dir := stage.ClaudeDir(state, e.Name())
				if fi, err := os.Lstat(dir); err == nil && fi.IsDir() {
					fmt.Fprintf(g.stdout, "agent %s\t%s\n", e.Name(), dir)
				}
			}
			work, _ := filepath.Glob(filepath.Join(stage.WorkDir(state), "*.tar"))
			sort.Strings(work)
			for _, w := range work {
				fmt.Fprintf(g.stdout, "workspace\t%s\n", w)
			}
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "rm AGENT...",
		Short: "Remove agents' Claude state (their next bottle starts afresh)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			state, err := stage.StateDir(g.getenv)
			if err != nil {
				return err
			}
			for _, a := range args {
				if a == "" || a == "." || a == ".." || strings.ContainsAny(a, `/\`) {
					return fmt.Errorf("%q is not an agent name", a)
				}
				dir := stage.ClaudeDir(state, a)
				if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("agent %q has no Claude state in %s", a, state)
				}
				// RemoveAll does not follow the symlinks an agent may have
				// left in its state.
				if err := os.RemoveAll(dir); err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "removed %s\n", dir)
			}
			return nil
		},
	})
	return cmd
}
