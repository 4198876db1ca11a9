package credproxy

import (
	"errors"
	"net/url"
	"strings"
)

// maxDecodes bounds how many rounds of percent-decoding checkPath looks
// through: an upstream or a framework in front of it may decode twice.
const maxDecodes = 3

// checkPath refuses a raw request path (as sent, before any decoding) that
// could step outside the route it matches: a "." or ".." segment, raw or
// after any of up to maxDecodes rounds of percent-decoding (so %2e%2e,
// ..%2f and %252e%252e are caught), with "\" counted as a separator too
// since some servers treat it as one, and ";params" cut off a segment as
// servlet containers do. Control characters are refused for
// the same reason. What passes cannot escape its prefix once cleaned.
func checkPath(raw string) error {
	if !strings.HasPrefix(raw, "/") {
		return errors.New("path must start with /")
	}
	p := raw
	for round := 0; ; round++ {
		if err := checkSegments(p); err != nil {
			return err
		}
		if round == maxDecodes || !strings.Contains(p, "%") {
			return nil
		}
		d, err := url.PathUnescape(p)
		if err != nil {
			if round == 0 {
				return errors.New("path has malformed percent-encoding")
			}
			// A later round failing means the upstream cannot decode it
			// either; what was decoded so far has been checked.
			return nil
		}
		p = d
	}
}

func checkSegments(p string) error {
	if hasCtl(p) {
		return errors.New("path has control characters")
	}
	for seg := range strings.FieldsFuncSeq(p, func(r rune) bool { return r == '/' || r == '\\' }) {
		// Servlet containers drop ";params" from a segment, making "..;x" a "..".
		seg, _, _ = strings.Cut(seg, ";")
		if seg == "." || seg == ".." {
			return errors.New(`path has a "." or ".." segment`)
		}
	}
	return nil
}
