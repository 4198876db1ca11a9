package egress

import (
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"
)

const secret = "s3cr3tT0kenValue42"

// encodings are the forms a secret may take in a URL, header or host.
var encodings = []struct {
	name string
	enc  func(string) string
}{
	{"raw", func(s string) string { return s }},
	{"base64 std", func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }},
	{"base64 std raw", func(s string) string { return base64.RawStdEncoding.EncodeToString([]byte(s)) }},
	{"base64 url", func(s string) string { return base64.URLEncoding.EncodeToString([]byte(s)) }},
	{"base64 url raw", func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }},
	{"base64 basic auth", func(s string) string { return base64.StdEncoding.EncodeToString([]byte("user:" + s)) }},
	{"base64 offset 1", func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte("x" + s + "y")) }},
	{"percent lower", func(s string) string { return percentAll(s, "%02x") }},
	{"percent upper", func(s string) string { return percentAll(s, "%02X") }},
	{"percent twice", func(s string) string { return url.QueryEscape(percentAll(s, "%02X")) }},
	{"hex lower", func(s string) string { return hex.EncodeToString([]byte(s)) }},
	{"case changed", strings.ToUpper},
	{"hex upper", func(s string) string { return strings.ToUpper(hex.EncodeToString([]byte(s))) }},
}

func percentAll(s, format string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteString("%")
		b.WriteString(hexByte(s[i], format))
	}
	return b.String()
}

func hexByte(c byte, format string) string {
	h := hex.EncodeToString([]byte{c})
	if format == "%02X" {
		return strings.ToUpper(h)
	}
	return h
}

func TestCanaryFind(t *testing.T) {
	c := newCanary([]string{secret, "short"})
	for _, e := range encodings {
		s := "prefix-" + e.enc(secret) + "-suffix"
		if _, ok := c.find(s); !ok {
			t.Errorf("%s: %q not found", e.name, s)
		}
	}
	for _, s := range []string{"", "short", "nothing to see", secret[:len(secret)-1]} {
		if enc, ok := c.find(s); ok {
			t.Errorf("%q: false positive (%s)", s, enc)
		}
	}
}

func TestCanaryFindHost(t *testing.T) {
	c := newCanary([]string{secret})
	for _, h := range []string{
		strings.ToLower(secret) + ".evil.test:443",
		strings.ToUpper(secret) + ".evil.test",
		"s3cr3tT0k.enValue42.evil.test",
		hex.EncodeToString([]byte(secret)) + ".evil.test",
	} {
		if _, ok := c.findHost(h); !ok {
			t.Errorf("%q not found", h)
		}
	}
	if _, ok := c.findHost("api.example.com:443"); ok {
		t.Error("false positive")
	}
	var none *canary
	if _, ok := none.findHost(secret); ok {
		t.Error("nil canary found something")
	}
}

// A token that is already lower case is caught in any other case too.
func TestCanaryLowercaseTokenOtherCase(t *testing.T) {
	c := newCanary([]string{"sk-canary-lower-0123456789"})
	for _, s := range []string{"q=SK-CANARY-LOWER-0123456789", "Sk-Canary-Lower-0123456789", "x sk-canary-lower-0123456789"} {
		if _, ok := c.find(s); !ok {
			t.Errorf("canary missed %q", s)
		}
	}
}

// A secret in a Host header is refused as a secret, not merely as a
// mismatch, so the agent is told never to send credentials.
func TestCanaryInHostHeader(t *testing.T) {
	h := newHarness(t, &Policy{Rules: []Rule{{Host: "allowed.test"}}}, []string{"sk-host-header-0123456789"}, map[string][][]string{"allowed.test": {{"93.184.216.34"}}})
	resp, body, _, _ := h.raw("GET http://allowed.test/ HTTP/1.1\r\nHost: sk-host-header-0123456789.allowed.test\r\n\r\n")
	if resp.StatusCode != 403 || !strings.Contains(body, "credential") {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if strings.Contains(body, "sk-host-header") || strings.Contains(h.log.String(), "sk-host-header") {
		t.Fatal("the secret was echoed")
	}
}

// A stray "%" just before an encoded secret whose first bytes are hex
// digits: decoding left to right would take "%" and those two bytes as one
// escape and lose the secret (found by FuzzRedact in the log redactor,
// which shared the decoding). Any byte of the secret may be encoded.
func TestCanaryStrayPercentBeforeEncodedSecret(t *testing.T) {
	const hexy = "ab12cdef-Token!"
	c := newCanary([]string{hexy})
	for _, s := range []string{
		"/%" + url.QueryEscape(hexy),
		"/%" + url.PathEscape(hexy) + "0",
		"/x?q=%%" + percentAll(hexy[:3], "%02x") + hexy[3:],
		"/%61%62" + hexy[2:],
	} {
		if _, ok := c.find(s); !ok {
			t.Errorf("canary misses %q in %q", hexy, s)
		}
	}
	if _, ok := c.find("/%ab12cdef-Toke"); ok {
		t.Error("a cut secret matched")
	}
}
