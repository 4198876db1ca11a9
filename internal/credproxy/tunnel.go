package credproxy

import (
	"context"
	"net"
	"net/http"

	"github.com/claude-bottle/claude-bottle/internal/connect"
)

// upstreamTransport reaches every upstream, http and https alike, through
// a CONNECT tunnel to the egress proxy named by $HTTPS_PROXY (or
// $HTTP_PROXY). A tunnel and never absolute-form for plain http: the
// injected credential must not travel in headers the egress proxy reads,
// where its secret canary would (rightly, for any other sender) refuse it.
// Egress still decides on the CONNECT host and port. No proxy variable
// means direct connections.
func upstreamTransport(getenv func(string) string) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	// Every agent request goes to one of a few upstreams: keep enough idle
	// connections (and tunnels) per host that concurrent requests reuse
	// them instead of dialing (through egress) each time. The default of 2
	// made 64 concurrent clients open a connection for most requests.
	t.MaxIdleConns = 512
	t.MaxIdleConnsPerHost = 256
	proxy := connect.ProxyFromEnv(getenv, "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")
	if proxy == "" {
		return t
	}
	t.DialContext = func(ctx context.Context, network, target string) (net.Conn, error) {
		return connect.Dial(ctx, proxy, target)
	}
	return t
}
