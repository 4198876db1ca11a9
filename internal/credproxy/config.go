// Package credproxy owns the cred-proxy sidecar: a reverse proxy that holds
// the real API tokens, strips whatever credential the agent sent and injects
// the real one, and scrubs any token an upstream reflects.
package credproxy

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/claude-bottle/claude-bottle/internal/jsonstrict"
)

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

// RoutesFile is the name of the routes file inside the config directory.
const RoutesFile = "routes.json"

// LoadedRoute is a Route together with the token read from its token file.
// It formats without the token so it cannot leak through a log line.
type LoadedRoute struct {
	Route
	Token string
}

// String prints the route without its token (fmt's %v, %+v and %s).
func (r LoadedRoute) String() string {
	return fmt.Sprintf("route %s (%s -> %s, token redacted)", r.Name, r.Path, r.Upstream)
}

// GoString keeps the token out of %#v too.
func (r LoadedRoute) GoString() string { return r.String() }

// LogValue keeps the token out of structured logs.
func (r LoadedRoute) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", r.Name), slog.String("path", r.Path), slog.String("upstream", r.Upstream))
}

var (
	// routePathRE keeps prefixes to plain segments, so matching the raw
	// request path byte-for-byte is the same as matching the decoded one.
	routePathRE  = regexp.MustCompile(`^/([A-Za-z0-9_~-][A-Za-z0-9._~-]*/)+$`)
	headerNameRE = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
)

// hopByHop headers cannot carry the credential: the proxy drops them.
var hopByHop = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true, "Host": true, "Content-Length": true,
}

// Validate checks every route; it does not read token files.
func (c Config) Validate() error {
	names := map[string]bool{}
	paths := map[string]bool{}
	for i, r := range c.Routes {
		if err := r.validate(); err != nil {
			return fmt.Errorf("route %d (%q): %w", i, r.Name, err)
		}
		if names[r.Name] {
			return fmt.Errorf("route %d: duplicate name %q", i, r.Name)
		}
		if paths[r.Path] {
			return fmt.Errorf("route %d (%q): duplicate path %q", i, r.Name, r.Path)
		}
		names[r.Name], paths[r.Path] = true, true
	}
	return nil
}

func (r Route) validate() error {
	if r.Name == "" {
		return errors.New("name is empty")
	}
	if !routePathRE.MatchString(r.Path) {
		return fmt.Errorf("path %q must look like /name/: start and end with \"/\", plain segments only", r.Path)
	}
	for _, seg := range strings.Split(strings.Trim(r.Path, "/"), "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("path %q has a dot segment", r.Path)
		}
	}
	if _, err := parseUpstream(r.Upstream); err != nil {
		return err
	}
	if !headerNameRE.MatchString(r.Header) {
		return fmt.Errorf("header %q is not a valid header name", r.Header)
	}
	if hopByHop[http.CanonicalHeaderKey(r.Header)] {
		return fmt.Errorf("header %q is hop-by-hop or framing and cannot carry a credential", r.Header)
	}
	if !strings.Contains(r.Format, "{token}") {
		return fmt.Errorf("format %q has no {token}", r.Format)
	}
	if hasCtl(r.Format) {
		return errors.New("format has control characters")
	}
	for _, h := range r.StripHeaders {
		if !headerNameRE.MatchString(h) {
			return fmt.Errorf("strip_headers entry %q is not a valid header name", h)
		}
	}
	if r.TokenFile == "" || !filepath.IsLocal(r.TokenFile) {
		return fmt.Errorf("token_file %q must be a path inside the config directory", r.TokenFile)
	}
	return nil
}

func parseUpstream(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", s, err)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return nil, fmt.Errorf("upstream %q must be http or https", s)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "" {
		return nil, fmt.Errorf("upstream %q must be scheme://host[:port][/path] with no user, query or fragment", s)
	}
	return u, nil
}

func hasCtl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// Load reads dir/routes.json strictly and each route's token file. A
// token's trailing newline is trimmed; an empty token is an error, so a
// route never forwards without its credential.
func Load(dir string) ([]LoadedRoute, error) {
	routes, _, err := load(dir)
	return routes, err
}

// load also returns a fingerprint of everything it read, so the poller
// can tell "unchanged" from "changed" without keeping file contents twice.
func load(dir string) ([]LoadedRoute, [sha256.Size]byte, error) {
	h := sha256.New()
	raw, err := os.ReadFile(filepath.Join(dir, RoutesFile))
	if err != nil {
		fmt.Fprintf(h, "error %v", err)
		return nil, sum(h), fmt.Errorf("read %s: %w", RoutesFile, err)
	}
	h.Write(raw)
	var c Config
	if err := jsonstrict.Decode(raw, &c); err != nil {
		return nil, sum(h), fmt.Errorf("parse %s: %w", RoutesFile, err)
	}
	if err := c.Validate(); err != nil {
		return nil, sum(h), fmt.Errorf("%s: %w", RoutesFile, err)
	}
	out := make([]LoadedRoute, 0, len(c.Routes))
	var firstErr error
	for _, r := range c.Routes {
		// Read every file even after an error: the fingerprint must cover
		// them all or a fixed token file would go unnoticed.
		b, err := os.ReadFile(filepath.Join(dir, r.TokenFile))
		fmt.Fprintf(h, "\x00%s\x00", r.TokenFile)
		if err != nil {
			fmt.Fprintf(h, "error %v", err)
			if firstErr == nil {
				firstErr = fmt.Errorf("route %q: read token file: %w", r.Name, err)
			}
			continue
		}
		h.Write(b)
		tok := strings.TrimRight(string(b), "\r\n")
		switch {
		case tok == "":
			err = fmt.Errorf("route %q: token file %s is empty", r.Name, r.TokenFile)
		case hasCtl(tok):
			err = fmt.Errorf("route %q: token file %s has control characters", r.Name, r.TokenFile)
		case strings.TrimSpace(tok) != tok:
			err = fmt.Errorf("route %q: token in %s has leading or trailing spaces", r.Name, r.TokenFile)
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
		out = append(out, LoadedRoute{Route: r, Token: tok})
	}
	if firstErr != nil {
		return nil, sum(h), firstErr
	}
	return out, sum(h), nil
}

func sum(h hash.Hash) (s [sha256.Size]byte) {
	h.Sum(s[:0])
	return s
}
