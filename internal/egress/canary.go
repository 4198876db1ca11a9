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
		for _, core := range secretform.Base64Cores(base64.StdEncoding, []byte(v)) {
			add(&c.exact, core, "base64")
		}
		for _, core := range secretform.Base64Cores(base64.URLEncoding, []byte(v)) {
			add(&c.exact, core, "base64url")
		}
		add(&c.folded, strings.ToLower(v), "raw")
		add(&c.folded, hex.EncodeToString([]byte(v)), "hex")
	}
	return c
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
		d := secretform.Decode(s)
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
