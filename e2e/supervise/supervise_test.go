// Package supervise holds the black-box scenarios of the supervise sidecar:
// the agent asks through the MCP tools, a person decides on the host with
// `claude-bottle supervise`, and the running bottle changes.
package supervise

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/claude-bottle/claude-bottle/e2e/e2etest"
	"github.com/claude-bottle/claude-bottle/internal/audit"
	"github.com/claude-bottle/claude-bottle/internal/docker"
	"github.com/claude-bottle/claude-bottle/internal/plan"
)

// target is the fixture host no manifest allows: the agent must ask for it.
const target = "allowed-later.test"

var idRE = regexp.MustCompile(`r-[0-9]{8}-[0-9]{6}-[0-9a-f]{8}`)

// fixtures starts the test's "internet": a network holding an HTTP fixture
// reachable as allowed-later.test, and returns the network's name.
func fixtures(t *testing.T, c *docker.Client) string {
	t.Helper()
	net := e2etest.Network(t, c)
	e2etest.Start(t, c, docker.ContainerSpec{
		Image: e2etest.GoImage(t, c, "httpfix"), Network: net, Aliases: []string{target},
		Env: []string{"FIXTURE_NAME=later"},
	})
	return net
}

// agentImage is the agent image with the supervise-client MCP client in
// /usr/local/bin. The base image's ID is part of the Dockerfile so a rebuilt
// base is never served from a stale derived image.
func agentImage(t *testing.T, c *docker.Client) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "app")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./e2e/fixtures/supervise-client")
	cmd.Dir = e2etest.Root()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build supervise-client: %v\n%s", err, out)
	}
	app, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	refs, err := plan.Refs(map[string]string{"CLAUDE_BOTTLE_IMAGE_TAG": os.Getenv("CLAUDE_BOTTLE_IMAGE_TAG")})
	if err != nil {
		t.Fatal(err)
	}
	base, ok, err := c.InspectImage(context.Background(), refs.Agent)
	if err != nil || !ok {
		t.Fatalf("agent image %s: %v (exists %v)", refs.Agent, err, ok)
	}
	df := fmt.Sprintf("FROM %s\n# base %s\nCOPY app /usr/local/bin/supervise-client\n", refs.Agent, base.ID)
	return e2etest.DockerfileImage(t, c, "claude-bottle-fixture-supervise-agent:test", df, map[string][]byte{"app": app})
}

// startAgent starts the binary with args (a `run` whose agent talks on
// stdio) and returns the agent's stdin and output, and wait, which returns
// how the command ended. At cleanup stdin is closed and a run still going
// is interrupted, so it removes the bottle (killed, it would leave it
// behind).
func startAgent(t *testing.T, ctx context.Context, e *e2etest.Env, args ...string) (stdin io.WriteCloser, out *agentOutput, wait func() error) {
	t.Helper()
	cmd := e.Command(ctx, args...)
	stdin, _ = cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var err error
	go func() { err = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Signal(os.Interrupt)
			select {
			case <-done:
			case <-time.After(time.Minute):
				cmd.Process.Kill()
				<-done
			}
		}
		if t.Failed() {
			t.Logf("run stderr:\n%s", stderr.String())
		}
	})
	return stdin, &agentOutput{t: t, ch: lines(stdout), got: map[string]string{}}, func() error { <-done; return err }
}

// lines delivers r's lines on a channel, logging each.
func lines(r io.Reader) <-chan string {
	ch := make(chan string, 100)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
}

// agentOutput collects the agent's "KEY payload" lines.
type agentOutput struct {
	t   *testing.T
	ch  <-chan string
	got map[string]string
}

// wait reads lines until one starting with key arrives and returns its
// payload; it fails the test if the output ends first or takes minutes.
func (o *agentOutput) wait(key string) string {
	o.t.Helper()
	if v, ok := o.got[key]; ok {
		return v
	}
	deadline := time.After(3 * time.Minute)
	for {
		select {
		case l, ok := <-o.ch:
			if !ok {
				o.t.Fatalf("agent output ended before %s (got %v)", key, o.got)
			}
			k, v, _ := strings.Cut(l, " ")
			o.got[k] = v
			if k == key {
				return v
			}
		case <-deadline:
			o.t.Fatalf("no %s line from the agent within 3 minutes", key)
		}
	}
}

// toolResult is one line printed by supervise-client for a tool call.
type toolResult struct {
	IsError    bool           `json:"is_error"`
	Text       string         `json:"text"`
	Structured map[string]any `json:"structured"`
}

