package stage

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestPollCallsOnChangeOnly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reads := []struct {
		v   string
		fp  byte
		err error
	}{{"a", 1, nil}, {"a", 1, nil}, {"b", 2, nil}, {"bad", 3, errors.New("invalid")}, {"bad", 3, errors.New("invalid")}}
	n := 0
	var got []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		Poll(ctx, time.Millisecond, [32]byte{}, func() (string, [32]byte, error) {
			r := reads[min(n, len(reads)-1)]
			n++
			if n == len(reads)+3 {
				cancel()
			}
			return r.v, [32]byte{r.fp}, r.err
		}, func(v string, err error) {
			if err != nil {
				v += " (error)"
			}
			got = append(got, v)
		})
	}()
	<-done
	if want := "a,b,bad (error)"; join(got) != want {
		t.Fatalf("changes %q, want %q", join(got), want)
	}
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}
