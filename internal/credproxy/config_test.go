package credproxy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, dir, routesJSON string, tokens map[string]string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "tokens"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, tok := range tokens {
		if err := os.WriteFile(filepath.Join(dir, "tokens", name), []byte(tok), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, RoutesFile), []byte(routesJSON), 0o600); err != nil {
		t.Fatal(err)
	}
}

func routeJSON(name, path, upstream, header, format string) string {
	return fmt.Sprintf(`{"name":%q,"path":%q,"upstream":%q,"header":%q,"format":%q,"token_file":"tokens/%s"}`,
		name, path, upstream, header, format, name)
}

func TestLoad(t *testing.T) {
	good := routeJSON("anthropic", "/anthropic/", "https://api.anthropic.com", "x-api-key", "{token}")
	tests := []struct {
		name    string
		routes  string
		tokens  map[string]string
		wantErr string
	}{
		{"ok trims newline", `{"routes":[` + good + `]}`, map[string]string{"anthropic": "tok-abc\n"}, ""},
		{"ok crlf", `{"routes":[` + good + `]}`, map[string]string{"anthropic": "tok-abc\r\n"}, ""},
		{"empty token", `{"routes":[` + good + `]}`, map[string]string{"anthropic": "\n"}, "is empty"},
		{"missing token file", `{"routes":[` + good + `]}`, nil, "read token file"},
		{"unknown field", `{"routes":[],"extra":1}`, nil, "unknown field"},
		{"bad path", `{"routes":[` + routeJSON("a", "/a", "https://x", "x-api-key", "{token}") + `]}`, map[string]string{"a": "t"}, "path"},
		{"dot path", `{"routes":[` + routeJSON("a", "/a/../b/", "https://x", "x-api-key", "{token}") + `]}`, map[string]string{"a": "t"}, "path"},
		{"ftp upstream", `{"routes":[` + routeJSON("a", "/a/", "ftp://x", "x-api-key", "{token}") + `]}`, map[string]string{"a": "t"}, "http or https"},
		{"upstream query", `{"routes":[` + routeJSON("a", "/a/", "https://x/?k=1", "x-api-key", "{token}") + `]}`, map[string]string{"a": "t"}, "no user, query"},
		{"no placeholder", `{"routes":[` + routeJSON("a", "/a/", "https://x", "x-api-key", "Bearer") + `]}`, map[string]string{"a": "t"}, "{token}"},
		{"hop-by-hop header", `{"routes":[` + routeJSON("a", "/a/", "https://x", "Connection", "{token}") + `]}`, map[string]string{"a": "t"}, "hop-by-hop"},
		{"duplicate path", `{"routes":[` + routeJSON("a", "/a/", "https://x", "x-api-key", "{token}") + `,` + routeJSON("b", "/a/", "https://y", "x-api-key", "{token}") + `]}`, map[string]string{"a": "t", "b": "u"}, "duplicate path"},
		{"escaping token file", `{"routes":[{"name":"a","path":"/a/","upstream":"https://x","header":"x-api-key","format":"{token}","token_file":"../t"}]}`, nil, "inside the config directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeConfig(t, dir, tt.routes, tt.tokens)
			routes, err := Load(dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(routes) != 1 || routes[0].Token != "tok-abc" || routes[0].Header != "x-api-key" {
				t.Fatalf("routes = %#v (token %q)", routes, routes[0].Token)
			}
		})
	}
}

func TestLoadedRouteNeverPrintsToken(t *testing.T) {
	lr := LoadedRoute{Route: Route{Name: "a", Path: "/a/", Upstream: "https://x"}, Token: "very-secret"}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(verb, lr); strings.Contains(s, "very-secret") {
			t.Errorf("%s printed the token: %s", verb, s)
		}
	}
}
