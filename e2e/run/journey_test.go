package run

// The user's journey, as a person meets it: `claude-bottle run` in a real
// terminal goes straight to Claude Code's prompt in bypass mode, a typed
// prompt makes the (scripted) model run a tool, the next bottle of the same
// agent continues the conversation, the agent's git work comes back into the
// user's repository, and every way a run can end removes the bottle.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/claude-bottle/claude-bottle/e2e/e2etest"
	"github.com/claude-bottle/claude-bottle/internal/docker"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

// journeyManifest routes Claude Code to a scripted model on a network the
// test made. The route's first credential is an OAuth token, the second an
// API key: which one the host has decides what Claude Code holds.
const journeyManifest = `
agents:
  claude:
    bottle: box
  other:
    bottle: box
bottles:
  box:
    supervise: true
    egress:
      networks: [%s]
    cred_proxy:
      routes:
        - name: model
          path: /anthropic/
          upstream: http://model.test:8080
          role: anthropic-base-url
          credentials:
            - env: E2E_OAUTH_TOKEN
              header: Authorization
              format: "Bearer {token}"
            - env: E2E_API_KEY
              header: x-api-key
              format: "{token}"
`

const (
	journeyKey   = "sk-e2e-journey-key-0123456789abcdef"
	journeyOAuth = "sk-ant-oat-e2e-journey-oauth-0123456789"
)

// modelRecord is one request as the scripted model logged it.
type modelRecord struct {
	Path        string   `json:"path"`
	OK          bool     `json:"ok"`
	Placeholder bool     `json:"placeholder"`
	ToolResults []string `json:"tool_results"`
	Prompts     []string `json:"prompts"`
	Answer      string   `json:"answer"`
}

// model starts the scripted Messages API as model.test on a new network;
// it expects the credential cred-proxy injects (header, value) and plays
// script. It returns the network and a function reading its request log.
func model(t *testing.T, c *docker.Client, header, value string, script []map[string]any) (string, func() []modelRecord) {
	t.Helper()
	net := e2etest.Network(t, c)
	js, err := json.Marshal(script)
	if err != nil {
		t.Fatal(err)
	}
	id := e2etest.Start(t, c, docker.ContainerSpec{
		Image: e2etest.GoImage(t, c, "fakeanthropic"), Network: net, Aliases: []string{"model.test"},
		Env: []string{"EXPECT_HEADER=" + header, "EXPECT_VALUE=" + value, "FAKE_SCRIPT=" + string(js), "ANSWER_TEXT=JOURNEY-ANSWER"},
	})
	return net, func() []modelRecord {
		logs, err := c.Logs(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		var out []modelRecord
		sc := bufio.NewScanner(bytes.NewReader(logs))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var r modelRecord
			if json.Unmarshal(sc.Bytes(), &r) == nil && strings.HasPrefix(r.Path, "/v1/messages") {
				out = append(out, r)
			}
		}
		return out
	}
}

func journeyEnv(t *testing.T, net string) (*e2etest.Env, string) {
	e2etest.Images(t)
	e := e2etest.NewEnv(t, fmt.Sprintf(journeyManifest, net))
	inst := e2etest.Unique("cbt-journey")
	e.Vars["CLAUDE_BOTTLE_CONTAINER"] = inst
	return e, inst
}

// assertNoToken fails if any file under dir holds token.
func assertNoToken(t *testing.T, dir, token string) {
	t.Helper()
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(token)) {
			t.Errorf("%s holds the real token", path)
		}
		return nil
	})
}

