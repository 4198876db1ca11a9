// Package plan decides, as a pure function of the manifest, the options, the
// observed engine state and host facts, everything a launch will do. The
// launcher executes a Plan without further decisions.
package plan

import (
	"errors"
	"fmt"
	"regexp"
)

// Resource tags and the instance name bound.
const (
	Prefix       = "claude-bottle"
	MaxInstances = 32

	LabelInstance = "dev.claude-bottle.instance"
	LabelAgent    = "dev.claude-bottle.agent"
	LabelRole     = "dev.claude-bottle.role"
	LabelOwner    = "dev.claude-bottle.owner"
	LabelRuntime  = "dev.claude-bottle.runtime"
	// LabelRuntimeReason is why the container got its runtime (Reason*).
	LabelRuntimeReason = "dev.claude-bottle.runtime-reason"

	// The images' default references; CLAUDE_BOTTLE_IMAGE_TAG replaces
	// "local" in all three (see Refs).
	AgentImage   = "claude-bottle-agent:local"
	SidecarImage = "claude-bottle-sidecar:local"
	GitGateImage = "claude-bottle-git-gate:local"

	EgressPort    = 3128
	CredProxyPort = 8080
	GitGatePort   = 8080
	SupervisePort = 8080

	// Placeholder is the credential the agent holds instead of a real token.
	// cred-proxy strips it; it is not any real token's shape.
	Placeholder = "claude-bottle-placeholder-not-a-real-key"
)

// Sidecar roles, also their aliases on the internal network.
const (
	RoleAgent     = "agent"
	RoleEgress    = "egress"
	RoleCredProxy = "cred-proxy"
	RoleGitGate   = "git-gate"
	RoleSupervise = "supervise"
	RoleNetwork   = "network"
)

// SidecarRoles lists every sidecar role in start order.
var SidecarRoles = []string{RoleEgress, RoleCredProxy, RoleGitGate, RoleSupervise}

// Options are what the user asked for on the command line.
type Options struct {
	Agent string
	// Cwd is the host directory copied into a derived image; "" means none.
	Cwd string
	// Command replaces the agent's command (run AGENT -- CMD ARGS); nil means the default.
	Command []string
	// TTY says the agent is attached to a terminal.
	TTY bool
	// CwdRepo is set when Cwd is the top level of a git working tree: the
	// agent's work comes back into that repository as a branch.
	CwdRepo *GitRepo
}

// Host holds facts about the host, gathered before planning.
type Host struct {
	// Env is the subset of the host environment the plan may read: the
	// CLAUDE_BOTTLE_* overrides (CLAUDE_BOTTLE_RUNTIME replaces the bottle's
	// runtime setting). Forwarded variables are read at launch.
	Env map[string]string
	// Runsc says gVisor is registered and a probe container started under it.
	Runsc bool
	// RunscNote explains why runsc does not work here, with the fix, when
	// it does not.
	RunscNote string
	// RunscEvidence is what showed runsc works, for the plan's runtime
	// line ("" for the Docker engine's probe container, with its caveat
	// that egress stays on runc).
	RunscEvidence string
	// Owner is HOST/PID of the launcher, stamped on every resource.
	Owner string
	// AgentDockerfile is the Dockerfile the agent image is built from (shown
	// to the agent in current-config).
	AgentDockerfile string
	// UID and GID of the launcher: sidecars run as this user so they can
	// read their 0400 stage files; 0 (root) means a fixed non-root user.
	UID, GID int
	// RouteCredential maps a route name to the index of the credential
	// that is set on this host (the first one; 0 when none is).
	RouteCredential map[string]int
}

// GitRepo is the user's repository a --cwd copy came from.
type GitRepo struct {
	// Root is the working tree's top level (equal to Cwd).
	Root string
	// Head is the commit checked out at launch; "" for a repository
	// without commits.
	Head string
}

// Observed is the engine state that bears on naming.
type Observed struct {
	Resources []Resource
	// Subnets maps a network egress joins to its CIDRs.
	Subnets map[string][]string
}

// Resource is an existing container or network.
type Resource struct {
	Name string
	Kind string // container, network or volume
	// Live says its owner label names a launcher that is still running.
	Live bool
}

