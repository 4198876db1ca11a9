package gitgate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// upstreamEnv is the environment a git command needs, on top of its base
// environment, to talk to r's upstream: the ssh command for ssh upstreams,
// the token header for https ones, and a transport allowlist so a URL can
// never select ext:: or another helper. The token travels in
// GIT_CONFIG_VALUE_n, never on a command line or in a log.
func upstreamEnv(cfgDir string, r Repo, sshCommand string, allowFile bool) ([]string, error) {
	kind, err := upstreamKind(r.Upstream, allowFile)
	if err != nil {
		return nil, err
	}
	cfg := [][2]string{
		{"protocol.allow", "never"},
		{"protocol." + kind + ".allow", "always"},
		{"credential.helper", ""},
	}
	env := []string{"GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=true", "SSH_ASKPASS=true"}
	switch kind {
	case "ssh":
		env = append(env, "GIT_SSH_COMMAND="+sshCommand, "GIT_SSH_VARIANT=ssh")
	case "https", "http":
		if r.TokenFile != "" {
			b, err := os.ReadFile(filepath.Join(cfgDir, r.TokenFile))
			if err != nil {
				return nil, fmt.Errorf("read token for repo %s: %w", r.Name, err)
			}
			tok := strings.TrimSpace(string(b))
			if tok == "" || strings.ContainsAny(tok, "\r\n") {
				return nil, fmt.Errorf("token file for repo %s is empty or has several lines", r.Name)
			}
			header, format := r.Header, r.Format
			if header == "" {
				header = "Authorization"
			}
			if format == "" {
				format = "Bearer {token}"
			}
			// Scoped to the upstream URL so a redirect elsewhere never carries it.
			cfg = append(cfg, [2]string{"http." + r.Upstream + ".extraHeader",
				header + ": " + strings.ReplaceAll(format, "{token}", tok)})
		}
	}
	env = append(env, "GIT_CONFIG_COUNT="+strconv.Itoa(len(cfg)))
	for i, kv := range cfg {
		env = append(env, fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", i, kv[0]), fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", i, kv[1]))
	}
	return env, nil
}

// sshCommandFor builds the GIT_SSH_COMMAND for one repo. A template (tests)
// may use {key} and {known_hosts}, replaced by shell-quoted paths.
func sshCommandFor(template, self, key, knownHosts string, pinned bool) string {
	if template != "" {
		return strings.NewReplacer("{key}", shellQuote(key), "{known_hosts}", shellQuote(knownHosts)).Replace(template)
	}
	strict := "accept-new"
	if pinned {
		strict = "yes"
	}
	args := []string{"ssh", "-F", "/dev/null", "-o", "BatchMode=yes"}
	if key != "" {
		args = append(args, "-i", shellQuote(key), "-o", "IdentitiesOnly=yes")
	}
	args = append(args,
		"-o", shellQuote("UserKnownHostsFile="+knownHosts),
		"-o", "StrictHostKeyChecking="+strict,
		"-o", shellQuote("ProxyCommand="+shellQuote(self)+" sidecar connect %h %p"))
	return strings.Join(args, " ")
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// gitEnvDrop removes variables from a base environment that would make a
// git subprocess act on another repository or config than the one meant,
// and the client's request headers (CGI HTTP_*, GIT_PROTOCOL), which the
// hook inherits and which must not reach the upstream connection.
func gitEnvDrop(base []string, extraDrop ...string) []string {
	out := make([]string, 0, len(base))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		drop := k == "GIT_DIR" || k == "GIT_CONFIG_COUNT" || k == "GIT_CONFIG_PARAMETERS" || k == "GIT_SSH_COMMAND" ||
			k == "GIT_SSH" || k == "GIT_PROTOCOL" || strings.HasPrefix(k, "GIT_CONFIG_KEY_") || strings.HasPrefix(k, "GIT_CONFIG_VALUE_") ||
			(strings.HasPrefix(k, "HTTP_") && k != "HTTP_PROXY")
		for _, d := range extraDrop {
			drop = drop || k == d
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}

// runGit runs git and returns stdout; the error carries git's stderr.
func runGit(ctx context.Context, gitPath, dir string, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, gitPath, args...)
	cmd.Dir = dir
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			msg = "timed out; " + msg
		}
		if msg == "" {
			msg = err.Error()
		}
		return stdout.Bytes(), &gitError{args: args[0], msg: msg, err: err}
	}
	return stdout.Bytes(), nil
}

type gitError struct {
	args string
	msg  string
	err  error
}

func (e *gitError) Error() string { return "git " + e.args + ": " + e.msg }
func (e *gitError) Unwrap() error { return e.err }

// exitCode is the exit status of a failed git command, or -1.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}
