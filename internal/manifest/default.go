package manifest

import (
	_ "embed"
	"fmt"
	"slices"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultYAML returns the commented default manifest, as written by
// "claude-bottle init".
func DefaultYAML() []byte { return slices.Clone(defaultYAML) }

// Default returns the built-in manifest used when there is no
// claude-bottle.yaml: one agent, claude, in a bottle that reaches only the
// Anthropic API through cred-proxy. Each call returns a fresh copy.
func Default() *Manifest {
	m, err := Parse("", defaultYAML)
	if err != nil {
		// The embedded file is fixed at build time and tested.
		panic(fmt.Sprintf("manifest: built-in default is invalid: %v", err))
	}
	return m
}
