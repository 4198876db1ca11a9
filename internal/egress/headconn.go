package egress

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"sync"
	"sync/atomic"
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
// connection, because net/http deletes the Host header of a request whose
// target is an absolute URL and does not keep the raw head at all.
//
// The copy is only trusted once verifyHead has found it to be the very
// head net/http parsed into the request being served (same parser, same
// result), so what the proxy checks is what it forwards. The handler takes
// the copy when it starts, and the copy of the next head starts (next) the
// moment the request's body has been read to its end: the bytes read from
// the connection after that are the next request's. If the body is not
// read to its end, net/http would read the rest itself and a decoy head in
// it would be copied as the next one (a desynchronisation), so the
// connection is lost instead: it is closed after the answer and nothing
// more is copied from it. Bytes net/http reads ahead (a pipelining client)
// are not copied either: the next head is then incomplete or another
// request's, and verifyHead refuses it.
type headConn struct {
	net.Conn
	mu       sync.Mutex
	head     []byte
	complete bool
	lost     bool
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
	c.head, c.complete = captureHead(c.head, c.complete, b)
}

// captureHead appends b to head until head holds a whole request head,
// blank line included, and drops what follows it.
func captureHead(head []byte, complete bool, b []byte) ([]byte, bool) {
	if complete {
		return head, true
	}
	from := max(len(head)-3, 0)
	head = append(head, b...)
	if end := headEnd(head[from:]); end >= 0 {
		return head[:from+end], true
	}
	if len(head) > maxHeaderBytes+4096 {
		// net/http refuses a head this long itself.
		return nil, true
	}
	return head, false
}

// next forgets the current head, ready for the next request; after lose,
// no head is kept again.
func (c *headConn) next() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.head, c.complete = nil, c.lost
}

// lose marks the connection as out of step: the bytes after this point
// may belong to an unread body.
func (c *headConn) lose() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lost, c.head, c.complete = true, nil, true
}

// captured returns the kept head; ok is false when no whole head was
// kept since the last next.
func (c *headConn) captured() (head []byte, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.complete || c.head == nil {
		return nil, false
	}
	return c.head, true
}

// headEnd returns the length of the head that b starts with, through the
// blank line that ends it, or -1. net/http accepts bare LF line endings as
// well as CRLF.
func headEnd(b []byte) int {
	i := bytes.Index(b, []byte("\n\r\n"))
	j := bytes.Index(b, []byte("\n\n"))
	switch {
	case i < 0 && j < 0:
		return -1
	case i < 0:
		return j + 2
	case j < 0 || i < j:
		return i + 3
	default:
		return j + 2
	}
}

// rawHeadKey holds the keptRaw of the request being served.
type rawHeadKey struct{}

// keptRaw is the head copy a handler took when it started; ok is false if
// none was complete.
type keptRaw struct {
	raw []byte
	ok  bool
}

// requestHead is a request head as the proxy checks it.
type requestHead struct {
	raw   string   // request line through the blank line, byte for byte
	line  string   // the request line
	hosts []string // every Host header's value (net/http drops them from Request.Header)
}

var errHeadMismatch = errors.New("the kept head is not this request's")

// verifyHead parses raw with the parser net/http's server uses and
// returns it only if the result is r: same method, target, protocol and
// header fields. The request forwarded is made from r, so it is made from
// exactly these bytes.
func verifyHead(raw []byte, r *http.Request) (requestHead, error) {
	pr, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return requestHead{}, err
	}
	if pr.Method != r.Method || pr.RequestURI != r.RequestURI || pr.Proto != r.Proto ||
		!maps.EqualFunc(pr.Header, r.Header, slices.Equal) {
		return requestHead{}, errHeadMismatch
	}
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw)))
	line, err := tp.ReadLine()
	if err != nil {
		return requestHead{}, err
	}
	mh, err := tp.ReadMIMEHeader()
	if err != nil {
		return requestHead{}, err
	}
	return requestHead{raw: string(raw), line: line, hosts: mh["Host"]}, nil
}

// readBody notes when a request body has been read to its end, and then
// calls onEOF once.
type readBody struct {
	io.ReadCloser
	done  atomic.Bool
	onEOF func()
}

func (b *readBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && b.done.CompareAndSwap(false, true) && b.onEOF != nil {
		b.onEOF()
	}
	return n, err
}

// closeIfUnread answers "Connection: close" when the request body has
// not been read to its end by the time the answer starts. net/http would
// otherwise read the rest itself after the handler (see headConn) and
// keep the connection.
type closeIfUnread struct {
	http.ResponseWriter
	body  *readBody
	wrote bool
}

func (w *closeIfUnread) WriteHeader(code int) {
	if code >= 200 && !w.wrote {
		w.wrote = true
		if !w.body.done.Load() {
			w.Header().Set("Connection", "close")
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *closeIfUnread) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *closeIfUnread) Flush() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *closeIfUnread) Unwrap() http.ResponseWriter { return w.ResponseWriter }
