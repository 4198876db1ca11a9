// Package launch holds the host side of a bottle, whatever backend runs it:
// the stage files (secrets resolved on the host), the agent's environment
// and Claude state, approvals applied to the stage files, and the
// launcher's identity in the owner label.
package launch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/claude-bottle/claude-bottle/internal/images"
	"github.com/claude-bottle/claude-bottle/internal/plan"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

// HostFacts gathers what the plan needs to know about this host, whatever
// the backend: the overrides set in the environment, the launcher's
// identity and the agent's Dockerfile. The backend adds its own (gVisor).
func HostFacts(state, agent string, getenv func(string) string) plan.Host {
	h := plan.Host{
		Env:   map[string]string{},
		Owner: Owner(),
		UID:   os.Getuid(),
		GID:   os.Getgid(),
	}
	for _, k := range []string{"CLAUDE_BOTTLE_IMAGE", "CLAUDE_BOTTLE_IMAGE_TAG", "CLAUDE_BOTTLE_DERIVED_IMAGE", "CLAUDE_BOTTLE_CONTAINER", "CLAUDE_BOTTLE_RUNTIME"} {
		if v := getenv(k); v != "" {
			h.Env[k] = v
		}
	}
	h.AgentDockerfile = string(images.AgentDockerfile())
	if b := ApprovedDockerfile(state, agent); b != nil {
		h.AgentDockerfile = string(b)
	}
	return h
}

// ApprovedDockerfile is a Dockerfile approved through supervise for the
// agent's next launch, or nil.
func ApprovedDockerfile(state, agent string) []byte {
	b, err := os.ReadFile(filepath.Join(stage.AgentDir(state, agent), "Dockerfile"))
	if err != nil {
		return nil
	}
	return b
}

// Owner is the owner label value of this launcher: HOST/PID.
func Owner() string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s/%d", h, os.Getpid())
}

// OwnerAlive says whether the launcher named by an owner label still runs.
// A launcher on another host (a shared engine) is assumed alive: we cannot
// tell, and removing a stranger's bottle is worse than keeping an orphan.
// No owner label at all means not ours to judge: alive.
func OwnerAlive(owner string) bool {
	host, pidS, ok := strings.Cut(owner, "/")
	if !ok {
		return true
	}
	if h, _ := os.Hostname(); h != host {
		return true
	}
	pid, err := strconv.Atoi(pidS)
	if err != nil || pid <= 0 {
		return false
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