// The first interactive run, for both kinds of credential: no onboarding,
// trust, API-key or bypass question; the prompt shows bypass mode on; a
// typed prompt makes the model's Bash tool run in the bottle and its output
// reach the model; /exit ends run with Claude's exit code and removes
// everything. The agent's Claude state is owner-only and holds no token.
func TestInteractiveFirstRun(t *testing.T) {
	c := e2etest.Engine(t)
	for _, kind := range []struct {
		name, envVar, token, header, value string
	}{
		{"api-key", "E2E_API_KEY", journeyKey, "x-api-key", journeyKey},
		{"oauth", "E2E_OAUTH_TOKEN", journeyOAuth, "authorization", "Bearer " + journeyOAuth},
	} {
		t.Run(kind.name, func(t *testing.T) {
			net, requests := model(t, c, kind.header, kind.value, []map[string]any{
				{"tool": "Bash", "input": map[string]any{"command": "echo JOURNEY-$((6*7)) | tee /workspace/journey.txt"}},
				{"text": "JOURNEY-DONE"},
			})
			e, inst := journeyEnv(t, net)
			e.Vars[kind.envVar] = kind.token
			term := e2etest.StartTerminal(t, e.Dir, e.TermEnv(), e.Bin, "run")
			screen := term.WaitFor("bypass permissions on", 3*time.Minute)
			for _, q := range []string{"Do you want to use this API key", "WARNING", "trust", "Unable to connect", "Select login method", "theme"} {
				if strings.Contains(screen, q) {
					t.Errorf("the first screen asks or fails (%q):\n%s", q, screen)
				}
			}
			term.Type("write the journey file")
			term.WaitFor("JOURNEY-DONE", 2*time.Minute)
			var ran bool
			for _, r := range requests() {
				if !r.OK || r.Placeholder {
					t.Errorf("the model got a request without the injected %s (ok %v, placeholder %v)", kind.name, r.OK, r.Placeholder)
				}
				for _, tr := range r.ToolResults {
					if strings.Contains(tr, "JOURNEY-42") {
						ran = true
					}
				}
			}
			if !ran {
				t.Errorf("the Bash tool's output never reached the model: %+v", requests())
			}
			// Ctrl-C while attached is Claude's (it clears or warns), not
			// run's: the bottle stays.
			term.Keys("C-c")
			time.Sleep(2 * time.Second)
			if _, err := os.Stat(term.ExitFile); err == nil {
				t.Fatalf("Ctrl-C ended run instead of reaching Claude:\n%s", term.Screen())
			}
			term.WaitFor("bypass permissions on", 10*time.Second)
			term.Type("/exit")
			if code := term.ExitCode(time.Minute); code != 0 {
				t.Errorf("run exited %d after /exit, want Claude's 0", code)
			}
			screen = term.Screen()
			if !strings.Contains(screen, "saved in") {
				t.Errorf("run did not say where /workspace went:\n%s", screen)
			}
			e2etest.AssertGone(t, c, e.State, inst)
			dir := stage.ClaudeDir(e.State, "claude")
			if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("Claude state %s: %v %v, want mode 0700", dir, fi, err)
			}
			assertNoToken(t, e.State, kind.token)
		})
	}
}

// A second bottle of the same agent continues the first one's conversation
// (claude --continue reaches the model with the earlier messages); another
// agent's bottle does not see it.
func TestContinueFindsEarlierSession(t *testing.T) {
	c := e2etest.Engine(t)
	net, requests := model(t, c, "x-api-key", journeyKey, nil)
	e, inst := journeyEnv(t, net)
	e.Vars["E2E_API_KEY"] = journeyKey
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	const first = "FIRST-MARKER-7731 remember this"
	if r := e.Run(ctx, "run", "claude", "--", "claude", "-p", first); r.Code != 0 || !strings.Contains(r.Stdout, "JOURNEY-ANSWER") {
		t.Fatalf("first run: %s", r)
	}
	e2etest.AssertGone(t, c, e.State, inst)
	if r := e.Run(ctx, "run", "claude", "--", "claude", "-p", "--continue", "SECOND-QUESTION"); r.Code != 0 {
		t.Fatalf("second run: %s", r)
	}
	e.Vars["CLAUDE_BOTTLE_CONTAINER"] = inst + "-other"
	if r := e.Run(ctx, "run", "other", "--", "claude", "-p", "--continue", "OTHER-AGENT"); r.Code != 0 {
		t.Fatalf("other agent's run: %s", r)
	}
	var continued, leaked bool
	for _, r := range requests() {
		all := strings.Join(r.Prompts, "\n")
		if strings.Contains(all, "SECOND-QUESTION") && strings.Contains(all, "FIRST-MARKER-7731") {
			continued = true
		}
		if strings.Contains(all, "OTHER-AGENT") && strings.Contains(all, "FIRST-MARKER-7731") {
			leaked = true
		}
	}
	if !continued {
		t.Errorf("--continue in the second bottle did not carry the first conversation: %+v", requests())
	}
	if leaked {
		t.Error("another agent's bottle continued this agent's conversation")
	}
	assertNoToken(t, e.State, journeyKey)
}

