package workback

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

var ident = []string{"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t", "GIT_CONFIG_NOSYSTEM=1", "HOME=/nonexistent"}

// userRepo is the user's repository with one commit on main and an
// uncommitted change of their own.
func userRepo(t *testing.T) (string, string) {
	dir := t.TempDir()
	run(t, dir, ident, "git", "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("one\n"), 0o644)
	run(t, dir, ident, "git", "add", "a.txt")
	run(t, dir, ident, "git", "commit", "-q", "-m", "first")
	head := strings.TrimSpace(run(t, dir, ident, "git", "rev-parse", "HEAD"))
	os.WriteFile(filepath.Join(dir, "mine.txt"), []byte("the user's own work\n"), 0o644)
	return dir, head
}

// harvest runs the script over ws as the sandbox would, returning the
// bundle path and the exit code.
func harvest(t *testing.T, ws, base string) (string, int, string) {
	t.Helper()
	bundle := filepath.Join(t.TempDir(), "out.bundle")
	f, err := os.Create(bundle)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var errb bytes.Buffer
	cmd := exec.Command("sh", "-c", Script)
	cmd.Env = append(os.Environ(), "WORKSPACE="+ws, "BASE="+base)
	cmd.Stdout, cmd.Stderr = f, &errb
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return bundle, code, errb.String()
}

// The agent's commit and its uncommitted edits come back as one branch;
// the user's branch, index and working tree stay as they were; and what
// the agent planted in its repository (config, hooks, filters) never runs
// on the host, not even when the user checks the branch out.
func TestImportBringsCommitsAndChangesAndNothingElse(t *testing.T) {
	ctx := context.Background()
	user, base := userRepo(t)
	marker := filepath.Join(t.TempDir(), "pwned")
	ws := filepath.Join(t.TempDir(), "workspace")
	run(t, "/", ident, "git", "clone", "-q", user, ws)
	// The agent's work: one commit, then an edit and a new file left
	// uncommitted; and its tricks.
	os.WriteFile(filepath.Join(ws, "a.txt"), []byte("one\ntwo\n"), 0o644)
	os.WriteFile(filepath.Join(ws, ".gitattributes"), []byte("*.txt filter=evil\n"), 0o644)
	run(t, ws, ident, "git", "-c", "core.hooksPath=/dev/null", "commit", "-q", "-am", "agent commit")
	run(t, ws, ident, "git", "add", ".gitattributes")
	run(t, ws, ident, "git", "-c", "core.hooksPath=/dev/null", "commit", "-q", "-m", "attributes")
	os.WriteFile(filepath.Join(ws, "b.txt"), []byte("uncommitted\n"), 0o644)
	os.WriteFile(filepath.Join(ws, "a.txt"), []byte("one\ntwo\nthree\n"), 0o644)
	touch := "touch " + marker
	for k, v := range map[string]string{
		"core.fsmonitor":     touch,
		"core.hooksPath":     ".git/evil-hooks",
		"filter.evil.smudge": touch + "; cat",
		"filter.evil.clean":  "cat",
		"core.pager":         touch,
	} {
		run(t, ws, ident, "git", "config", k, v)
	}
	os.MkdirAll(filepath.Join(ws, ".git", "evil-hooks"), 0o755)
	for _, h := range []string{"post-checkout", "reference-transaction", "post-merge"} {
		os.WriteFile(filepath.Join(ws, ".git", "evil-hooks", h), []byte("#!/bin/sh\n"+touch+"\n"), 0o755)
		os.WriteFile(filepath.Join(ws, ".git", "hooks", h), []byte("#!/bin/sh\n"+touch+"\n"), 0o755)
	}

	bundle, code, stderr := harvest(t, ws, base)
	if code != 0 {
		t.Fatalf("harvest exit %d: %s", code, stderr)
	}
	// The harvest ran the agent's repository config only because this test
	// runs it on the host; in the product it runs in the sandbox. What
	// matters below is the host's side.
	os.Remove(marker)

	r, err := Import(ctx, user, bundle, "claude-bottle/box", base)
	if err != nil {
		t.Fatal(err)
	}
	if r.Branch != "claude-bottle/box" || r.Commits != 3 {
		t.Errorf("result %+v, want branch claude-bottle/box with 3 commits (2 + uncommitted)", r)
	}
	if got := strings.TrimSpace(run(t, user, ident, "git", "rev-parse", "main")); got != base {
		t.Errorf("main moved to %s", got)
	}
	if got := run(t, user, ident, "git", "status", "--porcelain"); got != "?? mine.txt\n" {
		t.Errorf("user's working tree changed: %q", got)
	}
	if b, _ := os.ReadFile(filepath.Join(user, "a.txt")); string(b) != "one\n" {
		t.Errorf("a.txt in the user's tree: %q", b)
	}
	show := run(t, user, ident, "git", "show", "claude-bottle/box:a.txt")
	if show != "one\ntwo\nthree\n" {
		t.Errorf("a.txt on the branch: %q", show)
	}
	if got := run(t, user, ident, "git", "show", "claude-bottle/box:b.txt"); got != "uncommitted\n" {
		t.Errorf("b.txt on the branch: %q", got)
	}
	if got := run(t, user, ident, "git", "log", "-1", "--format=%s", "claude-bottle/box"); !strings.Contains(got, "uncommitted changes") {
		t.Errorf("last commit %q", got)
	}
	// The user checks the branch out and looks at it: nothing of the
	// agent's runs.
	run(t, user, ident, "git", "stash", "-u", "-q")
	run(t, user, ident, "git", "checkout", "-q", "claude-bottle/box")
	run(t, user, ident, "git", "status")
	run(t, user, ident, "git", "log", "-p", "-1")
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("something the agent planted ran on the host")
	}
	for _, p := range []string{"evil-hooks", "hooks/post-checkout"} {
		if _, err := os.Stat(filepath.Join(user, ".git", p)); err == nil {
			t.Errorf(".git/%s came over to the user's repository", p)
		}
	}
	if cfg := run(t, user, ident, "git", "config", "--local", "--list"); strings.Contains(cfg, "evil") || strings.Contains(cfg, "fsmonitor") {
		t.Errorf("the agent's config came over:\n%s", cfg)
	}

	// A second harvest of the same work gets a free name, not the taken one.
	bundle2, _, _ := harvest(t, ws, base)
	r2, err := Import(ctx, user, bundle2, "claude-bottle/box", base)
	if err != nil || r2.Branch != "claude-bottle/box-2" {
		t.Errorf("second import: %+v %v", r2, err)
	}
}

