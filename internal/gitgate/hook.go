package gitgate

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/audit"
)

// HookMain is the pre-receive hook of every mirror (CLI: the hidden verb
// `claude-bottle sidecar git-gate-hook`). git runs it after receiving a
// push into quarantine and before storing anything; it checks each update
// against the repo's policy and, if all pass, pushes them upstream. Only
// when upstream accepts does it return 0, letting the mirror store them.
// Its stderr reaches the client as "remote: …". It finds its repo, config
// and log through the CLAUDE_BOTTLE_GITGATE_* variables in env, which the
// gate sets on git http-backend; env without them refuses (fail closed).
func HookMain(ctx context.Context, stdin io.Reader, stderr io.Writer, env []string) int {
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "git-gate: "+format+"\n", args...)
		return 1
	}
	cfgDir, name := vars[EnvConfig], vars[EnvRepo]
	if cfgDir == "" || name == "" {
		return fail("hook run outside the gate (%s/%s unset); push refused", EnvConfig, EnvRepo)
	}
	var alog *audit.Log
	if dir := vars[EnvLogDir]; dir != "" {
		l, f, err := audit.Open(dir, vars[EnvInstance], "git-gate")
		if err != nil {
			return fail("cannot open the audit log; push refused")
		}
		defer f.Close()
		alog = l
	}
	allowFile := vars[EnvAllowFile] == "1"
	cfg, err := LoadConfig(cfgDir, allowFile)
	if err != nil {
		return fail("cannot load the push policy (%v); push refused", err)
	}
	alog.SetSecrets(heldSecrets(cfgDir, cfg))
	var repo *Repo
	for i := range cfg.Repos {
		if cfg.Repos[i].Name == name {
			repo = &cfg.Repos[i]
		}
	}
	if repo == nil {
		return fail("repository %q is no longer configured; push refused", name)
	}
	updates, err := parseHookInput(stdin)
	if err != nil {
		return fail("malformed hook input (%v); push refused", err)
	}
	gitPath := vars[EnvGit]
	if gitPath == "" {
		gitPath = "git"
	}
	timeout := durationEnv(vars[EnvTimeout], 2*time.Minute)
	// env carries git's quarantine (GIT_OBJECT_DIRECTORY and alternates), so
	// the pushed objects are visible to merge-base and to push.
	base := gitEnvDrop(env)
	isAncestor := func(old, new string) (bool, error) {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		_, err := runGit(cctx, gitPath, "", base, "merge-base", "--is-ancestor", old, new)
		if err == nil {
			return true, nil
		}
		if exitCode(err) == 1 {
			return false, nil
		}
		return false, err
	}
	decisions := decide(repo.Push, updates, isAncestor)
	refused := false
	for _, d := range decisions {
		refused = refused || d.reason != ""
	}
	pushEvent := func(d decision, verdict, reason string) {
		alog.Write(audit.Event{Kind: "push", Repo: name, Ref: d.update.Ref, Old: d.update.Old, New: d.update.New,
			Verdict: verdict, Reason: reason})
	}
	if refused {
		for _, d := range decisions {
			if d.reason != "" {
				pushEvent(d, "deny", d.reason)
				fmt.Fprintf(stderr, "git-gate: refused %s: %s\n", d.update.Ref, d.reason)
			} else {
				pushEvent(d, "deny", "not forwarded: another update in the same push was refused")
			}
		}
		fmt.Fprintf(stderr, "git-gate: nothing was pushed upstream; %s\n", askHint)
		return 1
	}
	if len(decisions) == 0 {
		return 0
	}

	args := []string{"push", "--quiet", "--no-verify"}
	if len(decisions) > 1 {
		// The hook accepts or refuses the push as a whole; so must upstream.
		args = append(args, "--atomic")
	}
	var specs []string
	for _, d := range decisions {
		u := d.update
		switch {
		case isZeroOID(u.New):
			specs = append(specs, ":"+u.Ref)
		case d.force:
			// Overwrite only what the client saw, never commits that reached
			// upstream since the mirror last fetched.
			args = append(args, "--force-with-lease="+u.Ref+":"+u.Old)
			specs = append(specs, u.New+":"+u.Ref)
		default:
			specs = append(specs, u.New+":"+u.Ref)
		}
	}
	args = append(append(args, "upstream"), specs...)
	up, err := upstreamEnv(cfgDir, *repo, vars[EnvSSH], allowFile)
	if err != nil {
		for _, d := range decisions {
			pushEvent(d, "error", err.Error())
		}
		return fail("cannot reach upstream: %v", err)
	}
	// GIT_QUARANTINE_PATH would forbid ref updates in a local upstream's
	// receive-pack (tests); the objects stay visible through the rest.
	pushEnv := append(gitEnvDrop(env, "GIT_QUARANTINE_PATH"), up...)
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := runGit(cctx, gitPath, "", pushEnv, args...); err != nil {
		msg := err.Error()
		for _, d := range decisions {
			pushEvent(d, "error", "push to upstream failed: "+truncate(msg, 500))
		}
		// Refused or unreachable: either way nothing was stored.
		fmt.Fprintf(stderr, "git-gate: the push to upstream %s failed; nothing was stored:\n", repo.Upstream)
		for _, line := range strings.Split(msg, "\n") {
			fmt.Fprintf(stderr, "git-gate:   %s\n", strings.TrimRight(line, "\r"))
		}
		return 1
	}
	for _, d := range decisions {
		pushEvent(d, "allow", "")
	}
	fmt.Fprintf(stderr, "git-gate: forwarded %d ref update(s) to %s\n", len(decisions), repo.Upstream)
	return 0
}
