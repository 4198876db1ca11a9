// Package gitgate holds the black-box scenarios of git-gate: a bottle
// clones and pushes through the gate to a real ssh upstream (sshd + git in
// a fixture container), the gate holds the deploy key and enforces the
// push policy, and an unreachable upstream fails clearly.
package gitgate

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-bottle/claude-bottle/e2e/e2etest"
	"github.com/claude-bottle/claude-bottle/internal/docker"
	"github.com/claude-bottle/claude-bottle/internal/plan"
)

const upstreamURL = "git@upstream.test:app.git"

// deployKey generates an ed25519 key pair outside the manifest directory
// (so nothing could copy it into a bottle by accident) and returns the
// private key's path, the public key line, and a line of the private key
// that appears in no other file, to search for inside the bottle.
func deployKey(t *testing.T) (path, pub, needle string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "deploy_key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "gitgate-e2e", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	priv, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	// Line 0 is the armour, line 1 the header shared by every unencrypted
	// ed25519 key, lines 2-3 hold the public key, line 4 the private seed.
	lines := strings.Split(strings.TrimSpace(string(priv)), "\n")
	if len(lines) < 7 || len(lines[4]) < 60 {
		t.Fatalf("unexpected private key layout: %d lines", len(lines))
	}
	return path, strings.TrimSpace(string(b)), lines[4]
}

// upstream starts the sshd + git fixture on net as upstream.test and
// returns its id and its ed25519 host key ("ssh-ed25519 AAAA…"), once
// sshd listens.
func upstream(t *testing.T, c *docker.Client, net, pub string) (string, string) {
	t.Helper()
	dir := filepath.Join(e2etest.Root(), "e2e", "fixtures", "gitgate-upstream")
	df, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	ep, err := os.ReadFile(filepath.Join(dir, "entrypoint.sh"))
	if err != nil {
		t.Fatal(err)
	}
	img := e2etest.DockerfileImage(t, c, "claude-bottle-fixture-gitgate-upstream:test", string(df), map[string][]byte{"entrypoint.sh": ep})
	id := e2etest.Start(t, c, docker.ContainerSpec{Image: img, Network: net, Aliases: []string{"upstream.test"}, Env: []string{"DEPLOY_KEY=" + pub}})
	hostKey := regexp.MustCompile(`(?m)^HOSTKEY (ssh-ed25519 \S+)$`)
	deadline := time.Now().Add(time.Minute)
	for {
		logs, err := c.Logs(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if m := hostKey.FindSubmatch(logs); m != nil && strings.Contains(string(logs), "Server listening") {
			return id, string(m[1])
		}
		if time.Now().After(deadline) {
			t.Fatalf("upstream fixture not ready within a minute:\n%s", logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// refs lists the upstream's refs as name -> commit, read inside the
// fixture, so what the gate forwarded is seen where it landed.
func refs(t *testing.T, c *docker.Client, id string) map[string]string {
	t.Helper()
	code, out, err := c.Exec(context.Background(), id, []string{"git", "--git-dir", "/srv/app.git", "for-each-ref", "--format=%(refname) %(objectname)"}, "git")
	if err != nil || code != 0 {
		t.Fatalf("upstream for-each-ref: exit %d %v\n%s", code, err, out)
	}
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if name, sha, ok := strings.Cut(l, " "); ok {
			m[name] = sha
		}
	}
	return m
}

func manifest(net, key, hostKeyLine string) string {
	hk := ""
	if hostKeyLine != "" {
		hk = fmt.Sprintf("          host_keys: [%q]\n", hostKeyLine)
	}
	return fmt.Sprintf(`
agents:
  claude:
    bottle: box
bottles:
  box:
    egress:
      networks: [%s]
    git:
      repos:
        - name: app
          upstream: "%s"
          key: %q
%s          push:
            branches: ["agent/*"]
`, net, upstreamURL, key, hk)
}

func newEnv(t *testing.T, m string) (*e2etest.Env, string) {
	t.Helper()
	e := e2etest.NewEnv(t, m)
	inst := e2etest.Unique("cbt-gg")
	e.Vars["CLAUDE_BOTTLE_CONTAINER"] = inst
	return e, inst
}

// try NAME CMD…: runs CMD, prefixes its output with [NAME] and ends with
// "case NAME rc=N", so the test can check each case on its own.
const prelude = `set -u
try() { name=$1; shift; out=$("$@" 2>&1); rc=$?; printf '%s\n' "$out" | sed "s/^/[$name] /"; echo "case $name rc=$rc"; }
git config --global user.name agent
git config --global user.email agent@bottle.test
git config --global advice.detachedHead false
`

// outcome is one case's exit code and output lines.
type outcome struct {
	rc  int
	out string
	ok  bool // the case ran
}

func cases(stdout string) map[string]outcome {
	m := map[string]outcome{}
	lineRE := regexp.MustCompile(`^\[([a-z0-9-]+)\] (.*)$`)
	caseRE := regexp.MustCompile(`^case ([a-z0-9-]+) rc=(\d+)$`)
	for _, l := range strings.Split(stdout, "\n") {
		if mm := lineRE.FindStringSubmatch(l); mm != nil {
			o := m[mm[1]]
			o.out += mm[2] + "\n"
			m[mm[1]] = o
		} else if mm := caseRE.FindStringSubmatch(l); mm != nil {
			o := m[mm[1]]
			fmt.Sscan(mm[2], &o.rc)
			o.ok = true
			m[mm[1]] = o
		}
	}
	return m
}

// value returns the text after "key=" on stdout's first such line.
func value(stdout, key string) string {
	for _, l := range strings.Split(stdout, "\n") {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return v
		}
	}
	return ""
}

type event struct {
	Kind, Repo, Ref, Old, New, Verdict, Reason, Method, Path string
	Status                                                   int
}

func gateLog(t *testing.T, e *e2etest.Env, inst string) []event {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.State, "logs", inst, "git-gate.jsonl"))
	if err != nil {
		t.Fatalf("git-gate log: %v", err)
	}
	var out []event
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var ev event
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("git-gate log line %q: %v", l, err)
		}
		out = append(out, ev)
	}
	return out
}

