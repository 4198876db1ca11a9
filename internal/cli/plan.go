package cli

import (
	"context"
	"fmt"
	"os"

	dockerbackend "github.com/claude-bottle/claude-bottle/internal/backend/docker"
	kubebackend "github.com/claude-bottle/claude-bottle/internal/backend/kubernetes"

	"github.com/spf13/cobra"

	"github.com/claude-bottle/claude-bottle/internal/backend"
	"github.com/claude-bottle/claude-bottle/internal/launch"
	"github.com/claude-bottle/claude-bottle/internal/oneline"
	"github.com/claude-bottle/claude-bottle/internal/plan"
)

func newPlanCmd(g *globals) *cobra.Command {
	var asJSON, cwd, verbose bool
	cmd := &cobra.Command{
		Use:   "plan [AGENT] [-- CMD ARGS...]",
		Short: "Show what `run` would do, without doing it",
		Long: `Show what run would do: the instance name, image, sidecars, effective allowlist,
credential routes (never tokens), repositories, the agent's environment (forwarded
values are never shown), containers and networks. Reads the engine's state to pick the
name; creates nothing. --json prints the same for scripts, with the backend's list of
operations (each one engine call, with the operations it waits for); --verbose adds
that list to the text.`,
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
			if !verbose {
				p.Operations = nil
			}
			return p.WriteText(g.stdout)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON")
	cmd.Flags().BoolVar(&cwd, "cwd", false, "plan with the working directory copied into a derived image")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "also list the operations run would perform, in order")
	return cmd
}

// buildPlan loads the manifest, asks the backend and builds the plan,
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
	bottle := m.Bottles[m.Agents[agent].Bottle]
	g.fromManifest, g.kube = m.Backend, bottle.Kubernetes
	beName, err := g.backendName()
	if err != nil {
		return nil, err
	}
	var obs plan.Observed
	var host plan.Host
	var ops func(*plan.Plan) []plan.Op
	var kube *kubebackend.Backend
	be, err := openBackend(ctx, g, nil)
	if err != nil {
		fmt.Fprintf(g.stderr, "claude-bottle: no %s (%v); planning as if nothing runs\n", map[string]string{"docker": "engine", "kubernetes": "cluster"}[beName], oneline.First(err.Error()))
		if beName == kubebackend.Name {
			ko, kerr := kubeOptions(g, nil)
			if kerr != nil {
				return nil, kerr
			}
			// Offline, the agent is planned under the RuntimeClass it
			// asks for, as a cluster set up per docs/kubernetes.md has it.
			kube = kubebackend.Offline(ko)
			if host, err = kube.Facts(ctx, backend.FactsRequest{Agent: agent}); err != nil {
				return nil, err
			}
			ops = kube.Operations
		} else {
			o, oerr := backendOptions(g, nil)
			if oerr != nil {
				return nil, oerr
			}
			host = launch.HostFacts(o.State, agent, g.getenv)
			host.RunscNote = "the engine could not be asked"
			ops = dockerbackend.Offline(o).Operations
		}
	} else {
		kube, _ = be.(*kubebackend.Backend)
		defer be.Close()
		if host, err = be.Facts(ctx, backend.FactsRequest{Agent: agent}); err != nil {
			return nil, err
		}
		if obs, err = be.Observe(ctx, bottle.Egress.Networks); err != nil {
			return nil, err
		}
		ops = be.Operations
	}
	host.RouteCredential = routeCredentials(bottle, g.getenv)
	opts := plan.Options{Agent: agent, Command: command}
	if cwd {
		opts.Cwd, _ = os.Getwd()
		if opts.CwdRepo, err = cwdRepo(ctx, opts.Cwd); err != nil {
			return nil, err
		}
	}
	p, err := plan.Build(m, opts, obs, host)
	if err != nil {
		return nil, err
	}
	p.Backend, p.Operations = beName, ops(p)
	if kube != nil {
		objs, err := kube.PlanObjects(p)
		if err != nil {
			return nil, err
		}
		p.Objects, p.Lines, p.Undo = kubebackend.AsList(objs), kubebackend.Lines(objs), kubebackend.Undo
	}
	return p, nil
}
