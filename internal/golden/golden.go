// Package golden compares what a test produced with a file under testdata,
// and rewrites the file instead when the test runs with -update (the Go
// tree's go/printer pattern). Review the diff of an -update before
// committing it.
package golden

import (
	"bytes"
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// Updating says whether the test runs with -update.
func Updating() bool { return *update }

// Check compares got with the file at path, or writes it with -update.
// pkg is the package's path for the hint (./internal/plan).
func Check(t testing.TB, pkg, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test %s -update)", err, pkg)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; run go test %s -update and review the diff\n--- got ---\n%s", path, pkg, got)
	}
}
