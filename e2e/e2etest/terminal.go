package e2etest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Terminal is a real terminal (a tmux pane on a tmux server of the test's
// own) running one command, as a person's terminal would: the test types
// into it and reads the screen.
type Terminal struct {
	t      testing.TB
	socket string
	// ExitFile receives the command's exit code when it ends.
	ExitFile string
}

// StartTerminal runs args in dir with env (on top of this process's
// environment) in a new 150x40 tmux window. With CI=true a missing tmux
// fails the test.
func StartTerminal(t testing.TB, dir string, env map[string]string, args ...string) *Terminal {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tmux is not installed (the terminal scenarios need it)")
		}
		t.Skip("tmux is not installed")
	}
	tmp := t.TempDir()
	term := &Terminal{t: t, socket: Unique("cbt-tmux"), ExitFile: filepath.Join(tmp, "exit")}
	var script strings.Builder
	script.WriteString("#!/bin/sh\ncd " + shQuote(dir) + " || exit 1\n")
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&script, "export %s=%s\n", k, shQuote(env[k]))
	}
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = shQuote(a)
	}
	// The pane stays after the command ends, so its last screen can be read.
	fmt.Fprintf(&script, "%s\necho $? > %s\nexec sleep 600\n", strings.Join(quoted, " "), shQuote(term.ExitFile))
	sh := filepath.Join(tmp, "run.sh")
	if err := os.WriteFile(sh, []byte(script.String()), 0o755); err != nil {
		t.Fatal(err)
	}
	term.tmux("new-session", "-d", "-s", "main", "-x", "150", "-y", "40", sh)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last screen:\n%s", term.Screen())
		}
		exec.Command("tmux", "-L", term.socket, "kill-server").Run()
	})
	return term
}

func (term *Terminal) tmux(args ...string) string {
	term.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", term.socket}, args...)...).CombinedOutput()
	if err != nil {
		term.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// Screen is what the terminal shows now.
func (term *Terminal) Screen() string {
	out, err := exec.Command("tmux", "-L", term.socket, "capture-pane", "-p", "-t", "main").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("(no screen: %v: %s)", err, out)
	}
	return string(out)
}

// Type types text and presses Enter.
func (term *Terminal) Type(text string) {
	term.tmux("send-keys", "-t", "main", "-l", text)
	time.Sleep(200 * time.Millisecond)
	term.tmux("send-keys", "-t", "main", "Enter")
}

// Keys sends tmux key names (C-c, Escape, ...).
func (term *Terminal) Keys(keys ...string) {
	term.tmux(append([]string{"send-keys", "-t", "main"}, keys...)...)
}

// Resize sets the window's size, as a person dragging the window would.
func (term *Terminal) Resize(cols, rows int) {
	term.tmux("resize-window", "-t", "main", "-x", strconv.Itoa(cols), "-y", strconv.Itoa(rows))
}

// WaitFor waits until the screen shows want, and returns the screen.
func (term *Terminal) WaitFor(want string, timeout time.Duration) string {
	term.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := term.Screen()
		if strings.Contains(s, want) {
			return s
		}
		if time.Now().After(deadline) {
			term.t.Fatalf("the screen did not show %q within %s; it shows:\n%s", want, timeout, s)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Close closes the terminal window, as a person closing it would: the
// command gets SIGHUP.
func (term *Terminal) Close() {
	term.tmux("kill-window", "-t", "main")
}

// ExitCode waits for the command to end and returns its exit code.
func (term *Terminal) ExitCode(timeout time.Duration) int {
	term.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if b, err := os.ReadFile(term.ExitFile); err == nil && len(b) > 0 {
			code, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err == nil {
				return code
			}
		}
		if time.Now().After(deadline) {
			term.t.Fatalf("the command did not end within %s; the screen:\n%s", timeout, term.Screen())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
