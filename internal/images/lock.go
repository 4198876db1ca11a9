package images

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lockName is the host-wide build lock in os.TempDir(): concurrent runs (and
// tests) would otherwise build the same image twice at once.
const lockName = "claude-bottle-images.lock"

// lockBuilds takes the host-wide build lock, waiting until ctx is done.
func lockBuilds(ctx context.Context, log *slog.Logger) (unlock func(), err error) {
	path := filepath.Join(os.TempDir(), lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if errors.Is(err, fs.ErrPermission) {
		// Another user made the file; flock works on a read-only descriptor too.
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, fmt.Errorf("open build lock: %w", err)
	}
	waiting := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("take build lock %s: %w", path, err)
		}
		if !waiting {
			log.Info("waiting for another claude-bottle image build", "lock", path)
			waiting = true
		}
		// flock(2) cannot be interrupted by a context, so poll.
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("wait for build lock %s: %w", path, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
