package credproxy

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/url"
	"slices"
	"strings"
)

// Redacted replaces every token form found in a response.
const Redacted = "[REDACTED by cred-proxy]"

// tokenForms are the encodings of a token an upstream is likely to echo:
// raw, base64 (std and URL alphabets, padded and not) and percent-encoded
// (query and path escaping, with upper- and lower-case hex digits).
func tokenForms(tok string) []string {
	b := []byte(tok)
	forms := []string{
		tok,
		base64.StdEncoding.EncodeToString(b),
		base64.RawStdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b),
		base64.RawURLEncoding.EncodeToString(b),
		url.QueryEscape(tok),
		url.PathEscape(tok),
		lowerHex(url.QueryEscape(tok)),
		lowerHex(url.PathEscape(tok)),
	}
	slices.Sort(forms)
	return slices.Compact(forms)
}

// lowerHex lower-cases the two hex digits after every '%'.
func lowerHex(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1] = lower(b[i+1])
			b[i+2] = lower(b[i+2])
			i += 2
		}
	}
	return string(b)
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'F' {
		return c + ('a' - 'A')
	}
	return c
}

// scrubber replaces every form of every token with Redacted. It is
// immutable and shared by all requests of one route table.
type scrubber struct {
	// patterns are ordered longest first: where two forms match at the same
	// offset (a padded base64 form and its unpadded prefix) the longer wins.
	patterns [][]byte
	first    [256]bool
	repl     *strings.Replacer
}

func newScrubber(tokens []string) *scrubber {
	var forms []string
	for _, t := range tokens {
		if t != "" {
			forms = append(forms, tokenForms(t)...)
		}
	}
	slices.SortFunc(forms, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	forms = slices.Compact(forms)
	s := &scrubber{}
	var pairs []string
	for _, f := range forms {
		s.patterns = append(s.patterns, []byte(f))
		s.first[f[0]] = true
		pairs = append(pairs, f, Redacted)
	}
	// strings.Replacer compares in argument order, which is longest first
	// here: the same leftmost, longest-first rule as the stream below.
	s.repl = strings.NewReplacer(pairs...)
	return s
}

// String scrubs a whole value at once (header values, error text).
func (s *scrubber) String(v string) string {
	if len(s.patterns) == 0 {
		return v
	}
	return s.repl.Replace(v)
}

// scan appends to out the scrubbed form of the longest prefix of buf that
// can be decided now, and returns the undecided rest. Bytes are held back
// only from the first offset where buf's tail is a proper prefix of some
// pattern, so the rest is always shorter than the longest pattern (the
// holdback is at most max(len(pattern))-1 bytes) and text that could not
// be the start of a token passes at once. With eof, nothing is held back.
func (s *scrubber) scan(out, buf []byte, eof bool) ([]byte, []byte) {
	from := 0
	for i := 0; i < len(buf); {
		if !s.first[buf[i]] {
			i++
			continue
		}
		matched, wait := 0, false
		for _, p := range s.patterns {
			if len(buf)-i >= len(p) {
				if bytes.Equal(buf[i:i+len(p)], p) {
					matched = len(p)
					break
				}
			} else if !eof && bytes.HasPrefix(p, buf[i:]) {
				// A longer pattern may still complete here and it would
				// take priority over any shorter match, so wait for it.
				wait = true
				break
			}
		}
		switch {
		case wait:
			return append(out, buf[from:i]...), buf[i:]
		case matched > 0:
			out = append(out, buf[from:i]...)
			out = append(out, Redacted...)
			i += matched
			from = i
		default:
			i++
		}
	}
	return append(out, buf[from:]...), nil
}

// scrubReader scrubs a response body as it streams. Each Read returns as
// soon as some output is decided, so a flushed SSE event is not delayed
// unless its tail could be the start of a token.
type scrubReader struct {
	src     io.ReadCloser
	s       *scrubber
	pending []byte // undecided tail, shorter than the longest pattern
	out     []byte // decided output not yet returned
	buf     []byte
	err     error
}

func newScrubReader(src io.ReadCloser, s *scrubber) *scrubReader {
	return &scrubReader{src: src, s: s, buf: make([]byte, 32*1024)}
}

func (r *scrubReader) Read(p []byte) (int, error) {
	for len(r.out) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		n, err := r.src.Read(r.buf)
		in := append(r.pending, r.buf[:n]...)
		switch {
		case err == io.EOF:
			r.out, r.pending = r.s.scan(r.out[:0], in, true)
			r.err = err
		case err != nil:
			// A broken stream drops the undecided tail: it may be the
			// start of a token.
			r.out, _ = r.s.scan(r.out[:0], in, false)
			r.pending = nil
			r.err = err
		default:
			var rest []byte
			r.out, rest = r.s.scan(r.out[:0], in, false)
			r.pending = append(r.pending[:0:0], rest...)
		}
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	return n, nil
}

func (r *scrubReader) Close() error { return r.src.Close() }
