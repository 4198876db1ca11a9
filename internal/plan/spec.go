package plan

import (
	"github.com/claude-bottle/claude-bottle/internal/egress"
	"github.com/claude-bottle/claude-bottle/internal/gitgate"
	"github.com/claude-bottle/claude-bottle/internal/manifest"
)

// Spec is what the bottle is, whatever runs it: sidecars, rules, env,
// files. A Kubernetes backend would take the same Spec.
type Spec struct {
	Bottle string `json:"bottle"`
	// Image is the agent image; DerivedImage, when set, is built from it
	// with Cwd copied in and is what runs.
	Image        string   `json:"image"`
	DerivedImage string   `json:"derived_image,omitempty"`
	Cwd          string   `json:"cwd,omitempty"`
	Command      []string `json:"command"`
	TTY          bool     `json:"tty"`
	// Autonomous says Claude Code runs without permission prompts.
	Autonomous bool `json:"autonomous"`
	// ClaudeAuth is the kind of placeholder Claude Code holds for
	// cred-proxy: "api-key" (ANTHROPIC_API_KEY) or "oauth"
	// (CLAUDE_CODE_OAUTH_TOKEN), after the credential set on the host; ""
	// without an anthropic-base-url route.
	ClaudeAuth string `json:"claude_auth,omitempty"`
	// Workspace is the volume mounted at /workspace.
	Workspace string `json:"workspace"`
	// Work says where the agent's work goes when the bottle ends.
	Work Work `json:"work"`
	// Env is the agent's environment: literals (in the 0600 env file),
	// forwarded names (values read from the host at launch, never written)
	// and the bottle's own wiring.
	Env       []EnvVar      `json:"env"`
	Sidecars  []string      `json:"sidecars"`
	Allowlist []egress.Rule `json:"allowlist"`
	// JoinNetworks are the Docker networks egress joins to reach local
	// services; PrivateNetworks their subnets, which egress may reach.
	JoinNetworks    []string           `json:"join_networks,omitempty"`
	PrivateNetworks []string           `json:"private_networks,omitempty"`
	Routes          []Route            `json:"routes,omitempty"`
	Repos           []Repo             `json:"repos,omitempty"`
	Supervise       bool               `json:"supervise"`
	Resources       manifest.Resources `json:"resources"`
	Skills          []Skill            `json:"skills,omitempty"`
	// AgentDockerfile is the approved Dockerfile of the agent's image, shown
	// to the agent in current-config ("" for the built-in one).
	AgentDockerfile string `json:"agent_dockerfile,omitempty"`
	// Files are Render's output: written into the stage directory before
	// anything starts. Secrets (tokens, keys) are not here: the launcher
	// resolves them.
	Files []File `json:"files"`
}

// Work is where the agent's /workspace goes when the bottle ends.
type Work struct {
	// Mode is "branch" (commits and uncommitted changes come back into
	// Repo as Branch) or "archive" (/workspace is saved as a tar file under
	// the state directory's work/).
	Mode string `json:"mode"`
	// Repo and Base (the commit at launch) are the user's repository.
	Repo string `json:"repo,omitempty"`
	Base string `json:"base,omitempty"`
	// Branch is the branch name asked for; a taken name gets a suffix.
	Branch string `json:"branch,omitempty"`
	// Archive is the archive's path relative to the state directory,
	// without the "-TIME.tar" the launcher adds when it writes it.
	Archive string `json:"archive,omitempty"`
}

// EnvVar is one agent variable. Exactly one of Value (a literal or wiring)
// and Forward (read from the host by name at launch) is meaningful.
type EnvVar struct {
	Name    string `json:"name"`
	Value   string `json:"value,omitempty"`
	Forward bool   `json:"forward,omitempty"`
	// Source is literal, forward, or wiring.
	Source string `json:"source"`
}

// Route is a cred-proxy route without its token.
type Route struct {
	Name         string                `json:"name"`
	Path         string                `json:"path"`
	Upstream     string                `json:"upstream"`
	Role         string                `json:"role,omitempty"`
	StripHeaders []string              `json:"strip_headers,omitempty"`
	Credentials  []manifest.Credential `json:"credentials"`
	// Header and Format are the chosen credential's: how cred-proxy
	// injects the token.
	Header string `json:"header,omitempty"`
	Format string `json:"format,omitempty"`
}