// findPush returns the push event for ref with verdict, if any.
func findPush(evs []event, ref, verdict string) (event, bool) {
	for _, ev := range evs {
		if ev.Kind == "push" && ev.Ref == ref && ev.Verdict == verdict {
			return ev, true
		}
	}
	return event{}, false
}

const refused = "remote: git-gate: refused "

// One bottle, upstream's host key pinned: clone the real upstream URL
// through the gate, push within the policy (it lands upstream), every
// kind of push outside it is refused with a remote: message and changes
// nothing upstream, tricks to skip the gate fail, the key is nowhere in
// the bottle, and every decision is in the log.
func TestCloneAndPushThroughTheGate(t *testing.T) {
	c := e2etest.Engine(t)
	e2etest.Images(t)
	net := e2etest.Network(t, c)
	key, pub, needle := deployKey(t)
	up, hostKey := upstream(t, c, net, pub)
	before := refs(t, c, up)
	main0 := before["refs/heads/main"]
	if len(before) != 1 || main0 == "" {
		t.Fatalf("upstream refs before: %v", before)
	}
	e, inst := newEnv(t, manifest(net, key, "upstream.test "+hostKey))

	// The needle is split in the script so the script text itself (in a
	// process's argv) never holds it whole.
	half := len(needle) / 2
	script := prelude + fmt.Sprintf(`
try clone git clone -q %[1]s app
cd app || exit 3
echo "origin=$(git config remote.origin.url)"
echo "pushurl=$(git remote get-url --push origin)"
echo "head0=$(git rev-parse HEAD)"
echo one >one.txt && git add one.txt && git commit -q -m one
try push-new git push origin HEAD:agent/x
echo "commit1=$(git rev-parse HEAD)"
echo two >two.txt && git add two.txt && git commit -q -m two
try push-ff git push origin HEAD:agent/x
commit2=$(git rev-parse HEAD)
echo "commit2=$commit2"
try main-ff git push origin HEAD:main
try outside git push origin HEAD:feature/y
try nested git push origin HEAD:agent/deep/y
try notes git push origin HEAD:refs/notes/commits
git tag v1
try tag git push origin refs/tags/v1
try delete-branch git push origin :agent/x
try delete-main git push origin :main
git checkout -q -b rw origin/main && git commit -q --amend -m rewritten
try force-main git push -f origin HEAD:main
try force-branch git push -f origin HEAD:agent/x
git checkout -q "$commit2" && echo three >three.txt && git add three.txt && git commit -q -m three
try mixed git push origin HEAD:agent/x HEAD:refs/heads/feature/z
try receive-pack git push --receive-pack='sh -c "echo PWNED >&2; exit 1"' origin HEAD:refs/heads/feature/rp
try ssh-command git -c core.sshCommand='sh -c "echo PWNED >&2; exit 1"' push origin HEAD:refs/heads/feature/ssh
echo "ssh-dir=$(ls -A ~/.ssh 2>/dev/null | tr '\n' ' ')"
try direct env GIT_CONFIG_COUNT=0 GIT_SSH_COMMAND='ssh -o BatchMode=yes -o StrictHostKeyChecking=no' git push %[1]s HEAD:agent/direct
cat >/tmp/connect.js <<'JS'
// ssh ProxyCommand through the bottle's egress proxy (HTTP CONNECT).
const s = require("net").connect(3128, "egress", () => s.write("CONNECT " + process.argv[2] + ":" + process.argv[3] + " HTTP/1.1\r\nHost: x\r\n\r\n"));
let head = Buffer.alloc(0), open = false;
s.on("data", d => {
  if (open) return process.stdout.write(d);
  head = Buffer.concat([head, d]);
  const i = head.indexOf("\r\n\r\n");
  if (i < 0) return;
  if (!/^HTTP\/1\.[01] 200/.test(head.toString())) { process.stderr.write("proxy: " + head.toString().split("\r\n")[0] + "\n"); process.exit(1); }
  open = true; process.stdout.write(head.slice(i + 4)); process.stdin.pipe(s);
});
s.on("close", () => process.exit(0));
s.on("error", e => { process.stderr.write("proxy: " + e.message + "\n"); process.exit(1); });
JS
# The same through the egress proxy with a hand-made ProxyCommand: only
# the missing key stops it (the proxy itself lets the agent's CONNECT to
# upstream.test:22 through today; see the report of this package).
try direct-proxy env GIT_CONFIG_COUNT=0 GIT_SSH_COMMAND="ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o ConnectTimeout=20 -o ProxyCommand='node /tmp/connect.js %%h %%p'" timeout 60 git push %[1]s HEAD:agent/direct
echo "dumb-config=$(curl -s -o /dev/null -w '%%{http_code}' http://git-gate:8080/app.git/config)"
echo "dumb-refs=$(curl -s -o /dev/null -w '%%{http_code}' http://git-gate:8080/app.git/info/refs)"
echo "escape=$(curl -s -o /dev/null -w '%%{http_code}' --path-as-is http://git-gate:8080/../keys/app)"
needle="%[2]s""%[3]s"
echo "env-hits=$(env | grep -c -F "$needle")"
echo "environ-hits=$(grep -l -F "$needle" /proc/[0-9]*/environ 2>/dev/null | wc -l)"
printf '%%s\n' "$needle" >/tmp/control-needle
grep -rlsF --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev "$needle" / | sed 's/^/key-found /'
echo end
`, upstreamURL, needle[:half], needle[half:])

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r := e.Run(ctx, "run", "claude", "--", "sh", "-c", script)
	t.Log(r)
	if r.Code != 0 || !strings.Contains(r.Stdout, "\nend\n") {
		t.Fatalf("the script did not finish: exit %d", r.Code)
	}
	out := r.Stdout
	cs := cases(out)

	// Clone of the real URL, rewritten to the gate; the remote stays real.
	if o := cs["clone"]; !o.ok || o.rc != 0 {
		t.Errorf("clone: %+v", o)
	}
	if got := value(out, "origin"); got != upstreamURL {
		t.Errorf("origin is %q, want the real upstream %q", got, upstreamURL)
	}
	if got := value(out, "pushurl"); got != "http://git-gate:8080/app.git" {
		t.Errorf("origin resolves to %q, want the gate", got)
	}
	if got := value(out, "head0"); got != main0 {
		t.Errorf("cloned HEAD %q, upstream main %q", got, main0)
	}

	// Pushes inside the policy land upstream.
	for _, n := range []string{"push-new", "push-ff"} {
		if o := cs[n]; !o.ok || o.rc != 0 {
			t.Errorf("%s should be accepted: %+v", n, o)
		}
	}
	commit1, commit2 := value(out, "commit1"), value(out, "commit2")
	if len(commit2) != 40 || len(commit1) != 40 {
		t.Fatalf("commit ids: %q %q", commit1, commit2)
	}

	// Every refusal: nonzero, with the gate's remote: message naming the ref.
	for n, ref := range map[string]string{
		"main-ff":       "refs/heads/main",
		"outside":       "refs/heads/feature/y",
		"nested":        "refs/heads/agent/deep/y",
		"notes":         "refs/notes/commits",
		"tag":           "refs/tags/v1",
		"delete-branch": "refs/heads/agent/x",
		"delete-main":   "refs/heads/main",
		"force-main":    "refs/heads/main",
		"force-branch":  "refs/heads/agent/x",
		"mixed":         "refs/heads/feature/z",
		"receive-pack":  "refs/heads/feature/rp",
		"ssh-command":   "refs/heads/feature/ssh",
	} {
		o := cs[n]
		if !o.ok || o.rc == 0 || !strings.Contains(o.out, refused+ref) {
			t.Errorf("%s: want a refusal of %s with %q, got %+v", n, ref, refused, o)
		}
		if strings.Contains(o.out, "PWNED") {
			t.Errorf("%s: the agent's command ran: %s", n, o.out)
		}
	}
	for n, reason := range map[string]string{
		"force-main":    "not allowed by the push policy",
		"force-branch":  "non-fast-forward",
		"delete-branch": "delet",
		"tag":           "tag",
	} {
		if !strings.Contains(strings.ToLower(cs[n].out), reason) {
			t.Errorf("%s: message does not mention %q: %s", n, reason, cs[n].out)
		}
	}
	if !strings.Contains(cs["mixed"].out, "nothing was pushed upstream") {
		t.Errorf("mixed: want 'nothing was pushed upstream': %s", cs["mixed"].out)
	}
	// Skipping the gate's URL rewrite: ssh from the bottle gets nowhere
	// (no DNS; and no key even through the proxy).
	for _, n := range []string{"direct", "direct-proxy"} {
		if o := cs[n]; !o.ok || o.rc == 0 {
			t.Errorf("%s: a push around the gate must fail: %+v", n, o)
		}
	}
	for k, want := range map[string]string{"dumb-config": "403", "dumb-refs": "403", "escape": "403"} {
		if got := value(out, k); got != want {
			t.Errorf("%s: HTTP %q, want %s", k, got, want)
		}
	}
	// The repository's egress rule is reserved for git-gate: the agent's
	// own CONNECT to the upstream is refused before it reaches sshd.
	if o := cs["direct-proxy"]; strings.Contains(o.out, "Permission denied (publickey)") || !strings.Contains(o.out, "403 Forbidden") {
		t.Errorf("direct-proxy: the agent must not reach upstream's sshd through egress: %+v", o)
	}

	// The key is nowhere the agent can read; the scan does find a planted copy.
	if value(out, "env-hits") != "0" || value(out, "environ-hits") != "0" {
		t.Errorf("key line in the agent's environment: env-hits=%s environ-hits=%s", value(out, "env-hits"), value(out, "environ-hits"))
	}
	found := regexp.MustCompile(`(?m)^key-found (.*)$`).FindAllStringSubmatch(out, -1)
	if len(found) != 1 || found[0][1] != "/tmp/control-needle" {
		t.Errorf("filesystem scan: want only the planted /tmp/control-needle, got %v", found)
	}
	if v := value(out, "ssh-dir"); strings.TrimSpace(v) != "" {
		t.Errorf("~/.ssh in the agent holds %q", v)
	}

	// Upstream: exactly main (untouched) and agent/x at the last accepted commit.
	after := refs(t, c, up)
	want := map[string]string{"refs/heads/main": main0, "refs/heads/agent/x": commit2}
	if fmt.Sprint(after) != fmt.Sprint(want) {
		t.Errorf("upstream refs after: %v, want %v", after, want)
	}

	// The log: one line per ref update, accepted and refused.
	evs := gateLog(t, e, inst)
	zero := strings.Repeat("0", 40)
	if ev, ok := findPush(evs, "refs/heads/agent/x", "allow"); !ok || ev.Repo != "app" || ev.Old != zero || ev.New != commit1 {
		t.Errorf("no allow event for creating agent/x at %s: %+v", commit1, ev)
	}
	ff := false
	for _, ev := range evs {
		ff = ff || (ev.Kind == "push" && ev.Ref == "refs/heads/agent/x" && ev.Verdict == "allow" && ev.Old == commit1 && ev.New == commit2)
	}
	if !ff {
		t.Errorf("no allow event for agent/x %s -> %s", commit1, commit2)
	}
	for _, ref := range []string{"refs/heads/main", "refs/heads/feature/y", "refs/heads/agent/deep/y", "refs/notes/commits", "refs/tags/v1", "refs/heads/agent/x", "refs/heads/feature/z", "refs/heads/feature/rp", "refs/heads/feature/ssh"} {
		if ev, ok := findPush(evs, ref, "deny"); !ok || ev.Repo != "app" || ev.Reason == "" {
			t.Errorf("no deny event with a reason for %s: %+v", ref, ev)
		}
	}
	httpDeny := map[string]bool{}
	for _, ev := range evs {
		if ev.Kind == "http" && ev.Verdict == "deny" && ev.Status == 403 {
			httpDeny[ev.Path] = true
		}
	}
	if !httpDeny["/app.git/config"] || !httpDeny["/app.git/info/refs"] {
		t.Errorf("no http deny events for the dumb-protocol requests: %v", httpDeny)
	}
	for _, ev := range evs {
		b, _ := json.Marshal(ev)
		if strings.Contains(string(b), needle) {
			t.Errorf("key in the log: %s", b)
		}
	}
	e2etest.AssertGone(t, c, e.State, inst)
}

