package egress

import (
	"bytes"
	"net"
	"strings"
	"sync"
)

type headKey struct{}

// headListener wraps each accepted connection in a headConn.
type headListener struct{ net.Listener }

func (l headListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &headConn{Conn: c}, nil
}

// headConn keeps a copy of the current request head read from the
// connection: net/http deletes the Host header from a request whose target
// is an absolute URL, and the proxy wants to compare the two. The handler
// calls next when it is done, so the following request on a kept-alive
// connection is captured afresh. Bytes that arrive while a request is
// handled (a pipelining client) are not captured: the next head is then
// incomplete or names another request line, and that request is refused.
type headConn struct {
	net.Conn
	mu       sync.Mutex
	head     []byte
	complete bool
}

func (c *headConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.keep(b[:n])
	}
	return n, err
}

func (c *headConn) keep(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.complete {
		return
	}
	from := max(len(c.head)-3, 0)
	c.head = append(c.head, b...)
	if end := headEnd(c.head[from:]); end >= 0 {
		c.head = c.head[:from+end]
		c.complete = true
	} else if len(c.head) > maxHeaderBytes+4096 {
		// net/http refuses a head this long itself.
		c.head = nil
		c.complete = true
	}
}

// next forgets the current head, ready for the next request.
func (c *headConn) next() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.head, c.complete = nil, false
}

// requestLine returns the first line of the kept head.
func (c *headConn) requestLine() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	line, _, _ := strings.Cut(string(c.head), "\n")
	return strings.TrimSuffix(line, "\r")
}

// headEnd returns where the blank line ending a head starts; net/http
// accepts bare LF line endings as well as CRLF.
func headEnd(b []byte) int {
	i := bytes.Index(b, []byte("\n\r\n"))
	j := bytes.Index(b, []byte("\n\n"))
	switch {
	case i < 0:
		return j
	case j < 0 || i < j:
		return i
	default:
		return j
	}
}

// hostHeaders returns the values of every Host header in the head; ok is
// false when no complete head was kept.
func (c *headConn) hostHeaders() (values []string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.complete || c.head == nil {
		return nil, false
	}
	lines := strings.Split(string(c.head), "\n")
	last := -1
	for _, line := range lines[1:] {
		line = strings.TrimSuffix(line, "\r")
		if line != "" && (line[0] == ' ' || line[0] == '\t') {
			// obs-fold continues the previous header
			if last >= 0 {
				values[last] += " " + strings.TrimSpace(line)
			}
			continue
		}
		last = -1
		name, value, found := strings.Cut(line, ":")
		if found && strings.EqualFold(strings.TrimSpace(name), "host") {
			values = append(values, strings.TrimSpace(value))
			last = len(values) - 1
		}
	}
	return values, true
}
