package manifest

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"strings"

	"github.com/invopop/jsonschema"
)

// typesSource is embedded so that the schema's descriptions are the Go doc
// comments without the source tree being present at run time.
//
//go:embed types.go
var typesSource []byte

// Schema returns a JSON Schema (draft 2020-12) of the manifest, generated
// from the Go types, for editors and other tools. It checks structure only:
// Load also checks cross references and files.
func Schema() ([]byte, error) {
	comments, err := typeComments()
	if err != nil {
		return nil, fmt.Errorf("read type comments: %w", err)
	}
	r := &jsonschema.Reflector{
		FieldNameTag: "yaml",
		CommentMap:   comments,
	}
	s := r.Reflect(&Manifest{})
	s.ID = "https://claude-bottle.dev/schema/manifest.json"
	s.Title = "claude-bottle manifest"
	// Map keys (agent and bottle names) become container names.
	names := &jsonschema.Schema{Type: "string", Pattern: nameRE.String()}
	if d, ok := s.Definitions["Manifest"]; ok {
		for _, k := range []string{"agents", "bottles"} {
			if p, ok := d.Properties.Get(k); ok {
				p.PropertyNames = names
			}
		}
	}
	if d, ok := s.Definitions["Agent"]; ok {
		if p, ok := d.Properties.Get("env"); ok {
			p.PropertyNames = &jsonschema.Schema{Type: "string", Pattern: envRE.String()}
		}
	}
	// Exactly one token source per credential.
	if d, ok := s.Definitions["Credential"]; ok {
		for _, k := range []string{"env", "file", "command"} {
			d.OneOf = append(d.OneOf, &jsonschema.Schema{Required: []string{k}})
		}
	}
	out, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode schema: %w", err)
	}
	return append(out, '\n'), nil
}

// typeComments maps "PKG.Type" and "PKG.Type.Field" to doc comments, the
// form jsonschema.Reflector.CommentMap wants.
func typeComments() (map[string]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), "types.go", typesSource, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	pkg := reflect.TypeFor[Manifest]().PkgPath()
	m := map[string]string{}
	clean := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok {
			continue
		}
		for _, spec := range gd.Specs {
			ts, ok := spec.(*ast.TypeSpec)
			if !ok {
				continue
			}
			doc := ts.Doc.Text()
			if doc == "" {
				doc = gd.Doc.Text()
			}
			name := pkg + "." + ts.Name.Name
			if doc != "" {
				m[name] = clean(doc)
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				continue
			}
			for _, field := range st.Fields.List {
				doc := field.Doc.Text()
				if doc == "" {
					doc = field.Comment.Text()
				}
				for _, n := range field.Names {
					if doc != "" && n.IsExported() {
						m[name+"."+n.Name] = clean(doc)
					}
				}
			}
		}
	}
	return m, nil
}
