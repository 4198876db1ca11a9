package launch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/audit"
	"github.com/claude-bottle/claude-bottle/internal/egress"
	"github.com/claude-bottle/claude-bottle/internal/manifest"
	"github.com/claude-bottle/claude-bottle/internal/plan"
	"github.com/claude-bottle/claude-bottle/internal/stage"
	"github.com/claude-bottle/claude-bottle/internal/supervise"
)

// Applier makes an approved supervise request real on a running bottle:
// it changes the bottle's Spec (kept in the stage directory's plan), renders
// its files again with plan.Render, and rewrites those whose content
// changed, which the sidecars reload live: an egress rule, or a credential
// route (with its token file and the egress canary's list). An approved
// Dockerfile is kept for the agent's next launch.
type Applier struct {
	State  string
	Getenv func(string) string
	// Confirm, when not zero, is how long Apply waits for the sidecars to
	// log that they reloaded the change, so the decision the agent reads
	// never runs ahead of the live policy. Zero does not wait (no sidecar).
	Confirm time.Duration
	// Publish, when set, carries one sidecar's rewritten files ("" for the
	// agent's current-config) to where that sidecar reads them, before
	// Apply waits for its reload: a cluster's ConfigMaps and Secrets. The
	// plan holds the new files.
	Publish func(ctx context.Context, p *plan.Plan, sidecar string) error
}

// Apply implements supervise.Applier.
func (a *Applier) Apply(ctx context.Context, instance string, req supervise.Request, opts supervise.ApplyOptions) error {
	dir := stage.InstanceDir(a.State, instance)
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("instance %s has no stage directory (has it exited?)", instance)
	}
	if opts.Persist && req.Kind != supervise.KindDockerfile {
		// The manifest is changed first: if that is refused (an invalid
		// result, the built-in default), nothing changes live either.
		if err := a.persist(dir, req, opts); err != nil {
			return fmt.Errorf("--persist: %w", err)
		}
	}
	switch req.Kind {
	case supervise.KindEgress:
		if req.Egress == nil {
			return errors.New("egress request without a host")
		}
		return a.change(ctx, dir, func(s *plan.Spec) error {
			// Another port of a host the manifest lets be private (an
			// in-cluster or local service) is private too.
			s.AddRule(egress.Rule{Host: req.Egress.Host, Port: req.Egress.Port, AllowPrivate: s.PrivateAllowed(req.Egress.Host), Source: "supervise " + req.ID})
			return nil
		})
	case supervise.KindRoute:
		return a.addRoute(ctx, dir, req, opts)
	case supervise.KindDockerfile:
		if req.Dockerfile == nil {
			return errors.New("dockerfile request without content")
		}
		var meta Meta
		if err := readJSON(filepath.Join(dir, stage.Meta), &meta); err != nil {
			return err
		}
		ad := stage.AgentDir(a.State, meta.Agent)
		if err := os.MkdirAll(ad, 0o700); err != nil {
			return err
		}
		// Kept for the next launch of this agent, which rebuilds its image.
		return stage.WriteFile(filepath.Join(ad, "Dockerfile"), []byte(req.Dockerfile.Content), 0o600)
	}
	return fmt.Errorf("unknown request kind %q", req.Kind)
}

// change applies edit to the bottle's Spec, renders its files and rewrites
// the changed ones, one sidecar at a time: cred-proxy's first (a new
// route is served before egress lets its upstream out), then egress's,
// each confirmed by the sidecar's reload, then the agent's view; last the
// plan, so the next change starts from this one.
func (a *Applier) change(ctx context.Context, dir string, edit func(*plan.Spec) error) error {
	planPath := filepath.Join(dir, stage.PlanFile)
	var p plan.Plan
	if err := readJSON(planPath, &p); err != nil {
		return fmt.Errorf("read the bottle's plan: %w", err)
	}
	s := &p.Spec
	if err := edit(s); err != nil {
		return err
	}
	files, err := plan.Render(s)
	if err != nil {
		return err
	}
	old := map[string]string{}
	for _, f := range s.Files {
		old[f.Path] = f.Content
	}
	s.Files = files
	for _, g := range []struct{ dir, sidecar string }{
		{stage.CredProxyDir, "cred-proxy"}, {stage.GitGateDir, "git-gate"}, {stage.EgressDir, "egress"}, {stage.CurrentConfig, ""},
	} {
		since := time.Now()
		wrote := false
		for _, f := range files {
			if !strings.HasPrefix(f.Path, g.dir+"/") {
				continue
			}
			if c, ok := old[f.Path]; ok && c == f.Content {
				continue
			}
			if err := writeOwnedRaw(filepath.Join(dir, f.Path), []byte(f.Content), os.FileMode(f.Mode)); err != nil {
				return err
			}
			wrote = true
		}
		if wrote && a.Publish != nil {
			if err := a.Publish(ctx, &p, g.sidecar); err != nil {
				return err
			}
		}
		if wrote && g.sidecar != "" {
			if err := a.confirm(dir, g.sidecar, since); err != nil {
				return err
			}
		}
	}
	return writeOwned(planPath, &p, 0o600)
}

