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

func TestBufferEvents(t *testing.T) {
	var b Buffer
	b.Write([]byte(`{"sidecar":"egress","kind":"connect","verdict":"deny"}` + "\n\n"))
	b.Write([]byte(`{"sidecar":"egress","kind":"dns"}` + "\n"))
	evs := b.Events(t)
	if len(evs) != 2 || evs[0].Verdict != "deny" || evs[1].Kind != "dns" {
		t.Fatalf("events %+v", evs)
	}
}
