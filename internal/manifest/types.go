// Package manifest owns the user's claude-bottle.yaml: its Go types, strict
// decoding with file:line:column errors, defaults, and cross-field validation.
package manifest

import "strings"

// Manifest is a decoded, defaulted and validated claude-bottle.yaml.
type Manifest struct {
	// Version is the manifest format version; 0 means 1.
	Version int `yaml:"version,omitempty" json:"version,omitempty" jsonschema:"enum=1"`
	// Agents maps an agent name to what runs in the bottle.
	Agents map[string]*Agent `yaml:"agents" json:"agents"`
	// Bottles maps a bottle name to what its agent may reach.
	Bottles map[string]*Bottle `yaml:"bottles" json:"bottles"`
	// Images configures image builds; zero means defaults.
	Images Images `yaml:"images,omitempty" json:"images,omitempty"`
	// Backend runs the bottles: docker (the engine on this machine) or
	// kubernetes (a cluster, docs/kubernetes.md); "" means docker. The
	// --backend flag overrides it.
	Backend string `yaml:"backend,omitempty" json:"backend,omitempty" jsonschema:"enum=docker,enum=kubernetes"`

	// Path is the file the manifest was read from, as given to Load or Parse
	// ("" for the embedded default).
	Path string `yaml:"-" json:"-"`

	// pos records where each field is written so that validation errors can
	// name a line; nil for a manifest built in code.
	pos positions
}

// Images configures how the project's images are built.
type Images struct {
	// CACerts is a PEM bundle added to image builds (corporate TLS proxies).
	// Relative paths are relative to the manifest. "" means none.
	CACerts string `yaml:"ca_certs,omitempty" json:"ca_certs,omitempty"`
}

// Agent is one agent: what runs, with which environment, in which bottle.
type Agent struct {
	// Bottle names the bottle this agent runs in.
	Bottle string `yaml:"bottle" json:"bottle"`
	// Prompt is appended to the agent's system prompt; "" means none.
	Prompt string `yaml:"prompt,omitempty" json:"prompt,omitempty"`
	// Command is the agent's command; empty means ["claude"].
	Command []string `yaml:"command,omitempty" json:"command,omitempty"`
	// Skills are files copied into the agent's skills directory; each must exist.
	Skills []string `yaml:"skills,omitempty" json:"skills,omitempty"`
	// Env holds literal variables. A value may not contain a newline.
	Env map[string]string `yaml:"env,omitempty" json:"env,omitempty"`
	// ForwardEnv names host variables passed through by name (never on argv).
	ForwardEnv []string `yaml:"forward_env,omitempty" json:"forward_env,omitempty"`
	// Autonomous runs Claude Code without permission prompts
	// (--dangerously-skip-permissions): the bottle is the boundary. nil
	// means true; false makes Claude Code ask before each tool call.
	Autonomous *bool `yaml:"autonomous,omitempty" json:"autonomous,omitempty"`
}

// IsAutonomous says whether Claude Code runs without permission prompts.
func (a *Agent) IsAutonomous() bool { return a.Autonomous == nil || *a.Autonomous }

// Bottle is what an agent may reach.
type Bottle struct {
	// Runtime is auto (runsc when it works), runsc, or runc; "" means auto.
	Runtime string `yaml:"runtime,omitempty" json:"runtime,omitempty" jsonschema:"enum=auto,enum=runsc,enum=runc"`
	// Resources limits the agent container; zero values mean the defaults.
	Resources Resources `yaml:"resources,omitempty" json:"resources,omitempty"`
	// Egress is the allowlist of the bottle's only way out.
	Egress Egress `yaml:"egress,omitempty" json:"egress,omitempty"`
	// CredProxy holds the credential routes; none means no cred-proxy sidecar.
	CredProxy CredProxy `yaml:"cred_proxy,omitempty" json:"cred_proxy,omitempty"`
	// Git holds the repositories served by git-gate; none means no git-gate.
	Git Git `yaml:"git,omitempty" json:"git,omitempty"`
	// Supervise enables the supervise MCP sidecar.
	Supervise bool `yaml:"supervise,omitempty" json:"supervise,omitempty"`
	// Kubernetes holds what only the kubernetes backend reads.
	Kubernetes Kubernetes `yaml:"kubernetes,omitempty" json:"kubernetes,omitempty"`
}