func (a *Applier) persist(dir string, req supervise.Request, opts supervise.ApplyOptions) error {
	var meta Meta
	if err := readJSON(filepath.Join(dir, stage.Meta), &meta); err != nil {
		return err
	}
	switch req.Kind {
	case supervise.KindEgress:
		if req.Egress == nil {
			return errors.New("egress request without a host")
		}
		var p plan.Plan
		if err := readJSON(filepath.Join(dir, stage.PlanFile), &p); err != nil {
			return fmt.Errorf("read the bottle's plan: %w", err)
		}
		return manifest.AppendEgressRule(meta.Manifest, meta.Bottle, manifest.Rule{Host: req.Egress.Host, Port: req.Egress.Port, AllowPrivate: p.Spec.PrivateAllowed(req.Egress.Host)})
	case supervise.KindRoute:
		if req.Route == nil || opts.Credential == nil {
			return errors.New("a route needs a service and a token source")
		}
		return manifest.AppendRoute(meta.Manifest, meta.Bottle, manifest.Route{
			Name: req.Route.Service, Path: "/" + req.Route.Service + "/", Upstream: req.Route.Upstream,
			Credentials: []manifest.Credential{*opts.Credential},
		})
	}
	return nil
}

// confirm waits until sidecar logs a reload after since: the change is
// then in force. A reload that failed is reported with the sidecar's reason.
func (a *Applier) confirm(dir, sidecar string, since time.Time) error {
	if a.Confirm == 0 {
		return nil
	}
	logFile := filepath.Join(stage.LogDir(a.State, filepath.Base(dir)), sidecar+".jsonl")
	deadline := time.Now().Add(a.Confirm)
	for {
		if b, err := os.ReadFile(logFile); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				var ev audit.Event
				if json.Unmarshal([]byte(line), &ev) != nil || ev.Kind != "reload" || ev.Time.Before(since) {
					continue
				}
				if ev.Verdict == "allow" {
					return nil
				}
				return fmt.Errorf("%s kept its previous configuration: %s", sidecar, ev.Reason)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not confirm the change within %s (is the bottle still running?); the decision was not written", sidecar, a.Confirm)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (a *Applier) addRoute(ctx context.Context, dir string, req supervise.Request, opts supervise.ApplyOptions) error {
	if req.Route == nil {
		return errors.New("route request without a service")
	}
	if opts.Credential == nil {
		return errors.New("approving a route needs a token source: --token-env NAME, --token-file FILE or --token-command CMD")
	}
	// The agent asked for this upstream: only https leaves the bottle
	// with a credential.
	u, err := url.Parse(req.Route.Upstream)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("route upstream %q is not an https URL", req.Route.Upstream)
	}
	cred := *opts.Credential
	if cred.Header == "" {
		cred.Header = manifest.DefaultHeader
	}
	if cred.Format == "" {
		cred.Format = manifest.DefaultFormat
	}
	name := req.Route.Service
	route := plan.Route{Name: name, Path: "/" + name + "/", Upstream: req.Route.Upstream, Header: cred.Header, Format: cred.Format}
	if _, err := os.Stat(filepath.Join(dir, stage.CredProxyRoutes)); err != nil {
		return fmt.Errorf("this bottle has no cred-proxy (no routes at launch), so a route cannot be added live")
	}
	tok, err := ResolveCredential(ctx, cred, a.Getenv)
	if err != nil {
		return fmt.Errorf("token for route %s: %s: %v", name, cred.Describe(), err)
	}
	// The canary's list is read before anything is written: rewriting it
	// from a failed read would drop the tokens already in it, and egress
	// would then let them out.
	secPath := filepath.Join(dir, stage.EgressSecrets)
	sec, err := readSecrets(secPath)
	if err != nil {
		return fmt.Errorf("route %s not added: %w", name, err)
	}
	return a.change(ctx, dir, func(s *plan.Spec) error {
		if err := s.AddRoute(route); err != nil {
			return err
		}
		// The token and the canary's list come before the routes that
		// name them: cred-proxy never serves a token egress would let out.
		if err := writeOwnedRaw(filepath.Join(dir, stage.CredProxyDir, plan.RouteTokenFile(name)), []byte(tok), 0o400); err != nil {
			return err
		}
		sec.Values = append(sec.Values, tok)
		return writeOwned(secPath, sec, 0o400)
	})
}

// readSecrets reads the egress canary's list strictly, as egress does.
// Every failure is an error, a missing file too: Prepare always writes
// one, so its absence means the stage directory is not what it wrote, and
// a list started afresh would leave the earlier routes' tokens out.
func readSecrets(path string) (egress.Secrets, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return egress.Secrets{}, fmt.Errorf("read the egress canary's secrets: %w", err)
	}
	s, err := egress.ParseSecrets(b)
	if err != nil {
		return egress.Secrets{}, fmt.Errorf("%s: %w", path, err)
	}
	return *s, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func writeOwned(path string, v any, mode os.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeOwnedRaw(path, append(b, '\n'), mode)
}

// writeOwnedRaw replaces a stage file atomically, keeping the owner of the
// directory so the sidecar (a different uid when we are root) can read it.
func writeOwnedRaw(path string, b []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	// Owned before the rename: the sidecar watches path and reloads at
	// once, and a root-owned 0600 file in between made its reload fail.
	uid := -1
	if os.Getuid() == 0 {
		if st, err := os.Stat(filepath.Dir(path)); err == nil {
			if sys, ok := statOwner(st); ok {
				uid = sys
			}
		}
	}
	return stage.WriteFileOwned(path, b, mode, uid)
}

func statOwner(st os.FileInfo) (int, bool) {
	s, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(s.Uid), true
}
