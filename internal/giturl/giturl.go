// Package giturl owns the syntax of a git upstream URL: the manifest
// validates with it, git-gate fetches with it and the plan derives egress
// rules from it, so the three never disagree on what a URL names.
package giturl

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// URL is a parsed git upstream.
type URL struct {
	// Scheme is "ssh" (ssh:// or scp-like), "https", "http" or "file" (a
	// file:// URL or an absolute path). Which of them a caller accepts is
	// its own policy: the manifest refuses http and file.
	Scheme string
	// User is the ssh login; "" when the URL names none.
	User string
	// Host is the host name or IP address, without brackets; "" for file.
	Host string
	// Port is the URL's port, else the scheme's (22, 443, 80); 0 for file.
	Port int
	// Path is the repository path as written: an scp-like path is relative
	// to the login's home unless it starts with "/".
	Path string
	// SCP says the URL was written user@host:path.
	SCP bool
}

// scpRE is user@host:path. The host starts with a letter or digit, so
// ssh never reads it as an option; the path is checked on its own.
var scpRE = regexp.MustCompile(`^([A-Za-z0-9._-]+)@([A-Za-z0-9][A-Za-z0-9.-]*):(.*)$`)

// Parse reads an upstream as git would, and refuses what git or ssh could
// read as something else: spaces and control characters, a leading "-"
// (of the URL, its host or an scp-like path: an option to ssh or git),
// other transports (git://, ext::, fd::), a password (a secret does not
// belong in a URL), a query or fragment, and a host:path without a user.
func Parse(s string) (URL, error) {
	switch {
	case s == "":
		return URL{}, errors.New("upstream is required")
	case strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return URL{}, fmt.Errorf("%q must not contain spaces or control characters", s)
	case strings.HasPrefix(s, "-"):
		return URL{}, fmt.Errorf("%q must not start with \"-\" (git would read it as an option)", s)
	}
	for _, scheme := range []string{"ssh", "https", "http", "file"} {
		if strings.HasPrefix(s, scheme+"://") {
			return parseURL(s, scheme)
		}
	}
	if strings.Contains(s, "://") || strings.Contains(s, "::") {
		return URL{}, fmt.Errorf("%q: only ssh (user@host:path or ssh://host/path) and https upstreams are allowed", s)
	}
	colon, slash := strings.IndexByte(s, ':'), strings.IndexByte(s, '/')
	switch {
	case colon > 0 && (slash < 0 || colon < slash):
		// git's own rule: a colon before any slash makes it scp-like.
		return parseSCP(s)
	case filepath.IsAbs(s):
		return URL{Scheme: "file", Path: s}, nil
	}
	return URL{}, fmt.Errorf("must be an ssh (user@host:path or ssh://host/path) or https URL, got %q", s)
}

func parseSCP(s string) (URL, error) {
	m := scpRE.FindStringSubmatch(s)
	if m == nil {
		if host, _, _ := strings.Cut(s, ":"); !strings.Contains(host, "@") {
			return URL{}, fmt.Errorf("%q names no user: write it user@host:path, like git@github.com:example/app.git", s)
		}
		return URL{}, fmt.Errorf("%q is not user@host:path (a user, then a host that starts with a letter or digit)", s)
	}
	user, host, path := m[1], m[2], m[3]
	switch {
	case path == "":
		return URL{}, fmt.Errorf("%q names no repository path", s)
	case strings.HasPrefix(path, "-"):
		return URL{}, fmt.Errorf("%q: the path must not start with \"-\" (git would read it as an option)", s)
	}
	// user@host:2222/app.git is the path 2222/app.git on port 22: the
	// scp-like form has no port.
	return URL{Scheme: "ssh", User: user, Host: host, Port: 22, Path: path, SCP: true}, nil
}

func parseURL(s, scheme string) (URL, error) {
	// A password is refused before anything echoes the URL.
	authority, _, _ := strings.Cut(strings.TrimPrefix(s, scheme+"://"), "/")
	if at := strings.LastIndexByte(authority, '@'); at >= 0 && strings.Contains(authority[:at], ":") {
		return URL{}, fmt.Errorf("a %s upstream must not contain a password", scheme)
	}
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return URL{}, fmt.Errorf("%q is not a valid URL: %v", s, err)
	}
	out := URL{Scheme: scheme, Path: u.Path}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return URL{}, fmt.Errorf("%q must not have a query or fragment", s)
	}
	if scheme == "file" {
		if u.Host != "" || u.User != nil || strings.Trim(u.Path, "/") == "" {
			return URL{}, fmt.Errorf("%q must be file:///absolute/path", s)
		}
		return out, nil
	}
	out.User, out.Host = u.User.Username(), u.Hostname()
	if strings.HasPrefix(out.Host, "-") {
		// ssh would read such a host as an option (-oProxyCommand=...).
		return URL{}, fmt.Errorf("%q: the host must not start with \"-\"", s)
	}
	if out.Host == "" || strings.Trim(u.Path, "/") == "" {
		return URL{}, fmt.Errorf("%q needs a host and a repository path", s)
	}
	out.Port = map[string]int{"ssh": 22, "https": 443, "http": 80}[scheme]
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return URL{}, fmt.Errorf("%q: port %s is not 1 to 65535", s, p)
		}
		out.Port = n
	}
	return out, nil
}
