package egress

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

var decidePolicy = &Policy{Rules: []Rule{
	{Host: "api.example.com", Source: "manifest"},
	{Host: "*.wild.test"},
	{Host: "ssh.example.com", Port: 22},
	{Host: "Mixed.Case.Test.", Port: 8443},
	{Host: "exact.test", Port: 443},
	{Host: "exact.test", Port: 8080},
	{Host: "private.test", AllowPrivate: true},
}}

func TestDecide(t *testing.T) {
	const (
		allow = ""
	)
	tests := []struct {
		method string
		host   string
		port   int
		want   string // "" allows; else the reason
	}{
		// exact names and default ports
		{"CONNECT", "api.example.com", 443, allow},
		{"CONNECT", "api.example.com", 0, allow},
		{"GET", "api.example.com", 80, allow},
		{"GET", "api.example.com", 0, allow},
		{"POST", "api.example.com", 80, allow},
		{"CONNECT", "api.example.com", 80, reasonWrongPort},
		{"GET", "api.example.com", 443, reasonWrongPort},
		{"CONNECT", "api.example.com", 8443, reasonWrongPort},
		{"connect", "api.example.com", 443, allow},
		// case and trailing dot
		{"CONNECT", "API.Example.COM", 443, allow},
		{"CONNECT", "api.example.com.", 443, allow},
		{"CONNECT", "api.example.com..", 443, reasonInvalidHost},
		{"CONNECT", "mixed.case.test", 8443, allow},
		{"CONNECT", "MIXED.CASE.TEST.", 8443, allow},
		{"CONNECT", "mixed.case.test", 443, reasonWrongPort},
		// not the apex, not a lookalike, not a parent or child
		{"CONNECT", "example.com", 443, reasonNotAllowed},
		{"CONNECT", "evil.api.example.com", 443, reasonNotAllowed},
		{"CONNECT", "api.example.com.evil.test", 443, reasonNotAllowed},
		{"CONNECT", "xapi.example.com", 443, reasonNotAllowed},
		{"CONNECT", "evil.test", 443, reasonNotAllowed},
		// wildcards
		{"CONNECT", "a.wild.test", 443, allow},
		{"CONNECT", "a.b.c.wild.test", 443, allow},
		{"GET", "a.wild.test", 80, allow},
		{"CONNECT", "A.WILD.TEST.", 443, allow},
		{"CONNECT", "wild.test", 443, reasonNotAllowed},
		{"CONNECT", "evilwild.test", 443, reasonNotAllowed},
		{"CONNECT", "a.wild.test.evil", 443, reasonNotAllowed},
		{"CONNECT", ".wild.test", 443, reasonInvalidHost},
		{"CONNECT", "*.wild.test", 443, reasonInvalidHost},
		{"CONNECT", "a.wild.test", 22, reasonWrongPort},
		// explicit ports
		{"CONNECT", "ssh.example.com", 22, allow},
		{"CONNECT", "ssh.example.com", 443, reasonWrongPort},
		{"GET", "ssh.example.com", 22, allow},
		{"CONNECT", "exact.test", 443, allow},
		{"CONNECT", "exact.test", 8080, allow},
		{"GET", "exact.test", 8080, allow},
		{"GET", "exact.test", 80, reasonWrongPort},
		{"CONNECT", "exact.test", 0, allow},
		{"CONNECT", "exact.test", -1, reasonInvalidPort},
		{"CONNECT", "exact.test", 65536, reasonInvalidPort},
		// IPv4 literals in every spelling
		{"CONNECT", "127.0.0.1", 443, reasonIPLiteral},
		{"CONNECT", "93.184.216.34", 443, reasonIPLiteral},
		{"CONNECT", "2130706433", 443, reasonIPLiteral},
		{"CONNECT", "0177.0.0.1", 443, reasonIPLiteral},
		{"CONNECT", "0x7f.1", 443, reasonIPLiteral},
		{"CONNECT", "0x7F000001", 443, reasonIPLiteral},
		{"CONNECT", "127.1", 443, reasonIPLiteral},
		{"CONNECT", "127.0.1", 443, reasonIPLiteral},
		{"CONNECT", "0", 443, reasonIPLiteral},
		{"CONNECT", "0x", 443, reasonIPLiteral},
		{"CONNECT", "127.0.0.1.", 443, reasonIPLiteral},
		{"CONNECT", "169.254.169.254", 80, reasonIPLiteral},
		{"CONNECT", "127.0.0.1%eth0", 443, reasonIPLiteral},
		{"CONNECT", "api.example.123", 443, reasonIPLiteral},
		// IPv6 literals
		{"CONNECT", "::1", 443, reasonIPLiteral},
		{"CONNECT", "[::1]", 443, reasonIPLiteral},
		{"CONNECT", "::ffff:127.0.0.1", 443, reasonIPLiteral},
		{"CONNECT", "[::ffff:7f00:1]", 443, reasonIPLiteral},
		{"CONNECT", "fe80::1%eth0", 443, reasonIPLiteral},
		{"CONNECT", "[fe80::1%25eth0]", 443, reasonIPLiteral},
		{"CONNECT", "2001:db8::1", 443, reasonIPLiteral},
		// names that are not valid DNS names
		{"CONNECT", "", 443, reasonEmptyHost},
		{"CONNECT", ".", 443, reasonEmptyHost},
		{"CONNECT", "api example.com", 443, reasonInvalidHost},
		{"CONNECT", "api.example.com/", 443, reasonInvalidHost},
		{"CONNECT", "api_x.example.com", 443, reasonInvalidHost},
		{"CONNECT", "-api.example.com", 443, reasonInvalidHost},
		{"CONNECT", "api-.example.com", 443, reasonInvalidHost},
		{"CONNECT", "api.example.com\x00", 443, reasonInvalidHost},
		{"CONNECT", "аpi.example.com", 443, reasonInvalidHost}, // Cyrillic a
		{"CONNECT", "127。0。0。1", 443, reasonInvalidHost},
		{"CONNECT", "user@api.example.com", 443, reasonInvalidHost},
		{"CONNECT", "%61pi.example.com", 443, reasonInvalidHost},
		{"CONNECT", strings.Repeat("a", 64) + ".wild.test", 443, reasonInvalidHost},
		{"CONNECT", strings.Repeat("a.", 126) + "wild.test", 443, reasonInvalidHost},
		{"CONNECT", "xn--80ak6aa92e.wild.test", 443, allow},
		{"CONNECT", "1e100.wild.test", 443, allow},
		{"CONNECT", "0x7f.wild.test", 443, allow},
	}
	if len(tests) < 60 {
		t.Fatalf("only %d cases", len(tests))
	}
	for _, tt := range tests {
		name := tt.method + " " + strconv.Quote(tt.host) + ":" + strconv.Itoa(tt.port)
		t.Run(name, func(t *testing.T) {
			v := Decide(decidePolicy, Request{Method: tt.method, Host: tt.host, Port: tt.port})
			if tt.want == allow {
				if !v.Allow || v.Rule == "" || v.Reason != "" {
					t.Fatalf("want allow, got %+v", v)
				}
				return
			}
			if v.Allow || v.Reason != tt.want {
				t.Fatalf("want refusal %q, got %+v", tt.want, v)
			}
		})
	}
}

