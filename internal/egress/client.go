package egress

import (
	"context"
	"net/netip"
	"sync"
	"time"
)

// clientTTL bounds how long a sidecar's resolved address is trusted.
const clientTTL = 5 * time.Second

// clientCache maps the sidecar names that rules are reserved for to their
// addresses on the bottle's network, as Docker's DNS answers them. Only
// the engine can give a container those names, so the agent cannot claim
// one.
type clientCache struct {
	mu      sync.Mutex
	entries map[string]clientEntry
}

type clientEntry struct {
	addrs   []netip.Addr
	expires time.Time
}

// clientRole names the sidecar a connection comes from, among those the
// policy reserves rules for, or "" (the agent, or a failed lookup: fail
// closed, the reserved rules then do not apply).
func (p *proxy) clientRole(ctx context.Context, cfg *config, remote string) string {
	names := cfg.reservedClients()
	if len(names) == 0 {
		return ""
	}
	hostPort, err := netip.ParseAddrPort(remote)
	if err != nil {
		return ""
	}
	from := hostPort.Addr().Unmap()
	for _, name := range names {
		for _, a := range p.clients.lookup(ctx, p.resolver, name) {
			if a == from {
				return name
			}
		}
	}
	return ""
}

func (c *clientCache) lookup(ctx context.Context, r Resolver, name string) []netip.Addr {
	c.mu.Lock()
	e, ok := c.entries[name]
	c.mu.Unlock()
	if ok && time.Now().Before(e.expires) {
		return e.addrs
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	answers, err := r.LookupIPAddr(ctx, name)
	var addrs []netip.Addr
	if err == nil {
		for _, a := range answers {
			if ip, ok := netip.AddrFromSlice(a.IP); ok {
				addrs = append(addrs, ip.Unmap())
			}
		}
	}
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]clientEntry{}
	}
	c.entries[name] = clientEntry{addrs: addrs, expires: time.Now().Add(clientTTL)}
	c.mu.Unlock()
	return addrs
}

// reservedClients lists the sidecars the policy reserves rules for.
func (c *config) reservedClients() []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range c.policy.Rules {
		if r.Client != "" && !seen[r.Client] {
			seen[r.Client] = true
			out = append(out, r.Client)
		}
	}
	return out
}
