package launch

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/claude-bottle/claude-bottle/internal/egress"
	"github.com/claude-bottle/claude-bottle/internal/plan"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

// SidecarUID is the non-root user the sidecars run as when the launcher is
// root; their stage files are handed to it.
const SidecarUID = 65532

// KeptPlan reads the plan an instance was launched with, kept in its
// stage directory (and rewritten by each approval).
func KeptPlan(state, instance string) (*plan.Plan, error) {
	var p plan.Plan
	if err := readJSON(filepath.Join(stage.InstanceDir(state, instance), stage.PlanFile), &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Meta is stage.Meta: what the host needs later about an instance.
type Meta struct {
	Agent    string `json:"agent"`
	Instance string `json:"instance"`
	Manifest string `json:"manifest,omitempty"`
	Bottle   string `json:"bottle"`
}

// Prepare writes an instance's stage directory: the plan's files, the
// tokens and keys resolved on the host (0400), the literal env file (0600)
// and the empty queue and log directories. On error it removes what it made.
func Prepare(ctx context.Context, p *plan.Plan, dir, logDir, manifestPath string, getenv func(string) string) (err error) {
	if err := os.RemoveAll(dir); err != nil { // a leftover of this (now free) instance name
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("make stage directory: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return fmt.Errorf("make log directory: %w", err)
	}
	for _, d := range []string{stage.EgressDir, stage.CurrentConfig} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return err
		}
	}
	s := &p.Spec
	var secrets []string
	if len(s.Routes) > 0 {
		if err := os.MkdirAll(filepath.Join(dir, stage.CredProxyTokens), 0o700); err != nil {
			return err
		}
		for i, r := range s.Routes {
			tok, cred, err := resolveFirst(ctx, fmt.Sprintf("route %q (%s)", r.Name, r.Path), r.Credentials, getenv)
			if err != nil {
				return err
			}
			secrets = append(secrets, tok)
			if err := stage.WriteFile(filepath.Join(dir, stage.CredProxyDir, plan.RouteTokenFile(r.Name)), []byte(tok), 0o400); err != nil {
				return err
			}
			// The credential that resolved is the one cred-proxy injects
			// (the plan guessed from the host's environment).
			s.Routes[i].Header, s.Routes[i].Format = cred.Header, cred.Format
		}
	}
	files, err := plan.Render(s)
	if err != nil {
		return err
	}
	s.Files = files
	for _, f := range s.Files {
		path := filepath.Join(dir, f.Path)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		if err := stage.WriteFile(path, []byte(f.Content), fs.FileMode(f.Mode)); err != nil {
			return err
		}
	}
	// The agent reads current-config as uid 1000: it holds nothing secret.
	if err := os.Chmod(filepath.Join(dir, stage.CurrentConfig), 0o755); err != nil {
		return err
	}
	if len(s.Repos) > 0 {
		for _, sub := range []string{stage.GitGateKeys, stage.GitGateDir + "/tokens"} {
			if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
				return err
			}
		}
		for _, r := range s.Repos {
			if r.Key != "" {
				key, err := os.ReadFile(r.Key)
				if err != nil {
					return fmt.Errorf("repository %q: read key: %w", r.Name, err)
				}
				if err := stage.WriteFile(filepath.Join(dir, stage.GitGateKeys, r.Name), key, 0o400); err != nil {
					return err
				}
			}
			if r.Token != nil {
				tok, err := ResolveCredential(ctx, *r.Token, getenv)
				if err != nil {
					return fmt.Errorf("repository %q token: set %s on the host (%v)", r.Name, r.Token.Describe(), err)
				}
				secrets = append(secrets, tok)
				if err := stage.WriteFile(filepath.Join(dir, stage.GitGateDir, "tokens", r.Name), []byte(tok), 0o400); err != nil {
					return err
				}
			}
		}
	}
	// The egress canary refuses to let these values out.
	if err := writeJSON(filepath.Join(dir, stage.EgressSecrets), egress.Secrets{Values: secrets}, 0o400); err != nil {
		return err
	}
	if s.Supervise {
		for _, d := range []string{stage.SuperviseReqs, stage.SuperviseDecided} {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
				return err
			}
		}
	}
	var env strings.Builder
	for _, e := range s.Env {
		if e.Source == "literal" {
			fmt.Fprintf(&env, "%s=%s\n", e.Name, e.Value)
		}
	}
	if err := stage.WriteFile(filepath.Join(dir, stage.AgentEnv), []byte(env.String()), 0o600); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, stage.Meta), Meta{Agent: p.Agent, Instance: p.Instance, Manifest: manifestPath, Bottle: s.Bottle}, 0o600); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, stage.PlanFile), p, 0o600); err != nil {
		return err
	}
	if os.Getuid() == 0 {
		// Sidecars run as a fixed non-root user; hand it the files it reads.
		// The 0400/0600 modes still keep everyone else out.
		if err := chownTree(dir, SidecarUID); err != nil {
			return err
		}
		if err := chownTree(logDir, SidecarUID); err != nil {
			return err
		}
	}
	return nil
}

func chownTree(dir string, uid int) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, uid)
	})
}

func writeJSON(path string, v any, mode fs.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return stage.WriteFile(path, append(b, '\n'), mode)
}

// AgentEnv returns the agent's NAME=VALUE list: literals from the stage
// env file's source (the plan), forwarded values read from the host now,
// and the wiring. A forwarded name unset on the host is left out.
func AgentEnv(p *plan.Plan, getenv func(string) string) (env []string, missing []string) {
	for _, e := range p.Spec.Env {
		if e.Forward {
			v := getenv(e.Name)
			if v == "" {
				missing = append(missing, e.Name)
				continue
			}
			env = append(env, e.Name+"="+v)
			continue
		}
		env = append(env, e.Name+"="+e.Value)
	}
	return env, missing
}
