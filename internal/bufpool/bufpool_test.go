package bufpool

import (
	"net/http/httputil"
	"testing"
)

var _ httputil.BufferPool = (*Pool)(nil)

func TestGetPut(t *testing.T) {
	p := New()
	b := p.Get()
	if len(b) != Size {
		t.Fatalf("len %d, want %d", len(b), Size)
	}
	b[0] = 1
	p.Put(b[:10]) // a resliced buffer comes back whole
	if c := p.Get(); len(c) != Size {
		t.Fatalf("len %d after Put of a short slice", len(c))
	}
	p.Put(make([]byte, 10)) // another size is dropped, not handed out
	for range 100 {
		if c := p.Get(); len(c) != Size {
			t.Fatalf("got a buffer of %d bytes", len(c))
		}
	}
}
