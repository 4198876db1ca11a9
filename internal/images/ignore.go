package images

import (
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Ignore files read from a workspace directory, first found wins.
var ignoreFiles = []string{".claude-bottle-ignore", ".dockerignore"}

// ignoreRule is one line of an ignore file.
type ignoreRule struct {
	segs   []string // the pattern split on "/"
	negate bool
}

// ignorer decides which workspace paths stay out of the image. Patterns are
// relative to the workspace root; a pattern also excludes everything under a
// directory it matches; "**" matches any number of directories; "!" re-includes;
// the last matching line wins.
type ignorer struct {
	rules    []ignoreRule
	negation bool
	// never holds relative paths left out whatever the rules say.
	never map[string]bool
}

func parseIgnore(text string) *ignorer {
	ig := &ignorer{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var r ignoreRule
		if strings.HasPrefix(line, "!") {
			r.negate = true
			ig.negation = true
			line = strings.TrimSpace(line[1:])
		}
		line = path.Clean("/" + filepath.ToSlash(line))[1:]
		if line == "" {
			continue
		}
		r.segs = strings.Split(line, "/")
		ig.rules = append(ig.rules, r)
	}
	return ig
}

// loadIgnore reads dir's ignore file; no file means nothing is excluded.
func loadIgnore(dir string) (*ignorer, string, error) {
	for _, name := range ignoreFiles {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err == nil {
			return parseIgnore(string(data)), name, nil
		}
		if !os.IsNotExist(err) {
			return nil, "", err
		}
	}
	return &ignorer{}, "", nil
}

// excluded reports whether the slash-separated relative path rel is left out.
func (ig *ignorer) excluded(rel string) bool {
	segs := strings.Split(rel, "/")
	out := false
	for _, r := range ig.rules {
		if matchPrefix(r.segs, segs) {
			out = !r.negate
		}
	}
	return out
}

// matchPrefix reports whether the pattern matches rel or one of its parent
// directories.
func matchPrefix(pat, segs []string) bool {
	for k := 1; k <= len(segs); k++ {
		if matchSegs(pat, segs[:k]) {
			return true
		}
	}
	return false
}

func matchSegs(pat, segs []string) bool {
	if len(pat) == 0 {
		return len(segs) == 0
	}
	if pat[0] == "**" {
		return matchSegs(pat[1:], segs) || (len(segs) > 0 && matchSegs(pat, segs[1:]))
	}
	if len(segs) == 0 {
		return false
	}
	ok, err := path.Match(pat[0], segs[0])
	return err == nil && ok && matchSegs(pat[1:], segs[1:])
}
