package egress

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/logtest"

	"github.com/claude-bottle/claude-bottle/internal/audit"
)

// testLogger writes to t.Log until the test ends; tunnels may still log
// while they wind down.
func testLogger(t *testing.T) *slog.Logger { return logtest.New(t) }

// syncBuffer is an audit destination tests can read while the proxy writes.
type syncBuffer = logtest.Buffer

func parseEvents(t *testing.T, s string) []audit.Event { return logtest.ParseEvents(t, s) }

// waitEvent polls events until one satisfies match.
func waitEvent(t *testing.T, events func() []audit.Event, what string, match func(audit.Event) bool) audit.Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, e := range events() {
			if match(e) {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit event %s in:\n%+v", what, events())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fakeResolver answers from a table. A name with several answer lists
// gives the next list on each call (the last one repeats): a rebinding
// server.
type fakeResolver struct {
	mu      sync.Mutex
	answers map[string][][]string
	calls   map[string]int
}

func newFakeResolver(answers map[string][][]string) *fakeResolver {
	return &fakeResolver{answers: answers, calls: map[string]int{}}
}

func (r *fakeResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	host = strings.TrimSuffix(host, ".")
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.calls[host]
	r.calls[host]++
	lists, ok := r.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	list := lists[min(n, len(lists)-1)]
	var out []net.IPAddr
	for _, a := range list {
		out = append(out, net.IPAddr{IP: net.ParseIP(a)})
	}
	return out, nil
}

func (r *fakeResolver) count(host string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[host]
}

// fakeDialer dials only loopback, so no test can reach outside even if the
// proxy were wrong. redirect sends a well-known port (443, 80) to the
// ephemeral one a test server listens on; what the proxy asked for is
// recorded.
type fakeDialer struct {
	mu       sync.Mutex
	redirect map[string]string
	dialed   []string
}

func (d *fakeDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.dialed = append(d.dialed, addr)
	to, ok := d.redirect[addr]
	d.mu.Unlock()
	if !ok {
		to = addr
	}
	host, _, err := net.SplitHostPort(to)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("test dialer: %s is not loopback", to)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, to)
}

func (d *fakeDialer) addrs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.dialed...)
}

func (d *fakeDialer) setRedirect(from, to string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.redirect == nil {
		d.redirect = map[string]string{}
	}
	d.redirect[from] = to
}

var (
	certOnce sync.Once
	testCert tls.Certificate
	testPool *x509.CertPool
)

// upstreamCert is a self-signed certificate for the test names.
func upstreamCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	certOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "egress test"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(24 * time.Hour),
			DNSNames:              []string{"allowed.test", "evil.test", "loop.test", "rebind.test", "new.test"},
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			BasicConstraintsValid: true,
			IsCA:                  true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			panic(err)
		}
		leaf, _ := x509.ParseCertificate(der)
		testCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
		testPool = x509.NewCertPool()
		testPool.AddCert(leaf)
	})
	return testCert, testPool
}

// harness is a proxy on 127.0.0.1 with a fake resolver and dialer and an
// in-memory audit log.
type harness struct {
	t    *testing.T
	p    *proxy
	addr string
	url  *url.URL
	log  *syncBuffer
	res  *fakeResolver
	dial *fakeDialer
}

func newHarness(t *testing.T, pol *Policy, secrets []string, answers map[string][][]string) *harness {
	t.Helper()
	if err := pol.Validate(); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, log: &syncBuffer{}, res: newFakeResolver(answers), dial: &fakeDialer{}}
	h.p = newProxy(testLogger(t), audit.New(h.log, "test", "egress"), h.res, h.dial.dial, newConfig(pol, &Secrets{Values: secrets}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := h.p.server(ctx)
	go srv.Serve(headListener{ln})
	t.Cleanup(func() {
		cancel()
		srv.Close()
	})
	h.addr = ln.Addr().String()
	h.url = &url.URL{Scheme: "http", Host: h.addr}
	return h
}

func (h *harness) events() []audit.Event { return parseEvents(h.t, h.log.String()) }

// client is an HTTP client that goes through the proxy and trusts the
// upstream test certificate.
func (h *harness) client() *http.Client {
	_, pool := upstreamCert(h.t)
	tr := &http.Transport{
		Proxy:           http.ProxyURL(h.url),
		TLSClientConfig: &tls.Config{RootCAs: pool},
	}
	h.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// raw sends a hand-written request head to the proxy and returns the
// response and the connection (open, for CONNECT).
func (h *harness) raw(head string) (*http.Response, string, net.Conn, *bufio.Reader) {
	h.t.Helper()
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, head); err != nil {
		h.t.Fatal(err)
	}
	br := bufio.NewReader(c)
	method, _, _ := strings.Cut(head, " ")
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		h.t.Fatalf("read response to %q: %v", head, err)
	}
	var body []byte
	if method != http.MethodConnect || resp.StatusCode != http.StatusOK {
		body, _ = io.ReadAll(resp.Body)
	}
	return resp, string(body), c, br
}

func (h *harness) connect(target string) (*http.Response, string, net.Conn, *bufio.Reader) {
	return h.raw("CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n")
}

// tlsUpstream is an HTTPS server answering for the test names.
func tlsUpstream(t *testing.T, h http.Handler) *httptest.Server {
	cert, _ := upstreamCert(t)
	s := httptest.NewUnstartedServer(h)
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	// Refused tunnels end handshakes on purpose.
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// echoUpstream is a TCP server that echoes lines, for tunnels carrying
// plain bytes.
func echoUpstream(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func portOf(t *testing.T, addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}
