package egress

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/miekg/dns"

	"github.com/claude-bottle/claude-bottle/internal/audit"
	"github.com/claude-bottle/claude-bottle/internal/serve"
	"github.com/claude-bottle/claude-bottle/internal/stage"
)

// Options configures Run. Zero values take the defaults noted.
type Options struct {
	// ConfigDir holds policy.json and secrets.json (docs/sidecar-contract.md).
	ConfigDir string
	// LogDir receives egress.jsonl; required.
	LogDir   string
	Instance string
	// Listen is the proxy's address; "" means ":3128".
	Listen string
	// DNSListen is the DNS stub's address, UDP and TCP; "" means ":53",
	// "-" disables the stub.
	DNSListen string
	// Resolver resolves allowed hosts; nil means net.DefaultResolver.
	Resolver Resolver
	// Dial dials checked addresses; nil means a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// PollInterval is how often the config files are compared; 0 means 250ms.
	PollInterval time.Duration

	// listening, when set, is told where the proxy and the DNS stub
	// listen once they serve (tests listen on port 0).
	listening func(proxy, dnsUDP, dnsTCP net.Addr)
}

const (
	policyFile  = "policy.json"
	secretsFile = "secrets.json"
)

// Run serves the egress proxy and DNS stub until ctx is done, reloading the
// policy and secrets whenever their content changes. A missing or invalid
// policy at start is an error; later, an invalid one keeps the last good
// one. Open tunnels outlive a reload: the new policy judges new requests.
func Run(ctx context.Context, log *slog.Logger, opts Options) error {
	if opts.Listen == "" {
		opts.Listen = ":3128"
	}
	if opts.DNSListen == "" {
		opts.DNSListen = ":53"
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 250 * time.Millisecond
	}
	if opts.LogDir == "" {
		return errors.New("egress: a log directory is required")
	}
	cfg, key, err := loadConfig(opts.ConfigDir)
	if err != nil {
		return fmt.Errorf("load egress config: %w", err)
	}
	alog, f, err := audit.Open(opts.LogDir, opts.Instance, "egress")
	if err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	defer f.Close()
	// The log redacts what the canary refuses, in every field of every
	// line (the proxy's and the DNS stub's alike).
	alog.SetSecrets(secretValues(opts.ConfigDir))
	log = slog.New(alog.Handler(log.Handler()))
	p := newProxy(log, alog, opts.Resolver, opts.Dial, cfg)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 3)

	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return fmt.Errorf("listen proxy: %w", err)
	}
	srv := p.server(ctx)

	var udpAddr, tcpAddr net.Addr
	if opts.DNSListen != "-" {
		udp, tcp, err := startDNS(ctx, log, opts.DNSListen, &dnsStub{log: log, audit: alog, cfg: &p.cfg}, errc)
		if err != nil {
			return err
		}
		defer udp.ShutdownContext(context.Background())
		defer tcp.ShutdownContext(context.Background())
		udpAddr, tcpAddr = udp.PacketConn.LocalAddr(), tcp.Listener.Addr()
	}

	go p.watch(ctx, opts.ConfigDir, opts.PollInterval, key)
	log.Info("egress serving", "proxy", ln.Addr().String(), "dns", opts.DNSListen, "rules", len(cfg.policy.Rules))
	if opts.listening != nil {
		opts.listening(ln.Addr(), udpAddr, tcpAddr)
	}
	return serve.HTTP(ctx, srv, headListener{ln}, errc)
}

// startDNS serves the stub on UDP and TCP at addr (port 0: the same
// ephemeral port for both) and returns once both are serving.
func startDNS(ctx context.Context, log *slog.Logger, addr string, h dns.Handler, errc chan<- error) (udp, tcp *dns.Server, err error) {
	pc, l, err := listenDNS(addr)
	if err != nil {
		return nil, nil, err
	}
	udp = &dns.Server{PacketConn: pc, Handler: h}
	tcp = &dns.Server{Listener: l, Handler: h}
	for _, s := range []*dns.Server{udp, tcp} {
		started := make(chan struct{})
		done := make(chan error, 1)
		s.NotifyStartedFunc = func() { close(started) }
		go func() { done <- s.ActivateAndServe() }()
		select {
		case <-started:
			go func() {
				if err := <-done; err != nil && ctx.Err() == nil {
					errc <- fmt.Errorf("serve dns: %w", err)
				}
			}()
		case err := <-done:
			pc.Close()
			l.Close()
			return nil, nil, fmt.Errorf("serve dns: %w", err)
		}
	}
	log.Debug("dns stub serving", "udp", pc.LocalAddr().String(), "tcp", l.Addr().String())
	return udp, tcp, nil
}

