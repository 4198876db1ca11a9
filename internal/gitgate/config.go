// Package gitgate owns the git-gate sidecar: a smart-HTTP git server for a
// bottle's repositories that holds the upstream keys, fetches on demand and
// forwards only the pushes its policy allows.
package gitgate

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/claude-bottle/claude-bottle/internal/giturl"
	"github.com/claude-bottle/claude-bottle/internal/jsonstrict"
)

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

// LoadConfig reads DIR/repos.json strictly (unknown fields are errors) and
// validates it. allowFile permits file:// and plain-path upstreams (tests).
func LoadConfig(dir string, allowFile bool) (Config, error) {
	b, err := os.ReadFile(filepath.Join(dir, "repos.json"))
	if err != nil {
		return Config{}, fmt.Errorf("read git-gate config: %w", err)
	}
	return parseConfig(b, allowFile)
}

func parseConfig(b []byte, allowFile bool) (Config, error) {
	var c Config
	if err := jsonstrict.Decode(b, &c); err != nil {
		return Config{}, fmt.Errorf("decode repos.json: %w", err)
	}
	if err := c.Validate(allowFile); err != nil {
		return Config{}, err
	}
	return c, nil
}

var repoName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)

// Validate checks names, upstream URLs and file references. An upstream is
// ssh (user@host:path or ssh://) or https://; allowFile also permits
// file://, http:// and absolute paths, which only tests use.
func (c Config) Validate(allowFile bool) error {
	seen := map[string]bool{}
	for i, r := range c.Repos {
		if !repoName.MatchString(r.Name) || strings.HasSuffix(r.Name, ".git") || strings.Contains(r.Name, "..") {
			return fmt.Errorf("repos[%d]: invalid name %q (letters, digits, . _ -; no .git suffix)", i, r.Name)
		}
		if seen[r.Name] {
			return fmt.Errorf("repos[%d]: duplicate name %q", i, r.Name)
		}
		seen[r.Name] = true
		kind, err := upstreamKind(r.Upstream, allowFile)
		if err != nil {
			return fmt.Errorf("repo %s: %w", r.Name, err)
		}
		if r.KeyFile != "" && kind != "ssh" {
			return fmt.Errorf("repo %s: key_file is only for ssh upstreams", r.Name)
		}
		if r.TokenFile != "" && kind != "https" && kind != "http" {
			return fmt.Errorf("repo %s: token_file is only for https upstreams", r.Name)
		}
		for _, f := range []string{r.KeyFile, r.TokenFile} {
			if f != "" && !filepath.IsLocal(f) {
				return fmt.Errorf("repo %s: %q must be a relative path inside the config directory", r.Name, f)
			}
		}
		if r.Format != "" && !strings.Contains(r.Format, "{token}") {
			return fmt.Errorf("repo %s: format %q has no {token}", r.Name, r.Format)
		}
		if strings.ContainsAny(r.Header+r.Format, "\r\n") {
			return fmt.Errorf("repo %s: header and format may not contain newlines", r.Name)
		}
		for _, p := range r.Push.Branches {
			if _, err := path.Match(p, ""); err != nil {
				return fmt.Errorf("repo %s: bad branch pattern %q: %w", r.Name, p, err)
			}
		}
	}
	if c.KnownHosts != "" && !filepath.IsLocal(c.KnownHosts) {
		return fmt.Errorf("known_hosts %q must be a relative path inside the config directory", c.KnownHosts)
	}
	return nil
}

// upstreamKind classifies an upstream as ssh, https, http or file, by
// giturl's syntax, which refuses anything git would read as another
// transport (ext::, fd::) or an option (a leading "-"): the URL ends up on
// a git command line. http and file are for tests only (allowFile).
func upstreamKind(u string, allowFile bool) (string, error) {
	p, err := giturl.Parse(u)
	if err != nil {
		return "", fmt.Errorf("invalid upstream: %w", err)
	}
	switch {
	case p.Scheme == "ssh" || p.Scheme == "https":
		return p.Scheme, nil
	case allowFile && (p.Scheme == "http" || p.Scheme == "file"):
		return p.Scheme, nil
	}
	return "", fmt.Errorf("upstream %q is neither ssh (user@host:path, ssh://) nor https://", u)
}
