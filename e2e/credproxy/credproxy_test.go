// Package credproxy holds the black-box scenarios of the cred-proxy
// sidecar: the real tokens stay outside the agent's container, and the real
// Claude Code works through the proxy against a fake Messages API
// (e2e/fixtures/fakeanthropic) on a fixture network.
//
// The route's upstream is plain http://api.fake.test:8080: the fixture's
// certificate is self-signed, and cred-proxy verifies upstream certificates.
// cred-proxy reaches it through a CONNECT tunnel to egress, so egress
// decides on the host and port but never sees the injected header (its
// secret canary would refuse it otherwise). The tokens are realistic in
// length, so the canary is armed with them throughout.
package credproxy

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-bottle/claude-bottle/e2e/e2etest"
	"github.com/claude-bottle/claude-bottle/internal/docker"
	"github.com/claude-bottle/claude-bottle/internal/plan"
)

const (
	// Tokens hold '/', '+' and '=' so that their base64 and
	// percent-encoded forms differ from the raw one.
	apiKey     = "sk-ant-e2e-T0k+/=A-0123456789abcdef"
	oauthToken = "sk-ant-oat-e2e-0At+/=B-fedcba9876543210"

	redacted = "[REDACTED by cred-proxy]"
	answer   = "FAKE-ANSWER-42"
)

// manifest is a bottle whose anthropic route goes to the fake on the
// fixture network net, with the token from $tokenVar sent as header:format.
// extraAllow is appended under egress.allow.
func manifest(net, tokenVar, header, format, extraAllow string) string {
	networks := ""
	if net != "" {
		networks = "      networks: [" + net + "]\n"
	}
	return `
agents:
  claude:
    bottle: box
bottles:
  box:
    egress:
` + networks + `      allow: [` + extraAllow + `]
    cred_proxy:
      routes:
        - name: anthropic
          path: /anthropic/
          upstream: http://api.fake.test:8080
          role: anthropic-base-url
          credentials:
            - env: ` + tokenVar + `
              header: ` + header + `
              format: "` + format + `"
`
}

// record is one request as the fake recorded it.
type record struct {
	Method      string   `json:"method"`
	Path        string   `json:"path"`
	Query       string   `json:"query"`
	Host        string   `json:"host"`
	Headers     []string `json:"headers"`
	OK          bool     `json:"ok"`
	Placeholder bool     `json:"placeholder"`
	Seen        []string `json:"seen"`
	Status      int      `json:"status"`
	Answer      string   `json:"answer"`
}

func (r record) has(header string) bool {
	for _, h := range r.Headers {
		if strings.EqualFold(h, header) {
			return true
		}
	}
	return false
}

// fake starts a fakeanthropic container on net reachable as alias.
func fake(t *testing.T, c *docker.Client, net, alias string, env ...string) string {
	t.Helper()
	return e2etest.Start(t, c, docker.ContainerSpec{
		Image:   e2etest.GoImage(t, c, "fakeanthropic"),
		Network: net,
		Aliases: []string{alias},
		Env:     append([]string{"NAME=" + alias}, env...),
	})
}

func records(t *testing.T, c *docker.Client, id string) []record {
	t.Helper()
	logs, err := c.Logs(context.Background(), id)
	if err != nil {
		t.Fatalf("fixture logs: %v", err)
	}
	var out []record
	for _, line := range strings.Split(string(logs), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("fixture record %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

// forms are the encodings of tok that cred-proxy scrubs, plus the raw one.
func forms(tok string) []string {
	return []string{
		tok,
		base64.StdEncoding.EncodeToString([]byte(tok)),
		base64.RawStdEncoding.EncodeToString([]byte(tok)),
		base64.URLEncoding.EncodeToString([]byte(tok)),
		base64.RawURLEncoding.EncodeToString([]byte(tok)),
		url.QueryEscape(tok),
		url.PathEscape(tok),
		strings.ToLower(url.QueryEscape(tok)),
	}
}

// assertNoToken fails if text holds any form of tok.
func assertNoToken(t *testing.T, where, text, tok string) {
	t.Helper()
	for _, f := range forms(tok) {
		if strings.Contains(text, f) {
			t.Errorf("%s holds the token (form %q)", where, f)
		}
	}
}

// splitLiteral writes tok as a shell expression that is never the token
// in the script's text (so a scan of the agent does not find the scan).
func splitLiteral(tok string) string {
	h := len(tok) / 2
	return fmt.Sprintf(`"$(printf %%s '%s' '%s')"`, tok[:h], tok[h:])
}

// auditLog reads the instance's decision log, asserting that no file in
// its log directory holds any form of tok, and returns the cred-proxy
// request events.
func auditLog(t *testing.T, e *e2etest.Env, inst, tok string) []map[string]any {
	t.Helper()
	dir := filepath.Join(e.State, "logs", inst)
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) == 0 {
		t.Fatalf("log directory %s: %v (%d files)", dir, err, len(ents))
	}
	for _, ent := range ents {
		b, err := os.ReadFile(filepath.Join(dir, ent.Name()))
		if err != nil {
			t.Fatal(err)
		}
		assertNoToken(t, "log file "+ent.Name(), string(b), tok)
	}
	b, err := os.ReadFile(filepath.Join(dir, "cred-proxy.jsonl"))
	if err != nil {
		t.Fatalf("cred-proxy decision log: %v", err)
	}
	var evs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("decision log line %q: %v", line, err)
		}
		if ev["kind"] == "request" {
			evs = append(evs, ev)
		}
	}
	return evs
}

