package gitgate

import (
	"context"
	"fmt"
	"os"
	"testing"
)

// TestMain doubles as the pre-receive hook: the gate under test installs
// a hook that runs this binary with GITGATE_HOOK=1.
func TestMain(m *testing.M) {
	if os.Getenv("GITGATE_HOOK") == "1" {
		os.Exit(HookMain(context.Background(), os.Stdin, os.Stderr, os.Environ()))
	}
	home, err := os.MkdirTemp("", "gitgate-home-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// Keep the host's git configuration out of every git the tests run.
	for k, v := range map[string]string{
		"HOME": home, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_TERMINAL_PROMPT": "0",
		"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
		"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
	} {
		os.Setenv(k, v)
	}
	code := m.Run()
	os.RemoveAll(home)
	os.Exit(code)
}
