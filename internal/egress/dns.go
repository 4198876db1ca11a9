package egress

import (
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/claude-bottle/claude-bottle/internal/audit"
)

const reasonDNS = "the bottle resolves only its own names"

// dnsStub answers every query REFUSED. The agent's own names (the sidecar
// aliases) are answered by Docker's embedded DNS before a query gets here;
// anything that reaches the stub is a name outside the bottle, and
// answering it, even NXDOMAIN after asking upstream, would be a channel
// out (DNS tunnelling). Clients reach the world through the proxy, which
// resolves for them.
type dnsStub struct {
	log   *slog.Logger
	audit *audit.Log
	cfg   *atomic.Pointer[config]
}

func (d *dnsStub) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	start := time.Now()
	m := new(dns.Msg)
	m.SetRcode(req, dns.RcodeRefused)
	if err := w.WriteMsg(m); err != nil {
		d.log.Debug("dns: write answer", "err", err)
	}
	ev := audit.Event{Kind: "dns", Verdict: "deny", Reason: reasonDNS}
	if a := w.RemoteAddr(); a != nil {
		ev.Client = a.String()
	}
	if len(req.Question) > 0 {
		q := req.Question[0]
		ev.Method = dns.TypeToString[q.Qtype]
		name := strings.TrimSuffix(q.Name, ".")
		if _, ok := d.cfg.Load().canary.findHost(name); ok {
			// The name itself is the leak; keep it out of the log.
			ev.Detail = "query name withheld: it holds a credential value (secret canary)"
		} else {
			ev.Host = clip(name)
		}
	}
	ev.DurationMS = float64(time.Since(start).Microseconds()) / 1000
	if err := d.audit.Write(ev); err != nil {
		d.log.Error("write audit event", "err", err)
	}
	d.log.Info("dns refused", "client", ev.Client, "qtype", ev.Method, "host", ev.Host)
}
