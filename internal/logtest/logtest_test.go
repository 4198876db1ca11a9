package logtest

import (
	"log/slog"
	"testing"
)

// A line logged after the test ended (a server goroutine finishing late)
// is dropped: t.Log at that point would panic and fail the run.
func TestDropsLinesAfterTheTestEnded(t *testing.T) {
	var late *slog.Logger
	t.Run("inner", func(t *testing.T) {
		late = New(t)
		late.Info("during the test")
	})
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("logging after the test ended panicked: %v", r)
		}
	}()
	late.Info("after the test ended")
}
