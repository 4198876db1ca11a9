package stage

import (
	"context"
	"time"
)

// Poll is how a sidecar follows its config files (the host rewrites them by
// rename, so a read never sees half a file): every interval it calls load,
// and when the fingerprint load returns differs from the last one it calls
// changed with what load returned (err != nil: the new files are invalid,
// and the caller keeps its previous config). It returns when ctx is done.
func Poll[T any](ctx context.Context, every time.Duration, last [32]byte, load func() (T, [32]byte, error), changed func(T, error)) {
	Every(ctx, every, func() {
		v, fp, err := load()
		if fp == last {
			return
		}
		last = fp
		changed(v, err)
	})
}

// Every calls fn every interval until ctx is done (the first call after
// one interval).
func Every(ctx context.Context, interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}
