package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const testImage = "debian:bookworm-slim"

// engine connects to the local engine. Without one the test is skipped on a
// developer machine and fails in CI, where an engine is part of the setup.
func engine(t *testing.T) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := New(ctx)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("docker engine required in CI: %v", err)
		}
		t.Skipf("no docker engine (%v); start one with: (setsid dockerd >/var/log/dockerd.log 2>&1 &)", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// prefix returns a unique name prefix for one test's resources.
func prefix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "cbtest-" + hex.EncodeToString(b)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func mkNetwork(t *testing.T, c *Client, spec NetworkSpec) {
	t.Helper()
	if _, err := c.CreateNetwork(testCtx(t), spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.RemoveNetwork(context.Background(), spec.Name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

func mkContainer(t *testing.T, c *Client, spec ContainerSpec) string {
	t.Helper()
	if spec.Image == "" {
		spec.Image = testImage
	}
	id, err := c.CreateContainer(testCtx(t), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.RemoveContainer(context.Background(), id); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return id
}

func TestNewUnreachable(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	_, err := New(testCtx(t))
	if err == nil {
		t.Fatal("New succeeded against a missing socket")
	}
	for _, want := range []string{"cannot reach the Docker engine", "DOCKER_HOST=unix:///nonexistent/docker.sock", "start dockerd"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestInfo(t *testing.T) {
	c := engine(t)
	info, err := c.Info(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.ServerVersion == "" || info.APIVersion == "" {
		t.Errorf("incomplete info: %+v", info)
	}
	if !slices.Contains(info.Runtimes, "runc") {
		t.Errorf("runtimes %v lack runc", info.Runtimes)
	}
}

func TestNetworks(t *testing.T) {
	c := engine(t)
	ctx := testCtx(t)
	p := prefix(t)
	name := p + "-net"
	mkNetwork(t, c, NetworkSpec{Name: name, Internal: true, Labels: map[string]string{"dev.claude-bottle.test": p}})

	nets, err := c.ListNetworks(ctx, map[string]string{"dev.claude-bottle.test": p})
	if err != nil {
		t.Fatal(err)
	}
	if len(nets) != 1 || nets[0].Name != name || nets[0].Labels["dev.claude-bottle.test"] != p || nets[0].Created.IsZero() {
		t.Fatalf("list by label = %+v, want just %s", nets, name)
	}
	subnets, err := c.NetworkSubnets(ctx, name)
	if err != nil || len(subnets) == 0 || !strings.Contains(subnets[0], "/") {
		t.Errorf("NetworkSubnets = %v, %v; want a CIDR", subnets, err)
	}
	if _, err := c.NetworkSubnets(ctx, name+"-missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("NetworkSubnets(missing): %v, want ErrNotFound", err)
	}
	if _, err := c.CreateNetwork(ctx, NetworkSpec{Name: name}); !errors.Is(err, ErrConflict) {
		t.Errorf("duplicate create: err = %v, want ErrConflict", err)
	}
	for _, tc := range []struct {
		name string
		want bool
	}{{name, true}, {name[:len(name)-1], false}, {nets[0].ID[:12], false}} {
		got, err := c.NetworkExists(ctx, tc.name)
		if err != nil || got != tc.want {
			t.Errorf("NetworkExists(%q) = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	if err := c.RemoveNetwork(ctx, name); err != nil {
		t.Fatal(err)
	}
	if ok, err := c.NetworkExists(ctx, name); err != nil || ok {
		t.Errorf("after remove: exists = %v, %v", ok, err)
	}
	if err := c.RemoveNetwork(ctx, name); err != nil {
		t.Errorf("removing a missing network: %v, want nil", err)
	}
}

func TestContainerOnNetworks(t *testing.T) {
	c := engine(t)
	ctx := testCtx(t)
	p := prefix(t)
	internal, extra := p+"-int", p+"-ext"
	mkNetwork(t, c, NetworkSpec{Name: internal, Internal: true})
	mkNetwork(t, c, NetworkSpec{Name: extra})
	labels := map[string]string{"dev.claude-bottle.test": p}

	svc := mkContainer(t, c, ContainerSpec{
		Name: p + "-svc", Cmd: []string{"sleep", "infinity"}, Labels: labels,
		Network: internal, Aliases: []string{"svc"},
		ExtraNetworks: []Attach{{Network: extra, Aliases: []string{"svc-out"}}},
		Init:          true, CapDrop: []string{"ALL"}, PidsLimit: 64,
	})
	client := mkContainer(t, c, ContainerSpec{
		Name: p + "-cli", Cmd: []string{"sleep", "infinity"}, Labels: labels,
		Network: internal, User: "65534:65534", Init: true,
	})
	for _, id := range []string{svc, client} {
		if err := c.StartContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
	}

	info, err := c.InspectContainer(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Running || info.Name != p+"-svc" || info.Runtime != "runc" || info.Labels["dev.claude-bottle.test"] != p {
		t.Errorf("inspect = %+v", info)
	}
	if info.IPs[internal] == "" || info.IPs[extra] == "" {
		t.Fatalf("IPs = %v, want one on %s and %s", info.IPs, internal, extra)
	}

	code, out, err := c.Exec(ctx, client, []string{"getent", "hosts", "svc"}, "")
	if err != nil || code != 0 || !strings.Contains(string(out), info.IPs[internal]) {
		t.Errorf("resolve alias: code %d, out %q, err %v; want %s", code, out, err, info.IPs[internal])
	}
	code, out, err = c.Exec(ctx, client, []string{"sh", "-c", "id -u; echo oops >&2; exit 4"}, "")
	// stdout and stderr are separate pipes: their relative order is not kept.
	lines := strings.Fields(string(out))
	slices.Sort(lines)
	if err != nil || code != 4 || !slices.Equal(lines, []string{"65534", "oops"}) {
		t.Errorf("exec: code %d, out %q, err %v", code, out, err)
	}
	code, out, err = c.Exec(ctx, client, []string{"id", "-u"}, "0")
	if err != nil || code != 0 || strings.TrimSpace(string(out)) != "0" {
		t.Errorf("exec as root: code %d, out %q, err %v", code, out, err)
	}

	list, err := c.ListContainers(ctx, labels, false)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ct := range list {
		names = append(names, ct.Name)
	}
	slices.Sort(names)
	if want := []string{p + "-cli", p + "-svc"}; !slices.Equal(names, want) {
		t.Errorf("list = %v, want %v", names, want)
	}

	if err := c.KillContainer(ctx, client, ""); err != nil {
		t.Fatal(err)
	}
	if code, err := c.Wait(ctx, client); err != nil || code != 137 {
		t.Errorf("wait after kill = %d, %v; want 137", code, err)
	}
	if err := c.RemoveContainer(ctx, client); err != nil {
		t.Fatal(err)
	}
	if _, err := c.InspectContainer(ctx, client); !errors.Is(err, ErrNotFound) {
		t.Errorf("inspect removed: %v, want ErrNotFound", err)
	}
	if err := c.RemoveContainer(ctx, client); err != nil {
		t.Errorf("remove missing: %v, want nil", err)
	}
	if err := c.StartContainer(ctx, p+"-nothere"); !errors.Is(err, ErrNotFound) {
		t.Errorf("start missing: %v, want ErrNotFound", err)
	}
	if _, err := c.CreateContainer(ctx, ContainerSpec{Name: p + "-svc", Image: testImage, Cmd: []string{"true"}}); !errors.Is(err, ErrConflict) {
		t.Errorf("create duplicate name: %v, want ErrConflict", err)
	}
}

func TestCreateContainerCleansUpOnConnectFailure(t *testing.T) {
	c := engine(t)
	ctx := testCtx(t)
	p := prefix(t)
	t.Cleanup(func() {
		if err := c.RemoveContainer(context.Background(), p+"-x"); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	_, err := c.CreateContainer(ctx, ContainerSpec{
		Name: p + "-x", Image: testImage, Cmd: []string{"true"},
		ExtraNetworks: []Attach{{Network: p + "-missing"}},
	})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if _, err := c.InspectContainer(ctx, p+"-x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("half-made container left behind: %v", err)
	}
}

func TestAttachStart(t *testing.T) {
	c := engine(t)
	p := prefix(t)
	tests := []struct {
		name       string
		cmd        []string
		tty        bool
		stdin      string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "exit code and both streams", cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}, wantCode: 3, wantStdout: "out\n", wantStderr: "err\n"},
		{name: "stdin passes through", cmd: []string{"cat"}, stdin: "hello\nworld\n", wantStdout: "hello\nworld\n"},
		{name: "lots of output is copied in full", cmd: []string{"sh", "-c", "seq 1 20000"}, wantStdout: seq(20000)},
		{name: "tty", cmd: []string{"sh", "-c", "echo hi"}, tty: true, wantStdout: "hi\r\n"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			spec := ContainerSpec{Name: p + "-" + string(rune('a'+i)), Cmd: tc.cmd, TTY: tc.tty, Network: "none"}
			var s Streams
			var stdout, stderr bytes.Buffer
			s.Stdout, s.Stderr, s.TTY = &stdout, &stderr, tc.tty
			if tc.stdin != "" {
				spec.OpenStdin, spec.StdinOnce = true, true
				s.Stdin = strings.NewReader(tc.stdin)
			}
			id := mkContainer(t, c, spec)
			code, err := c.AttachStart(ctx, id, s)
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.wantCode || stdout.String() != tc.wantStdout || stderr.String() != tc.wantStderr {
				t.Errorf("got code %d stdout %.80q stderr %q; want %d %.80q %q", code, stdout.String(), stderr.String(), tc.wantCode, tc.wantStdout, tc.wantStderr)
			}
			logs, err := c.Logs(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if len(logs) == 0 {
				t.Errorf("no logs")
			}
		})
	}
}

func seq(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		b.WriteString(strconv.Itoa(i) + "\n")
	}
	return b.String()
}

// tarOf makes a build context from name -> content.
func tarOf(t *testing.T, files map[string]string) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

func TestBuildImage(t *testing.T) {
	c := engine(t)
	ctx := testCtx(t)
	p := prefix(t)
	tag := p + "-img:test"
	t.Cleanup(func() {
		for _, ref := range []string{tag, p + "-img:again"} {
			if err := c.RemoveImage(context.Background(), ref); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})

	var progress bytes.Buffer
	err := c.BuildImage(ctx, BuildSpec{
		Tag:        tag,
		Context:    tarOf(t, map[string]string{"build.Dockerfile": "FROM " + testImage + "\nLABEL from.dockerfile=yes\nCOPY hello.txt /hello.txt\n", "hello.txt": "hi\n"}),
		Dockerfile: "build.Dockerfile",
		Labels:     map[string]string{"dev.claude-bottle.test": p},
	}, &progress)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(progress.String(), "Step 1/") {
		t.Errorf("progress lacks builder output: %q", progress.String())
	}
	labels, ok, err := c.ImageLabels(ctx, tag)
	if err != nil || !ok {
		t.Fatalf("ImageLabels = %v, %v", ok, err)
	}
	if labels["from.dockerfile"] != "yes" || labels["dev.claude-bottle.test"] != p {
		t.Errorf("labels = %v", labels)
	}
	if err := c.TagImage(ctx, tag, p+"-img:again"); err != nil {
		t.Fatal(err)
	}
	imgs, err := c.ListImages(ctx, map[string]string{"dev.claude-bottle.test": p})
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || !slices.Contains(imgs[0].Tags, p+"-img:again") {
		t.Errorf("ListImages = %+v", imgs)
	}

	if _, ok, err := c.ImageLabels(ctx, p+"-none:latest"); ok || err != nil {
		t.Errorf("missing image: ok %v, err %v; want false, nil", ok, err)
	}

	err = c.BuildImage(ctx, BuildSpec{
		Tag:     p + "-bad:test",
		Context: tarOf(t, map[string]string{"Dockerfile": "FROM " + testImage + "\nRUN echo marker-" + p + "; exit 7\n"}),
	}, nil)
	if err == nil {
		t.Fatal("failing build succeeded")
	}
	if !strings.Contains(err.Error(), "marker-"+p) || !strings.Contains(err.Error(), "7") {
		t.Errorf("build error lacks the output tail: %v", err)
	}
}