// Kubernetes is a bottle's cluster settings (docs/kubernetes.md).
type Kubernetes struct {
	// RuntimeClass is the agent's RuntimeClass; "" means gvisor when the
	// bottle runs under gVisor, else the cluster's default.
	RuntimeClass string `yaml:"runtime_class,omitempty" json:"runtime_class,omitempty"`
	// ClusterCIDRs are the cluster's pod and service ranges, which egress
	// must never reach (e.g. 10.244.0.0/16, 10.96.0.0/12).
	ClusterCIDRs []string `yaml:"cluster_cidrs,omitempty" json:"cluster_cidrs,omitempty"`
	// Registry is where the cluster pulls claude-bottle's images from
	// (e.g. registry.example.com/team): each image is REGISTRY/NAME:TAG.
	// "" means the names as built, for a cluster whose nodes have them.
	Registry string `yaml:"registry,omitempty" json:"registry,omitempty"`
	// EgressPeers are the in-cluster workloads egress's NetworkPolicy lets
	// it reach (the cluster's own ranges are closed to it otherwise). The
	// egress rule that names such a service still needs allow_private.
	EgressPeers []EgressPeer `yaml:"egress_peers,omitempty" json:"egress_peers,omitempty"`
}

// EgressPeer is a set of pods in one namespace of the cluster.
type EgressPeer struct {
	// Namespace holds the pods.
	Namespace string `yaml:"namespace" json:"namespace"`
	// Pods selects pods by label; none means every pod in Namespace.
	Pods map[string]string `yaml:"pods,omitempty" json:"pods,omitempty"`
	// Ports are the TCP ports egress may open to them; none means any.
	Ports []int `yaml:"ports,omitempty" json:"ports,omitempty" jsonschema:"minimum=1,maximum=65535"`
}

// Resources limits the agent container.
type Resources struct {
	// Memory like "4g" or "512m"; "" means 4g.
	Memory string `yaml:"memory,omitempty" json:"memory,omitempty" jsonschema:"pattern=^[0-9]+[bkmgBKMG]?$"`
	// CPUs like 2 or 0.5; 0 means 2.
	CPUs float64 `yaml:"cpus,omitempty" json:"cpus,omitempty" jsonschema:"exclusiveMinimum=0"`
	// PIDs is the process limit; 0 means 1024.
	PIDs int64 `yaml:"pids,omitempty" json:"pids,omitempty" jsonschema:"minimum=1"`
}

// Egress is the bottle's allowlist.
type Egress struct {
	// Allow lists the destinations the agent may reach.
	Allow []Rule `yaml:"allow,omitempty" json:"allow,omitempty"`
	// Networks are existing Docker networks the egress sidecar joins, to reach
	// local services under the same rules.
	Networks []string `yaml:"networks,omitempty" json:"networks,omitempty"`
}

// Rule allows one host (or *.domain wildcard) on one port.
type Rule struct {
	// Host is a DNS name or "*.example.com" (any subdomain, not the apex).
	Host string `yaml:"host" json:"host"`
	// Port is the destination port; 0 means 443 for CONNECT and 80 for plain HTTP.
	Port int `yaml:"port,omitempty" json:"port,omitempty" jsonschema:"minimum=1,maximum=65535"`
	// AllowPrivate lets this host resolve to private addresses (a local service).
	AllowPrivate bool `yaml:"allow_private,omitempty" json:"allow_private,omitempty"`
}

// CredProxy lists credential routes.
type CredProxy struct {
	Routes []Route `yaml:"routes,omitempty" json:"routes,omitempty"`
}