func parseResult(t *testing.T, key, s string) toolResult {
	t.Helper()
	var r toolResult
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatalf("%s: not a tool result: %q (%v)", key, s, err)
	}
	return r
}

// events reads `claude-bottle logs INSTANCE` after the bottle is gone.
func events(t *testing.T, ctx context.Context, e *e2etest.Env, inst string) []audit.Event {
	t.Helper()
	r := e.Run(ctx, "logs", inst)
	if r.Code != 0 {
		t.Fatalf("logs %s: %s", inst, r)
	}
	var evs []audit.Event
	sc := bufio.NewScanner(strings.NewReader(r.Stdout))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var ev audit.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Errorf("log line is not an event: %q", sc.Text())
			continue
		}
		evs = append(evs, ev)
	}
	return evs
}

// find returns the first event matching, or nil.
func find(evs []audit.Event, match func(audit.Event) bool) *audit.Event {
	for i := range evs {
		if match(evs[i]) {
			return &evs[i]
		}
	}
	return nil
}

// The MCP client in the agent files each kind of request; the person on the
// host approves one, denies one, and leaves one unanswered, and the agent
// learns each outcome through get_request. The approved host is reachable
// at once, in the same bottle. Malformed requests are tool errors that say
// what is wrong, and the agent has no way to the decisions.
func TestAskDecideApplyLive(t *testing.T) {
	t.Parallel()
	c := e2etest.Engine(t)
	e2etest.Images(t)
	net := fixtures(t, c)
	img := agentImage(t, c)
	e := e2etest.NewEnv(t, fmt.Sprintf(`
agents:
  probe:
    bottle: box
bottles:
  box:
    supervise: true
    egress:
      networks: [%s]
`, net))
	inst := e2etest.Unique("cbt-sup")
	e.Vars["CLAUDE_BOTTLE_CONTAINER"] = inst
	e.Vars["CLAUDE_BOTTLE_IMAGE"] = img

	const curl = `curl -s -m 10 -o /dev/null -w '%{http_code}' http://` + target + `:8080/`
	script := strings.Join([]string{
		`c=supervise-client`,
		`ids() { grep -oE 'r-[0-9]{8}-[0-9]{6}-[0-9a-f]{8}' | head -1; }`,
		// printf, not echo: dash's echo would eat the JSON's backslashes.
		`say() { printf '%s %s\n' "$1" "$2"; }`,
		`say TOOLS "$($c list-tools)"`,
		`say BEFORE "$(` + curl + `)"`,
		`printf 'FROM claude-bottle-agent:local\nRUN apt-get update && apt-get install -y jq\n' >/tmp/Dockerfile`,
		`eg=$($c request-egress ` + target + ` 8080 'fetch the page the task names'); say EGRESS "$eg"`,
		`rt=$($c request-route fixture-api https://api.fixture.test/v1 'the task needs the fixture API'); say ROUTE "$rt"`,
		`df=$($c propose-dockerfile /tmp/Dockerfile 'jq would help parse the output'); say DOCKERFILE "$df"`,
		`say BADHOST "$($c request-egress 'bad_host!.fixture.test' 443 'needed')"`,
		`say IPHOST "$($c request-egress 10.1.2.3 443 'needed')"`,
		`say LONGREASON "$($c request-egress long.fixture.test 443 "$(head -c 1001 /dev/zero | tr '\0' a)")"`,
		// An escape sequence could rewrite the reviewer's terminal.
		`say ESCREASON "$($c request-egress esc.fixture.test 443 "$(printf 'ok\033[2Jhidden')")"`,
		`say BADROUTE "$($c request-route fixture-api http://api.fixture.test 'plain http')"`,
		`say NODOCKERFROM "$(echo 'RUN true' >/tmp/bad; $c propose-dockerfile /tmp/bad 'no FROM')"`,
		`say LIST "$($c list)"`,
		// The host decides now; get waits for it.
		`say GET-EGRESS "$($c get $(printf %s "$eg" | ids) 60)"`,
		// One attempt right away, then poll: the egress sidecar reloads its
		// policy within a second of the host writing it.
		`say AFTER-FIRST "$(` + curl + `)"`,
		`for i in $(seq 40); do code=$(` + curl + `); [ "$code" = 200 ] && break; sleep 0.25; done; echo "AFTER $code"`,
		`say ALLOWLIST "$(grep -c '^` + target + `:8080 ' /etc/claude-bottle/current-config/allowlist.txt)"`,
		`say GET-ROUTE "$($c get $(printf %s "$rt" | ids) 60)"`,
		`say GET-DOCKERFILE "$($c get $(printf %s "$df" | ids) 2)"`,
		`say UNKNOWN "$($c get r-20200101-000000-00000000 0)"`,
		`say MOUNTS "$(grep -c -e supervise -e decisions /proc/self/mountinfo)"`,
		`ls /var/lib/supervise >/dev/null 2>&1 && echo "SUPERVISE-DIR visible" || echo "SUPERVISE-DIR absent"`,
		`echo WAITING; read x; echo "BYE $x"`,
	}, "\n")

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	stdin, out, wait := startAgent(t, ctx, e, "run", "probe", "--", "sh", "-c", script)

	// The tools, each described for the model.
	var tools struct {
		Tools []struct{ Name, Description string }
	}
	if err := json.Unmarshal([]byte(out.wait("TOOLS")), &tools); err != nil {
		t.Fatalf("list-tools: %v", err)
	}
	desc := map[string]string{}
	for _, tl := range tools.Tools {
		desc[tl.Name] = tl.Description
	}
	for _, name := range []string{"request_egress", "request_route", "propose_dockerfile", "list_requests", "get_request"} {
		if len(desc[name]) < 40 {
			t.Errorf("tool %s missing or barely described: %q", name, desc[name])
		}
	}
	if b := out.wait("BEFORE"); b != "403" {
		t.Errorf("before approval the proxy answered %q, want 403", b)
	}

	// Each kind is filed and pending.
	ids := map[string]string{}
	for _, k := range []string{"EGRESS", "ROUTE", "DOCKERFILE"} {
		r := parseResult(t, k, out.wait(k))
		id, _ := r.Structured["id"].(string)
		if r.IsError || r.Structured["status"] != "pending" || !idRE.MatchString(id) {
			t.Fatalf("%s: want a pending request with an id, got %+v", k, r)
		}
		ids[k] = id
	}

	// Malformed requests: tool errors that say what is wrong.
	for key, want := range map[string]string{
		"BADHOST":      "is not a lowercase DNS name",
		"IPHOST":       "is an IP address",
		"LONGREASON":   "at most 1000",
		"ESCREASON":    "a control character",
		"BADROUTE":     "is not https",
		"NODOCKERFROM": "no FROM instruction",
	} {
		r := parseResult(t, key, out.wait(key))
		if !r.IsError || !strings.Contains(r.Text, want) {
			t.Errorf("%s: want a tool error mentioning %q, got %+v", key, want, r)
		}
	}

	var list struct {
		Requests []struct{ ID, Kind, Status string }
	}
	lr := parseResult(t, "LIST", out.wait("LIST"))
	if b, err := json.Marshal(lr.Structured); err == nil {
		json.Unmarshal(b, &list)
	}
	if len(list.Requests) != 3 {
		t.Errorf("list_requests: want the 3 filed requests (refused ones are not filed), got %+v", lr)
	}
	for _, r := range list.Requests {
		if r.Status != "pending" {
			t.Errorf("list_requests: %s is %s before any decision", r.ID, r.Status)
		}
	}

	// The person on the host sees all three and decides two.
	ps := e.SuperviseList(ctx)
	kinds := map[string]string{}
	for _, p := range ps {
		if p.Instance == inst {
			kinds[p.Request.ID] = p.Request.Kind
		}
	}
	if kinds[ids["EGRESS"]] != "egress" || kinds[ids["ROUTE"]] != "route" || kinds[ids["DOCKERFILE"]] != "dockerfile" {
		t.Errorf("host's pending list: %+v, want the three requests of %s", ps, inst)
	}
	if r := e.Run(ctx, "supervise", "approve", ids["EGRESS"]); r.Code != 0 || !strings.Contains(r.Stdout, "approved "+ids["EGRESS"]) {
		t.Fatalf("approve: %s", r)
	}
	if r := e.Run(ctx, "supervise", "deny", ids["ROUTE"], "-m", "use the public mirror instead"); r.Code != 0 {
		t.Fatalf("deny: %s", r)
	}
	if r := e.Run(ctx, "supervise", "deny", ids["EGRESS"]); r.Code == 0 {
		t.Errorf("a decided request was decided again: %s", r)
	}

	// The agent learns the decisions; the approved host works live.
	if r := parseResult(t, "GET-EGRESS", out.wait("GET-EGRESS")); r.IsError || r.Structured["status"] != "approved" {
		t.Errorf("get_request after approval: %+v", r)
	}
	t.Logf("first fetch right after learning of the approval: %s", out.wait("AFTER-FIRST"))
	if a := out.wait("AFTER"); a != "200" {
		t.Errorf("after approval the fixture answered %q, want 200 without restarting the bottle", a)
	}
	if n := out.wait("ALLOWLIST"); n != "1" {
		t.Errorf("current-config/allowlist.txt lists %s:8080 %s times, want 1", target, n)
	}
	if r := parseResult(t, "GET-ROUTE", out.wait("GET-ROUTE")); r.IsError || r.Structured["status"] != "denied" || r.Structured["message"] != "use the public mirror instead" {
		t.Errorf("get_request after deny: %+v", r)
	}
	// Nobody answers the Dockerfile: the wait ends, still pending.
	if r := parseResult(t, "GET-DOCKERFILE", out.wait("GET-DOCKERFILE")); r.IsError || r.Structured["status"] != "pending" {
		t.Errorf("get_request of an unanswered request after its wait: %+v", r)
	}
	if r := parseResult(t, "UNKNOWN", out.wait("UNKNOWN")); !r.IsError || !strings.Contains(r.Text, "no request") {
		t.Errorf("get_request of an unknown id: %+v", r)
	}

	// The bottle has no way to the decisions: nothing of supervise's state
	// is mounted in the agent.
	if n := out.wait("MOUNTS"); n != "0" {
		t.Errorf("%s mounts in the agent mention supervise or decisions", n)
	}
	if v := out.wait("SUPERVISE-DIR"); v != "absent" {
		t.Errorf("/var/lib/supervise is %s in the agent", v)
	}
	// While it runs, the host still shows the unanswered one as pending,
	// and --all shows the decisions.
	out.wait("WAITING")
	ps = e.SuperviseList(ctx)
	if len(ps) != 1 || ps[0].Request.ID != ids["DOCKERFILE"] {
		t.Errorf("pending after two decisions: %+v, want only %s", ps, ids["DOCKERFILE"])
	}
	verdicts := map[string]string{}
	for _, p := range e.SuperviseList(ctx, "--all") {
		if p.Decision != nil {
			verdicts[p.Request.ID] = p.Decision.Verdict
		}
	}
	if verdicts[ids["EGRESS"]] != "approved" || verdicts[ids["ROUTE"]] != "denied" || len(verdicts) != 2 {
		t.Errorf("supervise --all decisions: %v", verdicts)
	}

	fmt.Fprintln(stdin, "go")
	stdin.Close()
	if out.wait("BYE") != "go" {
		t.Error("agent did not finish")
	}
	for range out.ch {
	}
	if err := wait(); err != nil {
		t.Fatalf("run: %v", err)
	}

	// The story is in the bottle's log. (The host's decisions are not: the
	// host writes them into the stage directory, which teardown removes;
	// see the package's report.)
	evs := events(t, ctx, e, inst)
	for what, match := range map[string]func(audit.Event) bool{
		"egress deny of " + target: func(ev audit.Event) bool {
			return ev.Sidecar == "egress" && ev.Host == target && ev.Verdict == "deny"
		},
		"egress allow of " + target: func(ev audit.Event) bool {
			return ev.Sidecar == "egress" && ev.Host == target && ev.Verdict == "allow"
		},
		"filed egress request": func(ev audit.Event) bool {
			return ev.Sidecar == "supervise" && ev.Kind == "proposal" && ev.ID == ids["EGRESS"] && ev.Verdict == "pending"
		},
		"refused malformed request": func(ev audit.Event) bool {
			return ev.Sidecar == "supervise" && ev.Kind == "proposal" && ev.Verdict == "deny" && ev.Host == "10.1.2.3"
		},
	} {
		if find(evs, match) == nil {
			t.Errorf("log lacks %s", what)
		}
	}
	if t.Failed() {
		b, _ := json.MarshalIndent(evs, "", " ")
		t.Logf("events:\n%s", b)
	}
	e2etest.AssertGone(t, c, e.State, inst)
}

