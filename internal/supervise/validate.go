package supervise

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"github.com/claude-bottle/claude-bottle/internal/safetext"
)

// Limits on what the agent may file. They bound what a person has to read
// and what the host has to parse.
const (
	MaxReason         = 1000
	MaxDockerfile     = 64 << 10
	MaxMessage        = 1000
	DefaultMaxPending = 20
	// maxRequestFile bounds a request file read from disk: a 64 KiB
	// Dockerfile can grow up to six times when JSON escapes it.
	maxRequestFile = 1 << 20
)

var (
	idRe      = regexp.MustCompile(`^r-[0-9a-z-]{1,60}$`)
	serviceRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,40}$`)
	labelRe   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// ValidID reports whether id has request-ID syntax. IDs become file names,
// so this is also what keeps a path out of them.
func ValidID(id string) bool { return idRe.MatchString(id) }

func checkID(id string) error {
	if !ValidID(id) {
		return fmt.Errorf("invalid request id %q: ids look like r-20261129-180000-abc123 (r- then 1-60 of [0-9a-z-])", id)
	}
	return nil
}

// checkHost accepts a lowercase DNS name with at least two labels, or
// "*.name" for any subdomain of a name with at least two labels. IP
// literals are refused: the egress allowlist is by name, and an address
// says nothing a person can judge.
func checkHost(host string, wildcard bool) error {
	const allowed = "a DNS name such as api.example.com"
	if host == "" {
		return fmt.Errorf("host is empty: give %s", allowed)
	}
	if net.ParseIP(strings.Trim(host, "[]")) != nil {
		return fmt.Errorf("host %q is an IP address: only DNS names can be allowed, give %s", host, allowed)
	}
	name := host
	if strings.HasPrefix(host, "*.") {
		if !wildcard {
			return fmt.Errorf("host %q is a wildcard: give %s", host, allowed)
		}
		name = host[2:]
	}
	if len(name) > 253 {
		return fmt.Errorf("host %q is longer than 253 characters", host)
	}
	labels := strings.Split(name, ".")
	if len(labels) < 2 {
		return fmt.Errorf("host %q needs at least two labels: give %s (a wildcard is \"*.\" followed by such a name)", host, allowed)
	}
	for _, l := range labels {
		if !labelRe.MatchString(l) {
			return fmt.Errorf("host %q is not a lowercase DNS name: labels are 1-63 of [a-z0-9-], not starting or ending with '-'; give %s or *.example.com", host, allowed)
		}
	}
	if _, err := strconv.Atoi(labels[len(labels)-1]); err == nil {
		return fmt.Errorf("host %q ends in a numeric label: give %s", host, allowed)
	}
	return nil
}

// aLabel returns host as the agent will be allowed to reach it: lower
// case, without a final dot, and, when it is not ASCII, as its A-label
// (xn--...) by IDNA's lookup rules. The person reviews that form and it is
// what is applied, so a homoglyph of a familiar name shows as plainly
// another name. Hidden characters are refused first: IDNA would silently
// drop some of them.
func aLabel(host string) (string, error) {
	host = strings.TrimSuffix(host, ".")
	if err := checkText("host", host, ""); err != nil {
		return "", err
	}
	prefix, name := "", host
	if strings.HasPrefix(name, "*.") {
		prefix, name = "*.", name[2:]
	}
	if isASCII(name) {
		return prefix + strings.ToLower(name), nil
	}
	a, err := idna.Lookup.ToASCII(name)
	if err != nil {
		return "", fmt.Errorf("host %q is not a valid internationalized name (%v): give its A-label (xn--...) or an ASCII name", host, err)
	}
	return prefix + a, nil
}

// aLabelURL is aLabel for an upstream URL's host; anything unparsable is
// left for checkUpstream to refuse with its reason.
func aLabelURL(u string) (string, error) {
	if err := checkText("upstream", u, ""); err != nil {
		return "", err
	}
	p, err := url.Parse(u)
	if err != nil || isASCII(p.Host) {
		return u, nil
	}
	h, err := aLabel(p.Hostname())
	if err != nil {
		return "", fmt.Errorf("upstream: %w", err)
	}
	if port := p.Port(); port != "" {
		h = net.JoinHostPort(h, port)
	}
	p.Host = h
	return p.String(), nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func checkPort(port int) error {
	if port < 1 || port > 65535 {
		return fmt.Errorf("port %d is out of range: give 1-65535 (or leave it out for 443)", port)
	}
	return nil
}

// checkText refuses every character a person cannot see as itself (other
// than the ones keep allows): controls, bidi and other format characters,
// invisible ones and spaces that are not ASCII's (safetext.Hidden). The
// text is shown on the supervising person's terminal, where an escape
// sequence, "\r", a direction override or an invisible character could
// make what they read differ from what is applied.
func checkText(field, s string, keep string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", field)
	}
	for _, r := range s {
		if strings.ContainsRune(keep, r) || !safetext.Hidden(r) {
			continue
		}
		return fmt.Errorf("%s contains %U, %s: only visible text and ASCII spaces are allowed (and %s), so the person sees exactly what you ask for",
			field, r, hiddenKind(r), describeKeep(keep))
	}
	return nil
}

// hiddenKind names the class of a Hidden character for a tool error.
func hiddenKind(r rune) string {
	switch {
	case unicode.Is(unicode.Bidi_Control, r):
		return "a bidi control character"
	case unicode.IsControl(r):
		return "a control character"
	case unicode.In(r, unicode.Zs, unicode.Zl, unicode.Zp):
		return "a space or separator that is not ASCII's"
	default:
		return "an invisible or format character"
	}
}

func describeKeep(keep string) string {
	if keep == "" {
		return "no line breaks"
	}
	return "newlines and tabs"
}

func checkReason(reason string) error {
	n := utf8.RuneCountInString(reason)
	if strings.TrimSpace(reason) == "" {
		return errors.New("reason is empty: say in 1-1000 characters why you need this, for the person who decides")
	}
	if n > MaxReason {
		return fmt.Errorf("reason is %d characters: at most %d are allowed", n, MaxReason)
	}
	return checkText("reason", reason, "\n\t")
}

func checkService(s string) error {
	if !serviceRe.MatchString(s) {
		return fmt.Errorf("service %q is not a valid name: use 1-41 of [a-z0-9-], starting with a letter or digit (e.g. github)", s)
	}
	return nil
}

func checkUpstream(u string) error {
	const allowed = "an https URL such as https://api.example.com"
	p, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("upstream %q is not a URL: give %s", u, allowed)
	}
	if p.Scheme != "https" {
		return fmt.Errorf("upstream %q is not https: give %s", u, allowed)
	}
	if p.User != nil {
		return fmt.Errorf("upstream must not carry credentials (user:password@): the token is chosen by the person who approves")
	}
	if p.RawQuery != "" || p.Fragment != "" || p.Opaque != "" {
		return fmt.Errorf("upstream %q has a query or fragment: give %s, optionally with a path", u, allowed)
	}
	if err := checkHost(p.Hostname(), false); err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	if ps := p.Port(); ps != "" {
		n, err := strconv.Atoi(ps)
		if err != nil {
			return fmt.Errorf("upstream port %q is not a number", ps)
		}
		if err := checkPort(n); err != nil {
			return fmt.Errorf("upstream: %w", err)
		}
	}
	return nil
}

func checkDockerfile(content string) error {
	if strings.TrimSpace(content) == "" {
		return errors.New("dockerfile content is empty: give the full new Dockerfile")
	}
	if len(content) > MaxDockerfile {
		return fmt.Errorf("dockerfile content is %d bytes: at most %d (64 KiB) are allowed", len(content), MaxDockerfile)
	}
	if err := checkText("dockerfile content", content, "\n\t"); err != nil {
		return err
	}
	for _, line := range strings.Split(content, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.EqualFold(f[0], "FROM") {
			return nil
		}
	}
	return errors.New("dockerfile content has no FROM instruction: give the full Dockerfile, not a fragment")
}

// Validate checks a request as the sidecar files it and as the host reads
// it back: the host trusts nothing it finds in a requests directory.
func (r Request) Validate() error {
	if err := checkID(r.ID); err != nil {
		return err
	}
	if r.Created.IsZero() {
		return errors.New("request has no created time")
	}
	if err := checkReason(r.Reason); err != nil {
		return err
	}
	n := 0
	for _, p := range []bool{r.Egress != nil, r.Route != nil, r.Dockerfile != nil} {
		if p {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("request %s must carry exactly one of egress, route, dockerfile", r.ID)
	}
	switch r.Kind {
	case KindEgress:
		if r.Egress == nil {
			return fmt.Errorf("request %s is kind egress without an egress ask", r.ID)
		}
		if err := checkHost(r.Egress.Host, true); err != nil {
			return err
		}
		return checkPort(r.Egress.Port)
	case KindRoute:
		if r.Route == nil {
			return fmt.Errorf("request %s is kind route without a route ask", r.ID)
		}
		if err := checkService(r.Route.Service); err != nil {
			return err
		}
		return checkUpstream(r.Route.Upstream)
	case KindDockerfile:
		if r.Dockerfile == nil {
			return fmt.Errorf("request %s is kind dockerfile without a dockerfile ask", r.ID)
		}
		return checkDockerfile(r.Dockerfile.Content)
	default:
		return fmt.Errorf("request %s has unknown kind %q: egress, route or dockerfile", r.ID, r.Kind)
	}
}

// Validate checks a decision file.
func (d Decision) Validate() error {
	if err := checkID(d.ID); err != nil {
		return err
	}
	if d.Verdict != Approved && d.Verdict != Denied {
		return fmt.Errorf("decision %s has verdict %q: approved or denied", d.ID, d.Verdict)
	}
	if utf8.RuneCountInString(d.Message) > MaxMessage {
		return fmt.Errorf("decision message is longer than %d characters", MaxMessage)
	}
	return checkText("message", d.Message, "\n\t")
}

// What is a one-line summary of what a request asks for.
func (r Request) What() string {
	switch {
	case r.Egress != nil:
		return fmt.Sprintf("%s:%d", r.Egress.Host, r.Egress.Port)
	case r.Route != nil:
		return fmt.Sprintf("%s -> %s", r.Route.Service, r.Route.Upstream)
	case r.Dockerfile != nil:
		return fmt.Sprintf("new Dockerfile (%d lines)", strings.Count(strings.TrimRight(r.Dockerfile.Content, "\n"), "\n")+1)
	}
	return "?"
}
