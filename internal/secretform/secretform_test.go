package secretform

import (
	"strings"
	"testing"
)

func TestIndex(t *testing.T) {
	const v = "0000000!"
	for _, c := range []struct {
		s    string
		fold bool
		want bool
	}{
		{"x0000000!y", false, true},
		{"%0000000%21", false, true}, // a stray % before the encoded form (found by FuzzRedact)
		{"%%30%30%30%30%30%30%30%21", false, true},
		{"%30000000%210", false, true}, // first byte encoded
		{"%2F0000000!", false, true},
		{"000000!", false, false},
		{"0000000%2", false, false},  // a cut escape is no match
		{"0000000%22", false, false}, // '"' is not '!'
	} {
		if got := Contains(c.s, v, c.fold); got != c.want {
			t.Errorf("Contains(%q) = %v, want %v", c.s, got, c.want)
		}
	}
	if !Contains("SK-Ant%2DX-ABCDEFG", "sk-ant-x-abcdefg", true) || Contains("SK-Ant%2DX-ABCDEFG", "sk-ant-x-abcdefg", false) {
		t.Error("fold")
	}
	if i, j := Index("ab%30000000%21cd", v, false, 0); i != 2 || j != 14 {
		t.Errorf("span %d %d", i, j)
	}
}

// Any subset of the secret's bytes percent-encoded, behind any prefix,
// is found.
func FuzzIndex(f *testing.F) {
	f.Add("sk-ant-api03-abcdef", "%", "x", uint64(0x55))
	f.Add("0000000!", "%", "0", uint64(0xff))
	f.Fuzz(func(t *testing.T, secret, before, after string, mask uint64) {
		if len(secret) < 8 || len(secret) > 64 {
			return
		}
		var b strings.Builder
		for i := 0; i < len(secret); i++ {
			if mask>>(uint(i)%64)&1 == 1 {
				b.WriteString("%" + strings.ToUpper(hexByte(secret[i])))
			} else {
				b.WriteByte(secret[i])
			}
		}
		s := before + b.String() + after
		if !Contains(s, secret, false) {
			t.Fatalf("%q not found in %q", secret, s)
		}
	})
}

func hexByte(c byte) string {
	const d = "0123456789abcdef"
	return string([]byte{d[c>>4], d[c&15]})
}
