package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/net/idna"

	"github.com/claude-bottle/claude-bottle/internal/manifest"
	"github.com/claude-bottle/claude-bottle/internal/safetext"
	"github.com/claude-bottle/claude-bottle/internal/stage"
	"github.com/claude-bottle/claude-bottle/internal/supervise"
)

// watchPoll is how often --watch looks for new requests.
const watchPoll = 500 * time.Millisecond

func newSuperviseCmd(g *globals, apply supervise.Applier) *cobra.Command {
	var asJSON, watch, all bool
	cmd := &cobra.Command{
		Use:   "supervise",
		Short: "Review what bottled agents ask for: egress hosts, credential routes, Dockerfiles",
		Long: `supervise lists the requests agents filed through the supervise MCP tools, across
every running bottle, and lets you approve or deny them. An approved egress host or
credential route applies live; an approved Dockerfile applies at the next launch.

  claude-bottle supervise                 list pending requests
  claude-bottle supervise --watch         walk them interactively, waiting for new ones
  claude-bottle supervise show ID         everything about one request (a diff for a Dockerfile)
  claude-bottle supervise approve ID      apply it, then tell the agent
  claude-bottle supervise deny ID -m WHY  tell the agent no, and why`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			state, err := stage.StateDir(g.getenv)
			if err != nil {
				return err
			}
			if watch {
				return superviseWatch(cmd.Context(), g, state, apply)
			}
			ps, err := supervise.List(state)
			if err != nil {
				return err
			}
			if !all {
				ps = pendingOnly(ps)
			}
			if asJSON {
				if ps == nil {
					ps = []supervise.Pending{}
				}
				return writeJSON(g.stdout, ps)
			}
			if len(ps) == 0 {
				fmt.Fprintln(g.stdout, "no pending requests")
				return nil
			}
			printList(g.stdout, ps, time.Now())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the requests as JSON")
	cmd.Flags().BoolVar(&all, "all", false, "include decided requests")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "walk pending requests interactively (a/d/s/q) and wait for new ones")
	cmd.AddCommand(newSuperviseShowCmd(g), newSuperviseDecideCmd(g, apply, supervise.Approved), newSuperviseDecideCmd(g, apply, supervise.Denied))
	return cmd
}

func newSuperviseShowCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:          "show ID",
		Short:        "Show one request in full; for a Dockerfile, the diff against the current one",
		Args:         cobra.ExactArgs(1),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			state, err := stage.StateDir(g.getenv)
			if err != nil {
				return err
			}
			p, err := supervise.Find(state, args[0])
			if err != nil {
				return err
			}
			diff, note := dockerfileDiff(state, p)
			if asJSON {
				return writeJSON(g.stdout, struct {
					supervise.Pending
					Status string `json:"status"`
					Diff   string `json:"diff,omitempty"`
				}{p, status(p), diff})
			}
			printShow(g.stdout, p, diff, note, time.Now())
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the request as JSON")
	return cmd
}

