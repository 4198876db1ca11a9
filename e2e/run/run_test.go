// Package run holds the black-box scenarios of `claude-bottle run`: the
// built binary against the real engine and the real agent image.
package run

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/claude-bottle/claude-bottle/e2e/e2etest"
	"github.com/claude-bottle/claude-bottle/internal/docker"
	"github.com/claude-bottle/claude-bottle/internal/plan"
)

// A bottle with every sidecar but git-gate; the route's token comes from
// the test's environment.
const manifest = `
agents:
  claude:
    bottle: box
    env:
      GREETING: hello
    forward_env: [FORWARDED_SECRET, FIXTURE_IP, HOST_PORT]
bottles:
  box:
    supervise: true
    egress:
      allow:
        - host: allowed.test
    cred_proxy:
      routes:
        - name: anthropic
          path: /anthropic/
          upstream: https://api.anthropic.com
          role: anthropic-base-url
          credentials:
            - env: E2E_API_KEY
              header: x-api-key
              format: "{token}"
`

const fakeKey = "sk-e2e-run-token-0123456789abcdef"

func newEnv(t *testing.T) (*e2etest.Env, string) {
	e2etest.Engine(t)
	e2etest.Images(t)
	e := e2etest.NewEnv(t, manifest)
	inst := e2etest.Unique("cbt-run")
	e.Vars["CLAUDE_BOTTLE_CONTAINER"] = inst
	e.Vars["E2E_API_KEY"] = fakeKey
	e.Vars["FORWARDED_SECRET"] = "forwarded-value-42"
	return e, inst
}

