package manifest

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Error is one problem in a manifest, located in its file so that the user
// can go straight to it.
type Error struct {
	// File is the manifest's path as given to Load or Parse; "" for none.
	File string
	// Line and Column are 1-based; 0 means the position is unknown (a
	// manifest built in code, or a problem with the file as a whole).
	Line, Column int
	// Field is the offending key's path, like "bottles.dev.egress.allow[0].port";
	// "" means the whole file.
	Field string
	// Msg says what is wrong and, where it can, what to do.
	Msg string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
		}
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// pos is a 1-based line and column in the manifest file.
type pos struct{ line, col int }

// positions maps a field path to where it is written in the file, so that
// validation, which runs on the decoded structs, can still point at a line.
type positions map[string]pos

// lookup finds the position of path or, for a field that is absent (a
// missing required key), of its nearest written ancestor.
func (p positions) lookup(path string) pos {
	for {
		if q, ok := p[path]; ok {
			return q
		}
		i := strings.LastIndexAny(path, ".[")
		if i <= 0 {
			return pos{}
		}
		path = path[:i]
	}
}

// problems collects errors so that one run reports everything wrong at once.
type problems struct {
	file string
	pos  positions
	errs []*Error
}

func (p *problems) add(field, format string, args ...any) {
	q := p.pos.lookup(field)
	p.errs = append(p.errs, &Error{
		File: p.file, Line: q.line, Column: q.col,
		Field: field, Msg: fmt.Sprintf(format, args...),
	})
}

func (p *problems) addAt(q pos, field, format string, args ...any) {
	p.errs = append(p.errs, &Error{
		File: p.file, Line: q.line, Column: q.col,
		Field: field, Msg: fmt.Sprintf(format, args...),
	})
}

// err returns the problems in file order (those without a position last),
// joined one per line, or nil.
func (p *problems) err() error {
	if len(p.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(p.errs, func(a, b *Error) int {
		if (a.Line == 0) != (b.Line == 0) {
			if a.Line == 0 {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	errs := make([]error, len(p.errs))
	for i, e := range p.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}