// Route maps a path prefix on cred-proxy to an upstream and a credential.
type Route struct {
	// Name identifies the route in logs and token files.
	Name string `yaml:"name" json:"name" jsonschema:"pattern=^[a-z0-9][a-z0-9_.-]*$,maxLength=41"`
	// Path is the prefix, like "/anthropic/": starts and ends with "/".
	Path string `yaml:"path" json:"path" jsonschema:"pattern=^/.*/$"`
	// Upstream is the base URL requests are forwarded to (https or http).
	Upstream string `yaml:"upstream" json:"upstream"`
	// Credentials are tried in order on the host at launch; the first whose
	// source is set is used.
	Credentials []Credential `yaml:"credentials" json:"credentials" jsonschema:"minItems=1"`
	// StripHeaders are extra request headers removed before forwarding.
	StripHeaders []string `yaml:"strip_headers,omitempty" json:"strip_headers,omitempty"`
	// Role marks a special route; "anthropic-base-url" wires Claude Code to it.
	Role string `yaml:"role,omitempty" json:"role,omitempty" jsonschema:"enum=anthropic-base-url"`
}

// Credential says where a token comes from on the host and how it is sent.
// Exactly one of Env, File and Command is set.
type Credential struct {
	Env     string   `yaml:"env,omitempty" json:"env,omitempty"`
	File    string   `yaml:"file,omitempty" json:"file,omitempty"`
	Command []string `yaml:"command,omitempty" json:"command,omitempty"`
	// Header is the request header that carries the token; "" means Authorization.
	Header string `yaml:"header,omitempty" json:"header,omitempty"`
	// Format is the header value with {token} in it; "" means "Bearer {token}".
	Format string `yaml:"format,omitempty" json:"format,omitempty"`
}

// Git lists the repositories served by git-gate.
type Git struct {
	Repos []Repo `yaml:"repos,omitempty" json:"repos,omitempty"`
}

// Repo is one upstream repository behind git-gate.
type Repo struct {
	// Name is the repository's name on the gate (git-gate/NAME.git).
	Name string `yaml:"name" json:"name" jsonschema:"pattern=^[a-z0-9][a-z0-9_.-]*$,maxLength=41"`
	// Upstream is the real URL: ssh (git@host:path, ssh://) or https.
	Upstream string `yaml:"upstream" json:"upstream"`
	// Key is an SSH private key file for ssh upstreams (must not be readable by others).
	Key string `yaml:"key,omitempty" json:"key,omitempty"`
	// HostKeys are known_hosts lines pinning the upstream's SSH host key;
	// empty means the first key seen is trusted (logged).
	HostKeys []string `yaml:"host_keys,omitempty" json:"host_keys,omitempty"`
	// Token is the credential for https upstreams.
	Token *Credential `yaml:"token,omitempty" json:"token,omitempty"`
	// Push is the push policy; zero refuses every push.
	Push PushPolicy `yaml:"push,omitempty" json:"push,omitempty"`
}

// PushPolicy says which ref updates git-gate forwards upstream.
type PushPolicy struct {
	// Branches are glob patterns (path.Match, "agent/*"); empty means none.
	Branches []string `yaml:"branches,omitempty" json:"branches,omitempty"`
	Force    bool     `yaml:"force,omitempty" json:"force,omitempty"`
	Delete   bool     `yaml:"delete,omitempty" json:"delete,omitempty"`
	Tags     bool     `yaml:"tags,omitempty" json:"tags,omitempty"`
}

// Describe names where a credential comes from, for a person: "$NAME",
// "the file PATH", "the output of `CMD`". It never holds the value.
func (c Credential) Describe() string {
	switch {
	case c.Env != "":
		return "$" + c.Env
	case c.File != "":
		return "the file " + c.File
	case len(c.Command) > 0:
		return "the output of `" + strings.Join(c.Command, " ") + "`"
	}
	return "no source"
}