func TestHarvestNothingNewAndNotARepo(t *testing.T) {
	user, base := userRepo(t)
	ws := filepath.Join(t.TempDir(), "workspace")
	run(t, "/", ident, "git", "clone", "-q", user, ws)
	if _, code, stderr := harvest(t, ws, base); code != ExitNothing {
		t.Errorf("untouched clone: exit %d (%s), want %d", code, stderr, ExitNothing)
	}
	// Ignored files are not work to bring back.
	os.WriteFile(filepath.Join(ws, ".git", "info", "exclude"), []byte("build/\n"), 0o644)
	os.MkdirAll(filepath.Join(ws, "build"), 0o755)
	os.WriteFile(filepath.Join(ws, "build", "x.o"), []byte("obj"), 0o644)
	if _, code, _ := harvest(t, ws, base); code != ExitNothing {
		t.Errorf("only ignored files: exit %d, want %d", code, ExitNothing)
	}
	plain := t.TempDir()
	os.WriteFile(filepath.Join(plain, "x"), []byte("x"), 0o644)
	if _, code, _ := harvest(t, plain, ""); code != ExitNotARepo {
		t.Errorf("plain directory: exit %d, want %d", code, ExitNotARepo)
	}
	sub := filepath.Join(ws, "sub")
	os.MkdirAll(sub, 0o755)
	if _, code, _ := harvest(t, sub, base); code != ExitNotARepo {
		t.Errorf("a subdirectory of a repository: exit %d, want %d", code, ExitNotARepo)
	}
}

// A repository without commits: the agent's first commit comes back whole.
func TestImportIntoEmptyRepository(t *testing.T) {
	user := t.TempDir()
	run(t, user, ident, "git", "init", "-q", "-b", "main")
	ws := filepath.Join(t.TempDir(), "workspace")
	run(t, "/", ident, "git", "init", "-q", "-b", "main", ws)
	os.WriteFile(filepath.Join(ws, "new.txt"), []byte("new\n"), 0o644)
	bundle, code, stderr := harvest(t, ws, "")
	if code != 0 {
		t.Fatalf("harvest exit %d: %s", code, stderr)
	}
	r, err := Import(context.Background(), user, bundle, "claude-bottle/x", "")
	if err != nil || r.Commits != 1 {
		t.Fatalf("import: %+v %v", r, err)
	}
	if got := run(t, user, ident, "git", "show", "claude-bottle/x:new.txt"); got != "new\n" {
		t.Errorf("new.txt %q", got)
	}
}

func TestBadBranchName(t *testing.T) {
	user, base := userRepo(t)
	if _, err := Import(context.Background(), user, "/nonexistent", "bad..name", base); err == nil || !strings.Contains(err.Error(), "not a usable branch name") {
		t.Errorf("err %v", err)
	}
}
