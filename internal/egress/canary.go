package egress

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/claude-bottle/claude-bottle/internal/secretform"
)

// minCanaryLen: shorter values would match innocent text.
const minCanaryLen = 8

// canary finds credential values in what leaves the bottle. It is a
// tripwire for the obvious encodings, not a proof that nothing leaks: a
// body, an encryption or a split across requests gets past it.
type canary struct {
	// exact forms are compared case-sensitively, folded ones after
	// lowercasing both sides (hex; and everything in host names, which DNS
	// compares without case).
	exact  []canaryForm
	folded []canaryForm
}

type canaryForm struct {
	s        string
	encoding string
}

func newCanary(values []string) *canary {
	c := &canary{}
	seen := map[string]bool{}
	add := func(list *[]canaryForm, s, enc string) {
		// The list is part of the key: a value that is already lower case
		// must still be on the folded list, or SK-… in another case passes.
		key := fmt.Sprintf("%p\x00%s\x00%s", list, enc, s)
		if len(s) < minCanaryLen || seen[key] {
			return
		}
		seen[key] = true
		*list = append(*list, canaryForm{s, enc})
	}
	for _, v := range values {
		if len(v) < minCanaryLen {
			continue
		}
		add(&c.exact, v, "raw")
		for _, core := range base64Cores(base64.StdEncoding, []byte(v)) {
			add(&c.exact, core, "base64")
		}
		for _, core := range base64Cores(base64.URLEncoding, []byte(v)) {
			add(&c.exact, core, "base64url")
		}
		add(&c.folded, strings.ToLower(v), "raw")
		add(&c.folded, hex.EncodeToString([]byte(v)), "hex")
	}
	return c
}

// base64Cores returns, for each of the three byte alignments v can have
// inside a longer encoded string, the characters that depend on v alone.
// Any base64 (padded or not) of a string containing v contains one of
// them, so "user:SECRET" in a Basic header is caught as well as SECRET.
func base64Cores(enc *base64.Encoding, v []byte) []string {
	var cores []string
	for k := range 3 {
		s := enc.EncodeToString(append(make([]byte, k), v...))
		start := (8*k + 5) / 6
		end := 8 * (k + len(v)) / 6
		cores = append(cores, s[start:end])
	}
	return cores
}

// find reports the encoding in which a secret appears in s, raw or after
// percent-decoding (up to three rounds, upper or lower hex digits).
func (c *canary) find(s string) (string, bool) {
	return c.search(s, false)
}

// findHost is find for a host name: case does not matter in DNS, and a
// secret split into labels ("sec.ret") is still the secret.
func (c *canary) findHost(s string) (string, bool) {
	if enc, ok := c.search(s, true); ok {
		return enc, true
	}
	return c.search(strings.ReplaceAll(s, ".", ""), true)
}

// findName is find for a header name, which servers compare without case
// and the proxy forwards canonicalized.
func (c *canary) findName(s string) (string, bool) {
	return c.search(s, true)
}

func (c *canary) search(s string, fold bool) (string, bool) {
	if c == nil {
		return "", false
	}
	for range 4 {
		if enc, ok := c.match(s, fold); ok {
			return enc, true
		}
		d := percentDecode(s)
		if d == s {
			break
		}
		s = d
	}
	return "", false
}

// match looks for every form with any of its bytes percent-encoded
// (secretform): decoding first could be thrown off by a stray "%" before
// an encoded secret. search's rounds of decoding then catch escapes of
// escapes.
func (c *canary) match(s string, foldAll bool) (string, bool) {
	if !foldAll {
		for _, f := range c.exact {
			if secretform.Contains(s, f.s, false) {
				return f.encoding, true
			}
		}
	}
	for _, f := range c.folded {
		if secretform.Contains(s, f.s, true) {
			return f.encoding, true
		}
	}
	if foldAll {
		for _, f := range c.exact {
			if secretform.Contains(s, strings.ToLower(f.s), true) {
				return f.encoding, true
			}
		}
	}
	return "", false
}

// percentDecode decodes every valid %XX and leaves anything else alone,
// where url.PathUnescape would give up on the whole string.
func percentDecode(s string) string {
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
