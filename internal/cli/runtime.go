package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func newRuntimeCmd(g *globals) *cobra.Command {
	var reprobe bool
	cmd := &cobra.Command{
		Use:   "runtime [--reprobe]",
		Short: "Say whether gVisor (runsc) works here, from the cached probe or a new one",
		Long: `Show the engine's OCI runtimes and whether containers start under gVisor (runsc)
here. run and plan probe once per runsc binary (a probe starts one small container)
and cache the verdict in the state directory until the engine, its kernel or the
binary changes. --reprobe probes again now: use it after fixing or upgrading runsc.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			be, err := openDocker(cmd.Context(), g)
			if err != nil {
				return err
			}
			defer be.Close()
			p, err := be.Runtime(cmd.Context(), reprobe)
			if err != nil {
				return err
			}
			for _, rt := range p.Runtimes {
				fmt.Fprintf(g.stdout, "runtime %-10s %s\n", rt, p.Paths[rt])
			}
			how := "probed now"
			if p.Cached {
				how = "cached verdict of " + p.Checked.Format(time.RFC3339)
			}
			if p.Digest != "" {
				how += ", binary sha256 " + p.Digest[:16] + "…"
			}
			if p.Works {
				fmt.Fprintf(g.stdout, "gVisor: works (%s); bottles with runtime auto use runsc\n", how)
			} else {
				fmt.Fprintf(g.stdout, "gVisor: does not work (%s): %s\n", how, p.Note)
			}
			for _, e := range p.Ended {
				fmt.Fprintf(g.stdout, "  the failed probe's cleanup ended %s\n", e)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&reprobe, "reprobe", false, "probe again, ignoring the cached verdict")
	return cmd
}
