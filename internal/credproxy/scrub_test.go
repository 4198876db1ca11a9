package credproxy

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/url"
	"strings"
	"testing"
)

const testToken = "sk-ant-T0k3n/with+odd=chars?&%"

// chunked is an io.ReadCloser that hands out its chunks one Read at a time.
type chunked struct{ chunks [][]byte }

func (c *chunked) Read(p []byte) (int, error) {
	for len(c.chunks) > 0 && len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	return n, nil
}

func (c *chunked) Close() error { return nil }

// split cuts s at the given offsets (clamped, in order).
func split(s string, cuts []int) [][]byte {
	var out [][]byte
	prev := 0
	for _, c := range cuts {
		c = max(prev, min(c, len(s)))
		out = append(out, []byte(s[prev:c]))
		prev = c
	}
	return append(out, []byte(s[prev:]))
}

func scrubStream(t testing.TB, s *scrubber, chunks [][]byte) string {
	t.Helper()
	b, err := io.ReadAll(newScrubReader(&chunked{chunks: chunks}, s))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestTokenFormsAreScrubbed(t *testing.T) {
	tok := testToken
	s := newScrubber([]string{tok})
	forms := map[string]string{
		"raw":           tok,
		"base64 std":    base64.StdEncoding.EncodeToString([]byte(tok)),
		"base64 raw":    base64.RawStdEncoding.EncodeToString([]byte(tok)),
		"base64 url":    base64.URLEncoding.EncodeToString([]byte(tok)),
		"base64 rawurl": base64.RawURLEncoding.EncodeToString([]byte(tok)),
		"query escape":  url.QueryEscape(tok),
		"path escape":   url.PathEscape(tok),
		"lower hex":     lowerHex(url.QueryEscape(tok)),
	}
	for name, form := range forms {
		t.Run(name, func(t *testing.T) {
			in := "before " + form + " after"
			want := "before " + Redacted + " after"
			if got := s.String(in); got != want {
				t.Errorf("String: got %q, want %q", got, want)
			}
			for cut := 0; cut <= len(in); cut++ {
				if got := scrubStream(t, s, split(in, []int{cut})); got != want {
					t.Fatalf("cut at %d: got %q, want %q", cut, got, want)
				}
			}
		})
	}
}

func TestScrubHoldsBackOnlyPossibleTokenStarts(t *testing.T) {
	s := newScrubber([]string{"secret-token-1234"})
	tests := []struct {
		name, in, wantOut, wantRest string
	}{
		{"sse event passes whole", "data: {\"x\":1}\n\n", "data: {\"x\":1}\n\n", ""},
		{"partial token held", "data: secret-to", "data: ", "secret-to"},
		{"first byte held", "abc s", "abc ", "s"},
		{"mismatch passes", "secret-tokex", "secret-tokex", ""},
		{"full token replaced", "a secret-token-1234 b", "a " + Redacted + " b", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, rest := s.scan(nil, []byte(tt.in), false)
			if string(out) != tt.wantOut || string(rest) != tt.wantRest {
				t.Errorf("scan(%q) = %q, %q; want %q, %q", tt.in, out, rest, tt.wantOut, tt.wantRest)
			}
			longest := len(s.patterns[0])
			if len(rest) >= longest {
				t.Errorf("held back %d bytes, more than longest pattern-1 (%d)", len(rest), longest-1)
			}
		})
	}
}

func TestScrubReaderReturnsDecidedBytesBeforeMoreInput(t *testing.T) {
	// The second Read would block forever: scrubReader must return the
	// first event without asking for more.
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	src := io.NopCloser(io.MultiReader(strings.NewReader("data: one\n\n"), readerFunc(func([]byte) (int, error) {
		<-block
		return 0, io.EOF
	})))
	r := newScrubReader(src, newScrubber([]string{"tok-123456"}))
	buf := make([]byte, 100)
	n, err := r.Read(buf)
	if err != nil || string(buf[:n]) != "data: one\n\n" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestScrubOverlappingTokens(t *testing.T) {
	// One token a prefix of another: the longer one must win where it
	// matches, as it does in a one-shot replace.
	s := newScrubber([]string{"abcdef", "abcdefgh"})
	in := "xabcdefghy abcdefz"
	want := "x" + Redacted + "y " + Redacted + "z"
	for cut := 0; cut <= len(in); cut++ {
		if got := scrubStream(t, s, split(in, []int{cut, cut + 3})); got != want {
			t.Fatalf("cut %d: got %q, want %q", cut, got, want)
		}
	}
}

func FuzzScrub(f *testing.F) {
	f.Add("hello sk-test-abc123 world", "sk-test-abc123", uint64(7), byte(3))
	f.Add(base64.StdEncoding.EncodeToString([]byte("tok/en+1")), "tok/en+1", uint64(1), byte(1))
	f.Add("a%2Fb "+url.QueryEscape("p a/s?s")+" "+url.PathEscape("p a/s?s"), "p a/s?s", uint64(99), byte(2))
	f.Fuzz(func(t *testing.T, text, tok string, seed uint64, mode byte) {
		// Load refuses tokens with control characters.
		if tok == "" || hasCtl(tok) || len(tok) > 64 || len(text) > 4096 {
			return
		}
		forms := tokenForms(tok)
		// Plant each form so every run exercises the replacement.
		in := text
		for i, form := range forms {
			pos := int((seed >> (i % 64)) % uint64(len(in)+1))
			in = in[:pos] + form + in[pos:]
		}
		s := newScrubber([]string{tok})
		want := s.String(in)
		var cuts []int
		x := seed | 1
		for pos := 0; pos < len(in); {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			pos += 1 + int(x%uint64(int(mode%16)+1))
			cuts = append(cuts, pos)
		}
		got := scrubStream(t, s, split(in, cuts))
		if got != want {
			t.Fatalf("stream differs from one-shot replace:\n got %q\nwant %q", got, want)
		}
		// Every occurrence of a form is replaced or overlaps one that was,
		// so with each marker cut to a byte no form can be in the output.
		stripped := strings.ReplaceAll(got, Redacted, "\x00")
		for _, form := range forms {
			if strings.Contains(stripped, form) {
				t.Fatalf("output still holds form %q: %q", form, got)
			}
		}
	})
}

func TestScrubStringNoTokens(t *testing.T) {
	s := newScrubber(nil)
	if got := s.String("anything"); got != "anything" {
		t.Fatal(got)
	}
	if got := scrubStream(t, s, [][]byte{[]byte("a"), []byte("b")}); got != "ab" {
		t.Fatal(got)
	}
	var buf bytes.Buffer
	buf.WriteString("x")
	if got := scrubStream(t, s, [][]byte{buf.Bytes()}); got != "x" {
		t.Fatal(got)
	}
}
