package manifest

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// maxNodes bounds how many nodes the checker visits, so that aliases that
// expand exponentially ("billion laughs") are refused instead of decoded.
const maxNodes = 100_000

// checker walks the YAML AST alongside the Go types before anything is
// decoded. The goccy decoder's own errors name neither the field path nor
// the keys that would have been accepted; this walk does both, and records
// where every field is written so that later validation can point at it.
type checker struct {
	probs   *problems
	pos     positions
	anchors map[string]ast.Node
	nodes   int
}

func (c *checker) walk(n ast.Node, t reflect.Type, path string) {
	c.nodes++
	if c.nodes == maxNodes {
		c.probs.addAt(nodePos(n), path, "too many nodes (aliases expand to more than %d); simplify the manifest", maxNodes)
	}
	if c.nodes >= maxNodes {
		return
	}
	switch v := n.(type) {
	case nil, *ast.NullNode:
		return // null is the zero value; validation says if it was required
	case *ast.AnchorNode:
		c.walk(v.Value, t, path)
		// Registered after the walk so that an alias inside its own anchor
		// is unknown rather than an endless loop.
		c.anchors[v.Name.GetToken().Value] = v.Value
		return
	case *ast.AliasNode:
		name := v.Value.GetToken().Value
		target, ok := c.anchors[name]
		if !ok {
			c.probs.addAt(nodePos(n), path, "unknown alias *%s (an anchor &%s must come before it)", name, name)
			return
		}
		c.walk(target, t, path)
		c.pos[path] = nodePos(n)
		return
	case *ast.TagNode:
		c.probs.addAt(nodePos(n), path, "YAML tags like %s are not supported", v.Start.Value)
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		c.walk(n, t.Elem(), path)
	case reflect.Struct:
		c.walkStruct(n, t, path)
	case reflect.Map:
		c.walkMap(n, t, path)
	case reflect.Slice:
		seq, ok := n.(*ast.SequenceNode)
		if !ok {
			c.typeError(n, path, "a list")
			return
		}
		for i, item := range seq.Values {
			p := fmt.Sprintf("%s[%d]", path, i)
			c.pos[p] = nodePos(item)
			c.walk(item, t.Elem(), p)
		}
	case reflect.String:
		switch n.(type) {
		case *ast.StringNode, *ast.LiteralNode:
		default:
			c.typeError(n, path, "a string")
		}
	case reflect.Int, reflect.Int64:
		if _, ok := n.(*ast.IntegerNode); !ok {
			c.typeError(n, path, "an integer")
		}
	case reflect.Float64:
		switch n.(type) {
		case *ast.IntegerNode, *ast.FloatNode:
		default:
			c.typeError(n, path, "a number")
		}
	case reflect.Bool:
		if _, ok := n.(*ast.BoolNode); !ok {
			c.typeError(n, path, "a boolean (true or false)")
		}
	default:
		panic(fmt.Sprintf("manifest: no check for %s at %s", t, path))
	}
}

func (c *checker) typeError(n ast.Node, path, want string) {
	msg := fmt.Sprintf("expected %s, got %s", want, describe(n))
	if want == "a string" {
		switch n.(type) {
		case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
			// YAML reads 0755 as 493 and on as true: quoting is the fix.
			msg += fmt.Sprintf(`; quote it: "%s"`, n.GetToken().Value)
		}
	}
	c.probs.addAt(nodePos(n), path, "%s", msg)
}

// entries returns a mapping's key/value pairs, or false if n is no mapping.
func entries(n ast.Node) ([]*ast.MappingValueNode, bool) {
	switch v := n.(type) {
	case *ast.MappingNode:
		return v.Values, true
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{v}, true
	}
	return nil, false
}

// key returns a mapping key's text, or an error message if the key is not a
// plain string.
func (c *checker) key(kv *ast.MappingValueNode, path string) (string, bool) {
	switch k := kv.Key.(type) {
	case *ast.StringNode:
		return k.Value, true
	case *ast.MergeKeyNode:
		c.probs.addAt(nodePos(k), path, "merge keys (<<) are not supported; write the keys out")
	case *ast.MappingKeyNode:
		c.probs.addAt(nodePos(k), path, "complex keys (?) are not supported")
	default:
		c.probs.addAt(nodePos(k), path, `keys must be strings, got %s; quote it: "%s"`, describe(k), k.GetToken().Value)
	}
	return "", false
}

