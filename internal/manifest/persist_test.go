package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAppendEgressRule(t *testing.T) {
	cases := []struct {
		name, src string
	}{
		{"existing list", "# top comment\nagents:\n  a:\n    bottle: b\nbottles:\n  b:\n    egress:\n      allow:\n        - host: one.example # keep me\n"},
		{"no allow", "agents:\n  a:\n    bottle: b\nbottles:\n  b:\n    egress:\n      networks: [n]\n"},
		{"no egress", "agents:\n  a:\n    bottle: b\nbottles:\n  b:\n    supervise: true\n"},
		{"dashed bottle", "agents:\n  a:\n    bottle: my-box\nbottles:\n  my-box:\n    supervise: true\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			os.WriteFile(path, []byte(tc.src), 0o640)
			m0, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			var bottle string
			for _, a := range m0.Agents {
				bottle = a.Bottle
			}
			if err := AppendEgressRule(path, bottle, Rule{Host: "new.example", Port: 8443}); err != nil {
				t.Fatal(err)
			}
			m, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			rules := m.Bottles[bottle].Egress.Allow
			last := rules[len(rules)-1]
			if last.Host != "new.example" || last.Port != 8443 || len(rules) != len(m0.Bottles[bottle].Egress.Allow)+1 {
				t.Fatalf("rules %+v", rules)
			}
			b, _ := os.ReadFile(path)
			if strings.Contains(tc.src, "# keep me") && !strings.Contains(string(b), "# keep me") {
				t.Errorf("comment lost:\n%s", b)
			}
			if st, _ := os.Stat(path); st.Mode().Perm() != 0o640 {
				t.Errorf("mode %v", st.Mode())
			}
		})
	}
}

func TestAppendRefusesInvalidAndDefault(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	src := "agents:\n  a:\n    bottle: b\nbottles:\n  b: {}\n"
	os.WriteFile(path, []byte(src), 0o644)
	if err := AppendEgressRule(path, "b", Rule{Host: "10.0.0.1"}); err == nil {
		t.Fatal("an IP rule was persisted")
	}
	if b, _ := os.ReadFile(path); string(b) != src {
		t.Fatalf("file changed after a refused append:\n%s", b)
	}
	if err := AppendEgressRule("", "b", Rule{Host: "x.example"}); err == nil || !strings.Contains(err.Error(), "init") {
		t.Fatalf("default manifest: %v", err)
	}
	if err := AppendEgressRule(path, "nope", Rule{Host: "x.example"}); err == nil {
		t.Fatal("unknown bottle accepted")
	}
}

func TestAppendRoute(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	flow := "agents:\n  a:\n    bottle: b\nbottles:\n  b: {supervise: true}\n"
	os.WriteFile(path, []byte(flow), 0o644)
	r := Route{Name: "github", Path: "/github/", Upstream: "https://api.github.com", Credentials: []Credential{{Env: "GH_TOKEN"}}}
	// A flow-style mapping cannot be extended in place: refused, file untouched.
	if err := AppendRoute(path, "b", r); err == nil {
		t.Fatal("flow mapping extended")
	}
	if b, _ := os.ReadFile(path); string(b) != flow {
		t.Fatalf("file changed:\n%s", b)
	}
	os.WriteFile(path, []byte("agents:\n  a:\n    bottle: b\nbottles:\n  b:\n    supervise: true\n"), 0o644)
	if err := AppendRoute(path, "b", r); err != nil {
		t.Fatal(err)
	}
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	got := m.Bottles["b"].CredProxy.Routes
	if len(got) != 1 || got[0].Credentials[0].Env != "GH_TOKEN" || got[0].Credentials[0].Header != "Authorization" {
		t.Fatalf("routes %+v", got)
	}
}
