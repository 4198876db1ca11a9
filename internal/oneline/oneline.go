// Package oneline owns shortening a tool's output or an error to the one
// line a message quotes: an engine error, a token command's stderr.
package oneline

import (
	"strings"
	"unicode/utf8"
)

// Max is how many bytes of the line First keeps.
const Max = 200

// First returns the first non-blank line of s, trimmed, cut to Max bytes
// at a character boundary with "…" when it was longer. "" stays "".
func First(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	if len(s) <= Max {
		return s
	}
	cut := Max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
