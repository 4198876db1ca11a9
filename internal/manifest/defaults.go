package manifest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Defaults for fields left out of the manifest.
const (
	DefaultRuntime = "auto"
	DefaultMemory  = "4g"
	DefaultCPUs    = 2.0
	DefaultPIDs    = 1024
	DefaultHeader  = "Authorization"
	DefaultFormat  = "Bearer {token}"
)

// DefaultCommand is the agent command when none is given.
func DefaultCommand() []string { return []string{"claude"} }

// applyDefaults fills fields that were left out. A field written with a
// zero value (cpus: 0, runtime: "") is left alone so that Validate refuses
// it instead of silently replacing what the user wrote.
func (m *Manifest) applyDefaults() {
	for name, a := range m.Agents {
		p := "agents." + name
		if len(a.Command) == 0 && !m.has(p+".command") {
			a.Command = DefaultCommand()
		}
	}
	for name, b := range m.Bottles {
		p := "bottles." + name
		if b.Runtime == "" && !m.has(p+".runtime") {
			b.Runtime = DefaultRuntime
		}
		r := &b.Resources
		if r.Memory == "" && !m.has(p+".resources.memory") {
			r.Memory = DefaultMemory
		}
		if r.CPUs == 0 && !m.has(p+".resources.cpus") {
			r.CPUs = DefaultCPUs
		}
		if r.PIDs == 0 && !m.has(p+".resources.pids") {
			r.PIDs = DefaultPIDs
		}
		// DNS names are case-insensitive; one spelling keeps matching simple.
		for i := range b.Egress.Allow {
			b.Egress.Allow[i].Host = strings.ToLower(b.Egress.Allow[i].Host)
		}
		for i := range b.CredProxy.Routes {
			rt := &b.CredProxy.Routes[i]
			for j := range rt.Credentials {
				m.credentialDefaults(&rt.Credentials[j], fmt.Sprintf("%s.cred_proxy.routes[%d].credentials[%d]", p, i, j))
			}
		}
		for i := range b.Git.Repos {
			if t := b.Git.Repos[i].Token; t != nil {
				m.credentialDefaults(t, fmt.Sprintf("%s.git.repos[%d].token", p, i))
			}
		}
	}
}

func (m *Manifest) credentialDefaults(c *Credential, p string) {
	if c.Header == "" && !m.has(p+".header") {
		c.Header = DefaultHeader
	}
	if c.Format == "" && !m.has(p+".format") {
		c.Format = DefaultFormat
	}
}

// resolvePaths makes every file path absolute: relative to dir (the
// manifest's directory, so a manifest means the same from any working
// directory), and "~/" relative to the home directory.
func (m *Manifest) resolvePaths(dir string) {
	abs := func(p *string) {
		if *p == "" {
			return
		}
		if rest, ok := strings.CutPrefix(*p, "~/"); ok {
			if home, err := os.UserHomeDir(); err == nil {
				*p = filepath.Join(home, rest)
				return
			}
		}
		if !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
		*p = filepath.Clean(*p)
	}
	abs(&m.Images.CACerts)
	for _, a := range m.Agents {
		for i := range a.Skills {
			abs(&a.Skills[i])
		}
	}
	for _, b := range m.Bottles {
		for i := range b.CredProxy.Routes {
			for j := range b.CredProxy.Routes[i].Credentials {
				abs(&b.CredProxy.Routes[i].Credentials[j].File)
			}
		}
		for i := range b.Git.Repos {
			r := &b.Git.Repos[i]
			abs(&r.Key)
			if r.Token != nil {
				abs(&r.Token.File)
			}
		}
	}
}
