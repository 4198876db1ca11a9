package cli

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/claude-bottle/claude-bottle/e2e/e2etest"

	"github.com/claude-bottle/claude-bottle/internal/docker"
	"github.com/claude-bottle/claude-bottle/internal/images"
)

// needEngine is the real engine: a test fails without one when CI=true (e2etest.Engine).
func needEngine(t *testing.T) *docker.Client { return e2etest.Engine(t) }

// labelledImage builds a tiny image that `images ls` must list.
func labelledImage(t *testing.T, c *docker.Client) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	tag := "cbtest-" + hex.EncodeToString(b) + "-ls:test"
	var ctx bytes.Buffer
	tw := tar.NewWriter(&ctx)
	df := "FROM debian:bookworm-slim\n"
	if err := tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(df))}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte(df)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	err := c.BuildImage(context.Background(), docker.BuildSpec{
		Tag: tag, Context: &ctx,
		Labels: map[string]string{images.KindLabel: "cbtest", images.HashLabel: "0123456789abcdef"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.RemoveImage(context.Background(), tag); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return tag
}

func TestImagesCmd(t *testing.T) {
	tag := labelledImage(t, needEngine(t))
	bad := filepath.Join(t.TempDir(), "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantCode   int
		wantStdout string
		wantStderr string
		wantRow    []string // a row's first columns
		manifest   string   // written to claude-bottle.yaml in a fresh working directory
	}{
		{name: "ls", args: []string{"images", "ls"}, wantStdout: "IMAGE", wantRow: []string{tag, "cbtest", "0123456789ab"}},
		{name: "bad CA flag", args: []string{"images", "build", "--agent-only", "--ca-certs", bad}, wantCode: 1, wantStderr: "no PEM CERTIFICATE block found"},
		{name: "bad CA from env", args: []string{"images", "build", "--agent-only"}, env: map[string]string{"CLAUDE_BOTTLE_EXTRA_CA": bad}, wantCode: 1, wantStderr: bad},
		{name: "extra args", args: []string{"images", "ls", "x"}, wantCode: 1, wantStderr: "unknown command"},
		{name: "bad CA from the manifest", args: []string{"images", "build", "--agent-only"}, env: map[string]string{"CLAUDE_BOTTLE_EXTRA_CA": ""},
			manifest: "agents:\n  a:\n    bottle: b\nbottles:\n  b: {}\nimages:\n  ca_certs: " + bad + "\n", wantCode: 1, wantStderr: bad},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if tc.manifest != "" {
				dir := t.TempDir()
				if err := os.WriteFile(filepath.Join(dir, "claude-bottle.yaml"), []byte(tc.manifest), 0o644); err != nil {
					t.Fatal(err)
				}
				t.Chdir(dir)
			}
			var stdout, stderr bytes.Buffer
			code := Run(context.Background(), tc.args, strings.NewReader(""), &stdout, &stderr)
			if code != tc.wantCode || !strings.Contains(stdout.String(), tc.wantStdout) || !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("code %d stdout %q stderr %q; want %d, %q, %q", code, stdout.String(), stderr.String(), tc.wantCode, tc.wantStdout, tc.wantStderr)
			}
			if tc.wantRow != nil && !slices.ContainsFunc(strings.Split(stdout.String(), "\n"), func(l string) bool {
				f := strings.Fields(l)
				return len(f) >= len(tc.wantRow) && slices.Equal(f[:len(tc.wantRow)], tc.wantRow)
			}) {
				t.Errorf("no row %v in:\n%s", tc.wantRow, stdout.String())
			}
		})
	}
}
