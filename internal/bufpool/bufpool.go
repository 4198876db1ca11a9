// Package bufpool holds the copy buffers the reverse proxies share, so a
// response body copy does not allocate (and later collect) 32 KiB per
// request, which httputil.ReverseProxy does when it has no BufferPool.
package bufpool

import "sync"

// Size is the length of every buffer, httputil.ReverseProxy's default.
const Size = 32 << 10

// Pool is an httputil.BufferPool.
type Pool struct{ p sync.Pool }

// New returns an empty pool.
func New() *Pool {
	return &Pool{p: sync.Pool{New: func() any { b := make([]byte, Size); return &b }}}
}

// Get returns a buffer of Size bytes.
func (p *Pool) Get() []byte { return *(p.p.Get().(*[]byte)) }

// Put returns b to the pool; buffers of another size are dropped.
func (p *Pool) Put(b []byte) {
	if cap(b) != Size {
		return
	}
	b = b[:Size]
	p.p.Put(&b)
}
