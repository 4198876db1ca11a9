package cli

import (
	"testing"

	"github.com/claude-bottle/claude-bottle/internal/backend"
	"github.com/claude-bottle/claude-bottle/internal/plan"
)

// ps names one runtime when all containers share it, else each role's,
// and why.
func TestRuntimeColumn(t *testing.T) {
	for _, tc := range []struct {
		r    backend.Instance
		want string
	}{
		{backend.Instance{}, "-"},
		{backend.Instance{Runtime: "runc"}, "runc"},
		{backend.Instance{Runtimes: map[string]string{"agent": "runsc", "egress": "runsc"}, RuntimeReason: plan.ReasonAuto}, "runsc (auto)"},
		{backend.Instance{Runtimes: map[string]string{"agent": "runsc", "egress": "runc"}, RuntimeReason: plan.ReasonEnv}, "agent=runsc,egress=runc (CLAUDE_BOTTLE_RUNTIME)"},
		{backend.Instance{Runtimes: map[string]string{"agent": "runc"}, RuntimeReason: plan.ReasonManifest}, "runc (bottle setting)"},
	} {
		if got := runtimeColumn(tc.r); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.r, got, tc.want)
		}
	}
}
