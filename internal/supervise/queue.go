// Package supervise owns the supervise sidecar (an MCP server through which
// the agent asks for changes to its own bottle), the request queue on the
// host, and the host-side review that decides.
package supervise

import "time"

// Request kinds.
const (
	KindEgress     = "egress"
	KindRoute      = "route"
	KindDockerfile = "dockerfile"
)

// Verdicts.
const (
	Approved = "approved"
	Denied   = "denied"
)

// Request is supervise/requests/ID.json, written only by the sidecar.
type Request struct {
	ID         string         `json:"id"`
	Kind       string         `json:"kind"`
	Created    time.Time      `json:"created"`
	Reason     string         `json:"reason"`
	Egress     *EgressAsk     `json:"egress,omitempty"`
	Route      *RouteAsk      `json:"route,omitempty"`
	Dockerfile *DockerfileAsk `json:"dockerfile,omitempty"`
}

// EgressAsk asks for one allowlist rule.
type EgressAsk struct {
	Host string `json:"host"`
	Port int    `json:"port,omitempty"`
}

// RouteAsk asks for a credential route; the agent never names a token.
type RouteAsk struct {
	Service  string `json:"service"`
	Upstream string `json:"upstream"`
}

// DockerfileAsk proposes a whole new Dockerfile for the next launch.
type DockerfileAsk struct {
	Content string `json:"content"`
}

// Decision is supervise/decisions/ID.json, written only by the host.
type Decision struct {
	ID      string    `json:"id"`
	Verdict string    `json:"verdict"`
	Message string    `json:"message,omitempty"`
	Decided time.Time `json:"decided"`
}
