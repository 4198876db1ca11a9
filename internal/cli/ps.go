package cli

import (
	"cmp"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/claude-bottle/claude-bottle/internal/backend"
	"github.com/claude-bottle/claude-bottle/internal/manifest"
	"github.com/claude-bottle/claude-bottle/internal/plan"
	"github.com/claude-bottle/claude-bottle/internal/safetext"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

func newPsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "ps",
		Short: "List bottles: agent, instance, sidecars, age, runtime",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			g.manifestBackend()
			be, err := openBackend(cmd.Context(), g, nil)
			if err != nil {
				return err
			}
			defer be.Close()
			rs, err := be.List(cmd.Context())
			if err != nil {
				return err
			}
			if len(rs) == 0 {
				fmt.Fprintln(g.stdout, "no bottles")
				return nil
			}
			w := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(w, "INSTANCE\tAGENT\tSIDECARS\tAGE\tRUNTIME\tSTATE")
			for _, r := range rs {
				st := "running"
				if !r.Live {
					st = "orphaned (run claude-bottle cleanup)"
				}
				rt := runtimeColumn(r)
				// Names come from labels on the engine: shown escaped, as
				// everything not typed by the person is.
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", safetext.Text(r.Instance), safetext.Text(r.Agent),
					safetext.Text(strings.Join(r.Sidecars, ",")), time.Since(r.Created).Round(time.Second), safetext.Text(rt), st)
			}
			return w.Flush()
		},
	}
}

// runtimeColumn is one runtime when every container has it, else each
// role's, and why, as the plan decided it (runtime: auto, the bottle's
// setting, or CLAUDE_BOTTLE_RUNTIME).
func runtimeColumn(r backend.Instance) string {
	if len(r.Runtimes) == 0 {
		if r.Runtime == "" {
			return "-"
		}
		return r.Runtime
	}
	roles := make([]string, 0, len(r.Runtimes))
	for role := range r.Runtimes {
		roles = append(roles, role)
	}
	sort.Strings(roles)
	rt := r.Runtimes[roles[0]]
	for _, role := range roles[1:] {
		if r.Runtimes[role] != rt {
			var each []string
			for _, role := range roles {
				each = append(each, role+"="+r.Runtimes[role])
			}
			rt = strings.Join(each, ",")
			break
		}
	}
	why := map[string]string{plan.ReasonAuto: "auto", plan.ReasonManifest: "bottle setting", plan.ReasonEnv: "CLAUDE_BOTTLE_RUNTIME"}[r.RuntimeReason]
	if why == "" {
		return rt
	}
	return rt + " (" + why + ")"
}

func newCleanupCmd(g *globals) *cobra.Command {
	var dry bool
	cmd := &cobra.Command{
		Use:   "cleanup",
		Short: "Remove containers, networks and stage files that belong to no live bottle",
		Long: `Remove what a launcher that is no longer running left behind (after kill -9, a
crash or a reboot): containers, networks and volumes found by their claude-bottle labels
whose owner process is gone, and their stage directories. An orphan's work is brought
back first, as run would have (a branch of its repository, or an archive under the
state directory). Running bottles are not touched.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			g.manifestBackend()
			be, err := openBackend(ctx, g, nil)
			if err != nil {
				return err
			}
			defer be.Close()
			state, err := stage.StateDir(g.getenv)
			if err != nil {
				return err
			}
			orphans, err := be.Orphans(ctx)
			if err != nil {
				return err
			}
			instances := map[string]bool{}
			for _, o := range orphans {
				instances[o.Instance] = true
				verb := "removing"
				if dry {
					verb = "would remove"
				}
				fmt.Fprintf(g.stdout, "%s %s %s (instance %s)\n", verb, o.Kind, safetext.Text(o.Name), safetext.Text(o.Instance))
			}
			// Stage directories with no resource left belong to nobody either.
			live, err := be.List(ctx)
			if err != nil {
				return err
			}
			running := map[string]bool{}
			for _, r := range live {
				if r.Live {
					running[r.Instance] = true
				}
			}
			names, err := stage.Instances(state)
			if err != nil {
				return fmt.Errorf("cleanup: list stage directories: %w", err)
			}
			for _, n := range names {
				// Another backend's stage directories are its own: a
				// running Kubernetes bottle is not in the Docker engine's
				// list, nor the reverse.
				if cmp.Or(plannedBackend(state, n), manifest.BackendDocker) != be.Name() {
					continue
				}
				if !running[n] && !instances[n] {
					instances[n] = true
					verb := "removing"
					if dry {
						verb = "would remove"
					}
					fmt.Fprintf(g.stdout, "%s stage directory of %s\n", verb, safetext.Text(n))
				}
			}
			if len(instances) == 0 {
				fmt.Fprintln(g.stdout, "nothing to clean up")
				return nil
			}
			if dry {
				return nil
			}
			var failed []string
			for inst := range instances {
				// The work of a killed run comes back before its bottle goes.
				if w, err := be.FinishOrphan(ctx, inst); err != nil {
					fmt.Fprintf(g.stderr, "claude-bottle: %s: bringing the work back: %v\n", inst, err)
				} else if !w.Nothing {
					fmt.Fprintf(g.stdout, "%s: %s\n", inst, w)
				}
				if err := be.Down(ctx, inst); err != nil {
					failed = append(failed, fmt.Sprintf("%s: %v", inst, err))
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("cleanup incomplete: %s", strings.Join(failed, "; "))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&dry, "dry-run", false, "list what would be removed, remove nothing")
	return cmd
}
