package supervise

import (
	"fmt"
	"strings"
)

// diffContext is the number of unchanged lines shown around a change.
const diffContext = 3

// maxLCSCells bounds the LCS table; past it the changed middle is shown as
// removed and re-added, which is still a correct diff.
const maxLCSCells = 16 << 20

type diffOp struct {
	kind   byte // ' ', '-', '+'
	text   string
	ai, bi int // line index in current and proposed before this op
}

// DockerfileDiff returns a unified diff (3 lines of context) from current
// to proposed, or "" when they are the same. current may be "" for a
// bottle without a Dockerfile.
func DockerfileDiff(current, proposed string) string {
	a, b := splitLines(current), splitLines(proposed)
	ops := diffLines(a, b)
	var changes []int
	for i, op := range ops {
		if op.kind != ' ' {
			changes = append(changes, i)
		}
	}
	if len(changes) == 0 {
		return ""
	}
	var sb strings.Builder
	sb.WriteString("--- current/Dockerfile\n+++ proposed/Dockerfile\n")
	for i := 0; i < len(changes); {
		start := max(0, changes[i]-diffContext)
		j := i
		for j+1 < len(changes) && changes[j+1]-changes[j] <= 2*diffContext {
			j++
		}
		end := min(len(ops), changes[j]+1+diffContext)
		hunk := ops[start:end]
		aLen, bLen := 0, 0
		for _, op := range hunk {
			if op.kind != '+' {
				aLen++
			}
			if op.kind != '-' {
				bLen++
			}
		}
		fmt.Fprintf(&sb, "@@ -%s +%s @@\n", hunkRange(hunk[0].ai, aLen), hunkRange(hunk[0].bi, bLen))
		for _, op := range hunk {
			sb.WriteByte(op.kind)
			sb.WriteString(op.text)
			sb.WriteByte('\n')
		}
		i = j + 1
	}
	return sb.String()
}

func hunkRange(start, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", start)
	}
	if n == 1 {
		return fmt.Sprintf("%d", start+1)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// diffLines is an LCS line diff after trimming the common prefix and
// suffix, which is where Dockerfile edits usually leave most lines.
func diffLines(a, b []string) []diffOp {
	var ops []diffOp
	p := 0
	for p < len(a) && p < len(b) && a[p] == b[p] {
		ops = append(ops, diffOp{' ', a[p], p, p})
		p++
	}
	s := 0
	for s < len(a)-p && s < len(b)-p && a[len(a)-1-s] == b[len(b)-1-s] {
		s++
	}
	am, bm := a[p:len(a)-s], b[p:len(b)-s]
	ops = append(ops, diffMiddle(am, bm, p)...)
	for k := 0; k < s; k++ {
		ai, bi := len(a)-s+k, len(b)-s+k
		ops = append(ops, diffOp{' ', a[ai], ai, bi})
	}
	return ops
}

func diffMiddle(a, b []string, off int) []diffOp {
	n, m := len(a), len(b)
	var ops []diffOp
	if n*m == 0 || (n+1)*(m+1) > maxLCSCells {
		for i, l := range a {
			ops = append(ops, diffOp{'-', l, off + i, off})
		}
		for j, l := range b {
			ops = append(ops, diffOp{'+', l, off + n, off + j})
		}
		return ops
	}
	// lcs[i][j] is the LCS length of a[i:] and b[j:].
	lcs := make([][]int32, n+1)
	for i := range lcs {
		lcs[i] = make([]int32, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			ops = append(ops, diffOp{' ', a[i], off + i, off + j})
			i++
			j++
		case j < m && (i == n || lcs[i][j+1] > lcs[i+1][j]):
			ops = append(ops, diffOp{'+', b[j], off + i, off + j})
			j++
		default:
			ops = append(ops, diffOp{'-', a[i], off + i, off + j})
			i++
		}
	}
	return ops
}
