package images

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/docker"
)

func TestEnsureSidecarBuildsOnceAndRebuildsOnChange(t *testing.T) {
	c := engine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tag := prefix(t) + "-sidecar:test"
	removeImageAtCleanup(t, c, tag)

	ensure := func(bin string) (string, string) {
		t.Helper()
		var progress bytes.Buffer
		set, err := Ensure(ctx, c, testLog(t), Options{Binary: bin, Progress: &progress, Tags: Set{Sidecar: tag}}, Need{Sidecar: true})
		if err != nil {
			t.Fatal(err)
		}
		if set != (Set{Sidecar: tag}) {
			t.Fatalf("set = %+v", set)
		}
		img, ok, err := c.InspectImage(ctx, tag)
		if err != nil || !ok {
			t.Fatalf("inspect %s: %v %v", tag, ok, err)
		}
		if img.Labels[KindLabel] != "sidecar" || len(img.Labels[HashLabel]) != 64 {
			t.Errorf("labels = %v", img.Labels)
		}
		return img.ID, progress.String()
	}

	bin := staticBinary(t, "first")
	id1, progress := ensure(bin)
	if !strings.Contains(progress, "Step 1/") {
		t.Errorf("first Ensure did not build: %q", progress)
	}
	code, out := run(t, ctx, c, docker.ContainerSpec{Image: tag, Cmd: []string{"sidecar", "egress"}})
	if code != 0 || out != "first 65532 [sidecar egress]\n" {
		t.Errorf("sidecar image ran: %d %q", code, out)
	}

	id2, progress := ensure(bin)
	if id2 != id1 || progress != "" {
		t.Errorf("second Ensure rebuilt: id %s -> %s, progress %q", id1, id2, progress)
	}

	id3, progress := ensure(staticBinary(t, "second"))
	if id3 == id1 || !strings.Contains(progress, "Step 1/") {
		t.Errorf("changed binary did not rebuild: id %s -> %s", id1, id3)
	}
	if _, out := run(t, ctx, c, docker.ContainerSpec{Image: tag}); !strings.HasPrefix(out, "second ") {
		t.Errorf("rebuilt image runs %q", out)
	}
}

func TestBuildWorkspace(t *testing.T) {
	c := engine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tag := prefix(t) + "-ws:test"
	removeImageAtCleanup(t, c, tag)

	dir := t.TempDir()
	files := map[string]string{
		".claude-bottle-ignore": "secret.env\nnode_modules\n**/*.log\n!keep/important.log\n!deploy_key\n",
		// A secret the manifest names: never copied, not even re-included by "!".
		"deploy_key":          "-----BEGIN OPENSSH PRIVATE KEY-----\n",
		".dockerignore":       "main.go\n", // ignored: .claude-bottle-ignore wins
		"main.go":             "package main\n",
		"secret.env":          "TOKEN=x\n",
		"node_modules/a/b.js": "x\n",
		"sub/notes.txt":       "n\n",
		"sub/debug.log":       "d\n",
		"keep/important.log":  "i\n",
		"keep/other.log":      "o\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("sub/notes.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}

	if err := BuildWorkspace(ctx, c, testLog(t), "debian:bookworm-slim", tag, dir, []string{filepath.Join(dir, "deploy_key")}, nil); err != nil {
		t.Fatal(err)
	}
	labels, _, err := c.ImageLabels(ctx, tag)
	if err != nil || labels[RoleLabel] != "workspace" {
		t.Errorf("labels = %v, %v", labels, err)
	}
	code, out := run(t, ctx, c, docker.ContainerSpec{Image: tag, Cmd: []string{"sh", "-c",
		`cd /workspace && find . -mindepth 1 ! -type d | sort && stat -c '%u:%g' . main.go sub/notes.txt && readlink link`}})
	if code != 0 {
		t.Fatalf("listing failed (%d): %s", code, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	wantFiles := []string{"./.claude-bottle-ignore", "./.dockerignore", "./keep/important.log", "./link", "./main.go", "./sub/notes.txt"}
	if len(lines) != len(wantFiles)+4 || !slices.Equal(lines[:len(wantFiles)], wantFiles) {
		t.Fatalf("workspace holds:\n%s\nwant files %v", out, wantFiles)
	}
	if got := lines[len(wantFiles):]; !slices.Equal(got, []string{"1000:1000", "1000:1000", "1000:1000", "sub/notes.txt"}) {
		t.Errorf("owners and link = %v", got)
	}
}

func TestBuildWorkspaceMissingDir(t *testing.T) {
	c := engine(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tag := prefix(t) + "-ws:test"
	removeImageAtCleanup(t, c, tag)
	err := BuildWorkspace(ctx, c, testLog(t), "debian:bookworm-slim", tag, filepath.Join(t.TempDir(), "nothere"), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "nothere") {
		t.Fatalf("err = %v, want one naming the missing dir", err)
	}
}

// TestAgentImage builds the real agent and git-gate images (npm, a couple of
// minutes) only with CLAUDE_BOTTLE_TEST_AGENT_IMAGE=1; otherwise it checks
// what the build would get.
func TestAgentImage(t *testing.T) {
	ca := os.Getenv("CLAUDE_BOTTLE_EXTRA_CA")
	opts := Options{ExtraCA: ca, Binary: staticBinary(t, "gate")}
	ps, err := plans(opts, Need{Agent: true, GitGate: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		i := slices.IndexFunc(p.files, func(f file) bool { return f.name == "extra-ca.crt" })
		if i < 0 || (ca == "") != (len(p.files[i].data) == 0) {
			t.Errorf("%s: extra CA in context does not follow CLAUDE_BOTTLE_EXTRA_CA=%q", p.kind, ca)
		}
	}
	if os.Getenv("CLAUDE_BOTTLE_TEST_AGENT_IMAGE") != "1" {
		t.Log("set CLAUDE_BOTTLE_TEST_AGENT_IMAGE=1 to build the agent image")
		return
	}

	c := engine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	p := prefix(t)
	opts.Tags = Set{Agent: p + "-agent:test", GitGate: p + "-gate:test"}
	removeImageAtCleanup(t, c, opts.Tags.Agent)
	removeImageAtCleanup(t, c, opts.Tags.GitGate)
	set, err := Ensure(ctx, c, testLog(t), opts, Need{Agent: true, GitGate: true})
	if err != nil {
		t.Fatal(err)
	}

	code, out := run(t, ctx, c, docker.ContainerSpec{Image: set.Agent, Cmd: []string{"sh", "-c", "claude --version && id -un && pwd && echo $HOME"}})
	if code != 0 || !strings.Contains(out, ClaudeCodeVersion) || !strings.Contains(out, "agent\n/workspace\n/home/agent\n") {
		t.Errorf("agent image: %d %q", code, out)
	}
	code, out = run(t, ctx, c, docker.ContainerSpec{Image: set.GitGate, Cmd: []string{"sidecar", "git-gate"}})
	if code != 0 || out != "gate 65532 [sidecar git-gate]\n" {
		t.Errorf("git-gate entrypoint: %d %q", code, out)
	}
	code, out = run(t, ctx, c, docker.ContainerSpec{Image: set.GitGate, Entrypoint: []string{"git"}, Cmd: []string{"--version"}})
	if code != 0 || !strings.HasPrefix(out, "git version") {
		t.Errorf("git-gate git: %d %q", code, out)
	}
}
