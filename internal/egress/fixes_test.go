package egress

import (
	"strings"
	"testing"
)

// A token that is already lower case is caught in any other case too.
func TestCanaryLowercaseTokenOtherCase(t *testing.T) {
	c := newCanary([]string{"sk-canary-lower-0123456789"})
	for _, s := range []string{"q=SK-CANARY-LOWER-0123456789", "Sk-Canary-Lower-0123456789", "x sk-canary-lower-0123456789"} {
		if _, ok := c.find(s); !ok {
			t.Errorf("canary missed %q", s)
		}
	}
}

// localhost is loopback by definition: refused as such (403), not left to
// a resolver that may fail (502) or answer anything.
func TestLocalhostRefusedAsLoopback(t *testing.T) {
	h := newHarness(t, &Policy{Rules: []Rule{{Host: "localhost"}, {Host: "api.localhost"}}}, nil, nil)
	for _, target := range []string{"localhost:443", "api.localhost:443"} {
		resp, body, _, _ := h.connect(target)
		if resp.StatusCode != 403 || !strings.Contains(body, "loopback") {
			t.Errorf("CONNECT %s: %d %q", target, resp.StatusCode, body)
		}
	}
	if n := h.res.count("localhost") + h.res.count("api.localhost"); n != 0 {
		t.Errorf("resolver asked %d times for localhost", n)
	}
}

// A secret in a Host header is refused as a secret, not merely as a
// mismatch, so the agent is told never to send credentials.
func TestCanaryInHostHeader(t *testing.T) {
	h := newHarness(t, &Policy{Rules: []Rule{{Host: "allowed.test"}}}, []string{"sk-host-header-0123456789"}, map[string][][]string{"allowed.test": {{"93.184.216.34"}}})
	resp, body, _, _ := h.raw("GET http://allowed.test/ HTTP/1.1\r\nHost: sk-host-header-0123456789.allowed.test\r\n\r\n")
	if resp.StatusCode != 403 || !strings.Contains(body, "credential") {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if strings.Contains(body, "sk-host-header") || strings.Contains(h.log.String(), "sk-host-header") {
		t.Fatal("the secret was echoed")
	}
}
