package manifest

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// FileName is the manifest Find looks for in a directory.
const FileName = "claude-bottle.yaml"

// maxSize bounds the manifest file; a real one is a few kilobytes.
const maxSize = 1 << 20

// Find returns the manifest a command should use: flagPath if it is set,
// else DIR/claude-bottle.yaml if it exists, else the built-in default.
func Find(dir, flagPath string) (*Manifest, error) {
	if flagPath != "" {
		return Load(flagPath)
	}
	p := filepath.Join(dir, FileName)
	if _, err := os.Stat(p); err == nil {
		return Load(p)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("find manifest: %w", err)
	}
	return Default(), nil
}

// Load reads, decodes, defaults and validates the manifest at path. Errors
// name path as given.
func Load(path string) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes data strictly, applies defaults, resolves relative paths
// against name's directory (the working directory if name is "") and
// validates. name is used in error messages and as Manifest.Path. Every
// problem found is reported, one per line, each as FILE:LINE:COL: FIELD: MSG
// (errors.As finds each *Error).
func Parse(name string, data []byte) (*Manifest, error) {
	m, err := decode(name, data)
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(filepath.Dir(cmp.Or(name, ".")))
	if err != nil {
		return nil, fmt.Errorf("resolve manifest directory: %w", err)
	}
	m.applyDefaults()
	m.resolvePaths(dir)
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

func decode(name string, data []byte) (*Manifest, error) {
	if len(data) > maxSize {
		return nil, &Error{File: name, Msg: fmt.Sprintf("file is larger than %d bytes; is it a manifest?", maxSize)}
	}
	// Duplicate keys are allowed by the parser only so that the checker can
	// report them with their field path.
	f, err := parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey())
	if err != nil {
		return nil, yamlError(name, "invalid YAML: ", err)
	}
	var body ast.Node
	for i, doc := range f.Docs {
		if doc.Body == nil {
			continue
		}
		if _, ok := doc.Body.(*ast.CommentGroupNode); ok {
			continue
		}
		if body != nil {
			q := nodePos(doc.Body)
			return nil, &Error{File: name, Line: q.line, Column: q.col, Msg: fmt.Sprintf("only one YAML document is allowed; found another (document %d)", i+1)}
		}
		body = doc.Body
	}
	probs := &problems{file: name}
	c := &checker{probs: probs, pos: positions{}, anchors: map[string]ast.Node{}}
	c.walk(body, reflect.TypeFor[Manifest](), "")
	if err := probs.err(); err != nil {
		return nil, err
	}
	m := &Manifest{}
	if body != nil {
		if err := yaml.UnmarshalWithOptions(data, m, yaml.DisallowUnknownField()); err != nil {
			// The checker accepts only what the decoder accepts; this is a
			// backstop, not the usual path.
			return nil, yamlError(name, "", err)
		}
	}
	m.Path = name
	m.pos = c.pos
	// "claude:" with nothing under it decodes as a nil agent.
	for k, a := range m.Agents {
		if a == nil {
			m.Agents[k] = &Agent{}
		}
	}
	for k, b := range m.Bottles {
		if b == nil {
			m.Bottles[k] = &Bottle{}
		}
	}
	return m, nil
}

// yamlError turns a goccy error into an *Error at its token, without
// goccy's multi-line source excerpt.
func yamlError(name, prefix string, err error) error {
	var ye yaml.Error
	if !errors.As(err, &ye) {
		return &Error{File: name, Msg: prefix + err.Error()}
	}
	e := &Error{File: name, Msg: prefix + strings.TrimSpace(ye.GetMessage())}
	if tk := ye.GetToken(); tk != nil && tk.Position != nil {
		e.Line, e.Column = tk.Position.Line, tk.Position.Column
	}
	return e
}

// has reports whether field was written in the file. A manifest built in
// code has no positions, so its zero values count as unset.
func (m *Manifest) has(field string) bool {
	_, ok := m.pos[field]
	return ok
}
