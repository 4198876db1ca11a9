package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/claude-bottle/claude-bottle/internal/audit"
	"github.com/claude-bottle/claude-bottle/internal/safetext"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

func newLogsCmd(g *globals) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs [INSTANCE]",
		Short: "Show a bottle's decision log (JSONL from every sidecar); -f follows",
		Long: `Show the decision log of a bottle: one JSON line per decision from each sidecar
(egress, cred-proxy, git-gate, supervise) and from the host (supervise decisions). The
log outlives the bottle. Without INSTANCE, the most recently written log is shown.

Every character that could act on the terminal or hide from the reader (controls, bidi
and other invisible characters) is shown as a \u escape. Each sidecar's log is bounded;
when one dropped events past its bound, a line of kind "dropped" says how many.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			state, err := stage.StateDir(g.getenv)
			if err != nil {
				return err
			}
			var inst string
			if len(args) == 1 {
				inst = args[0]
			} else if inst, err = newestLog(state); err != nil {
				return err
			}
			dir := stage.LogDir(state, inst)
			if _, err := os.Stat(dir); err != nil {
				return fmt.Errorf("no log for %q under %s", inst, filepath.Join(state, "logs"))
			}
			return showLogs(cmd.Context(), g.stdout, dir, follow)
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until interrupted")
	return cmd
}

func newestLog(state string) (string, error) {
	ents, err := os.ReadDir(filepath.Join(state, "logs"))
	if err != nil || len(ents) == 0 {
		return "", errors.New("no bottle has written a log yet")
	}
	var best string
	var bt time.Time
	for _, e := range ents {
		if info, err := e.Info(); err == nil && info.ModTime().After(bt) {
			best, bt = e.Name(), info.ModTime()
		}
	}
	return best, nil
}

// showLogs prints every *.jsonl in dir, then with follow keeps printing
// what is appended (each file tailed by offset, polled).
func showLogs(ctx context.Context, w io.Writer, dir string, follow bool) error {
	offsets := map[string]int64{}
	dropped := map[string]int64{}
	// What is there already is shown as one story, merged by time.
	if err := showMerged(w, dir, offsets); err != nil {
		return err
	}
	if err := showDropped(w, dir, dropped); err != nil || !follow {
		return err
	}
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
		sort.Strings(files)
		for _, f := range files {
			n, err := copyFrom(w, f, offsets[f])
			if err != nil {
				return err
			}
			offsets[f] = n
		}
		if err := showDropped(w, dir, dropped); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func copyFrom(w io.Writer, path string, off int64) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return off, nil
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return off, err
	}
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil { // a partial last line is printed once it is whole
			return off, nil
		}
		// The agent chose much of what is in a line: nothing in it may act
		// on the terminal or hide from the reader, whoever wrote the file.
		if _, werr := w.Write(safetext.JSON(line)); werr != nil {
			return off, werr
		}
		off += int64(len(line))
	}
}

// showMerged prints the whole lines of every log file merged by their time
// field, and records how far each file was read.
func showMerged(w io.Writer, dir string, offsets map[string]int64) error {
	type line struct {
		t    time.Time
		text []byte
	}
	var lines []line
	files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	for _, f := range files {
		var buf bytes.Buffer
		n, err := copyFrom(&buf, f, 0)
		if err != nil {
			return err
		}
		offsets[f] = n
		for _, l := range bytes.SplitAfter(buf.Bytes(), []byte("\n")) {
			if len(l) == 0 {
				continue
			}
			var ev struct {
				Time time.Time `json:"time"`
			}
			_ = json.Unmarshal(l, &ev)
			lines = append(lines, line{ev.Time, l})
		}
	}
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].t.Before(lines[j].t) })
	for _, l := range lines {
		if _, err := w.Write(safetext.JSON(l.text)); err != nil {
			return err
		}
	}
	return nil
}

// showDropped prints, for each sidecar whose bounded log dropped events
// (audit.DroppedFile), one line in the log's own format saying how many,
// and again whenever the count grows; seen holds the counts shown.
func showDropped(w io.Writer, dir string, seen map[string]int64) error {
	suffix := audit.DroppedFile("")
	files, _ := filepath.Glob(filepath.Join(dir, "*"+suffix))
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var d audit.Dropped
		if json.Unmarshal(b, &d) != nil || d.Events <= seen[f] {
			continue
		}
		seen[f] = d.Events
		name := strings.TrimSuffix(filepath.Base(f), suffix)
		detail := fmt.Sprintf("%d events were dropped: the %s log reached its bound", d.Events, name)
		if d.MaxBytes > 0 {
			detail += fmt.Sprintf(" of %d bytes", d.MaxBytes)
		}
		if !d.First.IsZero() {
			detail += ", the first at " + d.First.Format(time.RFC3339)
		}
		ev := audit.Event{Time: d.Last, Sidecar: name, Kind: "dropped", Verdict: "error", Detail: detail}
		line, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		if _, err := w.Write(safetext.JSON(append(line, '\n'))); err != nil {
			return err
		}
	}
	return nil
}
