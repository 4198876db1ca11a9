package e2etest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/docker"
)

const hashLabel = "dev.claude-bottle.test-hash"

// GoImage builds the Go program in e2e/fixtures/NAME as a static binary in
// an image FROM scratch tagged claude-bottle-fixture-NAME:test, reusing it
// when the program has not changed. The program must need nothing but
// itself (no shell, no CA bundle).
func GoImage(t testing.TB, c *docker.Client, name string) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "app")
	cmd := exec.Command("go", "build", "-o", bin, "./e2e/fixtures/"+name)
	cmd.Dir = Root()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build fixture %s: %v\n%s", name, err, out)
	}
	app, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	return buildImage(t, c, "claude-bottle-fixture-"+name+":test", map[string][]byte{
		"Dockerfile": []byte("FROM scratch\nCOPY app /app\nUSER 65532:65532\nENTRYPOINT [\"/app\"]\n"),
		"app":        app,
	})
}

// DockerfileImage builds an image from a Dockerfile text and extra files,
// reusing it when nothing changed.
func DockerfileImage(t testing.TB, c *docker.Client, tag, dockerfile string, files map[string][]byte) string {
	t.Helper()
	ctxFiles := map[string][]byte{"Dockerfile": []byte(dockerfile)}
	for k, v := range files {
		ctxFiles[k] = v
	}
	return buildImage(t, c, tag, ctxFiles)
}

func buildImage(t testing.TB, c *docker.Client, tag string, files map[string][]byte) string {
	t.Helper()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(files[n]))
		h.Write(files[n])
		mode := int64(0o644)
		if n == "app" {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: mode, Size: int64(len(files[n])), ModTime: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
		tw.Write(files[n])
	}
	tw.Close()
	sum := hex.EncodeToString(h.Sum(nil))[:16]
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if labels, ok, err := c.ImageLabels(ctx, tag); err == nil && ok && labels[hashLabel] == sum {
		return tag
	}
	var progress bytes.Buffer
	if err := c.BuildImage(ctx, docker.BuildSpec{Tag: tag, Context: &buf, Labels: map[string]string{hashLabel: sum}}, &progress); err != nil {
		t.Fatalf("build %s: %v\n%s", tag, err, tailLines(progress.String(), 20))
	}
	return tag
}

// Start creates and starts a fixture container and removes it at cleanup.
func Start(t testing.TB, c *docker.Client, spec docker.ContainerSpec) string {
	t.Helper()
	if spec.Name == "" {
		spec.Name = Unique("cbtest-fx")
	}
	if spec.Labels == nil {
		spec.Labels = map[string]string{}
	}
	spec.Labels["dev.claude-bottle.test"] = "1"
	ctx := context.Background()
	id, err := c.CreateContainer(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if logs, err := c.Logs(context.Background(), id); err == nil {
				t.Logf("fixture %s logs:\n%s", spec.Name, tailLines(string(logs), 40))
			}
		}
		if err := c.RemoveContainer(context.Background(), id); err != nil {
			t.Errorf("remove fixture %s: %v", spec.Name, err)
		}
	})
	if err := c.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	return id
}
