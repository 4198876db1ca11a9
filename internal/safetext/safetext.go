// Package safetext owns how text that the agent controls is shown to a
// person: every character a terminal would act on, or that a reader cannot
// see (controls, format and direction characters, unusual spaces), is
// written as an escape instead, so what is printed is what is there.
package safetext

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Hidden reports whether r is a character a person cannot be trusted to
// see as itself: C0 and C1 controls (a C1 CSI, U+009B, starts a terminal
// escape sequence), format characters (Cf: bidi overrides such as U+202E,
// zero-width space and joiners, the BOM, TAG characters U+E0000-E007F),
// every space but ASCII's (Zs, Zl, Zp), private-use, surrogate and
// unassigned code points, variation selectors, and the other
// default-ignorable code points Unicode lists (U+115F, U+3164, ...), plus
// U+2800, a blank that is a symbol. Everything else is printable.
func Hidden(r rune) bool {
	if r == ' ' {
		return false
	}
	if !unicode.IsPrint(r) { // Cc, Cf, Z*, Co, Cs, Cn
		return true
	}
	return unicode.In(r, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point,
		unicode.Bidi_Control, unicode.Join_Control) || r == 0x2800
}

// HasHidden reports whether s holds invalid UTF-8 or a Hidden character;
// the first one found is described by FirstHidden.
func HasHidden(s string) bool {
	_, _, ok := FirstHidden(s)
	return ok
}

// FirstHidden returns the byte offset and a description ("U+202E RIGHT-TO-
// LEFT OVERRIDE" style: its code point) of the first invalid byte or
// Hidden character in s.
func FirstHidden(s string) (int, string, bool) {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return i, fmt.Sprintf("invalid UTF-8 byte 0x%02X", s[i]), true
			}
		}
		if Hidden(r) {
			return i, fmt.Sprintf("U+%04X", r), true
		}
	}
	return 0, "", false
}

// Text returns s with every Hidden character written as \uXXXX (\UXXXXXXXX
// above the BMP) and every invalid byte as \xNN; the rest is unchanged, so
// newlines and tabs are escaped too. A backslash is left alone: the result
// is for a person to read, not to parse back.
func Text(s string) string {
	if !HasHidden(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case Hidden(r) && r > 0xFFFF:
			fmt.Fprintf(&b, `\U%08x`, r)
		case Hidden(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// Lines is Text for text whose line breaks are meant (a Dockerfile, a
// diff): "\n" stays a line break, everything else Hidden is escaped.
func Lines(s string) string {
	parts := strings.Split(s, "\n")
	for i, p := range parts {
		parts[i] = Text(p)
	}
	return strings.Join(parts, "\n")
}

// JSON returns JSON text with every Hidden character, raw control byte
// and invalid byte replaced by a \u escape, except newlines and tabs (JSON
// whitespace between tokens, which an encoder never leaves raw inside a
// string). JSON allows such escapes anywhere a character may appear in a
// string, and outside strings no other such character is valid, so valid
// JSON stays valid and decodes to the same value (an invalid byte to
// U+FFFD, as encoding/json does).
func JSON(text []byte) []byte {
	if !HasHidden(strings.NewReplacer("\n", "", "\t", "").Replace(string(text))) {
		return text
	}
	out := make([]byte, 0, len(text)+16)
	for i := 0; i < len(text); {
		r, n := utf8.DecodeRune(text[i:])
		switch {
		case r == '\n' || r == '\t':
			out = append(out, byte(r))
		case r == utf8.RuneError && n == 1:
			out = append(out, `\ufffd`...)
		case Hidden(r) && r > 0xFFFF:
			r1, r2 := utf16.EncodeRune(r)
			out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
		case Hidden(r):
			out = fmt.Appendf(out, `\u%04x`, r)
		default:
			out = append(out, text[i:i+n]...)
		}
		i += n
	}
	return out
}