// mapping checks that n is a mapping without duplicate keys and calls fn
// for each entry with a string key.
func (c *checker) mapping(n ast.Node, path string, fn func(key string, kv *ast.MappingValueNode)) {
	kvs, ok := entries(n)
	if !ok {
		c.typeError(n, path, "a mapping")
		return
	}
	seen := map[string]pos{}
	for _, kv := range kvs {
		k, ok := c.key(kv, path)
		if !ok {
			continue
		}
		kp := nodePos(kv.Key)
		if first, dup := seen[k]; dup {
			c.probs.addAt(kp, join(path, k), "duplicate key (first at %d:%d)", first.line, first.col)
			continue
		}
		seen[k] = kp
		fn(k, kv)
	}
}

func (c *checker) walkMap(n ast.Node, t reflect.Type, path string) {
	c.mapping(n, path, func(k string, kv *ast.MappingValueNode) {
		p := join(path, k)
		// A map key is a name the user chose; problems with it, or with
		// the entry as a whole, are best shown at the name.
		c.pos[p] = nodePos(kv.Key)
		c.walk(kv.Value, t.Elem(), p)
	})
}

func (c *checker) walkStruct(n ast.Node, t reflect.Type, path string) {
	fields := yamlFields(t)
	c.mapping(n, path, func(k string, kv *ast.MappingValueNode) {
		i, ok := fields[k]
		if !ok {
			c.probs.addAt(nodePos(kv.Key), path, "%s", unknownKey(k, fields, path))
			return
		}
		p := join(path, k)
		c.pos[p] = entryPos(kv)
		c.walk(kv.Value, t.Field(i).Type, p)
	})
}

func unknownKey(k string, fields map[string]int, path string) string {
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	slices.Sort(names)
	where := "here"
	if path == "" {
		where = "at the top level"
	}
	msg := fmt.Sprintf("unknown key %q; allowed %s: %s", k, where, strings.Join(names, ", "))
	best, bestD := "", 3
	for _, name := range names {
		if d := distance(k, name); d < bestD {
			best, bestD = name, d
		}
	}
	if best != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", best)
	}
	return msg
}

// yamlFields maps a struct's YAML key names to field indexes.
func yamlFields(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || name == "" {
			continue
		}
		m[name] = i
	}
	return m
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// nodePos is where a node starts: a block mapping at its first key.
func nodePos(n ast.Node) pos {
	if kvs, ok := entries(n); ok && len(kvs) > 0 {
		if m, ok := n.(*ast.MappingNode); !ok || !m.IsFlowStyle {
			n = kvs[0].Key
		}
	}
	if n == nil || n.GetToken() == nil {
		return pos{}
	}
	p := n.GetToken().Position
	return pos{p.Line, p.Column}
}

// entryPos is where a field should be reported: at its value when that is
// on the same line (a scalar or flow collection), else at its key.
func entryPos(kv *ast.MappingValueNode) pos {
	kp, vp := nodePos(kv.Key), nodePos(kv.Value)
	if vp.line == kp.line {
		return vp
	}
	if _, ok := kv.Value.(*ast.NullNode); ok || kv.Value == nil {
		return kp
	}
	switch kv.Value.(type) {
	case *ast.StringNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
		return vp
	}
	return kp
}

func describe(n ast.Node) string {
	switch v := n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.StringNode, *ast.LiteralNode:
		return "a string"
	case *ast.IntegerNode:
		return "an integer"
	case *ast.FloatNode:
		return "a number"
	case *ast.InfinityNode:
		return "infinity"
	case *ast.NanNode:
		return "NaN"
	case *ast.BoolNode:
		return "a boolean"
	case *ast.NullNode:
		return "null"
	default:
		return strings.ToLower(v.Type().String())
	}
}

// distance is the Levenshtein distance, for "did you mean" hints.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
