// Package cli owns the claude-bottle command line: one file per verb, wiring
// manifest -> plan -> backend. It makes no engine calls itself: it holds a
// backend.Backend.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/claude-bottle/claude-bottle/internal/manifest"

	"github.com/claude-bottle/claude-bottle/internal/safetext"
)

// Version is set at build time with -ldflags "-X .../internal/cli.Version=…".
var Version = "dev"

// globals carries what every verb shares. Nothing in it is global state: a
// fresh one is made per Run, so verbs are testable in-process.
type globals struct {
	manifest string // -f/--manifest; "" means ./claude-bottle.yaml or the default
	stdin    io.Reader
	stdout   io.Writer
	stderr   io.Writer
	log      *slog.Logger
	getenv   func(string) string

	// backend is --backend ("" means the manifest's, else docker);
	// kubeconfig and kubeContext find the cluster as kubectl does.
	backend, kubeconfig, kubeContext string
	// fromManifest are the manifest's backend and the bottle's cluster
	// settings, once run or plan has loaded it.
	fromManifest string
	kube         manifest.Kubernetes
}

// Signal is the cause of the root context's cancellation when a signal
// ended the process (main sets it): run exits 128+signal after cleaning up.
type Signal struct{ Sig syscall.Signal }

func (s Signal) Error() string { return "got " + unix.SignalName(s.Sig) }

// signalCode is the shell's exit code for a process ended by the signal
// that cancelled ctx; 130 (SIGINT) when the cause is not a signal.
func signalCode(ctx context.Context) int {
	var s Signal
	if errors.As(context.Cause(ctx), &s) {
		return 128 + int(s.Sig)
	}
	return 130
}

// exitError carries a specific exit code (the agent's) through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// Run executes the command line and returns the process exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	g := &globals{
		stdin:  stdin,
		stdout: stdout,
		stderr: stderr,
		log:    slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		getenv: os.Getenv,
	}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "claude-bottle: %s\n", safetext.Lines(ee.err.Error()))
		}
		return ee.code
	}
	// An error may quote what the agent wrote (a request, a log line).
	fmt.Fprintf(stderr, "claude-bottle: %s\n", safetext.Lines(err.Error()))
	return 1
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "claude-bottle",
		Short: "Run an AI coding agent in a bottle whose every way out the host controls",
		Long: `claude-bottle runs an AI coding agent (Claude Code first) with full autonomy inside
a hardened container. Its only ways out are sidecars the host controls: an egress
allowlist proxy, a credential-injecting reverse proxy, a git gate that enforces a push
policy, and a supervise server through which the agent asks a person for changes.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, c := range verbs(g) {
		switch c.Name() {
		case "run", "plan", "validate", "init":
			// Not persistent: `logs -f` follows, as tail's does.
			c.Flags().StringVarP(&g.manifest, "manifest", "f", "", "manifest file (default ./claude-bottle.yaml, else the built-in default)")
		}
		// Persistent: supervise's approve and deny reach a cluster too.
		switch c.Name() {
		case "run", "plan", "ps", "cleanup", "supervise":
			c.PersistentFlags().StringVar(&g.backend, "backend", "", "what runs bottles: docker or kubernetes (default the manifest's backend, else docker)")
			c.PersistentFlags().StringVar(&g.kubeconfig, "kubeconfig", "", "kubernetes: the kubeconfig file (default $KUBECONFIG, else ~/.kube/config)")
			c.PersistentFlags().StringVar(&g.kubeContext, "context", "", "kubernetes: the kubeconfig context (default its current context)")
		}
		root.AddCommand(c)
	}
	return root
}
