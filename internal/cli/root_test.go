package cli

import (
	"strings"
	"testing"
)

// Every verb, hidden ones included, parses its flags and prints help: a
// flag clash (two -f, say) panics in cobra at first use, not at build.
func TestEveryVerbHelp(t *testing.T) {
	root := newRoot(&globals{getenv: func(string) string { return "" }})
	names := map[string]bool{}
	for _, c := range root.Commands() {
		names[c.Name()] = true
		args := []string{c.Name(), "--help"}
		code, out, errOut := runCLI(t, args...)
		if code != 0 || !strings.Contains(out, "Usage:") {
			t.Errorf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
		for _, sub := range c.Commands() {
			args := []string{c.Name(), sub.Name(), "--help"}
			if code, out, errOut := runCLI(t, args...); code != 0 || !strings.Contains(out, "Usage:") {
				t.Errorf("%v: exit %d\n%s%s", args, code, out, errOut)
			}
		}
	}
	for _, want := range []string{"run", "plan", "validate", "init", "schema", "ps", "cleanup", "supervise", "images", "version", "logs"} {
		if !names[want] {
			t.Errorf("verb %s missing", want)
		}
	}
	code, out, _ := runCLI(t, "--help")
	if code != 0 || strings.Contains(out, "\n  sidecar ") {
		t.Errorf("root help shows the hidden sidecar verb or fails:\n%s", out)
	}
}