// The real Claude Code, holding only the placeholder, gets its answer
// through cred-proxy: every request the fake Messages API saw carried the
// real token in the route's header and never the placeholder, and a scan
// of everything the agent can read finds the token nowhere.
func TestClaudeCodeThroughCredProxy(t *testing.T) {
	for _, tc := range []struct {
		name, header, format, token string
	}{
		{"api-key", "x-api-key", "{token}", apiKey},
		{"oauth", "Authorization", "Bearer {token}", oauthToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e2etest.Engine(t)
			e2etest.Images(t)
			net := e2etest.Network(t, c)
			value := strings.ReplaceAll(tc.format, "{token}", tc.token)
			fx := fake(t, c, net, "api.fake.test", "EXPECT_HEADER="+tc.header, "EXPECT_VALUE="+value, "WATCH="+tc.token)
			e := e2etest.NewEnv(t, manifest(net, "E2E_CLAUDE_TOKEN", tc.header, tc.format, ""))
			inst := e2etest.Unique("cbt-cred")
			e.Vars["CLAUDE_BOTTLE_CONTAINER"] = inst
			e.Vars["E2E_CLAUDE_TOKEN"] = tc.token

			b64 := base64.StdEncoding.EncodeToString([]byte(tc.token))
			script := strings.Join([]string{
				`claude -p "say hi" >/tmp/claude.out 2>&1; echo "claude-exit=$?"`,
				`sed 's/^/claude: /' /tmp/claude.out`,
				`T=` + splitLiteral(tc.token),
				`B=` + splitLiteral(b64),
				`for v in "$T" "$B"; do`,
				`  env | grep -qF "$v" && echo token-found-in-env`,
				`  for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do grep -qF "$v" "$f" 2>/dev/null && echo "token-found $f"; done`,
				`  grep -rlF "$v" /etc /home /tmp /workspace /var /root 2>/dev/null | sed 's/^/token-found /'`,
				`done`,
				// The scan works: it finds the placeholder where it is.
				`grep -qF ` + plan.Placeholder + ` /proc/self/environ && echo scan-control-ok`,
				`echo scan-done`,
			}, "\n")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			r := e.Run(ctx, "run", "claude", "--", "sh", "-c", script)
			t.Log(r)
			if r.Code != 0 {
				t.Fatalf("run exit %d", r.Code)
			}
			out := r.Stdout
			for _, want := range []string{"claude-exit=0", "claude: " + answer, "scan-control-ok", "scan-done"} {
				if !strings.Contains(out, want) {
					t.Errorf("agent output lacks %q", want)
				}
			}
			if strings.Contains(out, "token-found") {
				t.Errorf("the real token is visible inside the bottle")
			}
			assertNoToken(t, "run's stdout", r.Stdout, tc.token)
			assertNoToken(t, "run's stderr", r.Stderr, tc.token)

			recs := records(t, c, fx)
			t.Logf("the fake saw %d requests: %+v", len(recs), recs)
			var msgs int
			for _, rec := range recs {
				if rec.Path == "/v1/messages" {
					msgs++
				}
				if !rec.OK || rec.Placeholder || !rec.has(tc.header) {
					t.Errorf("fake saw a request without the real credential or with the placeholder: %+v", rec)
				}
				if tc.header == "Authorization" && rec.has("X-Api-Key") {
					t.Errorf("the agent's x-api-key (placeholder) reached the upstream: %+v", rec)
				}
			}
			if msgs == 0 {
				t.Errorf("fake saw no Messages API request: %+v", recs)
			}

			evs := auditLog(t, e, inst, tc.token)
			var allowed int
			for _, ev := range evs {
				if ev["route"] == "anthropic" && ev["verdict"] == "allow" && ev["status"] == float64(200) &&
					strings.HasPrefix(fmt.Sprint(ev["path"]), "/anthropic/v1/messages") {
					allowed++
				}
			}
			if allowed == 0 {
				t.Errorf("decision log has no allowed anthropic request: %v", evs)
			}
			e2etest.AssertGone(t, c, e.State, inst)
		})
	}
}

