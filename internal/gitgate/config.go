// Package gitgate owns the git-gate sidecar: a smart-HTTP git server for a
// bottle's repositories that holds the upstream keys, fetches on demand and
// forwards only the pushes its policy allows.
package gitgate

// Config is git-gate/repos.json (docs/sidecar-contract.md).
type Config struct {
	Repos []Repo `json:"repos"`
	// KnownHosts is a known_hosts file relative to the config directory;
	// "" means the first host key seen is trusted (and logged).
	KnownHosts string `json:"known_hosts,omitempty"`
}

// Repo is one repository: NAME.git on the gate, Upstream behind it.
type Repo struct {
	Name     string `json:"name"`
	Upstream string `json:"upstream"`
	// KeyFile (ssh) or TokenFile (https) is relative to the config directory.
	KeyFile   string `json:"key_file,omitempty"`
	TokenFile string `json:"token_file,omitempty"`
	// Header/Format say how an https token is sent; "" means
	// "Authorization: Bearer {token}".
	Header string     `json:"header,omitempty"`
	Format string     `json:"format,omitempty"`
	Push   PushPolicy `json:"push"`
}

// PushPolicy says which ref updates are forwarded upstream. The zero value
// refuses every push.
type PushPolicy struct {
	Branches []string `json:"branches,omitempty"` // path.Match patterns
	Force    bool     `json:"force,omitempty"`
	Delete   bool     `json:"delete,omitempty"`
	Tags     bool     `json:"tags,omitempty"`
}
