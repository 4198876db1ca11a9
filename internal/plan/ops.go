package plan

import (
	"fmt"
	"strings"
)

// Op is one step of a backend's launch: one engine call (create a network,
// write the stage files, create or start a container, wait until it is
// ready). A backend lists its steps for a plan (`plan --json` prints them)
// and its executor runs exactly that list: an op starts once every op in
// After has finished, and on failure the finished ones are undone in
// reverse.
type Op struct {
	// ID is unique within the list: KIND TARGET.
	ID string `json:"id"`
	// Kind says what the op does (the backend's own vocabulary, such as
	// network, stage, container, start, ready).
	Kind string `json:"kind"`
	// Target names what it acts on: a network, a container's role, a path.
	Target string `json:"target"`
	// After are the IDs of the ops that must finish first.
	After []string `json:"after,omitempty"`
}

// NewOp makes an op whose ID is "KIND TARGET".
func NewOp(kind, target string, after ...string) Op {
	return Op{ID: kind + " " + target, Kind: kind, Target: target, After: after}
}

// UndoReverse is how a backend that undoes its operations one by one
// cleans up a failed start.
const UndoReverse = "undone in reverse on failure"

// WriteOps prints the operations for a person, one a line, with what each
// waits for.
func WriteOps(b *strings.Builder, ops []Op, undo string) {
	if len(ops) == 0 {
		return
	}
	if undo == "" {
		undo = UndoReverse
	}
	fmt.Fprintf(b, "operations (%s; each waits for those it names; %s)\n", plural(len(ops), "op"), undo)
	for i, o := range ops {
		fmt.Fprintf(b, "  %2d  %s", i+1, o.ID)
		if len(o.After) > 0 {
			fmt.Fprintf(b, "  <- %s", strings.Join(o.After, ", "))
		}
		b.WriteString("\n")
	}
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
