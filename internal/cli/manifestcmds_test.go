package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/claude-bottle/claude-bottle/internal/manifest"
)

// runManifestCmd runs one of this file's verbs directly, without the root
// command, with -f set to flagPath.
func runManifestCmd(t *testing.T, newCmd func(*globals) *cobra.Command, flagPath string, args ...string) (stdout string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	g := &globals{
		manifest: flagPath,
		stdin:    strings.NewReader(""),
		stdout:   &out,
		stderr:   &errOut,
		log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		getenv:   func(string) string { return "" },
	}
	cmd := newCmd(g)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	err = cmd.Execute()
	return out.String(), err
}

func TestValidateCmd(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	writeManifestFile(t, good, "agents:\n  a: {bottle: b}\n  c: {bottle: b}\nbottles:\n  b: {}\n")
	writeManifestFile(t, bad, "agents:\n  a:\n    bottle: b\nbottles:\n  b:\n    runtime: kata\n")
	tests := []struct {
		name, flag, wantOut, wantErr string
	}{
		{"good file", good, good + ": ok (2 agents, 1 bottle)\n", ""},
		{"bad file", bad, "", bad + ":6:14: bottles.b.runtime: must be auto, runsc or runc, got \"kata\""},
		{"missing file", filepath.Join(dir, "nope.yaml"), "", "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runManifestCmd(t, newValidateCmd, tt.flag)
			if out != tt.wantOut {
				t.Errorf("stdout = %q, want %q", out, tt.wantOut)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// Without -f, validate uses ./claude-bottle.yaml, else the built-in default.
func TestValidateCmdFindsManifest(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	out, err := runManifestCmd(t, newValidateCmd, "")
	if err != nil || out != "built-in default manifest: ok (1 agent, 1 bottle)\n" {
		t.Fatalf("without a file: %q, %v", out, err)
	}
	writeManifestFile(t, filepath.Join(dir, manifest.FileName), "agents: {x: {bottle: y}}\nbottles: {y: {}, z: {}}\n")
	out, err = runManifestCmd(t, newValidateCmd, "")
	want := filepath.Join(dir, manifest.FileName) + ": ok (1 agent, 2 bottles)\n"
	if err != nil || out != want {
		t.Fatalf("with a file: %q, %v; want %q", out, err, want)
	}
}

func TestInitCmd(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	out, err := runManifestCmd(t, newInitCmd, "")
	if err != nil || !strings.Contains(out, "wrote claude-bottle.yaml") {
		t.Fatalf("first init: %q, %v", out, err)
	}
	if got := readManifestFile(t, manifest.FileName); got != string(manifest.DefaultYAML()) {
		t.Fatalf("init wrote something else than DefaultYAML:\n%s", got)
	}
	// What init writes is what validate accepts.
	if out, err := runManifestCmd(t, newValidateCmd, ""); err != nil || !strings.HasSuffix(out, ": ok (1 agent, 1 bottle)\n") {
		t.Fatalf("validate after init: %q, %v", out, err)
	}

	writeManifestFile(t, manifest.FileName, "# mine\n")
	if _, err := runManifestCmd(t, newInitCmd, ""); err == nil || !strings.Contains(err.Error(), "already exists; use --force") {
		t.Fatalf("init over an existing file: %v", err)
	}
	if got := readManifestFile(t, manifest.FileName); got != "# mine\n" {
		t.Fatalf("init without --force changed the file: %q", got)
	}
	if _, err := runManifestCmd(t, newInitCmd, "", "--force"); err != nil {
		t.Fatalf("init --force: %v", err)
	}
	if got := readManifestFile(t, manifest.FileName); got != string(manifest.DefaultYAML()) {
		t.Fatal("init --force did not overwrite")
	}

	// -f names the file to write.
	if _, err := runManifestCmd(t, newInitCmd, "other.yaml"); err != nil {
		t.Fatal(err)
	}
	if readManifestFile(t, "other.yaml") != string(manifest.DefaultYAML()) {
		t.Fatal("init -f other.yaml wrote something else")
	}
}

func TestSchemaCmd(t *testing.T) {
	out, err := runManifestCmd(t, newSchemaCmd, "")
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Schema string                     `json:"$schema"`
		Defs   map[string]json.RawMessage `json:"$defs"`
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("schema output is not JSON: %v", err)
	}
	for _, def := range []string{"Manifest", "Agent", "Bottle", "Route", "Credential", "Repo"} {
		if _, ok := s.Defs[def]; !ok {
			t.Errorf("schema has no $defs/%s", def)
		}
	}
}

func writeManifestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readManifestFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