func TestDecideRuleAndPrivate(t *testing.T) {
	v := Decide(decidePolicy, Request{Method: "CONNECT", Host: "api.example.com"})
	if v.Rule != "api.example.com:443 (manifest)" || v.AllowPrivate {
		t.Fatalf("got %+v", v)
	}
	v = Decide(decidePolicy, Request{Method: "GET", Host: "private.test"})
	if !v.Allow || !v.AllowPrivate || v.Rule != "private.test:80" {
		t.Fatalf("got %+v", v)
	}
	if v := Decide(nil, Request{Method: "CONNECT", Host: "api.example.com"}); v.Allow || v.Reason != reasonNoPolicy {
		t.Fatalf("nil policy: %+v", v)
	}
	if v := Decide(&Policy{}, Request{Method: "CONNECT", Host: "api.example.com"}); v.Allow {
		t.Fatalf("empty policy: %+v", v)
	}
}

func TestParseHostPort(t *testing.T) {
	tests := []struct {
		in       string
		def      int
		host     string
		port     int
		wantsErr bool
	}{
		{"example.com:443", 0, "example.com", 443, false},
		{"example.com", 80, "example.com", 80, false},
		{"example.com", 0, "", 0, true},
		{"Example.COM.:8080", 0, "Example.COM.", 8080, false},
		{"[::1]:443", 0, "::1", 443, false},
		{"[fe80::1%25eth0]:443", 0, "fe80::1%25eth0", 443, false},
		{"[::1]", 80, "::1", 80, false},
		{"[::1]x:443", 0, "", 0, true},
		{"[::1", 0, "", 0, true},
		{"::1", 80, "", 0, true},
		{"::1:443", 0, "", 0, true},
		{":443", 0, "", 0, true},
		{"", 80, "", 0, true},
		{"example.com:", 0, "", 0, true},
		{"example.com:0", 0, "", 0, true},
		{"example.com:65535", 0, "example.com", 65535, false},
		{"example.com:65536", 0, "", 0, true},
		{"example.com:000443", 0, "", 0, true},
		{"example.com:+443", 0, "", 0, true},
		{"example.com:-1", 0, "", 0, true},
		{"example.com: 443", 0, "", 0, true},
		{"example.com:0x1bb", 0, "", 0, true},
		{"2130706433:443", 0, "2130706433", 443, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			host, port, err := ParseHostPort(tt.in, tt.def)
			if (err != nil) != tt.wantsErr || host != tt.host || port != tt.port {
				t.Fatalf("got %q %d %v", host, port, err)
			}
		})
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		method, target string
		want           Request
		err            string
	}{
		{"CONNECT", "allowed.test:443", Request{Method: "CONNECT", Host: "allowed.test", Port: 443}, ""},
		{"CONNECT", "allowed.test", Request{}, "missing port"},
		{"GET", "http://allowed.test/x", Request{Method: "GET", Host: "allowed.test", Port: 80}, ""},
		{"GET", "HTTP://allowed.test:8080/x?y", Request{Method: "GET", Host: "allowed.test", Port: 8080}, ""},
		{"GET", "http://[::1]:80/", Request{Method: "GET", Host: "::1", Port: 80}, ""},
		{"GET", "http://allowed.test@evil.test/", Request{}, errUserinfo.Error()},
		{"GET", "http://user:pw@allowed.test/", Request{}, errUserinfo.Error()},
		{"GET", "https://allowed.test/", Request{}, errScheme.Error()},
		{"GET", "/relative", Request{}, errScheme.Error()},
		{"GET", "ftp://allowed.test/", Request{}, errScheme.Error()},
		{"GET", "http:///nohost", Request{}, "url has no host"},
		{"GET", "http://%65vil.test/", Request{}, "invalid URL escape"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			got, err := ParseTarget(tt.method, tt.target)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("want error %q, got %+v %v", tt.err, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v %v", got, err)
			}
		})
	}
}

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		json string
		ok   bool
	}{
		{`{"rules":[{"host":"api.example.com","port":443,"allow_private":false,"source":"route x"}],"private_networks":["172.30.0.0/16"]}`, true},
		{`{"rules":[{"host":"*.example.com"}]}`, true},
		{`{"rules":[]}`, true},
		{`{"rules":[{"host":"127.0.0.1"}]}`, false},
		{`{"rules":[{"host":"*.127.0.0.1"}]}`, false},
		{`{"rules":[{"host":"*"}]}`, false},
		{`{"rules":[{"host":"a.*.example.com"}]}`, false},
		{`{"rules":[{"host":""}]}`, false},
		{`{"rules":[{"host":"example.com","port":70000}]}`, false},
		{`{"rules":[{"host":"example.com","prot":443}]}`, false},
		{`{"rules":[],"private_networks":["172.30.0.0"]}`, false},
		{`{"rules":[]} {}`, false},
		{`{not json`, false},
	}
	for _, tt := range tests {
		_, err := ParsePolicy([]byte(tt.json))
		if (err == nil) != tt.ok {
			t.Errorf("%s: err %v", tt.json, err)
		}
	}
}

