// Command benchfix holds the small fixtures the bench/*.sh scripts need:
//
//	benchfix dns  -listen 127.0.0.1:53 -name bench.test -addr 127.0.0.1
//	benchfix sse  -listen 127.0.0.1:PORT [-require-header x-api-key] [-tls-cert F -tls-key F]
//	benchfix floor -listen 127.0.0.1:PORT [-upstream URL -header NAME -value V]
//	benchfix launchfloor [-image IMG] [-prefix NAME] [-sidecars N] [-outside]
//	benchfix ttfe -n 200 [-cold] [-header "Name: value"] LABEL=URL [LABEL=URL ...]
//
// dns answers one name with one IPv4 address (no AAAA, NXDOMAIN for any
// other name), so a proxy that resolves names can reach a loopback
// upstream by name without any query leaving the machine. sse answers every
// request with a Server-Sent Events stream whose first event is sent at
// once. ttfe measures time to the first SSE event of each URL, interleaved,
// and prints the distribution and the difference from the first URL.
//
// Everything listens and connects only where it is told; the scripts give
// it loopback addresses.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchfix dns|sse|ttfe|floor|launchfloor [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "dns":
		err = serveDNS(ctx, os.Args[2:])
	case "sse":
		err = serveSSE(ctx, os.Args[2:])
	case "launchfloor":
		err = launchFloor(ctx, os.Args[2:])
	case "floor":
		err = serveFloor(ctx, os.Args[2:])
	case "ttfe":
		err = ttfe(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown verb %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchfix:", err)
		os.Exit(1)
	}
}

func serveDNS(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dns", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:53", "address, UDP and TCP")
	name := fs.String("name", "bench.test", "the one name answered")
	addr := fs.String("addr", "127.0.0.1", "its IPv4 address")
	fs.Parse(args)
	ip := net.ParseIP(*addr).To4()
	if ip == nil {
		return fmt.Errorf("-addr %q is not an IPv4 address", *addr)
	}
	fqdn := dns.Fqdn(strings.ToLower(*name))
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		if len(q.Question) != 1 || strings.ToLower(q.Question[0].Name) != fqdn {
			m.Rcode = dns.RcodeNameError
		} else if q.Question[0].Qtype == dns.TypeA {
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: ip}}
		}
		_ = w.WriteMsg(m)
	})
	errc := make(chan error, 2)
	servers := []*dns.Server{{Addr: *listen, Net: "udp", Handler: h}, {Addr: *listen, Net: "tcp", Handler: h}}
	for _, s := range servers {
		go func() { errc <- s.ListenAndServe() }()
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	for _, s := range servers {
		_ = s.Shutdown()
	}
	return nil
}

// The SSE stream: the first event at once, then the rest of a short
// Messages-API-like answer.
var sseEvents = []string{
	"event: message_start\ndata: {\"type\":\"message_start\"}\n\n",
	"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\n\n",
	"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
}

func serveSSE(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("sse", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address")
	require := fs.String("require-header", "", "answer 401 unless this request header is set")
	cert := fs.String("tls-cert", "", "serve HTTPS with this certificate (PEM)")
	key := fs.String("tls-key", "", "and this key (PEM)")
	fs.Parse(args)
	srv := &http.Server{Addr: *listen, ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if *require != "" && r.Header.Get(*require) == "" {
			http.Error(w, "missing "+*require, http.StatusUnauthorized)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		f := w.(http.Flusher)
		for _, ev := range sseEvents {
			if _, err := io.WriteString(w, ev); err != nil {
				return
			}
			f.Flush()
		}
	})}
	errc := make(chan error, 1)
	go func() {
		if *cert != "" {
			errc <- srv.ListenAndServeTLS(*cert, *key)
			return
		}
		errc <- srv.ListenAndServe()
	}()
	select {
	case <-ctx.Done():
		return srv.Close()
	case err := <-errc:
		return err
	}
}

type target struct {
	label, url    string
	hname, hvalue string
	client        *http.Client
	samples       []time.Duration
}

func ttfe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("ttfe", flag.ExitOnError)
	n := fs.Int("n", 200, "samples per URL")
	cold := fs.Bool("cold", false, "a new client connection for every request (default: one kept-alive connection per URL)")
	header := fs.String("header", "", `a request header sent to every URL, "Name: value" (the agent's placeholder credential)`)
	fs.Parse(args)
	hname, hvalue, _ := strings.Cut(*header, ":")
	if fs.NArg() == 0 {
		return errors.New("give LABEL=URL arguments")
	}
	var ts []*target
	for _, a := range fs.Args() {
		label, u, ok := strings.Cut(a, "=")
		if !ok {
			return fmt.Errorf("%q is not LABEL=URL", a)
		}
		tr := &http.Transport{Proxy: nil, DisableCompression: true, DisableKeepAlives: *cold, MaxIdleConnsPerHost: 1}
		ts = append(ts, &target{label: label, url: u, client: &http.Client{Transport: tr, Timeout: 10 * time.Second},
			hname: strings.TrimSpace(hname), hvalue: strings.TrimSpace(hvalue)})
	}
	// One untimed request each: warms connections, pools and caches.
	for _, t := range ts {
		if _, err := t.once(ctx); err != nil {
			return fmt.Errorf("%s: %w", t.label, err)
		}
	}
	for i := 0; i < *n; i++ {
		for _, t := range ts {
			d, err := t.once(ctx)
			if err != nil {
				return fmt.Errorf("%s: %w", t.label, err)
			}
			t.samples = append(t.samples, d)
		}
	}
	mode := "kept-alive connection"
	if *cold {
		mode = "new connection per request"
	}
	fmt.Printf("time to first SSE event, %d samples each (interleaved), %s; µs\n", *n, mode)
	base := ts[0]
	for _, t := range ts {
		slices.Sort(t.samples)
		line := fmt.Sprintf("  %-10s median %7.0f  p90 %7.0f  p99 %7.0f  min %7.0f", t.label, us(pct(t.samples, 50)), us(pct(t.samples, 90)), us(pct(t.samples, 99)), us(t.samples[0]))
		if t != base {
			line += fmt.Sprintf("   added vs %s: median %+6.0f  p90 %+6.0f", base.label, us(pct(t.samples, 50)-pct(base.samples, 50)), us(pct(t.samples, 90)-pct(base.samples, 90)))
		}
		fmt.Println(line)
	}
	return nil
}

// once sends one request and returns the time until the first "data:" line.
func (t *target) once(ctx context.Context) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, strings.NewReader(`{"stream":true}`))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	if t.hname != "" {
		req.Header.Set(t.hname, t.hvalue)
	}
	start := time.Now()
	resp, err := t.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if strings.HasPrefix(line, "data:") {
			d := time.Since(start)
			_, _ = io.Copy(io.Discard, br)
			return d, nil
		}
		if err != nil {
			return 0, fmt.Errorf("no SSE event: %w", err)
		}
	}
}

// pct is the nearest-rank percentile of sorted samples.
func pct(s []time.Duration, p int) time.Duration {
	i := (len(s)*p + 99) / 100
	if i < 1 {
		i = 1
	}
	return s[i-1]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
