package cli

import "github.com/spf13/cobra"

// verbs lists every verb; each lives in its own file.
func verbs(g *globals) []*cobra.Command {
	return []*cobra.Command{
		newRunCmd(g),
		newPlanCmd(g),
		newValidateCmd(g),
		newInitCmd(g),
		newSchemaCmd(g),
		newPsCmd(g),
		newCleanupCmd(g),
		newSuperviseCmd(g, applier(g)),
		newImagesCmd(g),
		newRuntimeCmd(g),
		newLogsCmd(g),
		newStateCmd(g),
		newVersionCmd(g),
		newSidecarCmd(g),
	}
}
