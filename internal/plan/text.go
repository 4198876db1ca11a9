package plan

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteJSON prints the plan for scripts.
func (p *Plan) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(p)
}

// WriteText prints the plan for a person.
func (p *Plan) WriteText(w io.Writer) error {
	var b strings.Builder
	s := &p.Spec
	fmt.Fprintf(&b, "agent     %s (bottle %s)\n", p.Agent, s.Bottle)
	fmt.Fprintf(&b, "instance  %s\n", p.Instance)
	fmt.Fprintf(&b, "image     %s\n", s.Image)
	if s.DerivedImage != "" {
		fmt.Fprintf(&b, "derived   %s (with %s copied to /workspace)\n", s.DerivedImage, s.Cwd)
	}
	fmt.Fprintf(&b, "runtime   %s (%s)\n", p.Docker.Runtime, p.Docker.RuntimeReason)
	fmt.Fprintf(&b, "command   %s\n", quoteArgs(s.Command))
	if s.Autonomous {
		b.WriteString("autonomy  on: Claude Code runs without permission prompts (the bottle is the boundary)\n")
	} else {
		b.WriteString("autonomy  off: Claude Code asks before each tool call (autonomous: false)\n")
	}
	switch s.Work.Mode {
	case "branch":
		fmt.Fprintf(&b, "work      comes back to %s as branch %s (commits, then uncommitted changes as one more commit)\n", s.Work.Repo, s.Work.Branch)
	case "archive":
		fmt.Fprintf(&b, "work      /workspace is saved to STATE/%s-TIME.tar when the bottle ends (no git repository to come back to)\n", s.Work.Archive)
	}
	fmt.Fprintf(&b, "sidecars  %s\n", strings.Join(s.Sidecars, ", "))
	b.WriteString("\negress allowlist:\n")
	for _, r := range s.Allowlist {
		port := "443/80"
		if r.Port != 0 {
			port = fmt.Sprint(r.Port)
		}
		priv := ""
		if r.AllowPrivate {
			priv = ", private addresses allowed"
		}
		if r.Client != "" {
			priv += ", " + r.Client + " only"
		}
		fmt.Fprintf(&b, "  %-36s %-7s %s%s\n", r.Host, port, r.Source, priv)
	}
	if len(s.Allowlist) == 0 {
		b.WriteString("  (nothing: every destination is refused)\n")
	}
	if len(s.JoinNetworks) > 0 {
		fmt.Fprintf(&b, "  egress joins: %s\n", strings.Join(s.JoinNetworks, ", "))
	}
	if len(s.Routes) > 0 {
		b.WriteString("\ncred-proxy routes:\n")
		for _, r := range s.Routes {
			var srcs []string
			for _, c := range r.Credentials {
				srcs = append(srcs, c.Describe())
			}
			role := ""
			if r.Role != "" {
				role = " [" + r.Role + "]"
			}
			fmt.Fprintf(&b, "  %-14s -> %s%s, token from %s\n", r.Path, r.Upstream, role, strings.Join(srcs, " or "))
		}
	}
	if len(s.Repos) > 0 {
		b.WriteString("\ngit-gate repositories:\n")
		for _, r := range s.Repos {
			fmt.Fprintf(&b, "  %-10s %s via %s; push %s\n", r.Name, r.Upstream, r.GateURL, pushText(r))
		}
	}
	b.WriteString("\nagent environment:\n")
	for _, e := range s.Env {
		switch {
		case e.Forward:
			fmt.Fprintf(&b, "  %s (forwarded from the host)\n", e.Name)
		case e.Source == "literal":
			fmt.Fprintf(&b, "  %s (literal, in the 0600 env file)\n", e.Name)
		default:
			fmt.Fprintf(&b, "  %s=%s\n", e.Name, e.Value)
		}
	}
	if len(p.Lines) > 0 {
		b.WriteString("\nobjects:\n")
		for _, r := range p.Lines {
			fmt.Fprintf(&b, "  %-34s %s\n", r.Kind+"/"+r.Name, r.Detail)
		}
	} else {
		b.WriteString("\ncontainers:\n")
		for _, c := range p.Docker.Containers {
			fmt.Fprintf(&b, "  %-34s %-10s %-5s %s on %s", c.Name, c.Role, c.Runtime, c.Image, c.Network)
			if len(c.Join) > 0 {
				fmt.Fprintf(&b, " + %s", strings.Join(c.Join, ", "))
			}
			b.WriteString("\n")
		}
		b.WriteString("networks:\n")
		for _, n := range p.Docker.Networks {
			kind := "bridge with a route out (egress only)"
			if n.Internal {
				kind = "internal, no route out"
			}
			fmt.Fprintf(&b, "  %-34s %s\n", n.Name, kind)
		}
	}
	WriteOps(&b, p.Operations, p.Undo)
	for _, n := range p.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func pushText(r Repo) string {
	if len(r.Push.Branches) == 0 && !r.Push.Tags {
		return "refused"
	}
	parts := []string{"branches " + strings.Join(r.Push.Branches, " ")}
	if r.Push.Force {
		parts = append(parts, "force allowed")
	}
	if r.Push.Delete {
		parts = append(parts, "deletes allowed")
	}
	if r.Push.Tags {
		parts = append(parts, "tags allowed")
	}
	return strings.Join(parts, ", ")
}

func quoteArgs(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"$\\") {
			if len(a) > 60 {
				a = a[:57] + "..."
			}
			out[i] = fmt.Sprintf("%q", a)
		} else {
			out[i] = a
		}
	}
	return strings.Join(out, " ")
}
