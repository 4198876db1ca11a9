package audit

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// A sidecar's own log keeps the promises of the decision log: no known
// credential, in the message or any attribute, whatever its kind, and no
// hidden character raw.
func TestHandlerRedactsAndEscapes(t *testing.T) {
	var buf bytes.Buffer
	l := New(&bytes.Buffer{}, "inst", "egress")
	log := slog.New(l.Handler(slog.NewTextHandler(&buf, nil))).With("early", "x")
	l.SetSecrets([]string{secret}) // after the logger was made: still applies
	log.Info("refused "+secret, "method", secret, "err", errors.New("dial "+secret), "n", 3,
		slog.Group("req", "host", secret+".evil.test", "path", "/\u202e"))
	out := buf.String()
	if f := leaks(out); f != "" {
		t.Fatalf("the line holds the secret (%s): %s", f, out)
	}
	if strings.Contains(out, "\u202e") || !strings.Contains(out, `\u202e`) {
		t.Errorf("the bidi override is not escaped: %q", out)
	}
	for _, want := range []string{"n=3", "early=x", "method=" + Redacted} {
		if !strings.Contains(out, want) {
			t.Errorf("the line lacks %s: %s", want, out)
		}
	}
}