// The agent's view from inside: non-root, no capabilities, only the
// internal network with no route out, sidecar names resolve, config
// read-only, env wired, and the real token nowhere.
func TestRunInsideTheBottle(t *testing.T) {
	c := e2etest.Engine(t)
	e, inst := newEnv(t)
	fixNet := e2etest.Network(t, c)
	fx := e2etest.Start(t, c, docker.ContainerSpec{Image: e2etest.GoImage(t, c, "httpfix"), Network: fixNet, Env: []string{"FIXTURE_NAME=outside"}})
	info, err := c.InspectContainer(context.Background(), fx)
	if err != nil || info.IPs[fixNet] == "" {
		t.Fatalf("fixture address: %v %+v", err, info)
	}
	e.Vars["FIXTURE_IP"] = info.IPs[fixNet]
	// A service on the host listening on every interface: the agent must
	// not reach it at its network's gateway address (the host has none on
	// the bottle's bridge).
	hostLn, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hostLn.Close()
	go http.Serve(hostLn, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "host service\n") }))
	e.Vars["HOST_PORT"] = fmt.Sprint(hostLn.Addr().(*net.TCPAddr).Port)
	script := strings.Join([]string{
		`echo "uid=$(id -u)"`,
		`echo "kernel=$(uname -r)"`,
		`test -e /var/run/docker.sock && echo engine-socket-present || echo engine-socket-absent`,
		`grep CapEff /proc/self/status`,
		`grep NoNewPrivs /proc/self/status`,
		// A server the host can reach, on a network the test made: the
		// agent cannot, neither directly nor through the proxy (IP literal).
		`curl -s -m 5 --noproxy '*' http://$FIXTURE_IP:8080/ && echo direct-reached || echo direct-failed`,
		`curl -s -m 5 -o /dev/null -w 'proxied-%{http_code}\n' http://$FIXTURE_IP:8080/`,
		// The host, at the gateway of the bottle's network: nothing there.
		`gw=$(awk 'NR>1 && $2=="00000000" {print $3}' /proc/net/route)`,
		`gwip=$(printf '%d.%d.%d.%d' 0x$(echo $gw | cut -c7-8) 0x$(echo $gw | cut -c5-6) 0x$(echo $gw | cut -c3-4) 0x$(echo $gw | cut -c1-2))`,
		`echo "gateway=$gwip"`,
		`curl -s -m 5 --noproxy '*' http://$gwip:$HOST_PORT/ && echo host-reached || echo host-unreachable`,
		// /proc/net/dev, not /sys/class/net: gVisor has no /sys/class/net.
		`echo "ifaces=$(awk 'NR>2 {sub(":", "", $1); print $1}' /proc/net/dev | sort | tr '\n' ' ')"`,
		`for h in egress cred-proxy supervise; do getent hosts $h >/dev/null && echo "resolves $h"; done`,
		`touch /etc/claude-bottle/current-config/x 2>/dev/null && echo config-writable || echo config-readonly`,
		`echo "greeting=$GREETING forwarded=$FORWARDED_SECRET"`,
		`echo "base=$ANTHROPIC_BASE_URL key=$ANTHROPIC_API_KEY proxy=$HTTPS_PROXY"`,
		`grep -rl "` + fakeKey + `" /proc/*/environ /etc /home /tmp /workspace 2>/dev/null | head -3 | sed 's/^/token-found /'`,
		`cat /etc/claude-bottle/current-config/allowlist.txt | grep -c allowed.test | sed 's/^/allowlist-lines /'`,
		`exit 7`,
	}, "\n")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r := e.Run(ctx, "run", "claude", "--", "sh", "-c", script)
	t.Log(r)
	if r.Code != 7 {
		t.Fatalf("exit code %d, want the agent's 7", r.Code)
	}
	out := r.Stdout
	for _, want := range []string{
		"uid=1000", "CapEff:\t0000000000000000", "NoNewPrivs:\t1", "ifaces=eth0 lo",
		"resolves egress", "resolves cred-proxy", "resolves supervise", "config-readonly",
		"greeting=hello forwarded=forwarded-value-42",
		"base=http://cred-proxy:8080/anthropic key=" + plan.Placeholder + " proxy=http://egress:3128",
		"allowlist-lines 1", "direct-failed", "proxied-403", "engine-socket-absent", "host-unreachable",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("agent output lacks %q", want)
		}
	}
	// The runtime the env requires (CI: runsc), else (runtime: auto)
	// gVisor when it works or runc with a one-line notice. gVisor reports
	// its own kernel version: 4.4.0 in older releases, now 4.19.0-gvisor.
	notice := strings.Contains(r.Stderr, "gVisor (runsc) is not used")
	underGVisor := strings.Contains(out, "kernel=4.4.0") || strings.Contains(out, "-gvisor\n")
	switch {
	case e.Runtime != "" && underGVisor != (e.Runtime == "runsc"):
		t.Errorf("the agent's kernel says gVisor=%v, but the bottle must run under %s", underGVisor, e.Runtime)
	case e.Runtime != "" && notice:
		t.Errorf("a fallback notice although the runtime was chosen: %s", r.Stderr)
	case e.Runtime == "" && notice == underGVisor:
		t.Errorf("runtime: notice=%v, under gVisor=%v; want exactly one", notice, underGVisor)
	}
	for _, bad := range []string{"direct-reached", "token-found", "config-writable", "fixture outside", "engine-socket-present", "host-reached", "host service"} {
		if strings.Contains(out, bad) {
			t.Errorf("agent output has %q", bad)
		}
	}
	e2etest.AssertGone(t, c, e.State, inst)
}

