package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"time"

	dockerbackend "github.com/claude-bottle/claude-bottle/internal/backend/docker"
	kubebackend "github.com/claude-bottle/claude-bottle/internal/backend/kubernetes"

	"github.com/spf13/cobra"

	"github.com/claude-bottle/claude-bottle/internal/connect"
	"github.com/claude-bottle/claude-bottle/internal/credproxy"
	"github.com/claude-bottle/claude-bottle/internal/egress"
	"github.com/claude-bottle/claude-bottle/internal/gitgate"
	"github.com/claude-bottle/claude-bottle/internal/stage"
	"github.com/claude-bottle/claude-bottle/internal/supervise"
)

// newSidecarCmd is the hidden entry point of every sidecar container: the
// sidecar images carry this same binary (docs/sidecar-contract.md).
func newSidecarCmd(g *globals) *cobra.Command {
	var configDir, logDir, instance, listen, dnsListen string
	cmd := &cobra.Command{
		Use:    "sidecar",
		Short:  "Run a sidecar (used inside the bottle's containers)",
		Hidden: true,
	}
	flags := func(c *cobra.Command) *cobra.Command {
		c.Flags().StringVar(&configDir, "config", "", "read-only config directory")
		c.Flags().StringVar(&logDir, "log", "/var/log/claude-bottle", "decision log directory")
		c.Flags().StringVar(&instance, "instance", "", "instance name, stamped on every log line")
		c.Flags().StringVar(&listen, "listen", "", "listen address (default: the contract's port on all interfaces)")
		c.Args = cobra.NoArgs
		return c
	}
	logger := func(name string) *slog.Logger {
		return slog.New(slog.NewTextHandler(g.stderr, nil)).With("sidecar", name)
	}
	egressCmd := flags(&cobra.Command{Use: "egress", RunE: func(c *cobra.Command, _ []string) error {
		proxyGC(g.getenv)
		return egress.Run(c.Context(), logger("egress"), egress.Options{ConfigDir: configDir, LogDir: logDir, Instance: instance, Listen: listen, DNSListen: dnsListen})
	}})
	egressCmd.Flags().StringVar(&dnsListen, "dns-listen", "", `DNS stub address (default ":53"; "-" disables)`)
	var kube bool
	superviseCmd := flags(&cobra.Command{Use: "supervise", RunE: func(c *cobra.Command, _ []string) error {
		log := logger("supervise")
		opts := supervise.Options{LogDir: logDir, Instance: instance, Listen: listen, CurrentConfigDir: stage.ContainerCurrentConfig}
		if kube {
			remote, err := kubebackend.InClusterRemote(c.Context(), log, instance)
			if err != nil {
				return err
			}
			opts.Remote = remote
		}
		return supervise.Run(c.Context(), log, opts)
	}})
	superviseCmd.Flags().BoolVar(&kube, "kube", false, "on a cluster: file requests and read decisions through the API (this pod's service account)")
	cmd.AddCommand(
		egressCmd,
		flags(&cobra.Command{Use: "cred-proxy", RunE: func(c *cobra.Command, _ []string) error {
			proxyGC(g.getenv)
			return credproxy.Run(c.Context(), logger("cred-proxy"), credproxy.Options{ConfigDir: configDir, LogDir: logDir, Instance: instance, Listen: listen})
		}}),
		flags(&cobra.Command{Use: "git-gate", RunE: func(c *cobra.Command, _ []string) error {
			return gitgate.Run(c.Context(), logger("git-gate"), gitgate.Options{ConfigDir: configDir, LogDir: logDir, Instance: instance, Listen: listen})
		}}),
		superviseCmd,
		&cobra.Command{Use: "git-gate-hook", Args: cobra.ArbitraryArgs, RunE: func(c *cobra.Command, args []string) error {
			if code := gitgate.HookMain(c.Context(), g.stdin, g.stderr, os.Environ()); code != 0 {
				return &exitError{code: code}
			}
			return nil
		}},
		&cobra.Command{Use: "health URL", Args: cobra.ExactArgs(1), RunE: func(c *cobra.Command, args []string) error {
			return health(c.Context(), args[0])
		}},
		&cobra.Command{Use: "reap CONTAINER-ID", Args: cobra.ExactArgs(1), RunE: func(c *cobra.Command, args []string) error {
			return dockerbackend.Reap(c.Context(), args[0], g.stdout)
		}},
		&cobra.Command{Use: "connect HOST PORT", Args: cobra.ExactArgs(2), RunE: func(c *cobra.Command, args []string) error {
			return tunnelStdio(c.Context(), g.stdin, g.stdout, args[0], args[1], g.getenv)
		}},
	)
	return cmd
}

// proxyGCPercent is the garbage collector's target for the two proxies.
// They keep little live memory (a few MiB) and allocate per request, so at
// Go's default of 100 they collect thousands of times a second under load;
// 400 trades a few MiB for a quarter of the collections (measured in
// docs/performance.md). GOGC, when set, wins.
const proxyGCPercent = 400

// proxyMemoryLimit is a soft limit under the 512 MiB the plan gives each
// sidecar container: near it the collector runs as often as it must,
// whatever the target above, rather than the kernel killing the proxy.
// GOMEMLIMIT, when set, wins.
const proxyMemoryLimit = 384 << 20

func proxyGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(proxyGCPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(proxyMemoryLimit)
	}
}

// health exits 0 when url answers 200: the readiness check, run by exec in
// images that have no shell or curl.
func health(ctx context.Context, u string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", u, resp.Status)
	}
	return nil
}

// tunnelStdio tunnels stdio to HOST:PORT through the egress proxy with
// CONNECT: git-gate's ssh ProxyCommand, so SSH upstreams pass the same door.
func tunnelStdio(ctx context.Context, stdin io.Reader, stdout io.Writer, host, port string, getenv func(string) string) error {
	proxy := connect.ProxyFromEnv(getenv, "HTTPS_PROXY", "https_proxy")
	if proxy == "" {
		return errors.New("HTTPS_PROXY is not set: nothing to tunnel through")
	}
	conn, err := connect.Dial(ctx, proxy, net.JoinHostPort(host, port))
	if err != nil {
		return err
	}
	defer conn.Close()
	errc := make(chan error, 2)
	go func() {
		_, err := io.Copy(conn, stdin)
		// ssh's end of input reaches the server as the end of the stream.
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		errc <- err
	}()
	go func() {
		_, err := io.Copy(stdout, conn)
		errc <- err
	}()
	return <-errc
}
