// Package credproxy owns the cred-proxy sidecar: a reverse proxy that holds
// the real API tokens, strips whatever credential the agent sent and injects
// the real one, and scrubs any token an upstream reflects.
package credproxy

// Config is cred-proxy/routes.json (docs/sidecar-contract.md). Tokens are
// not in it: each route names a 0400 token file beside it.
type Config struct {
	Routes []Route `json:"routes"`
}

// Route maps a path prefix to an upstream and one credential.
type Route struct {
	Name     string `json:"name"`
	Path     string `json:"path"`     // "/anthropic/": starts and ends with "/"
	Upstream string `json:"upstream"` // base URL, https or http
	Header   string `json:"header"`   // header carrying the token, e.g. "x-api-key"
	Format   string `json:"format"`   // value with {token}, e.g. "Bearer {token}"
	// StripHeaders are removed from agent requests in addition to the
	// standard credential headers.
	StripHeaders []string `json:"strip_headers,omitempty"`
	// TokenFile is relative to the config directory.
	TokenFile string `json:"token_file"`
}
