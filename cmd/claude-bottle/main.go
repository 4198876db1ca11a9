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
	// SIGHUP is a closed terminal: like Ctrl-C and SIGTERM, it must end
	// the bottle cleanly (the work brought back, everything removed), not
	// kill run and leave the bottle behind. Later signals are held until
	// that is done.
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		cancel(cli.Signal{Sig: s.(syscall.Signal)})
	}()
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	os.Exit(code)
}
