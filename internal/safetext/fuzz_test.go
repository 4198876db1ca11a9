package safetext

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// Whatever the agent sends, what a person is shown holds no hidden
// character and is valid UTF-8; JSON stays JSON and decodes to the same
// value.
func FuzzText(f *testing.F) {
	for _, s := range []string{"plain", "a\u202eb", "\u009b31m", "x\u200by", "\U000e0041", "\xff\xfe", "tab\there\nline"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, out := range []string{Text(s), Lines(s)} {
			if !utf8.ValidString(out) {
				t.Fatalf("invalid UTF-8 out of %q: %q", s, out)
			}
		}
		if HasHidden(Text(s)) {
			t.Fatalf("Text(%q) = %q still has a hidden character", s, Text(s))
		}
		enc, err := json.Marshal(s)
		if err != nil {
			return
		}
		esc := JSON(enc)
		var back string
		if err := json.Unmarshal(esc, &back); err != nil {
			t.Fatalf("JSON(%s) = %s no longer decodes: %v", enc, esc, err)
		}
		var want string
		json.Unmarshal(enc, &want)
		if back != want {
			t.Fatalf("JSON changed the value: %q -> %q", want, back)
		}
	})
}
