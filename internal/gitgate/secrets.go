package gitgate

import (
	"os"
	"path/filepath"
	"strings"
)

// heldSecrets returns the credentials the gate holds for cfg, for the
// audit log's redactor: each token, and each private key whole and line by
// line (a key's lines are long base64). Unreadable files give nothing: the
// fetch or push that needs them fails and says so.
func heldSecrets(dir string, cfg Config) []string {
	var out []string
	for _, r := range cfg.Repos {
		if r.TokenFile != "" {
			if b, err := os.ReadFile(filepath.Join(dir, r.TokenFile)); err == nil {
				out = append(out, strings.TrimSpace(string(b)))
			}
		}
		if r.KeyFile != "" {
			if b, err := os.ReadFile(filepath.Join(dir, r.KeyFile)); err == nil {
				out = append(out, string(b))
				for _, l := range strings.Split(string(b), "\n") {
					if l = strings.TrimSpace(l); !strings.HasPrefix(l, "-----") {
						out = append(out, l)
					}
				}
			}
		}
	}
	return out
}
