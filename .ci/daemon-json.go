//go:build ignore

// daemon-json sets runtime entries in dockerd's daemon.json, keeping every
// other setting, and says whether the file changed:
//
//	go run .ci/daemon-json.go FILE NAME=PATH...
//
// It prints "changed" or "unchanged"; the caller reloads dockerd (SIGHUP)
// only on "changed". CI uses it instead of jq, which a fresh machine lacks.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "daemon-json:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: daemon-json FILE NAME=PATH...")
	}
	file := args[0]
	cfg := map[string]any{}
	old, err := os.ReadFile(file)
	switch {
	case err == nil && len(bytes.TrimSpace(old)) > 0:
		if err := json.Unmarshal(old, &cfg); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
	case err == nil, os.IsNotExist(err):
	default:
		return err
	}
	rts, _ := cfg["runtimes"].(map[string]any)
	if rts == nil {
		rts = map[string]any{}
	}
	for _, a := range args[1:] {
		name, path, ok := strings.Cut(a, "=")
		if !ok || name == "" || !filepath.IsAbs(path) {
			return fmt.Errorf("%q: want NAME=/absolute/path", a)
		}
		rts[name] = map[string]any{"path": path}
	}
	cfg["runtimes"] = rts
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if err == nil && bytes.Equal(b, old) {
		fmt.Println("unchanged")
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, file); err != nil {
		return err
	}
	fmt.Println("changed")
	return nil
}
