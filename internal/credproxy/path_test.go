package credproxy

import (
	"net/url"
	"path"
	"strings"
	"testing"
)

func TestCheckPath(t *testing.T) {
	tests := []struct {
		raw string
		ok  bool
	}{
		{"/anthropic/v1/messages", true},
		{"/anthropic/", true},
		{"/anthropic/v1%2Fmessages", true},
		{"/anthropic/file.txt", true},
		{"/anthropic/...", true},
		{"/anthropic/../other/", false},
		{"/anthropic/..", false},
		{"/anthropic/./v1", false},
		{"/anthropic/%2e%2e/other", false},
		{"/anthropic/%2E%2E/other", false},
		{"/anthropic/..%2fother", false},
		{"/anthropic/..%2Fother", false},
		{"/anthropic/%2e%2e%2fother", false},
		{"/anthropic/%252e%252e/other", false},
		{"/anthropic/..\\other", false},
		{"/anthropic/..%5cother", false},
		{"/anthropic/..;x/other", false},
		{"/anthropic/%zz", false},
		{"/anthropic/a%00b", false},
		{"anthropic/v1", false},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			err := checkPath(tt.raw)
			if (err == nil) != tt.ok {
				t.Errorf("checkPath(%q) = %v, want ok=%v", tt.raw, err, tt.ok)
			}
		})
	}
}

func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"v1/messages", "../other", "%2e%2e/x", "..%2fx", "a/%252e%252e/b", "a\\..\\b", "..;/x", "//x"} {
		f.Add(s)
	}
	const prefix = "/anthropic/"
	f.Fuzz(func(t *testing.T, rest string) {
		raw := prefix + rest
		if checkPath(raw) != nil {
			return
		}
		// Accepted: however many times an upstream decodes it, and with
		// "\" read as "/", the cleaned path stays under the prefix.
		p := raw
		for range maxDecodes + 1 {
			for _, q := range []string{p, strings.ReplaceAll(p, "\\", "/")} {
				c := path.Clean(q)
				if c != strings.TrimSuffix(prefix, "/") && !strings.HasPrefix(c, prefix) {
					t.Fatalf("accepted %q escapes %s: cleans to %q", raw, prefix, c)
				}
				// Joined under an upstream base path too.
				if j := path.Clean("/base/" + strings.TrimPrefix(q, prefix)); j != "/base" && !strings.HasPrefix(j, "/base/") {
					t.Fatalf("accepted %q escapes the upstream base: %q", raw, j)
				}
			}
			d, err := url.PathUnescape(p)
			if err != nil {
				break
			}
			p = d
		}
	})
}
