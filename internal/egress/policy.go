// Package egress owns the egress sidecar: the allowlist proxy (CONNECT and
// plain HTTP) that is a bottle's only way out, its DNS stub and its secret
// canary. The allow decision is a pure function of the policy and a request.
package egress

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/claude-bottle/claude-bottle/internal/jsonstrict"
)

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
	// Client reserves the rule for one sidecar ("cred-proxy", "git-gate"):
	// only connections from that sidecar's address may use it. A route's
	// upstream is for cred-proxy, which injects the token; the agent
	// reaching it directly would skip that. "" means anyone in the bottle.
	Client string `json:"client,omitempty"`
}

// Secrets is egress/secrets.json: credential values the canary refuses to
// let out in a CONNECT host, URL or plain-HTTP header.
type Secrets struct {
	Values []string `json:"values"`
}

// Request is what Decide judges: a CONNECT target or a plain-HTTP request's
// host and port, as the client wrote them.
type Request struct {
	// Method is CONNECT for tunnels; anything else is plain HTTP.
	Method string
	Host   string
	// Port 0 means the default port: 443 for CONNECT, 80 otherwise.
	Port int
	// Client is the sidecar the request comes from ("cred-proxy",
	// "git-gate"), as the proxy established from its address; "" for the
	// agent or anyone else.
	Client string
}

// Verdict is Decide's answer. The zero value refuses.
type Verdict struct {
	Allow bool
	// Rule describes the rule that allowed, for the log.
	Rule string
	// Reason says why a request was refused.
	Reason string
	// AllowPrivate is the allowing rule's allow_private: its host may
	// resolve to private addresses.
	AllowPrivate bool
}

// Reasons Decide gives; the proxy adds its own for what happens after.
const (
	reasonNoPolicy    = "no policy loaded"
	reasonEmptyHost   = "empty host"
	reasonIPLiteral   = "ip literal (ask for a host name, not an address)"
	reasonInvalidHost = "invalid host name"
	reasonInvalidPort = "invalid port"
	reasonNotAllowed  = "not in the allowlist"
	reasonWrongPort   = "port not in the allowlist for this host"
)

// Decide is the allow decision, a pure function of the policy and a request.
// IP literals in any form a resolver or URL parser would accept are refused
// before matching, so an allowlist of names cannot be bypassed by spelling
// an address; the host must otherwise be a valid DNS name. The first rule
// whose host and port match allows. A nil policy refuses everything.
func Decide(p *Policy, req Request) Verdict {
	if p == nil {
		return Verdict{Reason: reasonNoPolicy}
	}
	host := normalizeHost(req.Host)
	switch {
	case host == "":
		return Verdict{Reason: reasonEmptyHost}
	case isIPLiteral(host):
		return Verdict{Reason: reasonIPLiteral}
	case !validDNSName(host):
		return Verdict{Reason: reasonInvalidHost}
	}
	def := defaultPort(req.Method)
	port := req.Port
	if port == 0 {
		port = def
	}
	if port < 1 || port > 65535 {
		return Verdict{Reason: reasonInvalidPort}
	}
	hostMatched := false
	reserved := ""
	for _, r := range p.Rules {
		if !matchHost(r.Host, host) {
			continue
		}
		if r.Client != "" && r.Client != req.Client {
			reserved = r.Client
			continue
		}
		hostMatched = true
		rp := r.Port
		if rp == 0 {
			rp = def
		}
		if rp == port {
			return Verdict{Allow: true, Rule: r.describe(port), AllowPrivate: r.AllowPrivate}
		}
	}
	if hostMatched {
		return Verdict{Reason: reasonWrongPort}
	}
	if reserved != "" {
		return Verdict{Reason: "reserved for the " + reserved + " sidecar: reach it through " + reserved + ", which holds its credentials"}
	}
	return Verdict{Reason: reasonNotAllowed}
}

func defaultPort(method string) int {
	if strings.EqualFold(method, "CONNECT") {
		return 443
	}
	return 80
}

// describe names the rule for the log, with the port it allowed.
func (r Rule) describe(port int) string {
	s := normalizeHost(r.Host) + ":" + strconv.Itoa(port)
	if r.Source != "" {
		s += " (" + r.Source + ")"
	}
	return s
}

// matchHost reports whether host (normalized, a valid DNS name) matches a
// rule's pattern: exactly, or "*.domain" for any name below domain. The
// leading dot of the suffix keeps "evildomain" from matching "*.domain".
func matchHost(pattern, host string) bool {
	pattern = normalizeHost(pattern)
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		return strings.HasPrefix(suffix, ".") && len(host) > len(suffix) && strings.HasSuffix(host, suffix)
	}
	return pattern == host
}

// ParsePolicy decodes policy.json strictly and validates it.
func ParsePolicy(data []byte) (*Policy, error) {
	var p Policy
	if err := jsonstrict.Decode(data, &p); err != nil {
		return nil, fmt.Errorf("decode policy: %w", err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// ParseSecrets decodes secrets.json strictly.
func ParseSecrets(data []byte) (*Secrets, error) {
	var s Secrets
	if err := jsonstrict.Decode(data, &s); err != nil {
		return nil, fmt.Errorf("decode secrets: %w", err)
	}
	return &s, nil
}

// Validate checks every rule names a host (or "*.domain") that Decide could
// ever match, a port in range, and that private networks are CIDRs.
func (p *Policy) Validate() error {
	for i, r := range p.Rules {
		h := normalizeHost(r.Host)
		name, _ := strings.CutPrefix(h, "*.")
		if isIPLiteral(name) || !validDNSName(name) {
			return fmt.Errorf("rule %d: host %q is not a DNS name or *.domain", i, r.Host)
		}
		if r.Port < 0 || r.Port > 65535 {
			return fmt.Errorf("rule %d: port %d out of range", i, r.Port)
		}
	}
	for _, n := range p.PrivateNetworks {
		if _, err := netip.ParsePrefix(n); err != nil {
			return fmt.Errorf("private network %q: %w", n, err)
		}
	}
	return nil
}
