package egress

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/claude-bottle/claude-bottle/internal/audit"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

type running struct {
	proxy   string
	dnsUDP  string
	dnsTCP  string
	logPath string
	cfgDir  string
	res     *fakeResolver
	dial    *fakeDialer
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := stage.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// startRun runs Run on loopback ports with the given policy and waits until
// it serves; its diagnostic log goes to t.Log, or to logger if one is given.
func startRun(t *testing.T, pol *Policy, secrets *Secrets, logger ...*slog.Logger) *running {
	t.Helper()
	r := &running{cfgDir: t.TempDir(), res: newFakeResolver(testAnswers()), dial: &fakeDialer{}}
	logDir := t.TempDir()
	r.logPath = filepath.Join(logDir, "egress.jsonl")
	writeJSON(t, filepath.Join(r.cfgDir, policyFile), pol)
	if secrets != nil {
		writeJSON(t, filepath.Join(r.cfgDir, secretsFile), secrets)
	}
	ready := make(chan struct{})
	opts := Options{
		ConfigDir: r.cfgDir, LogDir: logDir, Instance: "test",
		Listen: "127.0.0.1:0", DNSListen: "127.0.0.1:0",
		Resolver: r.res, Dial: r.dial.dial, PollInterval: 20 * time.Millisecond,
		listening: func(p, u, tc net.Addr) {
			r.proxy, r.dnsUDP, r.dnsTCP = p.String(), u.String(), tc.String()
			close(ready)
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := testLogger(t)
	if len(logger) > 0 {
		log = logger[0]
	}
	go func() { done <- Run(ctx, log, opts) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		done <- err // for the cleanup, which waits for Run's end
		t.Fatalf("Run ended: %v", err)
	}
	return r
}

func (r *running) events(t *testing.T) func() []audit.Event {
	return func() []audit.Event {
		b, err := os.ReadFile(r.logPath)
		if err != nil {
			return nil
		}
		return parseEvents(t, string(b))
	}
}

func (r *running) harness(t *testing.T) *harness {
	return &harness{t: t, addr: r.proxy}
}

func TestRunStartErrors(t *testing.T) {
	tests := []struct {
		name   string
		policy string // "" leaves the file out
		opts   Options
	}{
		{"missing policy", "", Options{}},
		{"invalid policy", `{"rules":[{"host":"127.0.0.1"}]}`, Options{}},
		{"not json", `{`, Options{}},
		{"no log dir", `{"rules":[]}`, Options{LogDir: "-"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.policy != "" {
				os.WriteFile(filepath.Join(dir, policyFile), []byte(tt.policy), 0o600)
			}
			opts := tt.opts
			opts.ConfigDir, opts.Listen, opts.DNSListen = dir, "127.0.0.1:0", "-"
			if opts.LogDir == "-" {
				opts.LogDir = ""
			} else {
				opts.LogDir = t.TempDir()
			}
			if err := Run(context.Background(), testLogger(t), opts); err == nil {
				t.Fatal("Run started")
			}
		})
	}
}

func TestRunReload(t *testing.T) {
	echo := echoUpstream(t)
	port := portOf(t, echo)
	pol := &Policy{Rules: []Rule{{Host: "allowed.test", Port: atoi(t, port), AllowPrivate: true}}}
	r := startRun(t, pol, nil)
	h := r.harness(t)

	resp, _, tunnel, tbr := h.connect("allowed.test:" + port)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	echoLine := func(what string) {
		t.Helper()
		io.WriteString(tunnel, what+"\n")
		if line, err := tbr.ReadString('\n'); err != nil || line != what+"\n" {
			t.Fatalf("tunnel echo %q %v", line, err)
		}
	}
	echoLine("before")
	if resp, _, _, _ := h.connect("loop.test:" + port); resp.StatusCode != 403 {
		t.Fatalf("loop.test before reload: %d", resp.StatusCode)
	}

	// An invalid file keeps the old policy.
	if err := stage.WriteFile(filepath.Join(r.cfgDir, policyFile), []byte(`{"rules":[{"host":"0x7f.1"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, r.events(t), "reload error", func(e audit.Event) bool { return e.Kind == "reload" && e.Verdict == "error" })
	if !strings.Contains(ev.Reason, "0x7f.1") {
		t.Fatalf("reload error reason %q", ev.Reason)
	}
	if resp, _, c, _ := h.connect("allowed.test:" + port); resp.StatusCode != 200 {
		t.Fatalf("old policy lost after an invalid reload: %d", resp.StatusCode)
	} else {
		c.Close()
	}

	// A valid one adds loop.test.
	pol.Rules = append(pol.Rules, Rule{Host: "loop.test", Port: atoi(t, port), Source: "supervise r-1"})
	pol.PrivateNetworks = []string{"127.0.0.0/8"}
	writeJSON(t, filepath.Join(r.cfgDir, policyFile), pol)
	deadline := time.Now().Add(2 * time.Second)
	for {
		resp, _, c, _ := h.connect("loop.test:" + port)
		c.Close()
		if resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("loop.test still refused 2s after the reload: %d", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitEvent(t, r.events(t), "reload allow", func(e audit.Event) bool { return e.Kind == "reload" && e.Verdict == "allow" })
	echoLine("after")
}

func TestRunCanaryFromSecretsFile(t *testing.T) {
	r := startRun(t, testPolicy(), &Secrets{Values: []string{secret}})
	h := r.harness(t)
	resp, body, _, _ := h.connect(secret + ".evil.test:443")
	if resp.StatusCode != 403 || !strings.Contains(body, "secret canary") {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	// Secrets reload too: the old value passes the canary (and is refused
	// by the allowlist instead), the new one is caught.
	writeJSON(t, filepath.Join(r.cfgDir, secretsFile), &Secrets{Values: []string{"another-secret-value"}})
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, body, _, _ := h.connect("another-secret-value.evil.test:443")
		if strings.Contains(body, "secret canary") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new secret not picked up: %q", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, body, _, _ := h.connect(secret + ".evil.test:443"); !strings.Contains(body, reasonNotAllowed) {
		t.Fatalf("old secret still a canary: %q", body)
	}
	for _, e := range r.events(t)() {
		if e.Reason == "secret canary" && (e.Host != "" || e.Verdict != "deny") {
			t.Fatalf("canary event %+v", e)
		}
	}
}

func TestRunHealthz(t *testing.T) {
	r := startRun(t, testPolicy(), nil)
	resp, err := http.Get("http://" + r.proxy + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok\n" {
		t.Fatalf("healthz %d %q", resp.StatusCode, b)
	}
}

func TestDNSStub(t *testing.T) {
	r := startRun(t, testPolicy(), &Secrets{Values: []string{secret}})
	tests := []struct {
		net, addr, name string
		logged          string // Host in the audit event; "" when withheld
	}{
		{"udp", r.dnsUDP, "evil.test.", "evil.test"},
		{"tcp", r.dnsTCP, "allowed.test.", "allowed.test"},
		{"udp", r.dnsUDP, strings.ToLower(secret) + ".evil.test.", ""},
	}
	for _, tt := range tests {
		t.Run(tt.net+" "+tt.name, func(t *testing.T) {
			m := new(dns.Msg)
			m.SetQuestion(tt.name, dns.TypeA)
			c := &dns.Client{Net: tt.net, Timeout: 5 * time.Second}
			in, _, err := c.Exchange(m, tt.addr)
			if err != nil {
				t.Fatal(err)
			}
			if in.Rcode != dns.RcodeRefused || len(in.Answer) != 0 || in.Id != m.Id {
				t.Fatalf("answer %v", in)
			}
			ev := waitEvent(t, r.events(t), "dns "+tt.name, func(e audit.Event) bool {
				return e.Kind == "dns" && e.Host == tt.logged && (tt.logged != "" || e.Detail != "")
			})
			if ev.Verdict != "deny" || ev.Reason != reasonDNS || ev.Method != "A" || ev.Client == "" {
				t.Fatalf("event %+v", ev)
			}
		})
	}
	b, _ := os.ReadFile(r.logPath)
	if strings.Contains(strings.ToLower(string(b)), strings.ToLower(secret)) {
		t.Fatal("audit log holds a secret")
	}
}
