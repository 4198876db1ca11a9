package launch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/manifest"
	"github.com/claude-bottle/claude-bottle/internal/oneline"
)

// errNoValue says a credential source is not set on this host.
var errNoValue = errors.New("not set")

// ResolveCredential reads a token from its host source: an environment
// variable, a file, or a command's standard output. The value is never
// logged or printed.
func ResolveCredential(ctx context.Context, c manifest.Credential, getenv func(string) string) (string, error) {
	var v string
	switch {
	case c.Env != "":
		v = getenv(c.Env)
	case c.File != "":
		b, err := os.ReadFile(c.File)
		if errors.Is(err, os.ErrNotExist) {
			return "", errNoValue
		}
		if err != nil {
			return "", fmt.Errorf("read token file %s: %w", c.File, err)
		}
		v = string(b)
	case len(c.Command) > 0:
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, c.Command[0], c.Command[1:]...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			// stderr may say why (not logged in, say); it does not hold the token.
			return "", fmt.Errorf("token command `%s` failed: %v: %s", strings.Join(c.Command, " "), err, oneline.First(errb.String()))
		}
		v = out.String()
	default:
		return "", errors.New("credential names no source")
	}
	v = strings.TrimRight(v, "\r\n")
	if v == "" {
		return "", errNoValue
	}
	if strings.ContainsAny(v, "\r\n\x00") {
		return "", fmt.Errorf("token from %s holds a line break or NUL", c.Describe())
	}
	return v, nil
}

// CredentialSet says whether a credential's source is there, without
// reading a secret: the variable is set, the file exists; a command is
// assumed to give one.
func CredentialSet(c manifest.Credential, getenv func(string) string) bool {
	switch {
	case c.Env != "":
		return getenv(c.Env) != ""
	case c.File != "":
		_, err := os.Stat(c.File)
		return err == nil
	default:
		return len(c.Command) > 0
	}
}

// resolveFirst returns the first credential that yields a value.
func resolveFirst(ctx context.Context, what string, creds []manifest.Credential, getenv func(string) string) (string, manifest.Credential, error) {
	for _, c := range creds {
		v, err := ResolveCredential(ctx, c, getenv)
		if err == nil {
			return v, c, nil
		}
		if !errors.Is(err, errNoValue) {
			return "", c, fmt.Errorf("%s: %w", what, err)
		}
	}
	return "", manifest.Credential{}, NoToken(what, creds)
}

// NoToken is the error for what, none of whose credentials is set on the
// host: it names every source to set.
func NoToken(what string, creds []manifest.Credential) error {
	tried := make([]string, len(creds))
	for i, c := range creds {
		tried[i] = c.Describe()
	}
	return fmt.Errorf("%s has no token: set %s on the host", what, strings.Join(tried, " or "))
}