// Stage files are 0600/0400 while the bottle runs, and literal env is in
// the env file but forwarded values are in no file.
func TestStageFilesWhileRunning(t *testing.T) {
	c := e2etest.Engine(t)
	e, inst := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := e.Command(ctx, "run", "claude", "--", "sh", "-c", "echo ready; read x; echo done")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitLine(t, stdout, "ready")
	e.AssertRuntime(c, inst)
	dir := filepath.Join(e.State, "instances", inst)
	var files int
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		files++
		mode := info.Mode().Perm()
		if strings.HasPrefix(rel, "current-config/") {
			if mode != 0o644 {
				t.Errorf("%s mode %v, want 0644 (agent-readable, no secrets)", rel, mode)
			}
			return nil
		}
		if mode&0o077 != 0 {
			t.Errorf("%s mode %v: readable by others", rel, mode)
		}
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), "forwarded-value-42") {
			t.Errorf("forwarded value written to %s", rel)
		}
		if strings.Contains(string(b), fakeKey) && !strings.HasPrefix(rel, "cred-proxy/tokens/") && rel != "egress/secrets.json" {
			t.Errorf("token written to %s", rel)
		}
		return nil
	})
	if files < 5 {
		t.Errorf("only %d stage files", files)
	}
	env, _ := os.ReadFile(filepath.Join(dir, "agent.env"))
	if !strings.Contains(string(env), "GREETING=hello") {
		t.Errorf("agent.env: %q", env)
	}
	if st, err := os.Stat(filepath.Join(dir, "cred-proxy", "tokens", "anthropic")); err != nil || st.Mode().Perm() != 0o400 {
		t.Errorf("token file: %v %v", st, err)
	}
	// Mounts as the engine applied them: nothing inside the bottle can
	// write a supervise decision or its own config.
	mounts := func(name string) map[string]bool {
		info, err := c.InspectContainer(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		ro := map[string]bool{}
		for _, m := range info.Mounts {
			ro[m.Target] = m.ReadOnly
		}
		return ro
	}
	sup := mounts(inst + "-supervise")
	if ro, ok := sup["/var/lib/supervise/decisions"]; !ok || !ro {
		t.Errorf("supervise decisions mount: present=%v read-only=%v", ok, ro)
	}
	if ro, ok := sup["/var/lib/supervise/requests"]; !ok || ro {
		t.Errorf("supervise requests mount: present=%v read-only=%v", ok, ro)
	}
	agentMounts := mounts(inst)
	if ro, ok := agentMounts["/etc/claude-bottle/current-config"]; !ok || !ro {
		t.Errorf("agent current-config mount: present=%v read-only=%v", ok, ro)
	}
	for target := range agentMounts {
		if strings.HasPrefix(target, "/var/lib/supervise") || strings.Contains(target, "docker.sock") {
			t.Errorf("agent mounts %s", target)
		}
	}
	egressMounts := mounts(inst + "-egress")
	if ro := egressMounts["/etc/claude-bottle/egress"]; !ro {
		t.Errorf("egress config is not read-only: %v", egressMounts)
	}
	fmt.Fprintln(stdin, "go")
	stdin.Close()
	io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run: %v", err)
	}
	e2etest.AssertGone(t, c, e.State, inst)
}

func TestClaudeCodeRuns(t *testing.T) {
	c := e2etest.Engine(t)
	e, inst := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r := e.Run(ctx, "run", "claude", "--", "claude", "--version")
	if r.Code != 0 || !strings.Contains(r.Stdout, "2.1.332") {
		t.Fatalf("claude --version: %s", r)
	}
	e2etest.AssertGone(t, c, e.State, inst)
}

