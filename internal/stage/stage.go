// Package stage owns the host-side layout of claude-bottle's state: where a
// running instance's stage directory is and what each file in it is called
// (docs/sidecar-contract.md).
package stage

import (
	"errors"
	"os"
	"path/filepath"
)

// Relative paths inside an instance's stage directory.
const (
	EgressDir        = "egress"
	EgressPolicy     = "egress/policy.json"
	EgressSecrets    = "egress/secrets.json"
	CredProxyDir     = "cred-proxy"
	CredProxyRoutes  = "cred-proxy/routes.json"
	CredProxyTokens  = "cred-proxy/tokens"
	GitGateDir       = "git-gate"
	GitGateRepos     = "git-gate/repos.json"
	GitGateKeys      = "git-gate/keys"
	GitGateKnown     = "git-gate/known_hosts"
	SuperviseReqs    = "supervise/requests"
	SuperviseDecided = "supervise/decisions"
	// LogsDir in a plan's mounts stands for LogDir(state, instance), which
	// lives outside the stage directory.
	LogsDir = "logs"
	// ClaudeState in a plan's mounts stands for ClaudeDir(state, agent),
	// the agent's Claude Code state, which outlives every instance.
	ClaudeState   = "claude-state"
	CurrentConfig = "current-config"
	AgentEnv      = "agent.env"
	// Meta records which agent and manifest an instance was launched from,
	// for supervise --persist and Dockerfile proposals.
	Meta = "instance.json"
	// PlanFile is the plan an instance was launched from, for cleanup to
	// bring an orphan's work back before removing it.
	PlanFile = "plan.json"
)

// Paths inside containers.
const (
	ContainerConfigRoot    = "/etc/claude-bottle"
	ContainerLogDir        = "/var/log/claude-bottle"
	ContainerCurrentConfig = "/etc/claude-bottle/current-config"
	ContainerSuperviseRoot = "/var/lib/supervise"
)

// StateDir returns the root of claude-bottle's host state:
// $CLAUDE_BOTTLE_STATE_DIR, else $XDG_STATE_HOME/claude-bottle, else
// ~/.local/state/claude-bottle.
func StateDir(getenv func(string) string) (string, error) {
	if d := getenv("CLAUDE_BOTTLE_STATE_DIR"); d != "" {
		return filepath.Abs(d)
	}
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "claude-bottle"), nil
	}
	home := getenv("HOME")
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", errors.New("cannot find a state directory: set CLAUDE_BOTTLE_STATE_DIR")
		}
		home = h
	}
	return filepath.Join(home, ".local", "state", "claude-bottle"), nil
}

// InstanceDir is the stage directory of one instance.
func InstanceDir(state, instance string) string {
	return filepath.Join(state, "instances", instance)
}

// Instances lists the instance names that have a stage directory.
func Instances(state string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(state, "instances"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// LogDir holds an instance's decision logs. It outlives the instance (the
// stage directory does not), so `claude-bottle logs` can show a finished run.
func LogDir(state, instance string) string {
	return filepath.Join(state, "logs", instance)
}

// AgentDir holds what outlives an instance for one agent, such as an
// approved Dockerfile for the next launch.
func AgentDir(state, agent string) string {
	return filepath.Join(state, "agents", agent)
}

// ClaudeDir is one agent's Claude Code state (settings, history,
// sessions), mounted as the agent's CLAUDE_CONFIG_DIR in every bottle of
// that agent and in no other.
func ClaudeDir(state, agent string) string {
	return filepath.Join(AgentDir(state, agent), "claude")
}

// WorkDir holds the archives of agents' workspaces that had no git
// repository to come back to.
func WorkDir(state string) string {
	return filepath.Join(state, "work")
}