func TestCheckAddr(t *testing.T) {
	private := []netip.Prefix{netip.MustParsePrefix("172.30.0.0/16")}
	tests := []struct {
		ip           string
		allowPrivate bool
		want         string
	}{
		{"93.184.216.34", false, ""},
		{"2606:4700::1111", false, ""},
		{"127.0.0.1", false, "loopback"},
		{"127.0.0.1", true, ""},
		{"::1", false, "loopback"},
		{"::ffff:127.0.0.1", false, "loopback"},
		{"::ffff:10.0.0.1", false, "private"},
		{"10.1.2.3", false, "private"},
		{"172.16.0.1", false, "private"},
		{"172.31.255.255", false, "private"},
		{"172.32.0.1", false, ""},
		{"192.168.1.1", false, "private"},
		{"172.30.1.1", false, ""}, // inside private_networks
		{"100.64.0.1", false, "shared (CGNAT)"},
		{"169.254.169.254", false, "link-local (cloud metadata)"},
		{"fe80::1", false, "link-local"},
		{"fd00::1", false, "unique-local"},
		{"fc00::1", false, "unique-local"},
		{"0.0.0.0", false, "unspecified"},
		{"0.0.0.0", true, "unspecified"},
		{"0.1.2.3", true, "unspecified"},
		{"::", true, "unspecified"},
		{"224.0.0.1", true, "multicast"},
		{"ff02::1", true, "multicast"},
		{"255.255.255.255", true, "reserved (broadcast)"},
		{"192.0.2.1", false, "documentation"},
		{"198.51.100.1", false, "documentation"},
		{"203.0.113.1", false, "documentation"},
		{"2001:db8::1", false, "documentation"},
		{"198.18.0.1", false, "benchmarking"},
		{"64:ff9b::a00:1", false, "nat64"},
		{"2002:7f00:1::", false, "6to4"},
		{"::7f00:1", false, "ipv4-compatible"},
	}
	for _, tt := range tests {
		got := checkAddr(netip.MustParseAddr(tt.ip), tt.allowPrivate, private)
		if got != tt.want {
			t.Errorf("%s (allow_private %v): got %q want %q", tt.ip, tt.allowPrivate, got, tt.want)
		}
	}
}