func newSuperviseDecideCmd(g *globals, apply supervise.Applier, verdict string) *cobra.Command {
	var message string
	var persist bool
	var tok tokenFlags
	use, short := "approve ID", "Apply a request and tell the agent it was approved"
	if verdict == supervise.Denied {
		use, short = "deny ID", "Refuse a request and tell the agent"
	}
	cmd := &cobra.Command{
		Use:          use,
		Short:        short,
		Args:         cobra.ExactArgs(1),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			state, err := stage.StateDir(g.getenv)
			if err != nil {
				return err
			}
			p, err := supervise.Find(state, args[0])
			if err != nil {
				return err
			}
			opts := supervise.ApplyOptions{Persist: persist}
			if verdict == supervise.Approved {
				cred, err := tok.credential()
				if err != nil {
					return err
				}
				if cred != nil && p.Request.Kind != supervise.KindRoute {
					return fmt.Errorf("%s is a %s request: token flags only apply to route requests", p.Request.ID, p.Request.Kind)
				}
				if cred == nil && p.Request.Kind == supervise.KindRoute {
					return fmt.Errorf("%s asks for a credential route: choose its token with --token-env NAME, --token-file FILE or --token-command CMD", p.Request.ID)
				}
				opts.Credential = cred
			}
			return decide(cmd.Context(), g, state, p, verdict, message, apply, opts)
		},
	}
	cmd.Flags().StringVarP(&message, "message", "m", "", "message for the agent")
	if verdict == supervise.Approved {
		cmd.Flags().BoolVar(&persist, "persist", false, "also keep the change for the agent's next launches, not only this instance")
		cmd.Flags().StringVar(&tok.env, "token-env", "", "route approvals: read the token from this host environment variable")
		cmd.Flags().StringVar(&tok.file, "token-file", "", "route approvals: read the token from this host file")
		cmd.Flags().StringVar(&tok.command, "token-command", "", "route approvals: run this host command (split on spaces, no shell) and use its output")
		cmd.Flags().StringVar(&tok.header, "token-header", "", "route approvals: header that carries the token (default Authorization)")
		cmd.Flags().StringVar(&tok.format, "token-format", "", "route approvals: header value with {token} in it (default \"Bearer {token}\")")
	}
	return cmd
}

// tokenFlags is the host-side token source for approving a route; the
// agent never names one.
type tokenFlags struct {
	env, file, command, header, format string
}

// credential returns the chosen source, nil if none was given.
func (f tokenFlags) credential() (*manifest.Credential, error) {
	n := 0
	for _, s := range []string{f.env, f.file, f.command} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return nil, errors.New("give one of --token-env, --token-file, --token-command")
	}
	if n == 0 {
		if f.header != "" || f.format != "" {
			return nil, errors.New("--token-header and --token-format need a token source (--token-env, --token-file or --token-command)")
		}
		return nil, nil
	}
	if f.format != "" && !strings.Contains(f.format, "{token}") {
		return nil, fmt.Errorf("--token-format %q has no {token}", f.format)
	}
	return &manifest.Credential{Env: f.env, File: f.file, Command: strings.Fields(f.command), Header: f.header, Format: f.format}, nil
}

// parseTokenSource reads "env:NAME", "file:PATH" or "command:CMD ARGS" as
// typed at the --watch prompt.
func parseTokenSource(s string) (*manifest.Credential, error) {
	kind, val, ok := strings.Cut(strings.TrimSpace(s), ":")
	val = strings.TrimSpace(val)
	if !ok || val == "" {
		return nil, fmt.Errorf("token source %q: use env:NAME, file:PATH or command:CMD", s)
	}
	switch kind {
	case "env":
		return tokenFlags{env: val}.credential()
	case "file":
		return tokenFlags{file: val}.credential()
	case "command", "cmd":
		return tokenFlags{command: val}.credential()
	}
	return nil, fmt.Errorf("token source %q: use env:NAME, file:PATH or command:CMD", s)
}

func decide(ctx context.Context, g *globals, state string, p supervise.Pending, verdict, message string, apply supervise.Applier, opts supervise.ApplyOptions) error {
	if err := supervise.Decide(ctx, state, p.Instance, p.Request.ID, verdict, message, apply, opts); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "%s %s (%s): %s %s\n", verdict, p.Request.ID, p.Instance, p.Request.Kind, safetext.Text(p.Request.What()))
	return nil
}

