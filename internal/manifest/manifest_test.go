package manifest

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/malformed/*.err from the current messages")

// fixModes sets key file modes that git does not keep.
func fixModes(t *testing.T) {
	t.Helper()
	for file, mode := range map[string]os.FileMode{
		"testdata/malformed/keys/open.key": 0o644,
		"testdata/good/keys/deploy.key":    0o600,
	} {
		if err := os.Chmod(file, mode); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMalformed(t *testing.T) {
	fixModes(t)
	files, err := filepath.Glob("testdata/malformed/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 30 {
		t.Fatalf("only %d malformed cases", len(files))
	}
	abs, err := filepath.Abs("testdata/malformed")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			m, err := Load(file)
			if err == nil {
				t.Fatalf("Load accepted %s: %+v", file, m)
			}
			// Resolved paths are absolute; keep the golden files portable.
			got := strings.ReplaceAll(err.Error(), abs, "$DIR") + "\n"
			errFile := strings.TrimSuffix(file, ".yaml") + ".err"
			if *update {
				if err := os.WriteFile(errFile, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(errFile)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("error mismatch\n got: %s\nwant: %s", got, want)
			}
			if !strings.HasPrefix(got, file+":") {
				t.Errorf("error does not start with %q: %s", file+":", got)
			}
		})
	}
}

func TestDefaultsAndPaths(t *testing.T) {
	fixModes(t)
	const file = "testdata/good/resolve.yaml"
	m, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := filepath.Abs("testdata/good")
	if err != nil {
		t.Fatal(err)
	}
	a := m.Agents["claude"]
	dev := m.Bottles["dev"]
	route := dev.CredProxy.Routes[0]
	tests := []struct {
		name      string
		got, want any
	}{
		{"path kept as given", m.Path, file},
		{"command", a.Command, []string{"claude"}},
		{"skill", a.Skills, []string{filepath.Join(dir, "skills/review.md")}},
		{"env", a.Env, map[string]string{"EDITOR": "vi", "PORT": "8080"}},
		{"runtime", dev.Runtime, "auto"},
		{"resources", dev.Resources, Resources{Memory: "4g", CPUs: 2, PIDs: 1024}},
		{"host lowercased", dev.Egress.Allow[0].Host, "registry.npmjs.org"},
		{"port default stays 0", dev.Egress.Allow[0].Port, 0},
		{"alias", m.Bottles["spare"].Egress.Allow, []Rule{{Host: "*.example.com", Port: 8443}}},
		{"credential file", route.Credentials[0].File, filepath.Join(dir, "secrets/api-token")},
		{"credential defaults", route.Credentials[0].Header + " " + route.Credentials[0].Format, "Authorization Bearer {token}"},
		{"credential kept", route.Credentials[1].Header + " " + route.Credentials[1].Format, "x-api-key {token}"},
		{"key", dev.Git.Repos[0].Key, filepath.Join(dir, "keys/deploy.key")},
		{"ca certs", m.Images.CACerts, filepath.Join(dir, "ca.pem")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %#v, want %#v", tt.got, tt.want)
			}
		})
	}
}

func TestDefault(t *testing.T) {
	m := Default()
	if m.Path != "" {
		t.Errorf("Path = %q, want empty", m.Path)
	}
	if _, err := Parse("claude-bottle.yaml", DefaultYAML()); err != nil {
		t.Fatalf("DefaultYAML does not parse: %v", err)
	}
	a := m.Agents["claude"]
	if a == nil || a.Bottle != "default" || !reflect.DeepEqual(a.Command, []string{"claude"}) {
		t.Fatalf("agent claude = %+v", a)
	}
	b := m.Bottles["default"]
	if b == nil || !b.Supervise || len(b.CredProxy.Routes) != 1 {
		t.Fatalf("bottle default = %+v", b)
	}
	r := b.CredProxy.Routes[0]
	want := Route{
		Name: "anthropic", Path: "/anthropic/", Upstream: "https://api.anthropic.com", Role: RoleAnthropicBaseURL,
		Credentials: []Credential{
			{Env: "CLAUDE_CODE_OAUTH_TOKEN", Header: "Authorization", Format: "Bearer {token}"},
			{Env: "ANTHROPIC_API_KEY", Header: "x-api-key", Format: "{token}"},
		},
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("route = %+v\nwant %+v", r, want)
	}
	// Each call is a fresh copy: a caller's change does not leak.
	m.Agents["claude"].Bottle = "changed"
	if Default().Agents["claude"].Bottle != "default" {
		t.Error("Default shares state between calls")
	}
}

func TestFind(t *testing.T) {
	withFile := t.TempDir()
	if err := os.WriteFile(filepath.Join(withFile, FileName), []byte("agents: {a: {bottle: b}}\nbottles: {b: {}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other.yaml")
	if err := os.WriteFile(other, []byte("agents: {x: {bottle: y}}\nbottles: {y: {}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, dir, flag string
		wantPath        string
		wantAgent       string
	}{
		{"flag wins", withFile, other, other, "x"},
		{"file in dir", withFile, "", filepath.Join(withFile, FileName), "a"},
		{"default", t.TempDir(), "", "", "claude"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Find(tt.dir, tt.flag)
			if err != nil {
				t.Fatal(err)
			}
			if m.Path != tt.wantPath || m.Agents[tt.wantAgent] == nil {
				t.Errorf("got Path %q agents %v", m.Path, m.Agents)
			}
		})
	}
	if _, err := Find(t.TempDir(), filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("Find accepted a missing -f file")
	}
}

func TestErrorFields(t *testing.T) {
	src := "agents:\n  claude:\n    bottle: dev\nbottles:\n  dev:\n    egress:\n      allow:\n        - host: example.com\n          port: 70000\n"
	_, err := Parse("claude-bottle.yaml", []byte(src))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not an *Error", err)
	}
	want := Error{File: "claude-bottle.yaml", Line: 9, Column: 17, Field: "bottles.dev.egress.allow[0].port", Msg: "must be 1-65535, got 70000"}
	if *e != want {
		t.Errorf("got %+v, want %+v", *e, want)
	}
	if got := e.Error(); got != "claude-bottle.yaml:9:17: bottles.dev.egress.allow[0].port: must be 1-65535, got 70000" {
		t.Errorf("Error() = %q", got)
	}
}

// A manifest built in code has no positions; Validate still finds the
// problems and defaults are not needed for zero values it treats as unset.
func TestValidateInCode(t *testing.T) {
	tests := []struct {
		name string
		m    Manifest
		want string
	}{
		{"ok", Manifest{
			Agents:  map[string]*Agent{"a": {Bottle: "b", Command: []string{"claude"}}},
			Bottles: map[string]*Bottle{"b": {Runtime: "runc", Resources: Resources{Memory: "512m", CPUs: 0.5, PIDs: 64}}},
		}, ""},
		{"missing bottle", Manifest{
			Agents:  map[string]*Agent{"a": {Bottle: "zz", Command: []string{"claude"}}},
			Bottles: map[string]*Bottle{"b": {Runtime: "runc", Resources: Resources{Memory: "512m", CPUs: 1, PIDs: 64}}},
		}, `agents.a.bottle: bottle "zz" is not defined under bottles (defined: b)`},
		{"unset resources", Manifest{
			Agents:  map[string]*Agent{"a": {Bottle: "b", Command: []string{"claude"}}},
			Bottles: map[string]*Bottle{"b": {Runtime: "auto", Resources: Resources{Memory: "4g", CPUs: 2}}},
		}, "bottles.b.resources.pids: must be greater than 0, got 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.m.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAliasExpansionBounded(t *testing.T) {
	// Each level lists the previous one ten times: 10^6 strings if expanded.
	var b strings.Builder
	b.WriteString("l0: &l0 [a, a, a, a, a, a, a, a, a, a]\n")
	for i := 1; i <= 6; i++ {
		b.WriteString("l" + string(rune('0'+i)) + ": &l" + string(rune('0'+i)) + " [")
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*l" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	_, err := Parse("bomb.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "unknown key") {
		t.Fatalf("got %v, want unknown key errors", err)
	}
	// The same under a key that takes lists of strings walks the expansion.
	src := "agents:\n  a:\n    bottle: b\n    forward_env: &f [A, A, A, A, A, A, A, A, A, A]\n" +
		"    skills: [*f, *f]\nbottles:\n  b: {}\n"
	if _, err := Parse("x.yaml", []byte(src)); err == nil || !strings.Contains(err.Error(), "expected a string, got a list") {
		t.Fatalf("got %v", err)
	}
}

func readFile(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The examples are complete manifests; they load once their files exist.
func TestExamplesLoad(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("found only %v", files)
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	// github.yaml names a deploy key under ~/.ssh.
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".ssh", "claude-bottle-app"), []byte("key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			if _, err := Load(file); err != nil {
				t.Error(err)
			}
		})
	}
}

// FuzzParse checks that no input panics the loader and that whatever it
// accepts still validates (defaults and path resolution keep it valid).
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.yaml")
	files = append(files, "default.yaml")
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("accepted manifest no longer validates: %v", err)
		}
	})
}