// listenDNS listens on UDP and TCP at addr. With port 0 both get the same
// ephemeral port: the UDP one, tried again (a few times) when another
// program holds that port on TCP.
func listenDNS(addr string) (net.PacketConn, net.Listener, error) {
	host, port, _ := net.SplitHostPort(addr)
	for try := 0; ; try++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("listen dns udp: %w", err)
		}
		tcpAt := addr
		if port == "0" {
			tcpAt = net.JoinHostPort(host, strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port))
		}
		l, err := net.Listen("tcp", tcpAt)
		if err == nil {
			return pc, l, nil
		}
		pc.Close()
		if port != "0" || try == 4 {
			return nil, nil, fmt.Errorf("listen dns tcp: %w", err)
		}
	}
}

// loadConfig reads and compiles the policy and secrets. key identifies the
// files' content (and read errors), so the poller acts only on change and
// reports a given bad file once.
func loadConfig(dir string) (cfg *config, key [32]byte, err error) {
	h := sha256.New()
	pb, perr := os.ReadFile(filepath.Join(dir, policyFile))
	sb, serr := os.ReadFile(filepath.Join(dir, secretsFile))
	fmt.Fprintf(h, "%d:%s|%v|", len(pb), pb, perr)
	if errors.Is(serr, os.ErrNotExist) {
		sb, serr = nil, nil
		h.Write([]byte("no secrets|"))
	}
	fmt.Fprintf(h, "%d:%s|%v", len(sb), sb, serr)
	h.Sum(key[:0])
	if perr != nil {
		return nil, key, fmt.Errorf("read policy: %w", perr)
	}
	if serr != nil {
		return nil, key, fmt.Errorf("read secrets: %w", serr)
	}
	p, err := ParsePolicy(pb)
	if err != nil {
		return nil, key, err
	}
	var s *Secrets
	if sb != nil {
		if s, err = ParseSecrets(sb); err != nil {
			return nil, key, err
		}
	}
	return newConfig(p, s), key, nil
}

// secretValues reads the credential values of secrets.json for the log's
// redactor; loadConfig has validated the file (a missing one is none).
func secretValues(dir string) []string {
	b, err := os.ReadFile(filepath.Join(dir, secretsFile))
	if err != nil {
		return nil
	}
	s, err := ParseSecrets(b)
	if err != nil {
		return nil
	}
	return s.Values
}

// watch follows the config files (stage.Poll) and swaps in a changed,
// valid config; an invalid one keeps the previous policy.
func (p *proxy) watch(ctx context.Context, dir string, every time.Duration, last [32]byte) {
	load := func() (*config, [32]byte, error) { return loadConfig(dir) }
	stage.Poll(ctx, every, last, load, func(cfg *config, err error) {
		ev := audit.Event{Kind: "reload"}
		if err != nil {
			ev.Verdict, ev.Reason = "error", "kept the previous policy: "+err.Error()
			p.log.Error("egress reload failed; keeping the previous policy", "err", err)
		} else {
			p.audit.SetSecrets(secretValues(dir))
			p.cfg.Store(cfg)
			// Kept upstream connections were checked under the old policy.
			p.transport.CloseIdleConnections()
			p.answers.reset()
			ev.Verdict = "allow"
			ev.Detail = fmt.Sprintf("%d rules, %d private networks", len(cfg.policy.Rules), len(cfg.private))
			p.log.Info("egress policy reloaded", "rules", len(cfg.policy.Rules))
		}
		if err := p.audit.Write(ev); err != nil {
			p.log.Error("write audit event", "err", err)
		}
	})
}