// One bottle, many attempts to get at the token through cred-proxy:
// echoed in every encoding, in informational (1xx) heads and trailers,
// agent-supplied credentials, the hop-by-hop trick, a redirect to another
// host, and path traversal.
func TestCredProxyKeepsTheToken(t *testing.T) {
	c := e2etest.Engine(t)
	e2etest.Images(t)
	net := e2etest.Network(t, c)
	watch := "WATCH=" + apiKey + ",attacker," + plan.Placeholder
	api := fake(t, c, net, "api.fake.test", "EXPECT_HEADER=x-api-key", "EXPECT_VALUE="+apiKey, watch)
	other := fake(t, c, net, "other.test", "EXPECT_HEADER=x-api-key", "EXPECT_VALUE="+apiKey, watch)
	// The agent may reach other.test itself, to follow the redirect.
	e := e2etest.NewEnv(t, manifest(net, "E2E_LEAK_TOKEN", "x-api-key", "{token}", "{host: other.test, port: 8080}"))
	inst := e2etest.Unique("cbt-cred")
	e.Vars["CLAUDE_BOTTLE_CONTAINER"] = inst
	e.Vars["E2E_LEAK_TOKEN"] = apiKey

	msg := `-H 'Content-Type: application/json' -d '{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'`
	code := `curl -s -o /dev/null -w '%{http_code}\n' `
	script := strings.Join([]string{
		`B=$ANTHROPIC_BASE_URL`,
		`curl -s -D - "$B/echo-token" | tr -d '\r' | sed 's/^/echo: /'`,
		// Every byte of a response with 1xx heads and trailers, as read
		// off the socket.
		`bash -c 'exec 3<>/dev/tcp/cred-proxy/8080; printf "GET /anthropic/echo-token-early HTTP/1.1\r\nHost: cred-proxy\r\nConnection: close\r\n\r\n" >&3; cat <&3' | tr -d '\r' | sed 's/^/early: /'`,
		`echo "attacker-$(` + code + `-H 'Authorization: Bearer attacker' -H 'x-api-key: attacker' ` + msg + ` "$B/v1/messages?case=agentcred")"`,
		`echo "hop-$(` + code + `-H 'Connection: x-api-key' -H 'x-api-key: attacker' ` + msg + ` "$B/v1/messages?case=hop")"`,
		`echo "placeholder-$(` + code + `-H "x-api-key: $ANTHROPIC_API_KEY" ` + msg + ` "$B/v1/messages?case=placeholder")"`,
		`echo "redirect-$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "$B/redirect")"`,
		`echo "follow-$(curl -s -L -w ' %{http_code} %{url_effective}' "$B/redirect" | tr -d '\n')"`,
		`echo "traversal-$(curl -s --path-as-is -o /dev/null -w '%{http_code}' http://cred-proxy:8080/anthropic/../other/)"`,
		`echo "encoded-traversal-$(curl -s --path-as-is -o /dev/null -w '%{http_code}' http://cred-proxy:8080/anthropic/%2e%2e/other/)"`,
		`echo done`,
	}, "\n")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r := e.Run(ctx, "run", "claude", "--", "sh", "-c", script)
	t.Log(r)
	if r.Code != 0 {
		t.Fatalf("run exit %d", r.Code)
	}
	out := r.Stdout
	assertNoToken(t, "the agent's view", out, apiKey)
	assertNoToken(t, "run's stderr", r.Stderr, apiKey)

	// The echo came back, redacted in the body and in headers.
	echoed := prefixed(out, "echo: ")
	for _, want := range []string{
		"HTTP/1.1 200", "X-Echo-Token: " + redacted, "X-Echo-Token-B64: " + redacted,
		"header=" + redacted, "raw=" + redacted, "b64=" + redacted, "b64url=" + redacted,
		"query=" + redacted, "path=" + redacted,
	} {
		if !strings.Contains(echoed, want) {
			t.Errorf("echo-token response lacks %q:\n%s", want, echoed)
		}
	}

	// Informational heads are dropped; body and both trailers are scrubbed.
	earlyText := prefixed(out, "early: ")
	for _, want := range []string{
		"HTTP/1.1 200", "early-body=" + redacted, "X-Echo-Trailer: " + redacted, "X-Echo-Late: " + redacted,
	} {
		if !strings.Contains(earlyText, want) {
			t.Errorf("echo-token-early response lacks %q:\n%s", want, earlyText)
		}
	}
	if strings.Contains(earlyText, "HTTP/1.1 1") {
		t.Errorf("an informational response reached the agent:\n%s", earlyText)
	}

	for _, want := range []string{
		"attacker-200", "hop-200", "placeholder-200",
		"redirect-302 http://other.test:8080/steal",
		"follow-fake other.test reached as other.test:8080 200 http://other.test:8080/steal",
		"traversal-400", "encoded-traversal-400", "done",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("agent output lacks %q", want)
		}
	}

	// What the upstream saw: the real token every time, never the
	// agent's credential or the placeholder.
	byCase := map[string]record{}
	var redirects int
	for _, rec := range records(t, c, api) {
		if !rec.OK || !rec.has("X-Api-Key") {
			t.Errorf("upstream request without the real token: %+v", rec)
		}
		if len(rec.Seen) != 1 || rec.Seen[0] != apiKey || rec.Placeholder {
			t.Errorf("upstream saw something besides the real token: %+v", rec)
		}
		if rec.has("X-Forwarded-For") || rec.has("Forwarded") {
			t.Errorf("upstream saw a forwarding header: %+v", rec)
		}
		if q, ok := strings.CutPrefix(rec.Query, "case="); ok {
			byCase[q] = rec
		}
		if rec.Path == "/redirect" {
			redirects++
		}
	}
	for _, k := range []string{"agentcred", "hop", "placeholder"} {
		if rec, ok := byCase[k]; !ok || rec.Status != 200 {
			t.Errorf("case %s: upstream record %+v (found %v)", k, rec, ok)
		}
	}
	if redirects != 2 {
		t.Errorf("upstream saw %d /redirect requests, want 2", redirects)
	}
	if byCase["hop"].OK != true {
		t.Errorf("the Connection: x-api-key trick removed the injected credential")
	}

	// The other host was reached once, by the agent following the
	// redirect itself, with no credential at all.
	orec := records(t, c, other)
	if len(orec) != 1 {
		t.Errorf("other.test saw %d requests, want exactly the agent's one: %+v", len(orec), orec)
	}
	for _, rec := range orec {
		if len(rec.Seen) != 0 || rec.Placeholder || rec.has("X-Api-Key") || rec.has("Authorization") || rec.Path != "/steal" {
			t.Errorf("other.test got a credential: %+v", rec)
		}
	}

	// The decision log: one line per request, with route and status.
	evs := auditLog(t, e, inst, apiKey)
	find := func(path string, status float64, verdict string) {
		t.Helper()
		for _, ev := range evs {
			if ev["path"] == path && ev["status"] == status && ev["verdict"] == verdict {
				return
			}
		}
		t.Errorf("decision log lacks %s %v %s: %v", path, status, verdict, evs)
	}
	find("/anthropic/echo-token", 200, "allow")
	find("/anthropic/v1/messages", 200, "allow")
	find("/anthropic/redirect", 302, "allow")
	find("/anthropic/../other/", 400, "deny")
	for _, ev := range evs {
		if ev["verdict"] == "allow" && (ev["route"] != "anthropic" || ev["host"] != "api.fake.test:8080") {
			t.Errorf("allowed request without its route or host: %v", ev)
		}
		if strings.Contains(fmt.Sprint(ev["path"]), "case=") {
			t.Errorf("decision log holds a query string: %v", ev)
		}
	}
	e2etest.AssertGone(t, c, e.State, inst)
}

