package cli

import (
	"strings"
	"testing"
)

// run and plan read [AGENT] [-- CMD ARGS...] alike: one table, both verbs.
func TestAgentArgs(t *testing.T) {
	cases := []struct {
		args    []string // as typed after the verb
		name    string
		command string
		errHas  string
	}{
		{args: nil},
		{args: []string{"dev"}, name: "dev"},
		{args: []string{"--", "bash", "-l"}, command: "bash -l"},
		{args: []string{"dev", "--", "true"}, name: "dev", command: "true"},
		{args: []string{"dev", "--", "--x"}, name: "dev", command: "--x"},
		{args: []string{"a", "b"}, errHas: "takes one AGENT; to run a command"},
		{args: []string{"a", "b", "--", "x"}, errHas: "takes one AGENT before --"},
		{args: []string{"dev", "--"}, errHas: "nothing after --"},
		{args: []string{"--"}, errHas: "nothing after --"},
	}
	for _, verb := range []string{"run", "plan"} {
		for _, tc := range cases {
			args, dash := splitDash(tc.args)
			name, command, err := agentArgs(verb, args, dash)
			what := verb + " " + strings.Join(tc.args, " ")
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Errorf("%s: want an error with %q, got %v", what, tc.errHas, err)
				}
				if !strings.Contains(err.Error(), "nothing after") && !strings.HasPrefix(err.Error(), verb+" ") {
					t.Errorf("%s: the error does not name the verb: %v", what, err)
				}
				// Through the command itself: the refusal comes before any
				// manifest or engine is touched, so it is safe to run here.
				if code, _, errOut := runCLI(t, append([]string{verb}, tc.args...)...); code == 0 || !strings.Contains(errOut, tc.errHas) {
					t.Errorf("%s: exit %d: %s", what, code, errOut)
				}
				continue
			}
			if err != nil || name != tc.name || strings.Join(command, " ") != tc.command {
				t.Errorf("%s: got %q %q %v, want %q %q", what, name, command, err, tc.name, tc.command)
			}
		}
	}
}

// splitDash removes the first "--" and says where it stood, as cobra does.
func splitDash(typed []string) ([]string, int) {
	for i, a := range typed {
		if a == "--" {
			return append(append([]string{}, typed[:i]...), typed[i+1:]...), i
		}
	}
	return typed, -1
}
