package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/claude-bottle/claude-bottle/internal/docker"
	"github.com/claude-bottle/claude-bottle/internal/launch"
	"github.com/claude-bottle/claude-bottle/internal/oneline"
	"github.com/claude-bottle/claude-bottle/internal/plan"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

func newPlanCmd(g *globals) *cobra.Command {
	var asJSON, cwd bool
	cmd := &cobra.Command{
		Use:   "plan [AGENT] [-- CMD ARGS...]",
		Short: "Show what `run` would do, without doing it",
		Long: `Show what run would do: the instance name, image, sidecars, effective allowlist,
credential routes (never tokens), repositories, the agent's environment (forwarded
values are never shown), containers and networks. Reads the engine's state to pick the
name; creates nothing. --json prints the same for scripts.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, command, err := agentArgs("plan", args, cmd.ArgsLenAtDash())
			if err != nil {
				return err
			}
			p, err := buildPlan(cmd.Context(), g, name, command, cwd)
			if err != nil {
				return err
			}
			if asJSON {
				return p.WriteJSON(g.stdout)
			}
			return p.WriteText(g.stdout)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON")
	cmd.Flags().BoolVar(&cwd, "cwd", false, "plan with the working directory copied into a derived image")
	return cmd
}

// buildPlan loads the manifest, observes the engine and builds the plan,
// creating nothing. Without an engine it plans against an empty one and
// says so: a dry run should work on a laptop with Docker stopped.
func buildPlan(ctx context.Context, g *globals, name string, command []string, cwd bool) (*plan.Plan, error) {
	m, err := loadManifest(g)
	if err != nil {
		return nil, err
	}
	agent, err := plan.PickAgent(m, name)
	if err != nil {
		return nil, err
	}
	state, err := stage.StateDir(g.getenv)
	if err != nil {
		return nil, err
	}
	var obs plan.Observed
	var host plan.Host
	c, err := docker.New(ctx)
	if err != nil {
		fmt.Fprintf(g.stderr, "claude-bottle: no engine (%v); planning as if nothing runs\n", oneline.First(err.Error()))
		host = hostFacts(ctx, g, nil, state, "", agent)
		host.RunscNote = "the engine could not be asked"
	} else {
		defer c.Close()
		bottle := m.Bottles[m.Agents[agent].Bottle]
		if obs, err = launch.Observe(ctx, c, bottle.Egress.Networks); err != nil {
			return nil, err
		}
		img, err := probeImage(ctx, g, c)
		if err != nil {
			return nil, err
		}
		host = hostFacts(ctx, g, c, state, img, agent)
	}
	host.RouteCredential = routeCredentials(m.Bottles[m.Agents[agent].Bottle], g.getenv)
	opts := plan.Options{Agent: agent, Command: command}
	if cwd {
		opts.Cwd, _ = os.Getwd()
		if opts.CwdRepo, err = cwdRepo(ctx, opts.Cwd); err != nil {
			return nil, err
		}
	}
	return plan.Build(m, opts, obs, host)
}
