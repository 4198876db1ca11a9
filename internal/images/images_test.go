package images

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/claude-bottle/claude-bottle/e2e/e2etest"

	"github.com/claude-bottle/claude-bottle/internal/logtest"

	"github.com/claude-bottle/claude-bottle/internal/docker"
)

func str(s string) *string { return &s }

func TestInputHash(t *testing.T) {
	df := []byte("FROM scratch\n")
	files := []file{{name: "a", mode: 0o644, data: []byte("1")}, {name: "b", mode: 0o755, data: []byte("2")}}
	base := inputHash(df, files, map[string]*string{"X": str("1")})
	tests := []struct {
		name  string
		df    []byte
		files []file
		args  map[string]*string
		same  bool
	}{
		{name: "identical", df: df, files: files, args: map[string]*string{"X": str("1")}, same: true},
		{name: "file order does not matter", df: df, files: []file{files[1], files[0]}, args: map[string]*string{"X": str("1")}, same: true},
		{name: "dockerfile changes", df: []byte("FROM scratch\n\n"), files: files, args: map[string]*string{"X": str("1")}},
		{name: "file content changes", df: df, files: []file{files[0], {name: "b", mode: 0o755, data: []byte("3")}}, args: map[string]*string{"X": str("1")}},
		{name: "file renamed", df: df, files: []file{files[0], {name: "c", mode: 0o755, data: []byte("2")}}, args: map[string]*string{"X": str("1")}},
		{name: "file mode changes", df: df, files: []file{files[0], {name: "b", mode: 0o644, data: []byte("2")}}, args: map[string]*string{"X": str("1")}},
		{name: "bytes moved between name and content", df: df, files: []file{files[0], {name: "b2", mode: 0o755, data: []byte("")}}, args: map[string]*string{"X": str("1")}},
		{name: "build arg value changes", df: df, files: files, args: map[string]*string{"X": str("2")}},
		{name: "build arg unset vs empty", df: df, files: files, args: map[string]*string{"X": nil}},
		{name: "build arg removed", df: df, files: files},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := inputHash(tc.df, tc.files, tc.args)
			if len(got) != 64 {
				t.Fatalf("hash %q is not hex sha256", got)
			}
			if (got == base) != tc.same {
				t.Errorf("hash equal to base = %v, want %v", got == base, tc.same)
			}
		})
	}
	if inputHash(df, files, map[string]*string{"X": nil}) == inputHash(df, files, map[string]*string{"X": str("")}) {
		t.Error("an unset build arg hashes like an empty one")
	}
}

func TestCheckStatic(t *testing.T) {
	dir := t.TempDir()
	notELF := filepath.Join(dir, "script")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		wantErr bool
	}{
		{name: "dynamic /bin/true", path: "/bin/true", wantErr: true},
		{name: "not an ELF file", path: notELF, wantErr: true},
		{name: "missing", path: filepath.Join(dir, "nothere"), wantErr: true},
		{name: "static", path: staticBinary(t, "hello"), wantErr: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkStatic(tc.path)
			if (err != nil) != tc.wantErr {
				t.Fatalf("checkStatic(%s) = %v, wantErr %v", tc.path, err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "the sidecar image needs a static binary: build claude-bottle with CGO_ENABLED=0") {
				t.Errorf("error %q does not say how to fix it", err)
			}
		})
	}
	// Ensure refuses before touching the engine (nil client).
	_, err := Ensure(context.Background(), nil, testLog(t), Options{Binary: "/bin/true"}, Need{Sidecar: true})
	if !errors.Is(err, errNotStatic) {
		t.Errorf("Ensure with a dynamic binary: %v", err)
	}
}

