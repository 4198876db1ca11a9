package docker

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var containerIDRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// proc is one process as /proc shows it.
type proc struct {
	pid, ppid int
	argv      []string
}

func (p proc) name() string {
	if len(p.argv) == 0 {
		return ""
	}
	return filepath.Base(p.argv[0])
}

func (p proc) mentions(id string) bool {
	for _, a := range p.argv {
		if strings.Contains(a, id) {
			return true
		}
	}
	return false
}

// Reap ends the runtime processes a failed start of container id left
// behind (the `sidecar reap` verb, run by a probe's cleanup container).
func Reap(ctx context.Context, id string, out io.Writer) error {
	return reapRuntime(ctx, "/proc", id, syscallKill, out)
}

func syscallKill(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) }

// reapRuntime ends what a container that failed to start left running:
// the containerd shim whose arguments name the container's full ID, the
// shim's descendants (runsc's sandbox and gofer) and any runsc process
// naming the ID. Run by `sidecar reap` in a container that sees the host's
// processes (runtime probes, probe.go). The ID is a full 64-hex engine ID,
// so nothing else carries it. Runtime processes go first, with SIGKILL (the
// sandbox ignores nothing else reliably); the shim last, with SIGTERM, so
// containerd cleans up its task as after any shim exit.
func reapRuntime(ctx context.Context, procRoot, id string, kill func(int, syscall.Signal) error, out io.Writer) error {
	if !containerIDRE.MatchString(id) {
		return fmt.Errorf("reap: %q is not a full container ID (64 hex digits)", id)
	}
	procs, err := readProcs(procRoot)
	if err != nil {
		return err
	}
	children := map[int][]int{}
	for _, p := range procs {
		children[p.ppid] = append(children[p.ppid], p.pid)
	}
	var shims, targets []int
	seen := map[int]bool{}
	var below func(pid int)
	below = func(pid int) {
		for _, c := range children[pid] {
			if !seen[c] {
				seen[c] = true
				targets = append(targets, c)
				below(c)
			}
		}
	}
	for _, p := range procs {
		if strings.HasPrefix(p.name(), "containerd-shim") && p.mentions(id) {
			shims = append(shims, p.pid)
			seen[p.pid] = true
		}
	}
	for _, s := range shims {
		below(s)
	}
	for _, p := range procs {
		if !seen[p.pid] && strings.HasPrefix(p.name(), "runsc") && p.mentions(id) {
			seen[p.pid] = true
			targets = append(targets, p.pid)
		}
	}
	byPID := map[int]proc{}
	for _, p := range procs {
		byPID[p.pid] = p
	}
	end := func(pids []int, sig syscall.Signal) {
		for _, pid := range pids {
			if err := kill(pid, sig); err == nil {
				fmt.Fprintf(out, "ended %d %s\n", pid, byPID[pid].name())
			} else if err != syscall.ESRCH {
				fmt.Fprintf(out, "could not end %d %s: %v\n", pid, byPID[pid].name(), err)
			}
		}
		waitGone(ctx, procRoot, pids, 5*time.Second)
	}
	end(targets, syscall.SIGKILL)
	end(shims, syscall.SIGTERM)
	// A shim that ignored SIGTERM would hold the task forever.
	var left []int
	for _, pid := range shims {
		if _, err := os.Stat(filepath.Join(procRoot, strconv.Itoa(pid))); err == nil {
			left = append(left, pid)
		}
	}
	end(left, syscall.SIGKILL)
	return nil
}

func waitGone(ctx context.Context, procRoot string, pids []int, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for _, pid := range pids {
		for time.Now().Before(deadline) && ctx.Err() == nil {
			if _, err := os.Stat(filepath.Join(procRoot, strconv.Itoa(pid))); err != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// readProcs lists the processes under procRoot; ones that exit while it
// reads are skipped.
func readProcs(procRoot string) ([]proc, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, err
	}
	var out []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "stat"))
		if err != nil {
			continue
		}
		// stat is "pid (comm) state ppid ...", and comm may hold spaces
		// or parentheses: the fields after the last ')' are fixed.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		argv := strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")
		out = append(out, proc{pid: pid, ppid: ppid, argv: argv})
	}
	return out, nil
}
