// Package serve runs a sidecar's HTTP server for as long as its context
// lives, and stops it the same way in every sidecar: a graceful shutdown
// that gives requests in flight a few seconds, then cuts what outlives it
// (server-sent event streams, a waiting get_request, open CONNECT tunnels).
package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Grace is how long a stopping server waits for requests in flight.
const Grace = 5 * time.Second

// HTTP serves srv on ln until ctx is done (then it returns nil, once srv
// has stopped), srv fails, or fail delivers an error from a companion
// server (the egress DNS stub); a nil fail is never ready. ln is closed
// when HTTP returns.
func HTTP(ctx context.Context, srv *http.Server, ln net.Listener, fail <-chan error) error {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	var err error
	select {
	case err = <-served:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serve: %w", err)
	case err = <-fail:
	case <-ctx.Done():
	}
	// The caller's ctx is done: the grace period must not be.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), Grace)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		_ = srv.Close()
	}
	if serr := <-served; err == nil && serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = fmt.Errorf("serve: %w", serr)
	}
	return err
}
