package egress

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

var (
	errUserinfo = errors.New("userinfo in url")
	errScheme   = errors.New("only http:// URLs are proxied; use CONNECT for https")
)

// ParseTarget turns a proxy request's method and request-target into a
// Request. CONNECT takes the authority form "host:port" (port required);
// any other method takes an absolute http:// URL, port 80 when absent.
// Userinfo ("http://allowed@evil/") is an error: which host it names is a
// matter of parser opinion. The host is returned as written, so Decide sees
// every IP form.
func ParseTarget(method, target string) (Request, error) {
	if strings.EqualFold(method, "CONNECT") {
		host, port, err := ParseHostPort(target, 0)
		if err != nil {
			return Request{}, err
		}
		return Request{Method: "CONNECT", Host: host, Port: port}, nil
	}
	scheme, _, ok := strings.Cut(target, "://")
	if !ok || !strings.EqualFold(scheme, "http") {
		return Request{}, errScheme
	}
	u, err := url.Parse(target)
	if err != nil {
		return Request{}, fmt.Errorf("parse url: %w", err)
	}
	if u.User != nil || strings.Contains(u.Host, "@") {
		return Request{}, errUserinfo
	}
	if u.Opaque != "" || u.Host == "" {
		return Request{}, errors.New("url has no host")
	}
	host, port, err := ParseHostPort(u.Host, 80)
	if err != nil {
		return Request{}, err
	}
	return Request{Method: method, Host: host, Port: port}, nil
}

// ParseHostPort splits "host", "host:port" or "[v6]:port". A missing port
// is defaultPort; defaultPort 0 makes the port required. Brackets are
// removed; nothing else is normalized.
func ParseHostPort(hostport string, defaultPort int) (host string, port int, err error) {
	if hostport == "" {
		return "", 0, errors.New("empty host")
	}
	rest := ""
	if strings.HasPrefix(hostport, "[") {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return "", 0, errors.New("missing ] in host")
		}
		host, rest = hostport[1:end], hostport[end+1:]
		if rest != "" && rest[0] != ':' {
			return "", 0, errors.New("junk after ] in host")
		}
	} else {
		switch strings.Count(hostport, ":") {
		case 0:
			host = hostport
		case 1:
			i := strings.IndexByte(hostport, ':')
			host, rest = hostport[:i], hostport[i:]
		default:
			return "", 0, errors.New("an IPv6 address must be in brackets")
		}
	}
	if host == "" {
		return "", 0, errors.New("empty host")
	}
	if rest == "" {
		if defaultPort == 0 {
			return "", 0, errors.New("missing port")
		}
		return host, defaultPort, nil
	}
	port, err = parsePort(rest[1:])
	if err != nil {
		return "", 0, err
	}
	return host, port, nil
}

// parsePort accepts 1-65535 in plain decimal: no sign, no spaces, at most
// five digits so "000443" is not another way to write 443.
func parsePort(s string) (int, error) {
	if s == "" || len(s) > 5 || !allDigits(s) {
		return 0, fmt.Errorf("invalid port %q", s)
	}
	n, _ := strconv.Atoi(s)
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %d out of range", n)
	}
	return n, nil
}

// normalizeHost lowercases and strips one trailing dot: "Example.COM." and
// "example.com" are the same name.
func normalizeHost(h string) string {
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// isIPLiteral reports whether h is an IP address in any spelling that some
// resolver or URL parser turns into an address: dotted quads, the integer,
// octal, hex and short forms inet_aton accepts (2130706433, 0177.0.0.1,
// 0x7f.1, 127.1), anything IPv6-looking (brackets, colons, mapped forms),
// and addresses with a %zone. It follows the WHATWG URL rule: a host whose
// last label is a number is an IPv4 address, never a name.
func isIPLiteral(h string) bool {
	h = normalizeHost(h)
	if strings.HasPrefix(h, "[") || strings.Contains(h, ":") {
		return true
	}
	h, _, _ = strings.Cut(h, "%")
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	last := h[strings.LastIndexByte(h, '.')+1:]
	if last == "" {
		return false
	}
	if allDigits(last) {
		return true
	}
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') {
		return allHex(last[2:])
	}
	return false
}

// validDNSName reports whether h (normalized) is a host name: ASCII
// letters, digits and hyphens in labels of 1-63 octets that neither start
// nor end with a hyphen, 253 octets at most. Internationalized names must
// come as punycode, which also keeps Unicode dots and digits
// ("127。0。0。1") from turning into an address later.
func validDNSName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func allHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
