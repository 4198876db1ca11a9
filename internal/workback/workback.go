// Package workback brings an agent's work back into the user's git
// repository. The agent's repository is never read on the host: a script
// run in a sandbox over the agent's workspace (Script) turns its commits
// and uncommitted changes into a git bundle, and the host fetches that
// bundle with its own git and its own configuration into a new branch.
// Nothing the agent wrote into its repository's config, hooks or
// attributes reaches the host's git.
package workback

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// Script is the harvest script (see harvest.sh): run as `sh -c Script`
// with /workspace mounted and BASE set to the commit at launch, it writes
// a bundle of refs/claude-bottle/harvest to standard output.
//
//go:embed harvest.sh
var Script string

// Exit codes of Script besides 0.
const (
	ExitNotARepo = 3
	ExitNothing  = 5
)

// HarvestRef is the one ref a harvest bundle holds.
const HarvestRef = "refs/claude-bottle/harvest"

// Result says what Import did.
type Result struct {
	// Branch is the branch created (the one asked for, or with a suffix
	// when that name was taken).
	Branch string
	// Commits counts the commits on Branch that are not in Base.
	Commits int
}

// Import fetches the bundle's harvest ref into repo as a new branch named
// want (want-2, want-3, ... when taken). The user's branches, index and
// working tree are not touched; objects are checked (fsck) as they come
// in. base, when not "", is the commit the agent started from.
func Import(ctx context.Context, repo, bundle, want, base string) (Result, error) {
	branch, err := FreeBranch(ctx, repo, want)
	if err != nil {
		return Result{}, err
	}
	if _, err := git(ctx, repo,
		"-c", "fetch.fsckObjects=true", "-c", "transfer.fsckObjects=true",
		"fetch", "--quiet", "--no-tags", "--no-recurse-submodules", "--no-write-fetch-head",
		bundle, HarvestRef+":refs/heads/"+branch); err != nil {
		return Result{}, fmt.Errorf("bring the agent's work into %s: %w", repo, err)
	}
	r := Result{Branch: branch}
	rng := "refs/heads/" + branch
	if base != "" {
		rng = base + ".." + rng
	}
	if out, err := git(ctx, repo, "rev-list", "--count", rng); err == nil {
		r.Commits, _ = strconv.Atoi(strings.TrimSpace(out))
	}
	return r, nil
}

// FreeBranch returns want, or want-2, want-3, ... : the first name no
// branch of repo has.
func FreeBranch(ctx context.Context, repo, want string) (string, error) {
	if err := checkRefFormat(ctx, repo, "refs/heads/"+want); err != nil {
		return "", err
	}
	for n := 1; n <= 100; n++ {
		name := want
		if n > 1 {
			name = fmt.Sprintf("%s-%d", want, n)
		}
		if _, err := git(ctx, repo, "rev-parse", "--verify", "--quiet", "refs/heads/"+name); err != nil {
			return name, nil
		}
	}
	return "", fmt.Errorf("branches %s to %s-100 all exist in %s; delete some", want, want, repo)
}

// Head returns the commit checked out in repo, "" when it has none yet.
func Head(ctx context.Context, repo string) (string, error) {
	out, err := git(ctx, repo, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", nil // unborn HEAD
		}
		return "", err
	}
	return strings.TrimSpace(out), nil
}

// TopLevel returns the top of the git working tree dir is in, or "" when
// it is in none.
func TopLevel(ctx context.Context, dir string) string {
	out, err := git(ctx, dir, "rev-parse", "--show-toplevel")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

func checkRefFormat(ctx context.Context, repo, ref string) error {
	if _, err := git(ctx, repo, "check-ref-format", ref); err != nil {
		return fmt.Errorf("%q is not a usable branch name", strings.TrimPrefix(ref, "refs/heads/"))
	}
	return nil
}

// git runs the host's git in repo with the user's own configuration, minus
// any repository override inherited from the environment.
func git(ctx context.Context, repo string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", repo}, args...)...)
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE":
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, "GIT_TERMINAL_PROMPT=0")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(errb.String()); msg != "" {
			return out.String(), fmt.Errorf("git %s: %w: %s", args[0], err, msg)
		}
		return out.String(), fmt.Errorf("git %s: %w", args[0], err)
	}
	return out.String(), nil
}
