// Package images builds claude-bottle's own images (agent, sidecar, git-gate,
// and per-run workspace images) and reuses them while their inputs are unchanged.
package images

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"embed"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/claude-bottle/claude-bottle/internal/docker"
)

// ClaudeCodeVersion is the @anthropic-ai/claude-code release the built-in
// agent image installs.
const ClaudeCodeVersion = "2.1.332"

// Default image references.
const (
	AgentTag   = "claude-bottle-agent:local"
	SidecarTag = "claude-bottle-sidecar:local"
	GitGateTag = "claude-bottle-git-gate:local"
)

// Labels on every image this package builds.
const (
	// HashLabel holds the hash of everything that went into the build; an
	// image whose label matches the current inputs is reused.
	HashLabel = "dev.claude-bottle.input-hash"
	// KindLabel says which image it is: agent, sidecar, git-gate or workspace.
	KindLabel = "dev.claude-bottle.image"
	// RoleLabel is the contract's role label; only workspace images carry it.
	RoleLabel = "dev.claude-bottle.role"
)

//go:embed dockerfiles/*.Dockerfile
var dockerfiles embed.FS

func builtin(name string) []byte {
	b, err := dockerfiles.ReadFile("dockerfiles/" + name)
	if err != nil {
		panic(err) // embedded at compile time: cannot be missing
	}
	return b
}

// AgentDockerfile returns the built-in agent Dockerfile.
func AgentDockerfile() []byte { return builtin("agent.Dockerfile") }

// Options says how to build the images.
type Options struct {
	// ExtraCA is a PEM bundle added to the agent and git-gate images' trust
	// store (a TLS-intercepting proxy); "" adds none.
	ExtraCA string
	// Binary is the claude-bottle binary put into the sidecar and git-gate
	// images; "" means the running executable. It must be statically linked.
	Binary string
	// Progress receives the builder's output; nil discards it.
	Progress io.Writer
	// AgentDockerfile replaces the built-in agent Dockerfile (an approved
	// supervise proposal); nil uses the built-in one.
	AgentDockerfile []byte
	// Tags overrides the image references; an empty field keeps the default.
	Tags Set
}

// Need says which images a run needs.
type Need struct {
	Agent, Sidecar, GitGate bool
}

// Set holds image references; a field is "" when that image was not needed.
type Set struct {
	Agent, Sidecar, GitGate string
}

// plan is one image to ensure: its tag and every input of its build.
type plan struct {
	kind       string
	tag        string
	dockerfile []byte
	files      []file
	args       map[string]*string
	// extraCA is the bundle the builds were given, named in TLS errors.
	extraCA string
}

// file is one file of a build context besides the Dockerfile: its bytes,
// or (for the large claude-bottle binary) the path they are read from only
// when a build needs them, and their digest taken when the file was found.
type file struct {
	name string
	mode int64
	data []byte
	path string   // read by content; data is then unused
	sum  [32]byte // sha256 of the content at path
}

// digest is the sha256 of the file's content.
func (f file) digest() [32]byte {
	if f.path != "" {
		return f.sum
	}
	return sha256.Sum256(f.data)
}

// content returns the file's bytes. A file read from its path must still
// have the digest the image's hash label was computed from.
func (f file) content() ([]byte, error) {
	if f.path == "" {
		return f.data, nil
	}
	data, err := os.ReadFile(f.path)
	if err != nil {
		return nil, err
	}
	if sha256.Sum256(data) != f.sum {
		return nil, fmt.Errorf("%s changed while the image was being prepared; run again", f.path)
	}
	return data, nil
}

// Ensure makes sure every needed image exists and matches its inputs,
// building the ones that do not, and returns their references.
func Ensure(ctx context.Context, c *docker.Client, log *slog.Logger, opts Options, need Need) (Set, error) {
	plans, err := plans(opts, need)
	if err != nil {
		return Set{}, err
	}
	var set Set
	for _, p := range plans {
		if err := ensure(ctx, c, log, p, opts.Progress); err != nil {
			return Set{}, err
		}
		switch p.kind {
		case "agent":
			set.Agent = p.tag
		case "sidecar":
			set.Sidecar = p.tag
		case "git-gate":
			set.GitGate = p.tag
		}
	}
	return set, nil
}

