package manifest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/parser"
)

// AppendEgressRule adds rule to a bottle's egress.allow in the manifest file
// at path, keeping the rest of the file (comments included). The result is
// validated before it replaces the file: a change that would make the
// manifest invalid is refused and the file is left as it was.
func AppendEgressRule(path, bottle string, r Rule) error {
	item, err := yaml.Marshal([]Rule{r})
	if err != nil {
		return err
	}
	return appendToList(path, bottle, []string{"egress", "allow"}, item)
}

// AppendRoute adds a credential route to a bottle's cred_proxy.routes.
func AppendRoute(path, bottle string, r Route) error {
	item, err := yaml.Marshal([]Route{r})
	if err != nil {
		return err
	}
	return appendToList(path, bottle, []string{"cred_proxy", "routes"}, item)
}

func appendToList(path, bottle string, keys []string, item []byte) error {
	if path == "" {
		return fmt.Errorf("this bottle runs the built-in default manifest, which has no file to change; run `claude-bottle init` and launch from that file to persist approvals")
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	file, err := parser.ParseBytes(src, parser.ParseComments)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	// Find the deepest level that exists, and merge the missing levels
	// (with the item at the bottom) into it.
	levels := append([]string{"bottles", bottle}, keys...)
	depth := len(levels)
	for ; depth >= 2; depth-- {
		p, err := yaml.PathString("$." + strings.Join(quoteKeys(levels[:depth]), "."))
		if err != nil {
			return err
		}
		if _, err := p.FilterFile(file); err == nil {
			break
		}
	}
	if depth < 2 {
		return fmt.Errorf("%s: bottle %q not found", path, bottle)
	}
	// Build the nested YAML for the missing levels.
	doc := string(item)
	for i := len(levels) - 1; i >= depth; i-- {
		doc = levels[i] + ":\n" + indent(doc)
	}
	p, _ := yaml.PathString("$." + strings.Join(quoteKeys(levels[:depth]), "."))
	if err := p.MergeFromReader(file, strings.NewReader(doc)); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	out := []byte(file.String())
	if !bytes.HasSuffix(out, []byte("\n")) {
		out = append(out, '\n')
	}
	if _, err := Parse(path, out); err != nil {
		return fmt.Errorf("the change would make the manifest invalid, so it was not written: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".claude-bottle.yaml.tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(st.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func quoteKeys(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		if strings.ContainsAny(k, ".-") {
			out[i] = "'" + k + "'"
		} else {
			out[i] = k
		}
	}
	return out
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n") + "\n"
}
