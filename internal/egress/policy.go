// Package egress owns the egress sidecar: the allowlist proxy (CONNECT and
// plain HTTP) that is a bottle's only way out, its DNS stub and its secret
// canary. The allow decision is a pure function of the policy and a request.
package egress

// Policy is egress/policy.json (docs/sidecar-contract.md), written only by
// the host and reloaded live by the sidecar.
type Policy struct {
	Rules []Rule `json:"rules"`
	// PrivateNetworks are CIDRs the proxy may dial even though they are
	// private: the networks the manifest asked the sidecar to join.
	PrivateNetworks []string `json:"private_networks,omitempty"`
}

// Rule allows one host (or "*.domain", any subdomain but not the apex) on
// one port. Port 0 means 443 for CONNECT and 80 for plain HTTP.
type Rule struct {
	Host         string `json:"host"`
	Port         int    `json:"port,omitempty"`
	AllowPrivate bool   `json:"allow_private,omitempty"`
	// Source says where the rule came from: "manifest", "route NAME",
	// "git REPO", "supervise ID". Shown in logs and current-config.
	Source string `json:"source,omitempty"`
}

// Secrets is egress/secrets.json: credential values the canary refuses to
// let out in a CONNECT host, URL or plain-HTTP header.
type Secrets struct {
	Values []string `json:"values"`
}