// oracleIPv4 is an independent inet_aton: one to four parts, each decimal,
// 0-octal or 0x-hex.
func oracleIPv4(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return false
	}
	for _, p := range parts {
		if p == "" {
			return false
		}
		base := 10
		switch {
		case strings.HasPrefix(strings.ToLower(p), "0x"):
			base, p = 16, p[2:]
			if p == "" {
				continue
			}
		case len(p) > 1 && p[0] == '0':
			base, p = 8, p[1:]
		}
		if _, err := strconv.ParseUint(p, base, 64); err != nil {
			return false
		}
	}
	return true
}

// oracleMatch is an independent rule matcher, label by label.
func oracleMatch(p *Policy, host string) bool {
	h := strings.Split(strings.ToLower(strings.TrimSuffix(host, ".")), ".")
	for _, r := range p.Rules {
		pat := strings.Split(strings.ToLower(strings.TrimSuffix(r.Host, ".")), ".")
		if pat[0] == "*" {
			if len(h) > len(pat)-1 && strings.Join(h[len(h)-len(pat)+1:], ".") == strings.Join(pat[1:], ".") {
				return true
			}
			continue
		}
		if strings.Join(pat, ".") == strings.Join(h, ".") {
			return true
		}
	}
	return false
}

func FuzzDecide(f *testing.F) {
	for _, s := range []string{"api.example.com", "a.wild.test", "127.0.0.1", "0x7f.1", "2130706433", "[::1]", "::ffff:127.0.0.1", "fe80::1%eth0", "evil.test", "API.EXAMPLE.COM.", "wild.test", "127.1"} {
		f.Add(s, 443, true)
		f.Add(s, 0, false)
	}
	f.Fuzz(func(t *testing.T, host string, port int, connect bool) {
		method := "GET"
		if connect {
			method = "CONNECT"
		}
		v := Decide(decidePolicy, Request{Method: method, Host: host, Port: port})
		if !v.Allow {
			if v.Reason == "" {
				t.Fatalf("refusal without a reason: %q", host)
			}
			return
		}
		bare := strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), ".")
		bare, _, _ = strings.Cut(bare, "%")
		if _, err := netip.ParseAddr(bare); err == nil || oracleIPv4(bare) || strings.ContainsAny(host, ":[]%") {
			t.Fatalf("IP literal %q allowed: %+v", host, v)
		}
		if !oracleMatch(decidePolicy, host) {
			t.Fatalf("%q allowed but matches no rule: %+v", host, v)
		}
		if v.Rule == "" || v.Reason != "" {
			t.Fatalf("allow without rule: %+v", v)
		}
	})
}

