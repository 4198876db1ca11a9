// Command claude-bottle runs an AI coding agent inside a bottle: a hardened
// container whose every way out is a sidecar the host controls.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/claude-bottle/claude-bottle/internal/cli"

	// The sidecars run FROM scratch: when the image has no CA bundle (no
	// host bundle was found to copy in), TLS to upstreams falls back to
	// these embedded Mozilla roots instead of failing every handshake.
	_ "golang.org/x/crypto/x509roots/fallback"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
