// Command claude-bottle runs an AI coding agent inside a bottle: a hardened
// container whose every way out is a sidecar the host controls.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/claude-bottle/claude-bottle/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
