package cli

import (
	"errors"
	"testing"

	"github.com/claude-bottle/claude-bottle/internal/manifest"
)

// The flag wins over $CLAUDE_BOTTLE_EXTRA_CA, which wins over the
// manifest; the manifest is not even loaded when one of them is set.
func TestExtraCAPrecedence(t *testing.T) {
	m := &manifest.Manifest{Images: manifest.Images{CACerts: "/from/manifest.pem"}}
	broken := errors.New("manifest: line 3: bad")
	cases := []struct {
		name, flag, env string
		loadErr         error
		want            string
		loads           bool
		wantErr         error
	}{
		{name: "flag", flag: "/from/flag.pem", env: "/from/env.pem", loadErr: broken, want: "/from/flag.pem"},
		{name: "env", env: "/from/env.pem", loadErr: broken, want: "/from/env.pem"},
		{name: "manifest", want: "/from/manifest.pem", loads: true},
		{name: "manifest without one", loads: true},
		{name: "manifest broken", loadErr: broken, loads: true, wantErr: broken},
	}
	for _, tc := range cases {
		loaded := false
		load := func() (*manifest.Manifest, error) {
			loaded = true
			if tc.loadErr != nil {
				return nil, tc.loadErr
			}
			if tc.name == "manifest without one" {
				return &manifest.Manifest{}, nil
			}
			return m, nil
		}
		got, err := extraCA(tc.flag, envOf(map[string]string{"CLAUDE_BOTTLE_EXTRA_CA": tc.env}), load)
		if got != tc.want || !errors.Is(err, tc.wantErr) || loaded != tc.loads {
			t.Errorf("%s: got %q %v (manifest loaded %v), want %q %v (loaded %v)", tc.name, got, err, loaded, tc.want, tc.wantErr, tc.loads)
		}
	}
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
