package credproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/claude-bottle/claude-bottle/internal/audit"
	"github.com/claude-bottle/claude-bottle/internal/serve"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

// Options configure Run.
type Options struct {
	// ConfigDir holds routes.json and the token files it names.
	ConfigDir string
	// LogDir receives cred-proxy.jsonl (internal/audit format).
	LogDir   string
	Instance string
	// Listen is the address to serve on; empty means ":8080".
	Listen string
	// Listener, if set, is served instead of listening on Listen (tests
	// pass a 127.0.0.1:0 listener to learn the port). Run closes it
	// when it returns.
	Listener net.Listener
	// Transport reaches upstreams; nil means a clone of
	// http.DefaultTransport using $HTTPS_PROXY (http://egress:3128).
	Transport http.RoundTripper
	// PollInterval is how often the config files are re-read; zero means
	// 250ms.
	PollInterval time.Duration
}

// Run serves the cred-proxy until ctx is done. It refuses to start on an
// invalid config; later, a config change that is invalid is logged and
// the previous routes stay in force.
func Run(ctx context.Context, log *slog.Logger, opts Options) error {
	if opts.Listen == "" {
		opts.Listen = ":8080"
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 250 * time.Millisecond
	}
	if opts.Listener != nil {
		// Serve closes it on the normal path; do it on early returns too.
		defer opts.Listener.Close()
	}
	if opts.LogDir == "" {
		return errors.New("cred-proxy: a log directory is required")
	}
	routes, fp, err := load(opts.ConfigDir)
	if err != nil {
		return fmt.Errorf("load cred-proxy config: %w", err)
	}
	alog, f, err := audit.Open(opts.LogDir, opts.Instance, "cred-proxy")
	if err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	defer f.Close()
	// The log redacts the tokens this proxy holds, in every field.
	alog.SetSecrets(tokens(routes))
	log = slog.New(alog.Handler(log.Handler()))
	h, err := NewHandler(log, alog, routes, opts.Transport)
	if err != nil {
		return fmt.Errorf("load cred-proxy config: %w", err)
	}
	ln := opts.Listener
	if ln == nil {
		ln, err = net.Listen("tcp", opts.Listen)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", opts.Listen, err)
		}
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Exact match: a route may not shadow the health check, and
			// "/healthz/.." never reaches here as the health check.
			if r.RequestURI == "/healthz" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				_, _ = w.Write([]byte("ok\n"))
				return
			}
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("cred-proxy serving", "addr", ln.Addr().String(), "routes", routeNames(routes))
	_ = alog.Write(audit.Event{Kind: "reload", Verdict: "allow", Detail: "started with routes: " + routeNames(routes)})

	pollDone := make(chan struct{})
	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	go func() {
		defer close(pollDone)
		poll(pollCtx, log, alog, h, opts.ConfigDir, opts.PollInterval, fp)
	}()

	err = serve.HTTP(ctx, srv, ln, nil)
	stopPoll()
	<-pollDone
	return err
}

// poll follows the config (stage.Poll) and swaps in changed routes. A bad
// change is reported once and the old routes stay.
func poll(ctx context.Context, log *slog.Logger, alog *audit.Log, h *Handler, dir string, every time.Duration, last [32]byte) {
	stage.Poll(ctx, every, last, func() ([]LoadedRoute, [32]byte, error) { return load(dir) }, func(routes []LoadedRoute, err error) {
		if err == nil {
			err = h.SetRoutes(routes)
		}
		if err != nil {
			log.Warn("cred-proxy config change is invalid; keeping the previous routes", "err", err)
			_ = alog.Write(audit.Event{Kind: "reload", Verdict: "error", Reason: "invalid config kept previous routes: " + err.Error()})
			return
		}
		alog.SetSecrets(tokens(routes))
		log.Info("cred-proxy config reloaded", "routes", routeNames(routes))
		_ = alog.Write(audit.Event{Kind: "reload", Verdict: "allow", Detail: "routes: " + routeNames(routes)})
	})
}

func tokens(routes []LoadedRoute) []string {
	var out []string
	for _, r := range routes {
		out = append(out, r.Token)
	}
	return out
}

func routeNames(routes []LoadedRoute) string {
	var b strings.Builder
	for i, r := range routes {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(r.Name + " " + r.Path)
	}
	return b.String()
}