// gitRepo makes the user's repository: two commits on main and an
// untracked file of the user's own.
func gitRepo(t *testing.T, dir string) string {
	t.Helper()
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=u", "GIT_AUTHOR_EMAIL=u@u", "GIT_COMMITTER_NAME=u", "GIT_COMMITTER_EMAIL=u@u")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("one\n"), 0o644)
	os.WriteFile(filepath.Join(dir, ".gitignore"), []byte("claude-bottle.yaml\n"), 0o644)
	git("add", "a.txt", ".gitignore")
	git("commit", "-q", "-m", "first")
	os.WriteFile(filepath.Join(dir, "mine.txt"), []byte("the user's own\n"), 0o644)
	return git("rev-parse", "HEAD")
}

func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// In a git repository with --cwd, the scripted Claude Code commits once,
// edits another file without committing, and plants tricks in its
// repository (core.fsmonitor, core.hooksPath, a post-checkout hook, a
// smudge filter) that would run a command on the host. After exit the
// host repository has a branch with both changes; main, the working tree
// and the repository's config are as they were; and nothing planted ran,
// not even when the user checks the branch out.
func TestWorkComesBackIntoTheRepository(t *testing.T) {
	c := e2etest.Engine(t)
	marker := filepath.Join(t.TempDir(), "planted-ran")
	touch := "touch " + marker
	work := strings.Join([]string{
		"cd /workspace",
		"echo agent-line >> a.txt",
		"git commit -qam 'agent commit'",
		"echo uncommitted > b.txt",
		"echo edited >> a.txt",
		"git config core.fsmonitor '" + touch + "'",
		"mkdir -p .git/evil && printf '#!/bin/sh\\n" + touch + "\\n' > .git/evil/post-checkout && chmod +x .git/evil/post-checkout",
		"cp .git/evil/post-checkout .git/hooks/post-checkout",
		"git config core.hooksPath .git/evil",
		"git config filter.evil.smudge '" + touch + "; cat'",
		"git config filter.evil.clean cat",
		"echo '*.txt filter=evil' > .gitattributes",
		"echo WORK-DONE",
	}, " && ")
	net, requests := model(t, c, "x-api-key", journeyKey, []map[string]any{
		{"tool": "Bash", "input": map[string]any{"command": work}},
		{"text": "all committed"},
	})
	e, inst := journeyEnv(t, net)
	e.Vars["E2E_API_KEY"] = journeyKey
	e.Vars["CLAUDE_BOTTLE_DERIVED_IMAGE"] = "claude-bottle:cwd-" + inst
	t.Cleanup(func() { c.RemoveImage(context.Background(), "claude-bottle:cwd-"+inst) })
	base := gitRepo(t, e.Dir)
	configBefore, _ := os.ReadFile(filepath.Join(e.Dir, ".git", "config"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r := e.Run(ctx, "run", "--cwd", "claude", "--", "claude", "-p", "do the work")
	if r.Code != 0 {
		t.Fatalf("run: %s", r)
	}
	var done bool
	for _, rec := range requests() {
		for _, tr := range rec.ToolResults {
			done = done || strings.Contains(tr, "WORK-DONE")
		}
	}
	if !done {
		t.Fatalf("the agent's work did not run: %+v\n%s", requests(), r)
	}
	branch := "claude-bottle/" + inst
	if !strings.Contains(r.Stderr, "branch "+branch) {
		t.Errorf("run did not say where the work went: %s", r.Stderr)
	}
	e2etest.AssertGone(t, c, e.State, inst)
	if got := strings.TrimSpace(gitOut(t, e.Dir, "rev-parse", "main")); got != base {
		t.Errorf("main moved: %s, was %s", got, base)
	}
	if got := gitOut(t, e.Dir, "status", "--porcelain"); got != "?? mine.txt\n" {
		t.Errorf("the user's working tree changed: %q", got)
	}
	if got := gitOut(t, e.Dir, "log", "--format=%s", "main.."+branch); got != "claude-bottle: uncommitted changes when the bottle ended\nagent commit\n" {
		t.Errorf("branch commits:\n%s", got)
	}
	if got := gitOut(t, e.Dir, "show", branch+":a.txt"); got != "one\nagent-line\nedited\n" {
		t.Errorf("a.txt on the branch: %q", got)
	}
	if got := gitOut(t, e.Dir, "show", branch+":b.txt"); got != "uncommitted\n" {
		t.Errorf("b.txt on the branch: %q", got)
	}
	if got := gitOut(t, e.Dir, "log", "-1", "--format=%an", "main.."+branch+"~1"); !strings.Contains(got, "claude-bottle") {
		t.Errorf("the agent's commit author %q", got)
	}
	if after, _ := os.ReadFile(filepath.Join(e.Dir, ".git", "config")); !bytes.Equal(after, configBefore) {
		t.Errorf("the repository's config changed:\n%s", after)
	}
	// The user looks at the branch the way people do.
	gitOut(t, e.Dir, "stash", "-u", "-q")
	gitOut(t, e.Dir, "checkout", "-q", branch)
	gitOut(t, e.Dir, "status")
	gitOut(t, e.Dir, "diff", "main")
	gitOut(t, e.Dir, "checkout", "-q", "main")
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a command the agent planted in its repository ran on the host")
	}
	if _, err := os.Stat(filepath.Join(e.Dir, ".git", "evil")); err == nil {
		t.Error("the agent's hooks directory came over")
	}
}

// Every way a run ends brings the work back (where the agent had made
// some) and leaves nothing of the instance within 10 s: the agent's own
// exit, SIGINT, SIGTERM and SIGHUP to run, and a closed terminal window.
func TestEveryEndingCleansUpAndBringsWorkBack(t *testing.T) {
	c := e2etest.Engine(t)
	e2etest.Images(t)
	agentScript := func(rest string) string {
		return "cd /workspace && echo agent >> a.txt && git commit -qam agent && echo loose > b.txt && echo WORK-READY && " + rest
	}
	for _, end := range []struct {
		name string
		sig  syscall.Signal
		code int
	}{
		{"exit", 0, 4},
		{"SIGINT", syscall.SIGINT, 130},
		{"SIGTERM", syscall.SIGTERM, 143},
		{"SIGHUP", syscall.SIGHUP, 129},
		{"closed-window", 0, -1},
	} {
		t.Run(end.name, func(t *testing.T) {
			e := e2etest.NewEnv(t, manifest)
			inst := e2etest.Unique("cbt-end")
			e.Vars["CLAUDE_BOTTLE_CONTAINER"] = inst
			e.Vars["E2E_API_KEY"] = fakeKey
			e.Vars["CLAUDE_BOTTLE_DERIVED_IMAGE"] = "claude-bottle:cwd-" + inst
			t.Cleanup(func() { c.RemoveImage(context.Background(), "claude-bottle:cwd-"+inst) })
			base := gitRepo(t, e.Dir)
			rest := "exec sleep 300"
			if end.name == "exit" {
				rest = "exit 4"
			}
			args := []string{"run", "--cwd", "claude", "--", "sh", "-c", agentScript(rest)}
			var ended time.Time
			var started time.Time
			switch {
			case end.name == "closed-window":
				term := e2etest.StartTerminal(t, e.Dir, e.TermEnv(), append([]string{e.Bin}, args...)...)
				term.WaitFor("WORK-READY", 3*time.Minute)
				started = time.Now()
				term.Close()
				// run ends with its terminal; wait for its bottle to go.
				deadline := time.Now().Add(30 * time.Second)
				for time.Now().Before(deadline) {
					cs, _ := c.ListContainers(context.Background(), map[string]string{"dev.claude-bottle.instance": inst}, true)
					vs, _ := c.ListVolumes(context.Background(), map[string]string{"dev.claude-bottle.instance": inst})
					if len(cs) == 0 && len(vs) == 0 && !runAlive(inst) {
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
				ended = time.Now()
				// The process list is checked too: run must be gone, not
				// left holding the bottle.
				waitNoRun(t, inst, 10*time.Second)
			default:
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				cmd := e.Command(ctx, args...)
				stdout, _ := cmd.StdoutPipe()
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				waitLine(t, stdout, "WORK-READY")
				go io.Copy(io.Discard, stdout)
				started = time.Now()
				if end.sig != 0 {
					cmd.Process.Signal(end.sig)
				}
				cmd.Wait()
				ended = time.Now()
				if code := cmd.ProcessState.ExitCode(); code != end.code {
					t.Errorf("exit code %d, want %d\n%s", code, end.code, stderr.String())
				}
				if !strings.Contains(stderr.String(), "branch claude-bottle/"+inst) {
					t.Errorf("run did not say where the work went:\n%s", stderr.String())
				}
			}
			if d := ended.Sub(started); d > 10*time.Second {
				t.Errorf("the bottle took %s to go, want at most 10 s", d.Round(100*time.Millisecond))
			}
			e2etest.AssertGone(t, c, e.State, inst)
			branch := "claude-bottle/" + inst
			if got := gitOut(t, e.Dir, "log", "--format=%s", "main.."+branch); got != "claude-bottle: uncommitted changes when the bottle ended\nagent\n" {
				t.Errorf("work on %s:\n%s", branch, got)
			}
			if got := strings.TrimSpace(gitOut(t, e.Dir, "rev-parse", "main")); got != base {
				t.Errorf("main moved")
			}
		})
	}
}

// runAlive says whether a process with CLAUDE_BOTTLE_CONTAINER=inst in its
// environment (the test's run) still exists.
func runAlive(inst string) bool {
	envs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, p := range envs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte("\x00CLAUDE_BOTTLE_CONTAINER="+inst+"\x00")) {
			return true
		}
	}
	return false
}

// waitNoRun fails unless no run process for inst is left.
func waitNoRun(t *testing.T, inst string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !runAlive(inst) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("a run process of %s is still there %s after its terminal closed", inst, d)
}

// The terminal behaves: the agent's TTY follows the window's size, and the
// agent's exit code is run's.
func TestTerminalResize(t *testing.T) {
	c := e2etest.Engine(t)
	e, inst := newEnv(t)
	term := e2etest.StartTerminal(t, e.Dir, e.TermEnv(), e.Bin, "run", "claude", "--", "sh", "-c", "sleep 1; echo size $(stty size); read x; echo size $(stty size); exit 3")
	term.WaitFor("size 40 150", 3*time.Minute)
	term.Resize(100, 30)
	time.Sleep(time.Second)
	term.Type("")
	term.WaitFor("size 30 100", 30*time.Second)
	if code := term.ExitCode(time.Minute); code != 3 {
		t.Errorf("run exited %d, want the agent's 3", code)
	}
	e2etest.AssertGone(t, c, e.State, inst)
}

// A run killed outright (SIGKILL: nothing of it runs again) leaves its
// bottle; ps says so, and cleanup brings the work back before removing it.
func TestKilledRunWorkComesBackOnCleanup(t *testing.T) {
	c := e2etest.Engine(t)
	e, inst := newEnv(t)
	e.Vars["CLAUDE_BOTTLE_DERIVED_IMAGE"] = "claude-bottle:cwd-" + inst
	t.Cleanup(func() { c.RemoveImage(context.Background(), "claude-bottle:cwd-"+inst) })
	gitRepo(t, e.Dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := e.Command(ctx, "run", "--cwd", "claude", "--", "sh", "-c", "echo agent >> a.txt && git commit -qam killed-agent && echo WORK-READY && exec sleep 300")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitLine(t, stdout, "WORK-READY")
	cmd.Process.Kill()
	cmd.Wait()
	if r := e.Run(ctx, "ps"); !strings.Contains(r.Stdout, inst) || !strings.Contains(r.Stdout, "orphaned") {
		t.Errorf("ps after a killed run: %s", r)
	}
	r := e.Run(ctx, "cleanup")
	if r.Code != 0 || !strings.Contains(r.Stdout, "branch claude-bottle/"+inst) {
		t.Fatalf("cleanup: %s", r)
	}
	// The user's own untracked file was copied in too: uncommitted in the
	// workspace, it is in the last commit.
	if got := gitOut(t, e.Dir, "log", "--format=%s", "main..claude-bottle/"+inst); got != "claude-bottle: uncommitted changes when the bottle ended\nkilled-agent\n" {
		t.Errorf("work on the branch: %q", got)
	}
	e2etest.AssertGone(t, c, e.State, inst)
}
