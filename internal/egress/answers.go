package egress

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// answerTTL is how long a name's resolved addresses are reused. The
// resolver does not report record TTLs, so this is a fixed, short bound:
// long enough that a busy agent does not send every request's name through
// Docker's DNS (and on to the host's resolver), short enough that a moved
// service is followed within seconds. Reuse does not weaken the address
// checks: they run on every request, against the policy of that moment,
// and the dial is still pinned to the checked addresses.
const answerTTL = 5 * time.Second

// maxAnswers bounds the cache; an agent asking for many names only makes
// it start over.
const maxAnswers = 4096

// answerCache keeps lookups for answerTTL. The proxy has two: the answers
// for allowed names, where a failure is not kept (the next request asks
// again), and the addresses of the sidecars that rules are reserved for,
// where a failure is kept too (keepFailures: until it expires, the reserved
// rules do not apply, failing closed, without a lookup per request).
type answerCache struct {
	mu           sync.Mutex
	entries      map[string]answerEntry
	now          func() time.Time
	keepFailures bool
}

// errKeptFailure answers a name whose last lookup failed moments ago.
var errKeptFailure = errors.New("lookup failed moments ago")

type answerEntry struct {
	answers []net.IPAddr
	expires time.Time
}

func (c *answerCache) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

// lookup returns name's kept answers, or asks r and keeps what it says.
func (c *answerCache) lookup(ctx context.Context, r Resolver, name string) ([]net.IPAddr, error) {
	now := c.clock()
	c.mu.Lock()
	e, ok := c.entries[name]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		if e.answers == nil {
			return nil, errKeptFailure
		}
		return e.answers, nil
	}
	answers, err := r.LookupIPAddr(ctx, name)
	failed := err != nil || len(answers) == 0
	if failed && !c.keepFailures {
		return answers, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= maxAnswers {
		c.entries = make(map[string]answerEntry)
	}
	e = answerEntry{answers: answers, expires: now.Add(answerTTL)}
	if failed {
		e.answers = nil
	}
	c.entries[name] = e
	return answers, err
}

// reset forgets every kept answer (on a policy reload).
func (c *answerCache) reset() {
	c.mu.Lock()
	c.entries = nil
	c.mu.Unlock()
}