// plans gathers the inputs of each needed image; it reads files but does not
// touch the engine.
func plans(opts Options, need Need) ([]plan, error) {
	var ca []byte
	var bin file
	var err error
	if need.Agent || need.GitGate || need.Sidecar {
		if ca, err = readExtraCA(opts.ExtraCA); err != nil {
			return nil, err
		}
	}
	if need.Sidecar || need.GitGate {
		if bin, err = readBinary(opts.Binary); err != nil {
			return nil, err
		}
	}
	tag := func(override, def string) string {
		if override != "" {
			return override
		}
		return def
	}
	var out []plan
	if need.Sidecar {
		out = append(out, plan{
			kind: "sidecar", tag: tag(opts.Tags.Sidecar, SidecarTag),
			dockerfile: builtin("sidecar.Dockerfile"),
			files: []file{
				bin,
				// cred-proxy verifies its upstreams: the host's roots plus the
				// extra CA (a corporate proxy re-signs their certificates too).
				{name: "ca-certificates.crt", mode: 0o644, data: append(hostRoots(), ca...)},
			},
		})
	}
	if need.GitGate {
		out = append(out, plan{
			kind: "git-gate", tag: tag(opts.Tags.GitGate, GitGateTag),
			dockerfile: builtin("gitgate.Dockerfile"),
			files: []file{
				bin,
				{name: "extra-ca.crt", mode: 0o644, data: ca},
			},
		})
	}
	if need.Agent {
		df := opts.AgentDockerfile
		if df == nil {
			df = AgentDockerfile()
		}
		out = append(out, plan{
			kind: "agent", tag: tag(opts.Tags.Agent, AgentTag),
			dockerfile: df,
			files:      []file{{name: "extra-ca.crt", mode: 0o644, data: ca}},
		})
	}
	for i := range out {
		out[i].extraCA = opts.ExtraCA
	}
	return out, nil
}

func ensure(ctx context.Context, c *docker.Client, log *slog.Logger, p plan, progress io.Writer) error {
	hash := inputHash(p.dockerfile, p.files, p.args)
	current := func() (bool, error) {
		labels, ok, err := c.ImageLabels(ctx, p.tag)
		if err != nil {
			return false, fmt.Errorf("ensure image %s: %w", p.tag, err)
		}
		return ok && labels[HashLabel] == hash, nil
	}
	if ok, err := current(); err != nil || ok {
		if ok {
			log.Debug("image up to date", "image", p.tag, "hash", hash)
		}
		return err
	}
	unlock, err := lockBuilds(ctx, log)
	if err != nil {
		return fmt.Errorf("ensure image %s: %w", p.tag, err)
	}
	defer unlock()
	// Another run may have built it while we waited for the lock.
	if ok, err := current(); err != nil || ok {
		return err
	}
	log.Info("building image", "image", p.tag, "hash", hash)
	old, hadOld, err := c.InspectImage(ctx, p.tag)
	if err != nil {
		return fmt.Errorf("ensure image %s: %w", p.tag, err)
	}
	tarball, err := contextTar(p.dockerfile, p.files)
	if err != nil {
		return fmt.Errorf("ensure image %s: %w", p.tag, err)
	}
	err = c.BuildImage(ctx, docker.BuildSpec{
		Tag:       p.tag,
		Context:   bytes.NewReader(tarball),
		Labels:    map[string]string{HashLabel: hash, KindLabel: p.kind},
		BuildArgs: p.args,
	}, progress)
	if err != nil {
		if tlsIntercepted(err.Error()) {
			return fmt.Errorf("%s\n%w", tlsHint(p.tag, p.extraCA), err)
		}
		return err
	}
	log.Info("built image", "image", p.tag, "hash", hash)
	// The previous build lost its tag; drop it unless a container still uses
	// it or another tag keeps it.
	if hadOld {
		if now, _, err := c.InspectImage(ctx, p.tag); err == nil && now.ID != old.ID {
			if err := c.RemoveImage(ctx, old.ID); err != nil {
				log.Debug("keeping previous image", "image", old.ID, "err", err)
			}
		}
	}
	return nil
}