// Plan is everything one launch will do.
type Plan struct {
	Agent    string     `json:"agent"`
	Instance string     `json:"instance"`
	Spec     Spec       `json:"spec"`
	Docker   DockerPlan `json:"docker"`
	Notes    []string   `json:"notes,omitempty"`
	// Backend names what runs the plan ("docker"); Operations are its
	// steps, in order (Backend.Operations). plan.Build leaves both empty:
	// the caller that picked the backend fills them in.
	Backend    string `json:"backend,omitempty"`
	Operations []Op   `json:"operations,omitempty"`
	// Objects are what a backend that describes its resources declaratively
	// creates (Kubernetes: a v1 List, secrets by key, never a value).
	Objects any `json:"objects,omitempty"`
	// Lines summarise Objects for the text form, one a line, in
	// place of the Docker containers and networks.
	Lines []ObjectLine `json:"-"`
	// Undo says how a failed start is cleaned up ("" for UndoReverse).
	Undo string `json:"-"`
}

// ObjectLine is one of a backend's objects in the text plan.
type ObjectLine struct{ Kind, Name, Detail string }

// Errors a caller branches on.
var (
	ErrUnknownAgent = errors.New("unknown agent")
	ErrNameTaken    = errors.New("instance name taken")
	ErrOrphan       = errors.New("orphaned resource")
)

// WorkspaceVolume is the volume that holds an instance's /workspace. It
// outlives the agent container so that the work can be brought back.
func WorkspaceVolume(instance string) string { return instance + "-workspace" }

// ResourceNames lists every container and network name of an instance.
func ResourceNames(instance string) (containers, networks []string) {
	containers = []string{instance}
	for _, r := range SidecarRoles {
		containers = append(containers, instance+"-"+r)
	}
	return containers, []string{instance + "-net", instance + "-out"}
}

// chooseInstance picks the first free name, or the pinned one.
func chooseInstance(slug, pinned string, obs Observed) (string, error) {
	byName := map[string]Resource{}
	for _, r := range obs.Resources {
		byName[r.Name] = r
	}
	conflicts := func(inst string) []Resource {
		cs, ns := ResourceNames(inst)
		var out []Resource
		for _, n := range append(append(cs, ns...), WorkspaceVolume(inst)) {
			if r, ok := byName[n]; ok {
				out = append(out, r)
			}
		}
		return out
	}
	orphanErr := func(r Resource) error {
		return fmt.Errorf("%w: %s %q is left from a launcher that is no longer running; remove it with `claude-bottle cleanup`", ErrOrphan, r.Kind, r.Name)
	}
	if pinned != "" {
		for _, r := range conflicts(pinned) {
			if !r.Live {
				return "", orphanErr(r)
			}
			return "", fmt.Errorf("%w: CLAUDE_BOTTLE_CONTAINER=%s but %s %q already exists (a running bottle); unset it or pick another name", ErrNameTaken, pinned, r.Kind, r.Name)
		}
		return pinned, nil
	}
	base := Prefix + "-" + slug
	for n := 1; n <= MaxInstances; n++ {
		inst := base
		if n > 1 {
			inst = fmt.Sprintf("%s-%d", base, n)
		}
		cs := conflicts(inst)
		if len(cs) == 0 {
			return inst, nil
		}
		for _, r := range cs {
			if !r.Live {
				return "", orphanErr(r)
			}
		}
	}
	return "", fmt.Errorf("%w: all %d names %s..%s-%d are in use; stop some bottles (`claude-bottle ps`) or run `claude-bottle cleanup`", ErrNameTaken, MaxInstances, base, base, MaxInstances)
}

// ImageRefs are the references of the project's own images.
type ImageRefs struct{ Agent, Sidecar, GitGate string }

var imageTagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

// Refs returns the image references for the tag in CLAUDE_BOTTLE_IMAGE_TAG
// ("local" when unset), so that two checkouts (or two versions) on one
// engine keep their own images.
func Refs(env map[string]string) (ImageRefs, error) {
	tag := env["CLAUDE_BOTTLE_IMAGE_TAG"]
	if tag == "" {
		return ImageRefs{AgentImage, SidecarImage, GitGateImage}, nil
	}
	if !imageTagRE.MatchString(tag) {
		return ImageRefs{}, fmt.Errorf("CLAUDE_BOTTLE_IMAGE_TAG=%q is not an image tag (letters, digits, '_', '.', '-'; at most 128)", tag)
	}
	return ImageRefs{"claude-bottle-agent:" + tag, "claude-bottle-sidecar:" + tag, "claude-bottle-git-gate:" + tag}, nil
}
