package egress

import (
	"context"
	"net/netip"
)

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
		for _, a := range p.clientAddrs(ctx, name) {
			if a == from {
				return name
			}
		}
	}
	return ""
}

// clientAddrs are a reserved sidecar's addresses on the bottle's network,
// as Docker's DNS answers them (kept for answerTTL, failures too). Only the
// engine can give a container those names, so the agent cannot claim one.
func (p *proxy) clientAddrs(ctx context.Context, name string) []netip.Addr {
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	answers, _ := p.clients.lookup(ctx, p.resolver, name)
	var addrs []netip.Addr
	for _, a := range answers {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			addrs = append(addrs, ip.Unmap())
		}
	}
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
