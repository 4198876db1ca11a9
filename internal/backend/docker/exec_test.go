package docker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/claude-bottle/claude-bottle/internal/plan"
)

// execute runs an op only after its prerequisites, stops starting ops at
// the first failure, and undoes exactly the finished ops (and the failed
// op's own partial work) in the reverse of the order they finished.
func TestExecuteUndoesInReverse(t *testing.T) {
	a := plan.NewOp("k", "a")
	b := plan.NewOp("k", "b", a.ID)
	c := plan.NewOp("k", "c", b.ID)
	d := plan.NewOp("k", "d", c.ID)
	ops := []plan.Op{a, b, c, d}
	for k := range ops {
		t.Run(ops[k].ID, func(t *testing.T) {
			var mu sync.Mutex
			var ran, undone []string
			err := execute(context.Background(), ops, func(ctx context.Context, o plan.Op) (undo, error) {
				mu.Lock()
				ran = append(ran, o.Target)
				mu.Unlock()
				u := func(context.Context) error {
					mu.Lock()
					undone = append(undone, o.Target)
					mu.Unlock()
					return nil
				}
				if o.ID == ops[k].ID {
					return u, errors.New("boom")
				}
				return u, nil
			})
			if err == nil || err.Error() != "boom" {
				t.Fatalf("execute: %v", err)
			}
			want := []string{"a", "b", "c", "d"}[:k+1]
			if !slices.Equal(ran, want) {
				t.Errorf("ran %v, want %v", ran, want)
			}
			slices.Reverse(want)
			if !slices.Equal(undone, want) {
				t.Errorf("undone %v, want %v", undone, want)
			}
		})
	}
}

// Independent ops run at once; an op waits for every op it names.
func TestExecuteRunsConcurrentlyInOrder(t *testing.T) {
	ops := []plan.Op{plan.NewOp("k", "x"), plan.NewOp("k", "y"), plan.NewOp("k", "z", "k x", "k y")}
	both := make(chan struct{})
	var mu sync.Mutex
	started := 0
	err := execute(context.Background(), ops, func(ctx context.Context, o plan.Op) (undo, error) {
		if o.Target == "z" {
			return nil, nil
		}
		mu.Lock()
		started++
		if started == 2 {
			close(both)
		}
		mu.Unlock()
		<-both // deadlocks unless x and y run at the same time
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A prerequisite that does not exist is an error, not a hang or a
// silent skip; a failed undo is reported beside the failure.
func TestExecuteReportsWhatNeverRanAndFailedUndos(t *testing.T) {
	ops := []plan.Op{plan.NewOp("k", "a"), plan.NewOp("k", "b", "k missing")}
	err := execute(context.Background(), ops, func(ctx context.Context, o plan.Op) (undo, error) {
		return func(context.Context) error { return fmt.Errorf("cannot undo %s", o.Target) }, nil
	})
	if err == nil || err.Error() != "operations whose prerequisites never finished: k b (and undoing what was done failed: cannot undo a)" {
		t.Fatalf("execute: %v", err)
	}
}
