package oneline

import (
	"strings"
	"testing"
)

func TestFirst(t *testing.T) {
	long := strings.Repeat("x", Max+10)
	cases := map[string]string{
		"":                                  "",
		"one":                               "one",
		"  padded \n":                       "padded",
		"\n\nError: no such image\nat line": "Error: no such image",
		"first \r\nsecond":                  "first",
		long:                                strings.Repeat("x", Max) + "…",
		strings.Repeat("x", Max):            strings.Repeat("x", Max),
		// A cut never splits a character.
		strings.Repeat("x", Max-1) + "é and more": strings.Repeat("x", Max-1) + "…",
	}
	for in, want := range cases {
		if got := First(in); got != want {
			t.Errorf("First(%.20q…) = %q, want %q", in, got, want)
		}
	}
}
