package audit

import (
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"
)

// Whatever surrounds a credential in a log field, no form the canary knows
// (raw, any case, hex, base64, base64url, percent-encoded) survives Redact.
func FuzzRedact(f *testing.F) {
	f.Add("sk-ant-secret-0123456789", "GET /x?t=", " HTTP/1.1", uint8(0))
	f.Add("ghp_abcdefghijklmnop", "Basic ", "", uint8(2))
	f.Add("tok/with+slash=", "", "", uint8(4))
	f.Fuzz(func(t *testing.T, secret, before, after string, form uint8) {
		if len(secret) < minSecretLen || len(secret) > 256 {
			return
		}
		for _, c := range []byte(secret) {
			if c <= ' ' || c > '~' {
				return // credentials are printable ASCII
			}
		}
		r := NewRedactor([]string{secret})
		var enc string
		switch form % 6 {
		case 0:
			enc = secret
		case 1:
			enc = strings.ToUpper(secret)
		case 2:
			enc = base64.StdEncoding.EncodeToString([]byte("user:" + secret))
		case 3:
			enc = base64.URLEncoding.EncodeToString([]byte(secret))
		case 4:
			enc = url.QueryEscape(secret)
		case 5:
			enc = hex.EncodeToString([]byte(secret))
		}
		out := r.Redact(before + enc + after)
		if strings.Contains(out, enc) && enc != "" {
			t.Fatalf("form %d of %q survives in %q", form%6, secret, out)
		}
		if strings.Contains(strings.ToLower(out), strings.ToLower(secret)) {
			t.Fatalf("%q survives in %q", secret, out)
		}
	})
}
