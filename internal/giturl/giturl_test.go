package giturl

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	cases := []struct {
		in     string
		want   URL
		errHas string
	}{
		// ssh://
		{in: "ssh://git@git.example.com/team/app.git", want: URL{Scheme: "ssh", User: "git", Host: "git.example.com", Port: 22, Path: "/team/app.git"}},
		{in: "ssh://git.example.com:2222/app.git", want: URL{Scheme: "ssh", Host: "git.example.com", Port: 2222, Path: "/app.git"}},
		{in: "ssh://git@[::1]:2200/srv/app.git", want: URL{Scheme: "ssh", User: "git", Host: "::1", Port: 2200, Path: "/srv/app.git"}},
		{in: "ssh://-oProxyCommand=x/foo", errHas: `the host must not start with "-"`},
		{in: "ssh://git@host:99999/app.git", errHas: "port 99999 is not 1 to 65535"},
		{in: "ssh://git@host:0/app.git", errHas: "port 0"},
		{in: "ssh://git@host", errHas: "needs a host and a repository path"},
		{in: "ssh://git:pw-secret@host/app.git", errHas: "must not contain a password"},
		// scp-like, with and without a user, with port-like paths
		{in: "git@github.com:example/app.git", want: URL{Scheme: "ssh", User: "git", Host: "github.com", Port: 22, Path: "example/app.git", SCP: true}},
		{in: "git@host:/srv/app.git", want: URL{Scheme: "ssh", User: "git", Host: "host", Port: 22, Path: "/srv/app.git", SCP: true}},
		{in: "git@host:2222/app.git", want: URL{Scheme: "ssh", User: "git", Host: "host", Port: 22, Path: "2222/app.git", SCP: true}},
		{in: "git@host:2222", want: URL{Scheme: "ssh", User: "git", Host: "host", Port: 22, Path: "2222", SCP: true}},
		{in: "me.name_x-1@10.0.0.7:app", want: URL{Scheme: "ssh", User: "me.name_x-1", Host: "10.0.0.7", Port: 22, Path: "app", SCP: true}},
		{in: "github.com:example/app.git", errHas: "names no user"},
		{in: "host:2222/app.git", errHas: "names no user"},
		{in: "git@github.com:--upload-pack=touch", errHas: `the path must not start with "-"`},
		{in: "git@-oProxyCommand=x:app", errHas: "not user@host:path"},
		{in: "git@.host:app", errHas: "not user@host:path"},
		{in: "git@host:", errHas: "names no repository path"},
		// https and http
		{in: "https://git.example.com/team/app.git", want: URL{Scheme: "https", Host: "git.example.com", Port: 443, Path: "/team/app.git"}},
		{in: "https://git.example.com:8443/app", want: URL{Scheme: "https", Host: "git.example.com", Port: 8443, Path: "/app"}},
		{in: "https://user@git.example.com/app", want: URL{Scheme: "https", User: "user", Host: "git.example.com", Port: 443, Path: "/app"}},
		{in: "http://127.0.0.1:8080/app.git", want: URL{Scheme: "http", Host: "127.0.0.1", Port: 8080, Path: "/app.git"}},
		{in: "http://h/x", want: URL{Scheme: "http", Host: "h", Port: 80, Path: "/x"}},
		{in: "https://git.example.com/app?x=1", errHas: "query or fragment"},
		{in: "https://git.example.com/app#frag", errHas: "query or fragment"},
		{in: "https://git.example.com/", errHas: "needs a host and a repository path"},
		{in: "https:///app", errHas: "needs a host and a repository path"},
		{in: "https://a:pw-secret@git.example.com/app", errHas: "must not contain a password"},
		{in: "https://a:pw-secret@git.example.com:x/app", errHas: "must not contain a password"},
		{in: "https://git.example.com:x/app", errHas: "not a valid URL"},
		// file
		{in: "file:///srv/app.git", want: URL{Scheme: "file", Path: "/srv/app.git"}},
		{in: "/srv/app.git", want: URL{Scheme: "file", Path: "/srv/app.git"}},
		{in: "/srv/a:b/app.git", want: URL{Scheme: "file", Path: "/srv/a:b/app.git"}},
		{in: "file://host/srv/app.git", errHas: "file:///absolute/path"},
		// malformed
		{in: "", errHas: "upstream is required"},
		{in: "git@github.com:team/app.git --upload-pack=x", errHas: "spaces or control characters"},
		{in: "git@host:app\n", errHas: "spaces or control characters"},
		{in: "-oProxyCommand=touch:x", errHas: `must not start with "-"`},
		{in: "--upload-pack=x", errHas: `must not start with "-"`},
		{in: "ext::sh", errHas: "only ssh"},
		{in: "fd::3", errHas: "only ssh"},
		{in: "git://git.example.com/app.git", errHas: "only ssh"},
		{in: "HTTPS://git.example.com/app.git", errHas: "only ssh"},
		{in: "app.git", errHas: "must be an ssh"},
		{in: "./a:b", errHas: "must be an ssh"},
	}
	for _, tc := range cases {
		got, err := Parse(tc.in)
		if tc.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("Parse(%q) = %+v, %v; want an error with %q", tc.in, got, err, tc.errHas)
			} else if strings.Contains(err.Error(), "pw-secret") {
				t.Errorf("Parse(%q): the error shows the password: %v", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}
