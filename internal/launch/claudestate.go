package launch

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/claude-bottle/claude-bottle/internal/plan"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

// AgentUID is the agent image's non-root user, who owns the agent's
// Claude state on the host when the launcher is root.
const AgentUID = 1000

// maxClaudeJSON bounds what the host reads back of a file the agent
// writes.
const maxClaudeJSON = 16 << 20

// PrepareClaudeState makes an agent's Claude Code state directory
// (owner-only) and sets in it what Claude Code would otherwise ask on the
// first interactive start: onboarding done, /workspace trusted, the
// placeholder key approved (its last 20 characters, as Claude Code keeps
// them) and, for an autonomous agent, the bypass-permissions warning
// accepted. Everything else the agent wrote (history, sessions, settings)
// is kept. Nothing here is a real token: the agent only ever holds the
// placeholder.
//
// The directory is the agent's to write, so the host treats what is in it
// as hostile: it reads only regular files (never through a symlink), with
// a size bound, and replaces files by rename, never writing through a
// link the agent planted.
func PrepareClaudeState(dir string, s *plan.Spec) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("claude state: %w", err)
	}
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("claude state: %s is not a directory", dir)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("claude state: %w", err)
	}
	state, err := readJSONObject(filepath.Join(dir, ".claude.json"))
	if err != nil {
		return err
	}
	state["hasCompletedOnboarding"] = true
	projects, _ := state["projects"].(map[string]any)
	if projects == nil {
		projects = map[string]any{}
	}
	ws, _ := projects[plan.WorkspaceDir].(map[string]any)
	if ws == nil {
		ws = map[string]any{}
	}
	ws["hasTrustDialogAccepted"] = true
	projects[plan.WorkspaceDir] = ws
	state["projects"] = projects
	if s.ClaudeAuth == "api-key" {
		approved := plan.Placeholder[len(plan.Placeholder)-20:]
		resp, _ := state["customApiKeyResponses"].(map[string]any)
		if resp == nil {
			resp = map[string]any{}
		}
		list, _ := resp["approved"].([]any)
		if !containsString(list, approved) {
			list = append(list, approved)
		}
		resp["approved"] = list
		if _, ok := resp["rejected"].([]any); !ok {
			resp["rejected"] = []any{}
		}
		state["customApiKeyResponses"] = resp
	}
	if err := writeAgentJSON(filepath.Join(dir, ".claude.json"), state); err != nil {
		return err
	}
	if s.Autonomous {
		settings, err := readJSONObject(filepath.Join(dir, "settings.json"))
		if err != nil {
			return err
		}
		settings["skipDangerousModePermissionPrompt"] = true
		if err := writeAgentJSON(filepath.Join(dir, "settings.json"), settings); err != nil {
			return err
		}
	}
	if os.Getuid() == 0 {
		if err := os.Lchown(dir, AgentUID, AgentUID); err != nil {
			return fmt.Errorf("claude state: %w", err)
		}
	}
	return nil
}

// readJSONObject reads a JSON object the agent may have written. A missing
// file, a symlink or anything else that is not a regular file, and a file
// that is not a JSON object all give an empty object: Claude Code then
// starts from what the host sets.
func readJSONObject(path string) (map[string]any, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) || (err == nil && !fi.Mode().IsRegular()) {
		return map[string]any{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("claude state: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return map[string]any{}, nil
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxClaudeJSON+1))
	if err != nil || len(b) > maxClaudeJSON {
		return map[string]any{}, nil
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil || m == nil {
		return map[string]any{}, nil
	}
	return m, nil
}

// writeAgentJSON replaces path (rename: a planted symlink is replaced, not
// followed) with v, owner-only, owned by the agent's user.
func writeAgentJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	// Owned before it takes path's place: a running bottle of the same
	// agent never sees it root-owned.
	uid := -1
	if os.Getuid() == 0 {
		uid = AgentUID
	}
	if err := stage.WriteFileOwned(path, append(b, '\n'), 0o600, uid); err != nil {
		return fmt.Errorf("claude state: %w", err)
	}
	return nil
}

func containsString(list []any, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
