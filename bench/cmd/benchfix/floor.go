package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime/debug"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/bufpool"
)

// serveFloor is the least a Go proxy built on the standard library can do:
// no policy, no log, no scrubbing, no checks. It is not a product; the
// benchmarks measure it beside the sidecars to show how much of a gap to a
// peer (nginx, squid, a direct connection) belongs to the library and the
// machine rather than to claude-bottle's own work.
//
//	-upstream URL: a reverse proxy (httputil.ReverseProxy with Rewrite, a
//	  pooled transport and a buffer pool, as cred-proxy uses) that sets -header to -value;
//	without it: a forward proxy, absolute-form requests through
//	  ReverseProxy (pooled upstream connections) and CONNECT relayed
//	  between the raw TCP connections (io.Copy, so the kernel can splice).
func serveFloor(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("floor", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address")
	upstream := fs.String("upstream", "", "reverse-proxy to this base URL (else: forward proxy)")
	header := fs.String("header", "x-api-key", "header the reverse proxy sets")
	value := fs.String("value", "", "its value")
	fs.Parse(args)
	// The same collector target as the sidecars (internal/cli proxyGC).
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.MaxIdleConns = 512
	tr.MaxIdleConnsPerHost = 256
	var h http.Handler
	if *upstream != "" {
		u, err := url.Parse(*upstream)
		if err != nil {
			return err
		}
		h = &httputil.ReverseProxy{Transport: tr, BufferPool: bufpool.New(), Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Header.Del("Authorization")
			pr.Out.Header.Del("Cookie")
			pr.Out.Header.Set(*header, *value)
		}}
	} else {
		rp := &httputil.ReverseProxy{Transport: tr, BufferPool: bufpool.New(), Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = pr.In.URL
			pr.Out.Host = pr.In.Host
		}}
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodConnect {
				rp.ServeHTTP(w, r)
				return
			}
			up, err := net.DialTimeout("tcp", r.Host, 10*time.Second)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				up.Close()
				return
			}
			if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil || brw.Reader.Buffered() > 0 {
				c.Close()
				up.Close()
				return
			}
			done := make(chan struct{})
			go func() {
				io.Copy(up, c)
				up.(*net.TCPConn).CloseWrite()
				close(done)
			}()
			io.Copy(c, up)
			if tc, ok := c.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			<-done
			c.Close()
			up.Close()
		})
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
