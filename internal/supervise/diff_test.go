package supervise

import (
	"strings"
	"testing"
)

func TestDockerfileDiff(t *testing.T) {
	base := "FROM debian:13\nRUN a\nRUN b\nRUN c\nRUN d\nRUN e\nRUN f\nRUN g\nRUN h\nUSER agent\n"
	cases := []struct {
		name, cur, prop, want string
	}{
		{"same", base, base, ""},
		{"from nothing", "", "FROM x\nRUN y\n", "--- current/Dockerfile\n+++ proposed/Dockerfile\n@@ -0,0 +1,2 @@\n+FROM x\n+RUN y\n"},
		{"to nothing", "FROM x\n", "", "--- current/Dockerfile\n+++ proposed/Dockerfile\n@@ -1 +0,0 @@\n-FROM x\n"},
		{"append", "FROM x\nRUN y\n", "FROM x\nRUN y\nRUN z\n", "--- current/Dockerfile\n+++ proposed/Dockerfile\n@@ -1,2 +1,3 @@\n FROM x\n RUN y\n+RUN z\n"},
		{"change one", base, strings.Replace(base, "RUN e", "RUN E", 1),
			"--- current/Dockerfile\n+++ proposed/Dockerfile\n@@ -3,7 +3,7 @@\n RUN b\n RUN c\n RUN d\n-RUN e\n+RUN E\n RUN f\n RUN g\n RUN h\n"},
		{"two hunks", base, strings.Replace(strings.Replace(base, "RUN a", "RUN A", 1), "USER agent", "USER root", 1),
			"--- current/Dockerfile\n+++ proposed/Dockerfile\n@@ -1,5 +1,5 @@\n FROM debian:13\n-RUN a\n+RUN A\n RUN b\n RUN c\n RUN d\n@@ -7,4 +7,4 @@\n RUN f\n RUN g\n RUN h\n-USER agent\n+USER root\n"},
		{"interleaved", "A\nB\nC\n", "A\nX\nC\nD\n", "--- current/Dockerfile\n+++ proposed/Dockerfile\n@@ -1,3 +1,4 @@\n A\n-B\n+X\n C\n+D\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := DockerfileDiff(c.cur, c.prop); got != c.want {
				t.Fatalf("got\n%s\nwant\n%s", got, c.want)
			}
		})
	}
}

// TestDockerfileDiffReconstructs checks the diff's lines rebuild both sides.
func TestDockerfileDiffReconstructs(t *testing.T) {
	cur := "FROM a\n1\n2\n3\n4\n5\n6\n7\n8\n9\n"
	prop := "FROM b\n1\n3\n4\nnew\n5\n6\n9\n10\n"
	ops := diffLines(splitLines(cur), splitLines(prop))
	var a, b []string
	for _, op := range ops {
		if op.kind != '+' {
			a = append(a, op.text)
		}
		if op.kind != '-' {
			b = append(b, op.text)
		}
	}
	if strings.Join(a, "\n")+"\n" != cur || strings.Join(b, "\n")+"\n" != prop {
		t.Fatalf("ops do not rebuild the inputs: %q / %q", a, b)
	}
}
