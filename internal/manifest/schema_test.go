package manifest

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	b, err := Schema()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	const url = "https://claude-bottle.dev/schema/manifest.json"
	c := jsonschema.NewCompiler()
	if err := c.AddResource(url, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(url)
	if err != nil {
		t.Fatalf("compile schema: %v", err)
	}
	return s
}

func yamlValue(t *testing.T, data []byte) any {
	t.Helper()
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatalf("yaml to json: %v", err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatalf("unmarshal json: %v", err)
	}
	return v
}

func TestSchemaAcceptsGoodManifests(t *testing.T) {
	s := compileSchema(t)
	var files []string
	for _, pattern := range []string{
		"../../examples/*.yaml",
		"default.yaml",
		"testdata/good/*.yaml",
		"../plan/testdata/*.yaml",
	} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 5 {
		t.Fatalf("found only %v", files)
	}
	for _, file := range files {
		t.Run(file, func(t *testing.T) {
			data := readFile(t, file)
			if err := s.Validate(yamlValue(t, data)); err != nil {
				t.Errorf("schema refused %s: %v", file, err)
			}
		})
	}
}

func TestSchemaRefusesMalformed(t *testing.T) {
	s := compileSchema(t)
	const head = "agents: {a: {bottle: b}}\nbottles:\n  b:\n"
	tests := []struct{ name, src string }{
		{"unknown top-level key", "agnets: {}\nbottles: {}\n"},
		{"missing agents", "bottles: {b: {}}\n"},
		{"unknown nested key", head + "    egress: {allow: [{host: x.org, prot: 443}]}\n"},
		{"port out of range", head + "    egress: {allow: [{host: x.org, port: 70000}]}\n"},
		{"port wrong type", head + "    egress: {allow: [{host: x.org, port: \"443\"}]}\n"},
		{"rule without host", head + "    egress: {allow: [{port: 443}]}\n"},
		{"bad runtime", head + "    runtime: kata\n"},
		{"bad memory", head + "    resources: {memory: 4gb}\n"},
		{"zero cpus", head + "    resources: {cpus: 0}\n"},
		{"zero pids", head + "    resources: {pids: 0}\n"},
		{"bad bottle name", "agents: {a: {bottle: B}}\nbottles: {B: {}}\n"},
		{"bad env name", "agents: {a: {bottle: b, env: {1X: y}}}\nbottles: {b: {}}\n"},
		{"env not a string", "agents: {a: {bottle: b, env: {X: 1}}}\nbottles: {b: {}}\n"},
		{"route path", head + "    cred_proxy: {routes: [{name: r, path: /r, upstream: https://x.org, credentials: [{env: T}]}]}\n"},
		{"no credentials", head + "    cred_proxy: {routes: [{name: r, path: /r/, upstream: https://x.org, credentials: []}]}\n"},
		{"two sources", head + "    cred_proxy: {routes: [{name: r, path: /r/, upstream: https://x.org, credentials: [{env: T, file: f}]}]}\n"},
		{"no source", head + "    cred_proxy: {routes: [{name: r, path: /r/, upstream: https://x.org, credentials: [{header: X}]}]}\n"},
		{"bad role", head + "    cred_proxy: {routes: [{name: r, path: /r/, upstream: https://x.org, role: other, credentials: [{env: T}]}]}\n"},
		{"repo without upstream", head + "    git: {repos: [{name: app}]}\n"},
		{"version 2", "version: 2\n" + head + "    {}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Validate(yamlValue(t, []byte(tt.src))); err == nil {
				j, _ := json.Marshal(yamlValue(t, []byte(tt.src)))
				t.Errorf("schema accepted %s", j)
			}
		})
	}
}