// superviseWatch shows the oldest pending request, asks what to do with
// it, and repeats; with none left it waits for new ones. Skipped requests
// are not asked about again in this session.
func superviseWatch(ctx context.Context, g *globals, state string, apply supervise.Applier) error {
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(g.stdin)
		for sc.Scan() {
			select {
			case lines <- strings.TrimSpace(sc.Text()):
			case <-ctx.Done():
				return
			}
		}
	}()
	seen := map[string]bool{}
	passed := map[string]bool{} // skipped, or failed to decide
	waiting := false
	tick := time.NewTicker(watchPoll)
	defer tick.Stop()
	for {
		ps, err := supervise.List(state)
		if err != nil {
			return err
		}
		var queue []supervise.Pending
		fresh := false
		for _, p := range pendingOnly(ps) {
			if passed[p.Request.ID] {
				continue
			}
			queue = append(queue, p)
			if !seen[p.Request.ID] {
				seen[p.Request.ID], fresh = true, true
			}
		}
		if fresh {
			fmt.Fprint(g.stdout, "\a")
		}
		if len(queue) == 0 {
			if !waiting {
				fmt.Fprintln(g.stdout, "waiting for requests (q to quit)")
				waiting = true
			}
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			case line, ok := <-lines:
				if !ok || line == "q" {
					return nil
				}
			}
			continue
		}
		waiting = false
		p := queue[0]
		diff, note := dockerfileDiff(state, p)
		fmt.Fprintln(g.stdout)
		printShow(g.stdout, p, diff, note, time.Now())
		fmt.Fprintf(g.stdout, "(%d pending) [a]pprove, [d]eny, [s]kip, [q]uit; a message may follow a or d: ", len(queue))
		var line string
		select {
		case <-ctx.Done():
			return nil
		case l, ok := <-lines:
			if !ok {
				fmt.Fprintln(g.stdout)
				return nil
			}
			line = l
		}
		cmd, msg, _ := strings.Cut(line, " ")
		msg = strings.TrimSpace(msg)
		switch cmd {
		case "a", "approve":
			var opts supervise.ApplyOptions
			if p.Request.Kind == supervise.KindRoute {
				fmt.Fprintf(g.stdout, "token for route %s (env:NAME, file:PATH or command:CMD; empty skips): ", p.Request.Route.Service)
				var src string
				select {
				case <-ctx.Done():
					return nil
				case l, ok := <-lines:
					if !ok {
						return nil
					}
					src = l
				}
				if src == "" {
					passed[p.Request.ID] = true
					continue
				}
				cred, err := parseTokenSource(src)
				if err != nil {
					fmt.Fprintf(g.stdout, "%s\n", safetext.Lines(err.Error()))
					continue
				}
				opts.Credential = cred
			}
			if err := decide(ctx, g, state, p, supervise.Approved, msg, apply, opts); err != nil {
				fmt.Fprintf(g.stdout, "could not approve: %s\n", safetext.Lines(err.Error()))
				passed[p.Request.ID] = true
			}
		case "d", "deny":
			if err := decide(ctx, g, state, p, supervise.Denied, msg, apply, supervise.ApplyOptions{}); err != nil {
				fmt.Fprintf(g.stdout, "could not deny: %s\n", safetext.Lines(err.Error()))
				passed[p.Request.ID] = true
			}
		case "s", "skip":
			passed[p.Request.ID] = true
		case "q", "quit":
			return nil
		default:
			fmt.Fprintf(g.stdout, "unknown answer %s: a, d, s or q\n", safetext.Text(strconv.Quote(line)))
		}
	}
}

func pendingOnly(ps []supervise.Pending) []supervise.Pending {
	var out []supervise.Pending
	for _, p := range ps {
		if p.Decision == nil {
			out = append(out, p)
		}
	}
	return out
}

func status(p supervise.Pending) string {
	if p.Decision == nil {
		return "pending"
	}
	return p.Decision.Verdict
}

// dockerfileDiff returns, for a Dockerfile proposal, the diff against the
// instance's current Dockerfile and a note about what it was diffed with.
func dockerfileDiff(state string, p supervise.Pending) (diff, note string) {
	if p.Request.Dockerfile == nil {
		return "", ""
	}
	path := filepath.Join(stage.InstanceDir(state, p.Instance), stage.CurrentConfig, "Dockerfile")
	cur, err := os.ReadFile(path)
	note = "diff against " + path
	if errors.Is(err, os.ErrNotExist) {
		note = "no current Dockerfile for this instance: the whole proposal is new"
	} else if err != nil {
		note = fmt.Sprintf("cannot read the current Dockerfile (%v): the whole proposal is shown", err)
	}
	diff = supervise.DockerfileDiff(string(cur), p.Request.Dockerfile.Content)
	if diff == "" {
		note += ": identical"
	}
	return diff, note
}

