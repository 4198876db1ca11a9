package audit

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const secret = "sk-test-Secret0123456789abcdef"

// leaks reports which form of secret s still holds.
func leaks(s string) string {
	low := strings.ToLower(s)
	b64 := base64.StdEncoding.EncodeToString([]byte("user:" + secret))
	forms := map[string]string{
		"raw": secret, "hex": hex.EncodeToString([]byte(secret)),
		"base64": base64.StdEncoding.EncodeToString([]byte(secret))[:36], "basic": b64[8:40],
		"base64url": base64.RawURLEncoding.EncodeToString([]byte(secret))[:36],
	}
	for name, f := range forms {
		if strings.Contains(low, strings.ToLower(f)) {
			return name
		}
	}
	if strings.Contains(strings.ReplaceAll(low, ".", ""), strings.ToLower(secret)) {
		return "split"
	}
	return ""
}

func TestRedactForms(t *testing.T) {
	r := NewRedactor([]string{secret, "short"})
	pct := func(s string) string {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			fmt.Fprintf(&b, "%%%02X", s[i])
		}
		return b.String()
	}
	for name, in := range map[string]string{
		"raw":            "GET " + secret,
		"upper":          strings.ToUpper(secret),
		"method":         secret,
		"hex":            "/x/" + hex.EncodeToString([]byte(secret)),
		"hex-upper":      strings.ToUpper(hex.EncodeToString([]byte(secret))),
		"base64":         base64.StdEncoding.EncodeToString([]byte(secret)),
		"basic-auth":     "Basic " + base64.StdEncoding.EncodeToString([]byte("user:"+secret)),
		"base64url-off2": base64.RawURLEncoding.EncodeToString([]byte("ab" + secret + "?")),
		"percent":        "/p/" + pct(secret),
		"double-percent": "/p/" + strings.ReplaceAll(pct(secret), "%", "%25"),
		"query-escape":   "q=" + url.QueryEscape("x y "+secret),
		"split-labels":   secret[:5] + "." + secret[5:] + ".evil.test",
		"twice":          secret + " and " + pct(secret),
	} {
		got := r.Redact(in)
		if f := leaks(got); f != "" {
			t.Errorf("%s: %q still holds the secret (%s): %q", name, in, f, got)
		}
		if !strings.Contains(got, Redacted) {
			t.Errorf("%s: %q does not say it was redacted: %q", name, in, got)
		}
	}
	for _, in := range []string{"GET", "/ordinary/path?q=1", "short", "evil.test", ""} {
		if got := r.Redact(in); got != in {
			t.Errorf("Redact(%q) = %q, want it unchanged", in, got)
		}
	}
	if got := r.Redact("a " + secret + " b"); got != "a "+Redacted+" b" {
		t.Errorf("only the secret goes: %q", got)
	}
	if NewRedactor([]string{"short", ""}) != nil {
		t.Error("a redactor of nothing should be nil")
	}
}

// Every string field of an event is redacted, including ones added later:
// the test fills each field it finds by reflection.
func TestWriteRedactsEveryField(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, "inst", "egress")
	l.SetSecrets([]string{secret})
	var e Event
	v := reflect.ValueOf(&e).Elem()
	n := 0
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.String {
			f.SetString(v.Type().Field(i).Name + ":" + secret)
			n++
		}
	}
	if n < 15 {
		t.Fatalf("found only %d string fields", n)
	}
	if err := l.Write(e); err != nil {
		t.Fatal(err)
	}
	if f := leaks(buf.String()); f != "" {
		t.Fatalf("the line holds the secret (%s): %s", f, buf.String())
	}
	if c := strings.Count(buf.String(), Redacted); c != n {
		t.Errorf("%d fields redacted, want %d: %s", c, n, buf.String())
	}
}

// A line shows every character as itself: no raw bidi or C1 control reaches
// the file, and the line still decodes to what was written.
func TestWriteEscapesHidden(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, "inst", "egress")
	host := "evil\u202etxt.test\u009b31m"
	if err := l.Write(Event{Kind: "dns", Host: host, Path: "/\u200b\U000E0041"}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"\u202e", "\u009b", "\u200b", "\U000E0041"} {
		if strings.Contains(buf.String(), r) {
			t.Errorf("the line holds %q raw: %q", r, buf.String())
		}
	}
	var e Event
	if err := json.Unmarshal(buf.Bytes(), &e); err != nil || e.Host != host {
		t.Fatalf("round trip: %v %q", err, e.Host)
	}
}

// The bound: past it, events are counted in SIDECAR.dropped.json, one
// log-full line says so, a restart goes on counting, and nothing more is
// written however many events come.
func TestOpenBoundsAndCounts(t *testing.T) {
	dir := t.TempDir()
	l, c, err := Open(dir, "inst", "egress")
	if err != nil {
		t.Fatal(err)
	}
	l.SetLimit(4096)
	for i := range 1000 {
		if err := l.Write(Event{Kind: "dns", Host: fmt.Sprintf("q%d.flood.test", i), Verdict: "deny"}); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "egress.jsonl")
	info, _ := os.Stat(path)
	if info.Size() > 4096+512 {
		t.Errorf("the log grew to %d bytes past its bound of 4096", info.Size())
	}
	kept := l.Dropped()
	if kept < 950 {
		t.Errorf("dropped %d of 1000", kept)
	}
	// A killed sidecar never closes its log: the count is on disk soon
	// after the last drop all the same.
	time.Sleep(3 * dropFlush)
	if db, err := os.ReadFile(filepath.Join(dir, DroppedFile("egress"))); err != nil || !strings.Contains(string(db), fmt.Sprintf(`"events":%d`, kept)) {
		t.Errorf("before Close the dropped file says %s (%v), want %d events", db, err, kept)
	}
	c.Close()
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), `"kind":"log-full"`) || strings.Count(string(b), "log-full") != 1 {
		t.Errorf("no single log-full line:\n%s", b)
	}
	var d Dropped
	db, err := os.ReadFile(filepath.Join(dir, DroppedFile("egress")))
	if err != nil || json.Unmarshal(db, &d) != nil || d.Events != kept || d.Sidecar != "egress" || d.First.IsZero() {
		t.Fatalf("dropped file: %v %s", err, db)
	}

	// A restarted sidecar: the file is still full, the count goes on.
	l2, c2, err := Open(dir, "inst", "egress")
	if err != nil {
		t.Fatal(err)
	}
	l2.SetLimit(4096)
	l2.now = func() time.Time { return time.Now().Add(time.Hour) }
	for range 10 {
		l2.Write(Event{Kind: "dns", Host: "again.test"})
	}
	c2.Close()
	db, _ = os.ReadFile(filepath.Join(dir, DroppedFile("egress")))
	if json.Unmarshal(db, &d) != nil || d.Events != kept+10 {
		t.Errorf("after a restart the count is %s, want %d", db, kept+10)
	}
	b2, _ := os.ReadFile(path)
	if len(b2) != len(b) {
		t.Errorf("a full log grew after a restart: %d -> %d bytes", len(b), len(b2))
	}
}

func TestOpenDefaultBound(t *testing.T) {
	l, c, err := Open(t.TempDir(), "inst", "egress")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if l.max != DefaultMaxBytes || DefaultMaxBytes <= 0 {
		t.Errorf("Open's bound is %d", l.max)
	}
}