// readExtraCA returns the PEM bundle at path, or nothing for "". A file
// without a certificate is refused: a typo must not silently build an image
// that then fails every TLS connection.
func readExtraCA(path string) ([]byte, error) {
	if path == "" {
		return []byte{}, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read extra CA certificates: %w", err)
	}
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, fmt.Errorf("extra CA certificates %s: no PEM CERTIFICATE block found", path)
		}
		if b.Type == "CERTIFICATE" {
			return data, nil
		}
	}
}

// readBinary finds the claude-bottle binary for the sidecar images and
// takes its digest, streaming: a run whose images are current never holds
// the whole binary (tens of MB) in memory.
func readBinary(path string) (file, error) {
	if path == "" {
		exe, err := os.Executable()
		if err != nil {
			return file{}, fmt.Errorf("find the claude-bottle binary: %w", err)
		}
		path = exe
	}
	if err := checkStatic(path); err != nil {
		return file{}, err
	}
	f, err := os.Open(path)
	if err != nil {
		return file{}, fmt.Errorf("read the claude-bottle binary: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return file{}, fmt.Errorf("read the claude-bottle binary: %w", err)
	}
	out := file{name: "claude-bottle", mode: 0o755, path: path}
	h.Sum(out.sum[:0])
	return out, nil
}

// errNotStatic explains the one fix; the sidecar image has no libc to load.
var errNotStatic = errors.New("the sidecar image needs a static binary: build claude-bottle with CGO_ENABLED=0")

// checkStatic refuses anything but a statically linked Linux ELF binary.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w (%v)", path, errNotStatic, err)
	}
	defer f.Close()
	if f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
		return fmt.Errorf("%s is not a Linux binary: %w", path, errNotStatic)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked: %w", path, errNotStatic)
		}
	}
	return nil
}

// hostRoots returns the host's CA bundle, or nil when none of the usual
// places has one (the binary then falls back to its embedded roots).
// hostBundles are where systems keep their trusted roots as one PEM file.
var hostBundles = []string{
	"/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Alpine
	"/etc/pki/tls/certs/ca-bundle.crt",   // Fedora, RHEL
	"/etc/ssl/cert.pem",                  // macOS, BSDs
}

func hostRoots() []byte {
	for _, p := range hostBundles {
		if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
			if b[len(b)-1] != '\n' {
				b = append(b, '\n')
			}
			return b
		}
	}
	return nil
}

// tlsMarkers are what npm, apt, git, curl and Go print when a certificate
// chain does not verify: on a build host that can otherwise reach the
// registries, a proxy that re-signs TLS (a corporate network).
var tlsMarkers = []string{
	"SELF_SIGNED_CERT_IN_CHAIN", "self-signed certificate in certificate chain", "self signed certificate in certificate chain",
	"UNABLE_TO_GET_ISSUER_CERT_LOCALLY", "unable to get local issuer certificate", "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
	"certificate verify failed", "certificate signed by unknown authority", "server certificate verification failed",
}

func tlsIntercepted(out string) bool {
	for _, m := range tlsMarkers {
		if strings.Contains(out, m) {
			return true
		}
	}
	return false
}

// tlsHint is the one line that says what to do about it.
func tlsHint(tag, extraCA string) string {
	if extraCA != "" {
		return fmt.Sprintf("building %s failed because TLS did not verify even with the extra CA bundle %s: it does not hold the CA that signs this network's certificates", tag, extraCA)
	}
	hint := "pass that proxy's CA bundle with --ca-certs FILE, CLAUDE_BOTTLE_EXTRA_CA=FILE or images.ca_certs in the manifest"
	for _, b := range hostBundles {
		if _, err := os.Stat(b); err == nil {
			hint += " (if this host's own tools work, its bundle holds that CA: try --ca-certs " + b + ")"
			break
		}
	}
	return fmt.Sprintf("building %s failed because TLS is intercepted on this network (a proxy re-signs certificates): %s", tag, hint)
}