// lines collects a command's stdout line by line and signals when a line
// equals a marker.
type lines struct {
	mu    sync.Mutex
	all   []string
	ready chan struct{}
}

func collect(r io.Reader, marker string) *lines {
	l := &lines{ready: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(r)
		seen := false
		for sc.Scan() {
			l.mu.Lock()
			l.all = append(l.all, sc.Text())
			l.mu.Unlock()
			if !seen && sc.Text() == marker {
				seen = true
				close(l.ready)
			}
		}
	}()
	return l
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.all, "\n") + "\n"
}

// gateContainer is the running git-gate sidecar of inst.
func gateContainer(t *testing.T, c *docker.Client, inst string) string {
	t.Helper()
	cs, err := c.ListContainers(context.Background(), map[string]string{plan.LabelInstance: inst, plan.LabelRole: plan.RoleGitGate}, false)
	if err != nil || len(cs) != 1 {
		t.Fatalf("git-gate container of %s: %v %v", inst, cs, err)
	}
	return cs[0].ID
}

// No host_keys (trust on first use), an ssh:// upstream, and the upstream
// going down while the bottle runs: the gate trusts and logs the host key,
// fetch and a new clone still work from the gate's mirror, a push the
// policy allows fails with upstream's error and stores nothing, and the
// log records the failed fetch and the push error. A fresh bottle then
// has nothing cached and its clone fails naming the upstream.
func TestUpstreamDown(t *testing.T) {
	c := e2etest.Engine(t)
	e2etest.Images(t)
	t.Parallel()
	net := e2etest.Network(t, c)
	key, pub, _ := deployKey(t)
	up, hostKey := upstream(t, c, net, pub)
	const url = "ssh://git@upstream.test/srv/app.git"
	m := strings.Replace(manifest(net, key, ""), `"`+upstreamURL+`"`, `"`+url+`"`, 1)
	e, inst := newEnv(t, m)
	script := prelude + `
try clone git clone -q ` + url + ` app
cd app || exit 3
echo "head0=$(git rev-parse HEAD)"
echo ready
read x
try fetch git fetch origin
try reclone git clone -q ` + url + ` /tmp/app2
echo "reclone-head=$(git -C /tmp/app2 rev-parse HEAD)"
echo c >c.txt && git add c.txt && git commit -q -m c
try push-down git push origin HEAD:agent/down
echo end
`
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := e.Command(ctx, "run", "claude", "--", "sh", "-c", script)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := collect(stdout, "ready")
	select {
	case <-out.ready:
	case <-time.After(3 * time.Minute):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("no ready line:\n%s\n%s", out, stderr.String())
	}
	// Trust on first use: the gate says which key it trusted, to pin.
	logs, err := c.Logs(ctx, gateContainer(t, c, inst))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logs), "trusted on first use") || !strings.Contains(string(logs), hostKey) {
		t.Errorf("git-gate does not log the host key %s it trusted:\n%s", hostKey, logs)
	}
	if err := c.StopContainer(ctx, up, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(stdin, "go")
	stdin.Close()
	err = cmd.Wait()
	t.Logf("run: %v\n%s\n--- stderr ---\n%s", err, out, stderr.String())
	if err != nil || !strings.Contains(out.String(), "\nend\n") {
		t.Fatalf("the script did not finish: %v", err)
	}
	cs := cases(out.String())
	head0 := value(out.String(), "head0")
	if o := cs["clone"]; !o.ok || o.rc != 0 || len(head0) != 40 {
		t.Fatalf("clone with the upstream up: %+v head %q", o, head0)
	}
	// The mirror serves what it has when upstream is gone.
	for _, n := range []string{"fetch", "reclone"} {
		if o := cs[n]; !o.ok || o.rc != 0 {
			t.Errorf("%s from the gate's mirror with upstream down: %+v", n, o)
		}
	}
	if got := value(out.String(), "reclone-head"); got != head0 {
		t.Errorf("clone from the mirror: HEAD %q, want %q", got, head0)
	}
	// A push the policy allows fails clearly when upstream is unreachable.
	if o := cs["push-down"]; !o.ok || o.rc == 0 || !strings.Contains(o.out, "remote: git-gate: the push to upstream "+url+" failed; nothing was stored") {
		t.Errorf("push with upstream down: %+v", o)
	}
	evs := gateLog(t, e, inst)
	var fetchOK, fetchErr bool
	for _, ev := range evs {
		fetchOK = fetchOK || (ev.Kind == "fetch" && ev.Repo == "app" && ev.Verdict == "allow")
		fetchErr = fetchErr || (ev.Kind == "fetch" && ev.Repo == "app" && ev.Verdict == "error" && ev.Reason != "")
	}
	if !fetchOK || !fetchErr {
		t.Errorf("want fetch events allow (upstream up) and error (down), got allow=%v error=%v: %+v", fetchOK, fetchErr, evs)
	}
	if ev, ok := findPush(evs, "refs/heads/agent/down", "error"); !ok || ev.Repo != "app" || !strings.Contains(ev.Reason, "push to upstream failed") {
		t.Errorf("no push error event for agent/down: %+v", evs)
	}
	e2etest.AssertGone(t, c, e.State, inst)

	// A fresh bottle: an empty mirror and no upstream.
	e2, inst2 := newEnv(t, m)
	r := e2.Run(ctx, "run", "claude", "--", "sh", "-c", prelude+"try clone git clone -q "+url+" app\necho end\n")
	t.Log(r)
	o := cases(r.Stdout)["clone"]
	if r.Code != 0 || !o.ok || o.rc == 0 || !strings.Contains(o.out, "remote: git-gate: upstream "+url+" unreachable and nothing cached") {
		t.Errorf("clone with upstream down and nothing cached: %+v", o)
	}
	e2etest.AssertGone(t, c, e2.State, inst2)
}

