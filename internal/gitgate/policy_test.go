package gitgate

import (
	"errors"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	const (
		z = "0000000000000000000000000000000000000000"
		a = "1111111111111111111111111111111111111111"
		b = "2222222222222222222222222222222222222222"
	)
	// a is an ancestor of b; nothing else is related.
	anc := func(old, new string) (bool, error) {
		if old == "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee" {
			return false, errors.New("object missing")
		}
		return old == a && new == b, nil
	}
	agent := PushPolicy{Branches: []string{"agent/*", "main"}}
	all := PushPolicy{Branches: []string{"*"}, Force: true, Delete: true, Tags: true}
	tests := []struct {
		name   string
		p      PushPolicy
		u      RefUpdate
		reason string // "" means allowed
	}{
		{"create allowed branch", agent, RefUpdate{z, a, "refs/heads/agent/x"}, ""},
		{"fast-forward", agent, RefUpdate{a, b, "refs/heads/main"}, ""},
		{"no-op", agent, RefUpdate{a, a, "refs/heads/main"}, ""},
		{"non-fast-forward", agent, RefUpdate{b, a, "refs/heads/main"}, "non-fast-forward"},
		{"non-fast-forward with force", PushPolicy{Branches: []string{"main"}, Force: true}, RefUpdate{b, a, "refs/heads/main"}, ""},
		{"ancestry unknown fails closed", all, RefUpdate{"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee", a, "refs/heads/main"}, "cannot check fast-forward"},
		{"branch outside patterns", agent, RefUpdate{z, a, "refs/heads/feature"}, "not allowed by the push policy"},
		{"pattern does not cross slash", agent, RefUpdate{z, a, "refs/heads/agent/x/y"}, "not allowed"},
		{"zero policy", PushPolicy{}, RefUpdate{z, a, "refs/heads/main"}, "allows no branches"},
		{"delete refused", agent, RefUpdate{a, z, "refs/heads/agent/x"}, "deleting a branch"},
		{"delete allowed", PushPolicy{Branches: []string{"agent/*"}, Delete: true}, RefUpdate{a, z, "refs/heads/agent/x"}, ""},
		{"delete outside patterns", PushPolicy{Branches: []string{"agent/*"}, Delete: true}, RefUpdate{a, z, "refs/heads/main"}, "not allowed"},
		{"tag refused", agent, RefUpdate{z, a, "refs/tags/v1"}, "pushing tags"},
		{"tag allowed", PushPolicy{Tags: true}, RefUpdate{z, a, "refs/tags/v1"}, ""},
		{"tag move needs force", PushPolicy{Tags: true}, RefUpdate{a, b, "refs/tags/v1"}, "moving an existing tag"},
		{"tag move with force", PushPolicy{Tags: true, Force: true}, RefUpdate{a, b, "refs/tags/v1"}, ""},
		{"tag delete needs delete", PushPolicy{Tags: true}, RefUpdate{a, z, "refs/tags/v1"}, "deleting a tag"},
		{"notes namespace", all, RefUpdate{z, a, "refs/notes/commits"}, "only refs/heads/ and refs/tags/"},
		{"HEAD", all, RefUpdate{z, a, "HEAD"}, "invalid ref name"},
		{"dot-dot", all, RefUpdate{z, a, "refs/heads/../tags/x"}, "invalid ref name"},
		{"lock suffix", all, RefUpdate{z, a, "refs/heads/x.lock"}, "invalid ref name"},
		{"option-like", all, RefUpdate{z, a, "refs/heads/x:y"}, "invalid ref name"},
		{"bad oid", all, RefUpdate{z, "xyz", "refs/heads/x"}, "invalid object id"},
		{"both zero", all, RefUpdate{z, z, "refs/heads/x"}, "both absent"},
		{"sha256 create", all, RefUpdate{strings.Repeat("0", 64), strings.Repeat("a", 64), "refs/heads/x"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Check(tc.p, []RefUpdate{tc.u}, anc)
			if tc.reason == "" {
				if len(got) != 0 {
					t.Fatalf("refused: %+v", got)
				}
				return
			}
			if len(got) != 1 || got[0].Update != tc.u || !strings.Contains(got[0].Reason, tc.reason) {
				t.Fatalf("got %+v, want one refusal containing %q", got, tc.reason)
			}
		})
	}
}

