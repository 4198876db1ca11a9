package egress

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"
)

var errHelloRead = errors.New("client hello read")

// readClientHello reads a TLS ClientHello from r and returns its server
// name and every byte it consumed, which the caller forwards unchanged.
// crypto/tls does the parsing: a server handshake on a connection that can
// only read stops in GetConfigForClient, before anything is written.
func readClientHello(r io.Reader) (sni string, consumed []byte, err error) {
	var buf bytes.Buffer
	var hello *tls.ClientHelloInfo
	err = tls.Server(readOnlyConn{r: io.TeeReader(r, &buf)}, &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			hello = h
			return nil, errHelloRead
		},
	}).Handshake()
	if hello == nil {
		return "", buf.Bytes(), err
	}
	return hello.ServerName, buf.Bytes(), nil
}

// readOnlyConn lets tls.Server read a ClientHello and nothing else.
type readOnlyConn struct{ r io.Reader }

func (c readOnlyConn) Read(p []byte) (int, error)     { return c.r.Read(p) }
func (readOnlyConn) Write([]byte) (int, error)        { return 0, io.ErrClosedPipe }
func (readOnlyConn) Close() error                     { return nil }
func (readOnlyConn) LocalAddr() net.Addr              { return nil }
func (readOnlyConn) RemoteAddr() net.Addr             { return nil }
func (readOnlyConn) SetDeadline(time.Time) error      { return nil }
func (readOnlyConn) SetReadDeadline(time.Time) error  { return nil }
func (readOnlyConn) SetWriteDeadline(time.Time) error { return nil }