// The showcase, with the real Claude Code: a scripted model makes it fetch
// a host the proxy refuses, ask for it through the supervise MCP server and
// wait; the person on the host approves; the same Claude Code, in the same
// bottle, fetches it again and gets 200.
func TestShowcaseRealClaudeCode(t *testing.T) {
	t.Parallel()
	c := e2etest.Engine(t)
	e2etest.Images(t)
	net := fixtures(t, c)
	const modelKey = "sk-e2e-supervise-model-0123456789"
	e2etest.Start(t, c, docker.ContainerSpec{
		Image: e2etest.GoImage(t, c, "supervise-model"), Network: net, Aliases: []string{"model.test"},
		Env: []string{"MODEL_KEY=" + modelKey},
	})
	e := e2etest.NewEnv(t, fmt.Sprintf(`
agents:
  claude:
    bottle: show
bottles:
  show:
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
            - env: E2E_MODEL_KEY
              header: x-api-key
              format: "{token}"
`, net))
	inst := e2etest.Unique("cbt-show")
	e.Vars["CLAUDE_BOTTLE_CONTAINER"] = inst
	e.Vars["E2E_MODEL_KEY"] = modelKey

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	run := e.Start(ctx, "run", "claude", "--", "claude", "-p", "fetch "+target,
		"--dangerously-skip-permissions", "--mcp-config", "/etc/claude-bottle/current-config/mcp.json")
	defer func() {
		if t.Failed() {
			r := e.Run(context.Background(), "logs", inst)
			t.Logf("logs of %s:\n%s", inst, r.Stdout)
		}
	}()

	req := e.AwaitRequest(ctx, run, inst, 3*time.Minute)
	var agentID string
	if req.Request.Kind != "egress" || req.Request.Egress == nil || req.Request.Egress.Host != target || req.Request.Egress.Port != 8080 || !strings.Contains(req.Request.Reason, "403") {
		t.Errorf("the model's request: %+v %+v, want egress %s:8080 with a reason citing the 403", req.Request, req.Request.Egress, target)
	}
	agentID = agentContainer(t, c, inst)
	if r := e.Run(ctx, "supervise", "approve", req.Request.ID, "-m", "go ahead"); r.Code != 0 {
		t.Fatalf("approve: %s", r)
	}
	// Same bottle: the agent container that asked is the one still running.
	if id := agentContainer(t, c, inst); id != agentID {
		t.Errorf("agent container changed from %s to %s", agentID, id)
	}

	err := run.Wait(ctx)
	if ctx.Err() != nil {
		t.Fatalf("run did not finish\nstdout:\n%s\nstderr:\n%s", run.Stdout(), run.Stderr())
	}
	t.Logf("claude printed: %s", strings.TrimSpace(run.Stdout()))
	if err != nil || !strings.Contains(run.Stdout(), "SHOWCASE-DONE 200") {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, run.Stdout(), run.Stderr())
	}

	evs := events(t, ctx, e, inst)
	deny := find(evs, func(ev audit.Event) bool {
		return ev.Sidecar == "egress" && ev.Host == target && ev.Verdict == "deny"
	})
	filed := find(evs, func(ev audit.Event) bool {
		return ev.Sidecar == "supervise" && ev.Kind == "proposal" && ev.ID == req.Request.ID && ev.Verdict == "pending"
	})
	allow := find(evs, func(ev audit.Event) bool {
		return ev.Sidecar == "egress" && ev.Host == target && ev.Verdict == "allow"
	})
	model := find(evs, func(ev audit.Event) bool {
		return ev.Sidecar == "cred-proxy" && ev.Route == "model"
	})
	switch {
	case deny == nil || filed == nil || allow == nil || model == nil:
		t.Errorf("log lacks part of the story: deny %v, proposal %v, allow %v, model call %v", deny != nil, filed != nil, allow != nil, model != nil)
	case !deny.Time.Before(filed.Time) || !filed.Time.Before(allow.Time):
		t.Errorf("log out of order: deny %v, proposal %v, allow %v", deny.Time, filed.Time, allow.Time)
	}
	e2etest.AssertGone(t, c, e.State, inst)
}

// agentContainer is the ID of the instance's one running agent container.
func agentContainer(t *testing.T, c *docker.Client, inst string) string {
	t.Helper()
	cs, err := c.ListContainers(context.Background(), map[string]string{plan.LabelInstance: inst, plan.LabelRole: plan.RoleAgent}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 {
		t.Fatalf("%d running agent containers for %s, want 1", len(cs), inst)
	}
	return cs[0].ID
}