func TestDecideMarksForce(t *testing.T) {
	const a, b = "1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222"
	p := PushPolicy{Branches: []string{"*"}, Force: true}
	ds := decide(p, []RefUpdate{{b, a, "refs/heads/x"}, {a, b, "refs/heads/y"}}, func(old, new string) (bool, error) {
		return old == a && new == b, nil
	})
	if len(ds) != 2 || !ds[0].force || ds[1].force || ds[0].reason != "" || ds[1].reason != "" {
		t.Fatalf("decisions %+v: want only the first forced, both allowed", ds)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name      string
		json      string
		allowFile bool
		err       string
	}{
		{"scp ssh", `{"repos":[{"name":"app","upstream":"git@github.com:o/app.git","key_file":"keys/app","push":{}}]}`, false, ""},
		{"ssh url", `{"repos":[{"name":"app","upstream":"ssh://git@host:22/o/app.git","push":{}}]}`, false, ""},
		{"https token", `{"repos":[{"name":"app","upstream":"https://h/o/app.git","token_file":"tokens/app","push":{}}]}`, false, ""},
		{"unknown field", `{"repos":[{"name":"app","upstream":"https://h/a","pushy":{}}]}`, false, "unknown field"},
		{"ext transport", `{"repos":[{"name":"app","upstream":"ext::sh -c x","push":{}}]}`, false, "invalid upstream"},
		{"option upstream", `{"repos":[{"name":"app","upstream":"--upload-pack=x","push":{}}]}`, false, "invalid upstream"},
		{"file refused", `{"repos":[{"name":"app","upstream":"file:///tmp/x","push":{}}]}`, false, "neither ssh"},
		{"file for tests", `{"repos":[{"name":"app","upstream":"file:///tmp/x","push":{}}]}`, true, ""},
		{"http refused", `{"repos":[{"name":"app","upstream":"http://h/x","push":{}}]}`, false, "neither ssh"},
		{"bad name", `{"repos":[{"name":"../x","upstream":"https://h/x","push":{}}]}`, false, "invalid name"},
		{"git suffix", `{"repos":[{"name":"x.git","upstream":"https://h/x","push":{}}]}`, false, "invalid name"},
		{"duplicate", `{"repos":[{"name":"x","upstream":"https://h/x"},{"name":"x","upstream":"https://h/y"}]}`, false, "duplicate"},
		{"key escapes", `{"repos":[{"name":"x","upstream":"git@h:x","key_file":"../k"}]}`, false, "relative path"},
		{"key on https", `{"repos":[{"name":"x","upstream":"https://h/x","key_file":"k"}]}`, false, "only for ssh"},
		{"format without token", `{"repos":[{"name":"x","upstream":"https://h/x","token_file":"t","format":"Bearer"}]}`, false, "{token}"},
		{"bad pattern", `{"repos":[{"name":"x","upstream":"https://h/x","push":{"branches":["["]}}]}`, false, "bad branch pattern"},
		{"trailing value", `{"repos":[]}{"repos":[{"name":"x","upstream":"https://h/x"}]}`, false, "trailing data"},
		{"trailing brace", `{"repos":[{"name":"x","upstream":"https://h/x"}]}}`, false, "trailing data"},
		{"scp without user", `{"repos":[{"name":"x","upstream":"h:x","key_file":"k"}]}`, false, "names no user"},
		{"scp host option", `{"repos":[{"name":"x","upstream":"git@-oProxyCommand=x:app","key_file":"k"}]}`, false, "invalid upstream"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig([]byte(tc.json), tc.allowFile)
			if tc.err == "" && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			}
		})
	}
}

func TestSSHCommand(t *testing.T) {
	got := sshCommandFor("", "/usr/local/bin/claude-bottle", "/tmp/k/app.key", "/etc/kh", true)
	for _, want := range []string{
		"-i '/tmp/k/app.key'", "IdentitiesOnly=yes", "'UserKnownHostsFile=/etc/kh'", "StrictHostKeyChecking=yes",
		`'ProxyCommand='\''/usr/local/bin/claude-bottle'\'' sidecar connect %h %p'`, "BatchMode=yes",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("ssh command %q lacks %q", got, want)
		}
	}
	if got := sshCommandFor("", "/x", "", "/kh", false); !strings.Contains(got, "StrictHostKeyChecking=accept-new") || strings.Contains(got, "-i ") {
		t.Errorf("unpinned, keyless ssh command %q", got)
	}
	if got := sshCommandFor("myssh -i {key} -o UserKnownHostsFile={known_hosts}", "/x", "/k", "/kh", true); got != "myssh -i '/k' -o UserKnownHostsFile='/kh'" {
		t.Errorf("template = %q", got)
	}
}