// A pinned host key that is not the upstream's: the gate never talks to
// it (ssh stops before authenticating) and the clone fails naming the
// upstream and the host key check.
func TestWrongPinnedHostKey(t *testing.T) {
	c := e2etest.Engine(t)
	e2etest.Images(t)
	t.Parallel()
	net := e2etest.Network(t, c)
	key, pub, _ := deployKey(t)
	up, hostKey := upstream(t, c, net, pub)
	_, other, _ := deployKey(t)
	f := strings.Fields(other)
	wrong := "upstream.test " + f[0] + " " + f[1]
	if strings.Contains(wrong, hostKey) {
		t.Fatal("the other key is the host key")
	}
	e, inst := newEnv(t, manifest(net, key, wrong))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	r := e.Run(ctx, "run", "claude", "--", "sh", "-c", prelude+"try clone git clone -q "+upstreamURL+" app\necho end\n")
	t.Log(r)
	o := cases(r.Stdout)["clone"]
	if r.Code != 0 || !o.ok || o.rc == 0 ||
		!strings.Contains(o.out, "remote: git-gate: upstream "+upstreamURL+" unreachable and nothing cached") ||
		!strings.Contains(o.out, "Host key verification failed") {
		t.Errorf("clone with a wrong pinned host key: %+v", o)
	}
	logs, err := c.Logs(ctx, up)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(logs), "Accepted publickey") {
		t.Errorf("the gate authenticated to an upstream whose host key does not match the pin:\n%s", logs)
	}
	e2etest.AssertGone(t, c, e.State, inst)
}
