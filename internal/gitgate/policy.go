package gitgate

import (
	"fmt"
	"path"
	"strings"
)

// RefUpdate is one ref-update command of a push: Old and New are hex object
// ids, the all-zero id meaning "absent" (a create or a delete).
type RefUpdate struct {
	Old, New, Ref string
}

// Refusal says why one ref update is not forwarded upstream.
type Refusal struct {
	Update RefUpdate
	Reason string
}

func isZeroOID(s string) bool { return s != "" && strings.Trim(s, "0") == "" }

// decision is Check's verdict on one update; force marks a permitted
// non-fast-forward, which must be pushed upstream with "+".
type decision struct {
	update RefUpdate
	reason string // "" means allowed
	force  bool
}

// Check decides every update of a push against p. isAncestor reports
// whether old is an ancestor of new; it is called only for branch updates
// that are neither creates nor deletes, and an error refuses the update
// (fail closed). A nil or empty result means the whole push is allowed.
func Check(p PushPolicy, updates []RefUpdate, isAncestor func(old, new string) (bool, error)) []Refusal {
	var out []Refusal
	for _, d := range decide(p, updates, isAncestor) {
		if d.reason != "" {
			out = append(out, Refusal{Update: d.update, Reason: d.reason})
		}
	}
	return out
}

func decide(p PushPolicy, updates []RefUpdate, isAncestor func(old, new string) (bool, error)) []decision {
	out := make([]decision, 0, len(updates))
	for _, u := range updates {
		force, reason := decideOne(p, u, isAncestor)
		out = append(out, decision{update: u, reason: reason, force: force})
	}
	return out
}

func decideOne(p PushPolicy, u RefUpdate, isAncestor func(old, new string) (bool, error)) (force bool, reason string) {
	if !validRef(u.Ref) {
		return false, "invalid ref name"
	}
	if !validOID(u.Old) || !validOID(u.New) || len(u.Old) != len(u.New) {
		return false, "invalid object id"
	}
	create, del := isZeroOID(u.Old), isZeroOID(u.New)
	if create && del {
		return false, "invalid update (old and new both absent)"
	}
	switch {
	case strings.HasPrefix(u.Ref, "refs/heads/"):
		branch := strings.TrimPrefix(u.Ref, "refs/heads/")
		if !matchAny(p.Branches, branch) {
			if len(p.Branches) == 0 {
				return false, "the push policy allows no branches"
			}
			return false, fmt.Sprintf("branch %q is not allowed by the push policy (allowed: %s)", branch, strings.Join(p.Branches, ", "))
		}
		if del {
			if !p.Delete {
				return false, "deleting a branch is not allowed by the push policy"
			}
			return false, ""
		}
		if create || u.Old == u.New {
			return false, ""
		}
		ff, err := isAncestor(u.Old, u.New)
		if err != nil {
			return false, fmt.Sprintf("cannot check fast-forward: %v", err)
		}
		if ff {
			return false, ""
		}
		if !p.Force {
			return false, "non-fast-forward (force) push is not allowed by the push policy"
		}
		return true, ""
	case strings.HasPrefix(u.Ref, "refs/tags/"):
		if !p.Tags {
			return false, "pushing tags is not allowed by the push policy"
		}
		if del {
			if !p.Delete {
				return false, "deleting a tag is not allowed by the push policy"
			}
			return false, ""
		}
		if create || u.Old == u.New {
			return false, ""
		}
		// A tag has no fast-forward: moving one rewrites what it names.
		if !p.Force {
			return false, "moving an existing tag (force) is not allowed by the push policy"
		}
		return true, ""
	}
	return false, "only refs/heads/ and refs/tags/ may be pushed"
}

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, err := path.Match(p, name); err == nil && ok {
			return true
		}
	}
	return false
}

func validOID(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// validRef is a conservative subset of git check-ref-format: anything git
// might read as an option, a revision expression or a glob is refused
// before it reaches a git command line.
func validRef(r string) bool {
	if !strings.HasPrefix(r, "refs/") || len(r) > 1024 || strings.HasSuffix(r, "/") ||
		strings.HasSuffix(r, ".") || strings.HasSuffix(r, ".lock") {
		return false
	}
	for _, bad := range []string{"..", "//", "@{", "/.", "\\"} {
		if strings.Contains(r, bad) {
			return false
		}
	}
	for i := 0; i < len(r); i++ {
		c := r[i]
		if c <= ' ' || c == 0x7f || strings.IndexByte("~^:?*[", c) >= 0 {
			return false
		}
	}
	return len(strings.Split(r, "/")) >= 3
}