func FuzzParseHostPort(f *testing.F) {
	for _, s := range []string{"example.com:443", "[::1]:443", "example.com", "[fe80::1%25eth0]:1", "a:b:c", ":", "[", "]:1", "x:99999"} {
		f.Add(s, 0)
		f.Add(s, 80)
	}
	f.Fuzz(func(t *testing.T, s string, def int) {
		host, port, err := ParseHostPort(s, def)
		if err != nil {
			return
		}
		if host == "" {
			t.Fatalf("%q: empty host without error", s)
		}
		if port != def && (port < 1 || port > 65535) {
			t.Fatalf("%q: port %d", s, port)
		}
		for _, method := range []string{"CONNECT", "GET"} {
			req, err := ParseTarget(method, s)
			if method == "GET" {
				req, err = ParseTarget(method, "http://"+s+"/")
			}
			if err != nil {
				continue
			}
			v := Decide(decidePolicy, req)
			if v.Allow && (strings.ContainsAny(req.Host, ":[]%") || oracleIPv4(strings.TrimSuffix(req.Host, "."))) {
				t.Fatalf("%q: IP literal allowed: %+v", s, v)
			}
		}
	})
}

// A rule reserved for a sidecar serves that sidecar only: the agent gets
// a refusal that says where to go instead.
func TestDecideReservedRules(t *testing.T) {
	p := &Policy{Rules: []Rule{
		{Host: "api.anthropic.com", Port: 443, Client: "cred-proxy", Source: "route anthropic"},
		{Host: "github.com", Port: 22, Client: "git-gate", Source: "git app"},
		{Host: "github.com", Port: 443, Source: "manifest"},
	}}
	cases := []struct {
		req    Request
		allow  bool
		reason string
	}{
		{Request{Method: "CONNECT", Host: "api.anthropic.com", Port: 443, Client: "cred-proxy"}, true, ""},
		{Request{Method: "CONNECT", Host: "api.anthropic.com", Port: 443}, false, "reserved for the cred-proxy sidecar"},
		{Request{Method: "CONNECT", Host: "api.anthropic.com", Port: 443, Client: "git-gate"}, false, "reserved for the cred-proxy sidecar"},
		{Request{Method: "CONNECT", Host: "github.com", Port: 22, Client: "git-gate"}, true, ""},
		{Request{Method: "CONNECT", Host: "github.com", Port: 22}, false, "port not in the allowlist"},
		{Request{Method: "CONNECT", Host: "github.com", Port: 443}, true, ""},
	}
	for _, tc := range cases {
		v := Decide(p, tc.req)
		if v.Allow != tc.allow || !strings.Contains(v.Reason, tc.reason) {
			t.Errorf("%+v: %+v", tc.req, v)
		}
	}
}
