package serve

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// A cancelled context stops the server gracefully: a request in flight
// finishes, HTTP returns nil, and the port is closed afterwards.
func TestStopsGracefullyWhenTheContextEnds(t *testing.T) {
	ln := listen(t)
	addr := ln.Addr().String()
	entered := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		time.Sleep(200 * time.Millisecond)
		io.WriteString(w, "done")
	})}
	ctx, cancel := context.WithCancel(context.Background())
	ret := make(chan error, 1)
	go func() { ret <- HTTP(ctx, srv, ln, nil) }()
	body := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			body <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body <- string(b)
	}()
	<-entered
	cancel()
	if got := <-body; got != "done" {
		t.Errorf("request in flight got %q, want it finished", got)
	}
	if err := <-ret; err != nil {
		t.Errorf("HTTP = %v, want nil after the context ended", err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("the port still accepts after HTTP returned")
	}
}

// A request that outlives the grace period is cut, not waited for.
func TestCutsWhatOutlivesTheGrace(t *testing.T) {
	ln := listen(t)
	entered := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done() // a stream that never ends by itself
	})}
	ctx, cancel := context.WithCancel(context.Background())
	ret := make(chan error, 1)
	go func() { ret <- HTTP(ctx, srv, ln, nil) }()
	go http.Get("http://" + ln.Addr().String() + "/")
	<-entered
	start := time.Now()
	cancel()
	select {
	case err := <-ret:
		if err != nil {
			t.Errorf("HTTP = %v", err)
		}
		if d := time.Since(start); d < Grace-time.Second {
			t.Errorf("returned after %v, before the grace period", d)
		}
	case <-time.After(Grace + 5*time.Second):
		t.Fatal("HTTP did not return after the grace period")
	}
}

// A companion's failure stops the server and is returned; so is a
// listener that fails.
func TestReturnsFailures(t *testing.T) {
	ln := listen(t)
	fail := make(chan error, 1)
	fail <- errors.New("dns stub died")
	if err := HTTP(context.Background(), &http.Server{Handler: http.NotFoundHandler()}, ln, fail); err == nil || err.Error() != "dns stub died" {
		t.Errorf("HTTP = %v, want the companion's error", err)
	}
	closed := listen(t)
	closed.Close()
	err := HTTP(context.Background(), &http.Server{Handler: http.NotFoundHandler()}, closed, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "serve: ") {
		t.Errorf("HTTP on a closed listener = %v, want a serve error", err)
	}
}
