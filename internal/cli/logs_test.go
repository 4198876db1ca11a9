package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/claude-bottle/claude-bottle/internal/manifest"
)

func TestLogsMergedByTime(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "egress.jsonl"), []byte(
		`{"time":"2026-01-01T00:00:01Z","sidecar":"egress","kind":"a"}`+"\n"+
			`{"time":"2026-01-01T00:00:03Z","sidecar":"egress","kind":"c"}`+"\n"+
			`{"time":"2026-01-01T00:00:04Z","sidecar":"egress","kind":"partial`), 0o600)
	os.WriteFile(filepath.Join(dir, "supervise.jsonl"), []byte(
		`{"time":"2026-01-01T00:00:02Z","sidecar":"supervise","kind":"b"}`+"\n"), 0o600)
	var out bytes.Buffer
	if err := showLogs(context.Background(), &out, dir, false); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		i := strings.Index(l, `"kind":"`)
		kinds = append(kinds, l[i+8:i+9])
	}
	if got := strings.Join(kinds, ""); got != "abc" {
		t.Fatalf("order %q (a partial last line must wait until it is whole):\n%s", got, out.String())
	}
}

func TestSecretFilesOfABottle(t *testing.T) {
	b := &manifest.Bottle{}
	b.CredProxy.Routes = []manifest.Route{{Credentials: []manifest.Credential{{Env: "X"}, {File: "/w/token"}}}}
	b.Git.Repos = []manifest.Repo{{Key: "/w/deploy_key"}, {Token: &manifest.Credential{File: "/w/gh"}}}
	got := strings.Join(secretFiles(b), ",")
	if got != "/w/token,/w/deploy_key,/w/gh" {
		t.Fatalf("secret files %q", got)
	}
}
