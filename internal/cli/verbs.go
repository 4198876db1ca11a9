package cli

import "github.com/spf13/cobra"

// verbs lists every verb; each lives in its own file.
func verbs(g *globals) []*cobra.Command {
	return []*cobra.Command{
		newVersionCmd(g),
	}
}