// Repo is a git-gate repository without its key.
type Repo struct {
	Name     string               `json:"name"`
	Upstream string               `json:"upstream"`
	GateURL  string               `json:"gate_url"`
	Key      string               `json:"key,omitempty"`
	HostKeys []string             `json:"host_keys,omitempty"`
	Token    *manifest.Credential `json:"token,omitempty"`
	Push     gitgate.PushPolicy   `json:"push"`
}

// Skill is a skill file mounted read-only into the agent.
type Skill struct {
	Name   string `json:"name"`
	Source string `json:"source"`
}

// File is one stage file: Path relative to the stage directory.
type File struct {
	Path    string `json:"path"`
	Mode    uint32 `json:"mode"`
	Content string `json:"content"`
}

// DockerPlan is how Docker runs the Spec.
type DockerPlan struct {
	// Runtime is the bottle's OCI runtime: the agent's, and the sidecars'
	// that can run under it (each Container says its own).
	Runtime string `json:"runtime"`
	// RuntimeReason says why: the setting that chose it and what the
	// runsc probe found.
	RuntimeReason string      `json:"runtime_reason"`
	Networks      []Network   `json:"networks"`
	Containers    []Container `json:"containers"`
}

// Network is one network the launch creates.
type Network struct {
	Name     string            `json:"name"`
	Internal bool              `json:"internal"`
	Labels   map[string]string `json:"labels"`
	// Options are bridge driver options.
	Options map[string]string `json:"options,omitempty"`
}

// Container is one container the launch creates, in start order; the agent
// is last.
type Container struct {
	Role       string   `json:"role"`
	Name       string   `json:"name"`
	Image      string   `json:"image"`
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	// Env holds NAME=VALUE wiring only; the agent's literal and forwarded
	// variables are added at launch from Spec.Env.
	Env     []string `json:"env,omitempty"`
	User    string   `json:"user,omitempty"`
	Network string   `json:"network"`
	Aliases []string `json:"aliases,omitempty"`
	// Join are further networks connected before start.
	Join []string `json:"join,omitempty"`
	// HostsFrom are the roles whose addresses on Network go into this
	// container's hosts file; it is created once they run. Under gVisor
	// that is how a sidecar finds another (Docker's DNS is out of reach).
	HostsFrom []string `json:"hosts_from,omitempty"`
	Mounts    []Mount  `json:"mounts,omitempty"`
	// Tmpfs maps a path to mount options.
	Tmpfs          map[string]string `json:"tmpfs,omitempty"`
	CapDrop        []string          `json:"cap_drop,omitempty"`
	SecurityOpt    []string          `json:"security_opt,omitempty"`
	ReadOnlyRootfs bool              `json:"read_only_rootfs,omitempty"`
	Runtime        string            `json:"runtime,omitempty"`
	Memory         int64             `json:"memory,omitempty"`
	NanoCPUs       int64             `json:"nano_cpus,omitempty"`
	PidsLimit      int64             `json:"pids_limit,omitempty"`
	Sysctls        map[string]string `json:"sysctls,omitempty"`
	// DNSFromEgress says the container's resolver forwards to the egress
	// DNS stub (its address is known only once egress runs).
	DNSFromEgress bool `json:"dns_from_egress,omitempty"`
	// Health is the readiness check run inside the container (exec) until
	// it exits 0; nil means none.
	Health []string          `json:"health,omitempty"`
	Labels map[string]string `json:"labels"`
	TTY    bool              `json:"tty,omitempty"`
	// Stdin says the container's standard input is attached, once (the
	// agent's); Init runs an init process as PID 1 that reaps orphans.
	Stdin bool `json:"stdin,omitempty"`
	Init  bool `json:"init,omitempty"`
}

// Mount binds a host path. Stage says Source is relative to the stage directory.
type Mount struct {
	Source   string `json:"source"`
	Stage    bool   `json:"stage,omitempty"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only"`
	// Volume says Source is a volume's name.
	Volume bool `json:"volume,omitempty"`
}

// Container returns the container of a role, or nil.
func (d *DockerPlan) Container(role string) *Container {
	for i := range d.Containers {
		if d.Containers[i].Role == role {
			return &d.Containers[i]
		}
	}
	return nil
}

// Network returns the network of a name, or nil.
func (d *DockerPlan) Network(name string) *Network {
	for i := range d.Networks {
		if d.Networks[i].Name == name {
			return &d.Networks[i]
		}
	}
	return nil
}
