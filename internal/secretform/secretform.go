// Package secretform finds a credential in text in which any of its bytes
// may be percent-encoded (%XX, either hex case) and the rest written as
// they are. Finding the form this way, rather than decoding the text first,
// cannot be thrown off by a stray "%" put just before an encoded secret:
// decoding left to right would take "%" and the secret's first two bytes
// as one escape, and the secret would no longer be in the decoded text.
// The egress canary and the log redactor both search with it.
package secretform

import (
	"encoding/base64"
	"strings"
)

// Index returns the start and end of the first match of v in s at or after
// from, or -1, -1. With fold, ASCII letters match without case (v is
// expected in lower case then).
func Index(s, v string, fold bool, from int) (int, int) {
	if v == "" {
		return -1, -1
	}
	if !strings.Contains(s[from:], "%") {
		// No escape anywhere: a plain search says the same, fast.
		hay := s[from:]
		if fold {
			hay = lower(hay)
		}
		i := strings.Index(hay, v)
		if i < 0 {
			return -1, -1
		}
		return from + i, from + i + len(v)
	}
	for i := from; i < len(s); i++ {
		if end, ok := matchAt(s, i, v, fold); ok {
			return i, end
		}
	}
	return -1, -1
}

// Contains says whether s holds v in a form Index finds.
func Contains(s, v string, fold bool) bool {
	i, _ := Index(s, v, fold, 0)
	return i >= 0
}

// matchAt matches v at s[i:], each byte of v written as itself or as %XX.
func matchAt(s string, i int, v string, fold bool) (int, bool) {
	if v == "" {
		return i, true
	}
	if i >= len(s) {
		return 0, false
	}
	want := v[0]
	if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) && same(unhex(s[i+1])<<4|unhex(s[i+2]), want, fold) {
		if end, ok := matchAt(s, i+3, v[1:], fold); ok {
			return end, true
		}
	}
	if same(s[i], want, fold) {
		return matchAt(s, i+1, v[1:], fold)
	}
	return 0, false
}

func same(c, want byte, fold bool) bool {
	if fold && 'A' <= c && c <= 'Z' {
		c += 'a' - 'A'
	}
	return c == want
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// Decode decodes every valid %XX and leaves anything else alone, where
// url.PathUnescape would give up on the whole string: one round, for
// escapes of escapes (%2541), which Index does not see through.
func Decode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Base64Cores returns, for each of the three byte alignments v can have
// inside a longer encoded string, the characters that depend on v alone:
// any base64 (padded or not) of a string containing v contains one of
// them, so "user:SECRET" in a Basic header is caught as well as SECRET.
func Base64Cores(enc *base64.Encoding, v []byte) []string {
	var cores []string
	for k := range 3 {
		s := enc.EncodeToString(append(make([]byte, k), v...))
		cores = append(cores, s[(8*k+5)/6:8*(k+len(v))/6])
	}
	return cores
}