// prefixed returns the lines of out that start with prefix, without it.
func prefixed(out, prefix string) string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if s, ok := strings.CutPrefix(l, prefix); ok {
			lines = append(lines, s)
		}
	}
	return strings.Join(lines, "\n")
}

// A route whose token is not set on the host stops the launch before the
// agent starts, naming the route and the variable, and leaves nothing.
func TestMissingTokenFailsTheLaunch(t *testing.T) {
	c := e2etest.Engine(t)
	e2etest.Images(t)
	const v = "E2E_CREDPROXY_UNSET_TOKEN"
	t.Setenv(v, "")
	os.Unsetenv(v) // unset, not empty; t.Setenv restores it
	e := e2etest.NewEnv(t, manifest("", v, "x-api-key", "{token}", ""))
	inst := e2etest.Unique("cbt-cred")
	e.Vars["CLAUDE_BOTTLE_CONTAINER"] = inst
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r := e.Run(ctx, "run", "claude", "--", "sh", "-c", "echo agent-started")
	t.Log(r)
	if r.Code == 0 {
		t.Errorf("run succeeded without the route's token")
	}
	if strings.Contains(r.Stdout, "agent-started") {
		t.Errorf("the agent started without the route's token")
	}
	for _, want := range []string{`route "anthropic"`, "$" + v} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("error lacks %q", want)
		}
	}
	e2etest.AssertGone(t, c, e.State, inst)
}