// SIGINT while the sidecars start: everything is removed and the exit
// code says it was interrupted.
func TestInterruptDuringStart(t *testing.T) {
	c := e2etest.Engine(t)
	e, inst := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := e.Command(ctx, "run", "claude", "--", "sleep", "300")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Interrupt as soon as the first sidecar container exists.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		cs, err := c.ListContainers(ctx, map[string]string{plan.LabelInstance: inst}, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no container appeared")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	code := cmd.ProcessState.ExitCode()
	if code == 0 {
		t.Fatalf("exit 0 after SIGINT (%v); stderr: %s", err, stderr.String())
	}
	t.Logf("exit %d: %s", code, stderr.String())
	e2etest.AssertGone(t, c, e.State, inst)
}

// A sidecar that fails its readiness check fails the run, and nothing remains.
func TestReadinessFailure(t *testing.T) {
	c := e2etest.Engine(t)
	e, inst := newEnv(t)
	e.Vars["CLAUDE_BOTTLE_READY_TIMEOUT"] = "1ns"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r := e.Run(ctx, "run", "claude", "--", "true")
	if r.Code == 0 || !strings.Contains(r.Stderr, "not ready") {
		t.Fatalf("want a readiness error: %s", r)
	}
	e2etest.AssertGone(t, c, e.State, inst)
}

// A killed run leaves an orphan that plan reports and cleanup removes.
func TestKilledRunThenCleanup(t *testing.T) {
	c := e2etest.Engine(t)
	e, inst := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := e.Command(ctx, "run", "claude", "--", "sh", "-c", "echo ready; sleep 300")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitLine(t, stdout, "ready")
	cmd.Process.Kill()
	cmd.Wait()

	r := e.Run(ctx, "plan", "claude")
	if r.Code == 0 || !strings.Contains(r.Stderr, "cleanup") {
		t.Errorf("plan after a killed run should name the orphan and point at cleanup: %s", r)
	}
	r = e.Run(ctx, "ps")
	if !strings.Contains(r.Stdout, inst) || !strings.Contains(r.Stdout, "orphaned") {
		t.Errorf("ps: %s", r)
	}
	r = e.Run(ctx, "cleanup", "--dry-run")
	if r.Code != 0 || !strings.Contains(r.Stdout, "would remove container "+inst) {
		t.Errorf("cleanup --dry-run: %s", r)
	}
	r = e.Run(ctx, "cleanup")
	if r.Code != 0 {
		t.Fatalf("cleanup: %s", r)
	}
	e2etest.AssertGone(t, c, e.State, inst)
}

// Five concurrent runs of one agent get five distinct instances.
func TestConcurrentRuns(t *testing.T) {
	c := e2etest.Engine(t)
	e2etest.Images(t)
	e := e2etest.NewEnv(t, manifest)
	e.Vars["E2E_API_KEY"] = fakeKey
	// Unpinned: the names come from the free-name search.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	results := make([]e2etest.Result, 5)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i] = e.Run(ctx, "run", "claude", "--", "sh", "-c", "cat /etc/hostname >/dev/null; echo instance-ok; sleep 2")
		}(i)
	}
	wg.Wait()
	for i, r := range results {
		if r.Code != 0 || !strings.Contains(r.Stdout, "instance-ok") {
			t.Errorf("run %d: %s", i, r)
		}
	}
	// Each instance wrote its own log directory (they outlive the bottles).
	logs, _ := os.ReadDir(filepath.Join(e.State, "logs"))
	if len(logs) != 5 {
		var names []string
		for _, l := range logs {
			names = append(names, l.Name())
		}
		t.Errorf("want 5 distinct instances, got %d: %v", len(logs), names)
	}
	for _, l := range logs {
		e2etest.AssertGone(t, c, e.State, l.Name())
	}
}

func waitLine(t *testing.T, r io.Reader, want string) {
	t.Helper()
	done := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if strings.Contains(sc.Text(), want) {
				done <- true
				return
			}
		}
		done <- false
	}()
	select {
	case ok := <-done:
		if !ok {
			t.Fatalf("output ended before %q", want)
		}
	case <-time.After(3 * time.Minute):
		t.Fatalf("no %q within 3 minutes", want)
	}
}

