package cli

import (
	"time"

	"github.com/claude-bottle/claude-bottle/internal/launch"
	"github.com/claude-bottle/claude-bottle/internal/stage"
	"github.com/claude-bottle/claude-bottle/internal/supervise"
)

// applier makes approvals real on running bottles (launch.Applier).
func applier(g *globals) supervise.Applier {
	state, err := stage.StateDir(g.getenv)
	if err != nil {
		state = ""
	}
	return &launch.Applier{State: state, Getenv: g.getenv, Confirm: 5 * time.Second}
}
