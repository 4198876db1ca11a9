package audit

import (
	"encoding/base64"
	"encoding/hex"
	"strings"

	"github.com/claude-bottle/claude-bottle/internal/secretform"
)

// Redacted replaces a credential in a log field.
const Redacted = "[REDACTED]"

// minSecretLen: shorter values would match innocent text (the egress
// canary uses the same floor).
const minSecretLen = 8

// Redactor removes known credential values from log text, in the forms
// the egress canary recognises: raw, hex, base64 and base64url at any
// alignment (so "user:SECRET" in a Basic header), percent-encoded up to
// three times, in any ASCII case, and split by dots (a host name's
// labels). A nil Redactor changes nothing.
type Redactor struct {
	// forms are lowercased: the match ignores ASCII case, which can only
	// redact more.
	forms []string
}

// NewRedactor returns a Redactor for values; values shorter than 8 bytes
// are ignored. With none left it returns nil.
func NewRedactor(values []string) *Redactor {
	seen := map[string]bool{}
	r := &Redactor{}
	add := func(s string) {
		s = asciiLower(s)
		if len(s) >= minSecretLen && !seen[s] {
			seen[s] = true
			r.forms = append(r.forms, s)
		}
	}
	for _, v := range values {
		if len(v) < minSecretLen {
			continue
		}
		add(v)
		add(hex.EncodeToString([]byte(v)))
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			for _, core := range secretform.Base64Cores(enc, []byte(v)) {
				add(core)
			}
		}
	}
	if len(r.forms) == 0 {
		return nil
	}
	return r
}

// Redact returns s with every credential form it holds replaced by
// Redacted. A form visible only after percent-decoding is redacted in the
// decoded text (the field then shows that); one visible only with dots
// removed makes the whole field Redacted. Anything still matching after a
// few rounds is redacted whole: the writer fails closed.
func (r *Redactor) Redact(s string) string {
	if r == nil || s == "" {
		return s
	}
	for range 4 {
		next, changed := r.once(s)
		if !changed {
			return s
		}
		s = next
	}
	if _, changed := r.once(s); changed {
		return Redacted
	}
	return s
}

func (r *Redactor) once(s string) (string, bool) {
	cands := []string{s}
	for range 3 {
		d := secretform.Decode(cands[len(cands)-1])
		if d == cands[len(cands)-1] {
			break
		}
		cands = append(cands, d)
	}
	for _, c := range cands {
		if out := r.spans(c); out != c {
			return out, true
		}
	}
	for _, c := range cands {
		if undotted := strings.ReplaceAll(c, ".", ""); undotted != c && r.spans(undotted) != undotted {
			return Redacted, true
		}
	}
	return s, false
}

// spans replaces every byte range of s that is one of the forms, overlaps
// merged, by Redacted.
func (r *Redactor) spans(s string) string {
	var mark []bool
	for _, f := range r.forms {
		// Any of the form's bytes may be percent-encoded (secretform): a
		// stray "%" before an encoded secret would throw decoding off.
		for from := 0; from < len(s); {
			i, j := secretform.Index(s, f, true, from)
			if i < 0 {
				break
			}
			if mark == nil {
				mark = make([]bool, len(s))
			}
			for k := i; k < j; k++ {
				mark[k] = true
			}
			from = i + 1
		}
	}
	if mark == nil {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if !mark[i] {
			b.WriteByte(s[i])
			continue
		}
		b.WriteString(Redacted)
		for i+1 < len(s) && mark[i+1] {
			i++
		}
	}
	return b.String()
}

// asciiLower lowercases ASCII letters only, so byte offsets stay put.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