// --cwd copies the working directory into a derived image, honouring the
// ignore file; the agent works on the copy.
func TestCwdWorkspace(t *testing.T) {
	c := e2etest.Engine(t)
	e, inst := newEnv(t)
	os.WriteFile(filepath.Join(e.Dir, "main.go"), []byte("package main\n"), 0o644)
	os.WriteFile(filepath.Join(e.Dir, "secret.env"), []byte("TOKEN=x\n"), 0o644)
	os.Mkdir(filepath.Join(e.Dir, "build"), 0o755)
	os.WriteFile(filepath.Join(e.Dir, "build", "out.bin"), []byte("bin"), 0o644)
	os.WriteFile(filepath.Join(e.Dir, ".claude-bottle-ignore"), []byte("secret.env\nbuild/\n"), 0o644)
	e.Vars["CLAUDE_BOTTLE_DERIVED_IMAGE"] = "claude-bottle:cwd-" + inst
	t.Cleanup(func() { c.RemoveImage(context.Background(), "claude-bottle:cwd-"+inst) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r := e.Run(ctx, "run", "--cwd", "claude", "--", "sh", "-c", "pwd; ls -A /workspace | tr '\\n' ' '; echo; touch /workspace/new && echo writable")
	if r.Code != 0 {
		t.Fatalf("run --cwd: %s", r)
	}
	if !strings.Contains(r.Stdout, "main.go") || strings.Contains(r.Stdout, "secret.env") || strings.Contains(r.Stdout, "build") {
		t.Errorf("workspace contents: %s", r.Stdout)
	}
	if !strings.Contains(r.Stdout, "/workspace") || !strings.Contains(r.Stdout, "writable") {
		t.Errorf("agent does not work in a writable /workspace: %s", r.Stdout)
	}
	e2etest.AssertGone(t, c, e.State, inst)
}

// With a terminal, the agent gets a TTY and its exit code is run's.
func TestInteractiveTTY(t *testing.T) {
	c := e2etest.Engine(t)
	e, inst := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// script(1) gives the run process a pseudo-terminal, as a person's shell would.
	line := e.Bin + " run claude -- sh -c 'test -t 0 && test -t 1 && echo tty-yes; stty size; exit 5'"
	cmd := e.Command(ctx)
	cmd.Path = "/usr/bin/script"
	cmd.Args = []string{"script", "-qec", line, "/dev/null"}
	out, err := cmd.CombinedOutput()
	code := cmd.ProcessState.ExitCode()
	if code != 5 || !strings.Contains(string(out), "tty-yes") {
		t.Fatalf("exit %d (%v), want 5 with a TTY:\n%s", code, err, out)
	}
	e2etest.AssertGone(t, c, e.State, inst)
}

// --cwd with a git working directory: the copy's remote still names the
// real upstream, and git inside the bottle resolves it to the gate.
func TestCwdGitRemotesPointAtTheGate(t *testing.T) {
	c := e2etest.Engine(t)
	e2etest.Images(t)
	keyDir := t.TempDir()
	key := filepath.Join(keyDir, "deploy_key")
	os.WriteFile(key, []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nnot used: the upstream is never contacted\n-----END OPENSSH PRIVATE KEY-----\n"), 0o600)
	m := `
agents:
  dev:
    bottle: repo
bottles:
  repo:
    git:
      repos:
        - name: app
          upstream: git@upstream.test:me/app.git
          key: ` + key + `
          push:
            branches: ["agent/*"]
`
	e := e2etest.NewEnv(t, m)
	inst := e2etest.Unique("cbt-cwdgit")
	e.Vars["CLAUDE_BOTTLE_CONTAINER"] = inst
	e.Vars["CLAUDE_BOTTLE_DERIVED_IMAGE"] = "claude-bottle:cwd-" + inst
	t.Cleanup(func() { c.RemoveImage(context.Background(), "claude-bottle:cwd-"+inst) })
	for _, args := range [][]string{{"init", "-q"}, {"remote", "add", "origin", "git@upstream.test:me/app.git"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = e.Dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r := e.Run(ctx, "run", "--cwd", "dev", "--", "sh", "-c",
		"cd /workspace && git config --global --add safe.directory /workspace && echo configured=$(git config remote.origin.url) && echo effective=$(git remote get-url origin)")
	if r.Code != 0 {
		t.Fatalf("%s", r)
	}
	if !strings.Contains(r.Stdout, "configured=git@upstream.test:me/app.git") || !strings.Contains(r.Stdout, "effective=http://git-gate:8080/app.git") {
		t.Errorf("remotes: %s", r.Stdout)
	}
	e2etest.AssertGone(t, c, e.State, inst)
}