func printList(w io.Writer, ps []supervise.Pending, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tINSTANCE\tKIND\tWHAT\tREASON\tAGE\tSTATUS")
	for _, p := range ps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", safetext.Text(p.Request.ID), safetext.Text(p.Instance), safetext.Text(p.Request.Kind),
			safetext.Text(p.Request.What()), oneLine(safetext.Lines(p.Request.Reason), 60), age(now.Sub(p.Request.Created)), status(p))
	}
	tw.Flush()
}

func printShow(w io.Writer, p supervise.Pending, diff, note string, now time.Time) {
	r := p.Request
	// Everything the agent wrote is shown escaped (safetext): what the
	// person reads is what is applied, whatever the request file holds.
	fmt.Fprintf(w, "id:       %s\ninstance: %s\nkind:     %s\nasks:     %s\ncreated:  %s (%s ago)\nstatus:   %s\n",
		safetext.Text(r.ID), safetext.Text(p.Instance), safetext.Text(r.Kind), safetext.Text(r.What()),
		r.Created.Local().Format(time.RFC3339), age(now.Sub(r.Created)), status(p))
	if note := idnNote(r); note != "" {
		fmt.Fprintf(w, "note:     %s\n", note)
	}
	if p.Decision != nil && p.Decision.Message != "" {
		fmt.Fprintf(w, "message:  %s\n", safetext.Lines(p.Decision.Message))
	}
	switch r.Kind {
	case supervise.KindEgress:
		fmt.Fprintln(w, "applies:  live, as an egress allowlist rule")
	case supervise.KindRoute:
		fmt.Fprintln(w, "applies:  live, as a cred-proxy route; the token source is chosen on approval (the agent never sees it)")
	case supervise.KindDockerfile:
		fmt.Fprintln(w, "applies:  at the next launch")
	}
	fmt.Fprintln(w, "reason:")
	for _, l := range strings.Split(r.Reason, "\n") {
		fmt.Fprintf(w, "  %s\n", safetext.Text(l))
	}
	if r.Dockerfile != nil {
		if n := nonASCIILines(r.Dockerfile.Content); n != "" {
			fmt.Fprintf(w, "note:     non-ASCII letters on line %s: a look-alike (Cyrillic \"\u0430\" for \"a\") can pass for ASCII in a URL or a package name\n", n)
		}
		fmt.Fprintf(w, "%s\n%s", safetext.Text(note), safetext.Lines(diff))
	}
}

// nonASCIILines lists the lines of s (1-based, "3, 7") that hold a
// character outside ASCII; "" when there is none.
func nonASCIILines(s string) string {
	var out []string
	for i, l := range strings.Split(s, "\n") {
		for _, r := range l {
			if r >= 0x80 {
				out = append(out, strconv.Itoa(i+1))
				break
			}
		}
	}
	return strings.Join(out, ", ")
}

// idnNote says, for a request naming an internationalized host (an
// A-label, xn--...), what it displays as elsewhere: approving allows
// exactly the A-label shown, which a homoglyph of a familiar name is not.
func idnNote(r supervise.Request) string {
	var host string
	switch {
	case r.Egress != nil:
		host = r.Egress.Host
	case r.Route != nil:
		if u, err := url.Parse(r.Route.Upstream); err == nil {
			host = u.Hostname()
		}
	}
	if !strings.Contains(host, "xn--") {
		return ""
	}
	u, err := idna.Lookup.ToUnicode(strings.TrimPrefix(host, "*."))
	if err != nil {
		return "an internationalized name that does not decode (" + safetext.Text(err.Error()) + "): approving allows exactly the name above"
	}
	// Its non-ASCII letters as code points: a homoglyph is plain to see.
	return fmt.Sprintf("an internationalized name, shown elsewhere as %s: approving allows exactly the A-label above", strconv.QuoteToASCII(u))
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(0, int(d.Seconds())))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// writeJSON writes v indented, every hidden character escaped.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(safetext.JSON(append(b, '\n')))
	return err
}