func TestReadExtraCA(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cert := "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	tests := []struct {
		name    string
		path    string
		want    string
		wantErr bool
	}{
		{name: "none", path: "", want: ""},
		{name: "bundle", path: write("ok.pem", "# comment\n"+cert), want: "# comment\n" + cert},
		{name: "key first then cert", path: write("mixed.pem", "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n"+cert), want: "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n" + cert},
		{name: "no certificate", path: write("bad.pem", "hello\n"), wantErr: true},
		{name: "empty file", path: write("empty.pem", ""), wantErr: true},
		{name: "missing", path: filepath.Join(dir, "nothere.pem"), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readExtraCA(tc.path)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && string(got) != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDockerfiles(t *testing.T) {
	agent := string(AgentDockerfile())
	for _, want := range []string{
		"FROM debian:bookworm-slim",
		"@anthropic-ai/claude-code@" + ClaudeCodeVersion,
		"COPY extra-ca.crt /usr/local/share/ca-certificates/claude-bottle-extra.crt",
		"NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt",
		"--uid 1000",
		"USER agent",
		"WORKDIR /workspace",
		"rm -rf /var/lib/apt/lists/*",
	} {
		if !strings.Contains(agent, want) {
			t.Errorf("agent Dockerfile lacks %q", want)
		}
	}
	ps, err := plans(Options{Binary: staticBinary(t, "x"), AgentDockerfile: []byte("FROM scratch\n")}, Need{Agent: true, Sidecar: true, GitGate: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, p.kind+"="+p.tag)
		var names []string
		for _, f := range p.files {
			names = append(names, f.name)
		}
		slices.Sort(names)
		want := map[string][]string{"agent": {"extra-ca.crt"}, "sidecar": {"ca-certificates.crt", "claude-bottle"}, "git-gate": {"claude-bottle", "extra-ca.crt"}}[p.kind]
		if !slices.Equal(names, want) {
			t.Errorf("%s context files = %v, want %v", p.kind, names, want)
		}
		if p.kind == "agent" && string(p.dockerfile) != "FROM scratch\n" {
			t.Errorf("agent Dockerfile override ignored")
		}
	}
	if want := []string{"sidecar=" + SidecarTag, "git-gate=" + GitGateTag, "agent=" + AgentTag}; !slices.Equal(got, want) {
		t.Errorf("plans = %v, want %v", got, want)
	}
}

func TestIgnore(t *testing.T) {
	ig := parseIgnore(`
# comment
secret.env
/node_modules/
**/*.log
!keep/important.log
build
*.tmp
docs/*.md
`)
	tests := []struct {
		path string
		want bool
	}{
		{"secret.env", true},
		{"sub/secret.env", false},
		{"node_modules", true},
		{"node_modules/a/b.js", true},
		{"debug.log", true},
		{"a/b/c.log", true},
		{"keep/important.log", false},
		{"keep/other.log", true},
		{"build", true},
		{"build/out.bin", true},
		{"builder", false},
		{"x.tmp", true},
		{"dir/x.tmp", false},
		{"docs/a.md", true},
		{"docs/sub/a.md", false},
		{"main.go", false},
	}
	for _, tc := range tests {
		if got := ig.excluded(tc.path); got != tc.want {
			t.Errorf("excluded(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
	if !ig.negation {
		t.Error("negation not recorded")
	}
	if (&ignorer{}).excluded("anything") {
		t.Error("empty ignorer excludes")
	}
}

func TestLoadIgnorePrefersClaudeBottleIgnore(t *testing.T) {
	tests := []struct {
		name     string
		files    map[string]string
		wantFile string
		excluded string
		kept     string
	}{
		{name: "both", files: map[string]string{".claude-bottle-ignore": "a", ".dockerignore": "b"}, wantFile: ".claude-bottle-ignore", excluded: "a", kept: "b"},
		{name: "dockerignore only", files: map[string]string{".dockerignore": "b"}, wantFile: ".dockerignore", excluded: "b", kept: "a"},
		{name: "none", files: map[string]string{}, wantFile: "", kept: "a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, body := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, n), []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			ig, name, err := loadIgnore(dir)
			if err != nil {
				t.Fatal(err)
			}
			if name != tc.wantFile {
				t.Errorf("file = %q, want %q", name, tc.wantFile)
			}
			if tc.excluded != "" && !ig.excluded(tc.excluded) {
				t.Errorf("%q not excluded", tc.excluded)
			}
			if ig.excluded(tc.kept) {
				t.Errorf("%q excluded", tc.kept)
			}
		})
	}
}

func TestLockBuildsSerializes(t *testing.T) {
	ctx := context.Background()
	unlock, err := lockBuilds(ctx, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	// A second taker waits; with a cancelled context it gives up.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := lockBuilds(cctx, testLog(t)); !errors.Is(err, context.Canceled) {
		t.Fatalf("second lock while held: %v, want context.Canceled", err)
	}
	got := make(chan error, 1)
	go func() {
		u, err := lockBuilds(ctx, testLog(t))
		if err == nil {
			u()
		}
		got <- err
	}()
	unlock()
	if err := <-got; err != nil {
		t.Fatalf("lock after release: %v", err)
	}
}

// ---- helpers shared with the integration tests ----

func testLog(t *testing.T) *slog.Logger { return logtest.New(t) }

// staticBinary builds a tiny static Linux program printing msg and its uid.
func staticBinary(t *testing.T, msg string) string {
	t.Helper()
	dir := t.TempDir()
	src := "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() { fmt.Println(" + strconv.Quote(msg) + ", os.Getuid(), os.Args[1:]) }\n"
	for name, body := range map[string]string{"main.go": src, "go.mod": "module tiny\n\ngo 1.22\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out := filepath.Join(dir, "claude-bottle")
	cmd := exec.Command(goBin, "build", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=-mod=mod", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build static binary: %v\n%s", err, b)
	}
	return out
}

// engine connects to the local engine. Without one the test is skipped on a
// developer machine and fails in CI, where an engine is part of the setup.
// engine is the real engine: a test fails without one when CI=true (e2etest.Engine).
func engine(t *testing.T) *docker.Client { return e2etest.Engine(t) }

func prefix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "cbtest-" + hex.EncodeToString(b)
}

func removeImageAtCleanup(t *testing.T, c *docker.Client, ref string) {
	t.Cleanup(func() {
		if err := c.RemoveImage(context.Background(), ref); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

// run starts a throwaway container from image and returns its exit code and output.
func run(t *testing.T, ctx context.Context, c *docker.Client, spec docker.ContainerSpec) (int, string) {
	t.Helper()
	spec.Network = "none"
	id, err := c.CreateContainer(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.RemoveContainer(context.Background(), id); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}()
	var out bytes.Buffer
	code, err := c.AttachStart(ctx, id, docker.Streams{Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatal(err)
	}
	return code, out.String()
}

// The sidecar image trusts the host's roots and the extra CA, so cred-proxy
// can verify https upstreams from an image FROM scratch.
func TestSidecarCABundle(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "corp proxy"}, IsCA: true,
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	extra := filepath.Join(t.TempDir(), "extra.pem")
	if err := os.WriteFile(extra, []byte(pemText), 0o644); err != nil {
		t.Fatal(err)
	}
	ps, err := plans(Options{ExtraCA: extra, Binary: staticBinary(t, "ca")}, Need{Sidecar: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range ps[0].files {
		if f.name == "ca-certificates.crt" {
			if !strings.HasSuffix(string(f.data), pemText) {
				t.Fatalf("bundle does not end with the extra CA")
			}
			if host := hostRoots(); host != nil && !strings.HasPrefix(string(f.data), string(host)) {
				t.Fatalf("bundle does not start with the host roots")
			}
			return
		}
	}
	t.Fatal("no ca-certificates.crt in the sidecar context")
}

// A build that fails on TLS verification says, in its first line, that the
// network intercepts TLS and how to hand the builds its CA.
func TestTLSHint(t *testing.T) {
	npm := "npm ERR! code SELF_SIGNED_CERT_IN_CHAIN\nnpm ERR! request to https://registry.npmjs.org/x failed, reason: self-signed certificate in certificate chain"
	for _, out := range []string{npm, "E: Failed to fetch https://deb.example/x  server certificate verification failed. CAfile: /etc/ssl/certs/ca-certificates.crt", "x509: certificate signed by unknown authority"} {
		if !tlsIntercepted(out) {
			t.Errorf("not recognised: %q", out)
		}
	}
	if tlsIntercepted("npm ERR! code E404 not found") {
		t.Error("a 404 is not TLS interception")
	}
	h := tlsHint("claude-bottle-agent:local", "")
	for _, want := range []string{"TLS is intercepted", "--ca-certs", "CLAUDE_BOTTLE_EXTRA_CA"} {
		if !strings.Contains(h, want) || strings.Contains(h, "\n") {
			t.Errorf("hint %q lacks %q or is not one line", h, want)
		}
	}
	if h := tlsHint("x", "/my/ca.pem"); !strings.Contains(h, "/my/ca.pem") {
		t.Errorf("hint with a bundle given: %q", h)
	}
}
