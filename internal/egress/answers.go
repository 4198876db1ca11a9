package egress

import (
	"context"
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

// answerCache keeps successful lookups of allowed names for answerTTL.
// Failures are not kept: the next request asks again.
type answerCache struct {
	mu      sync.Mutex
	entries map[string]answerEntry
	now     func() time.Time
}

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
		return e.answers, nil
	}
	answers, err := r.LookupIPAddr(ctx, name)
	if err != nil || len(answers) == 0 {
		return answers, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= maxAnswers {
		c.entries = make(map[string]answerEntry)
	}
	c.entries[name] = answerEntry{answers: answers, expires: now.Add(answerTTL)}
	return answers, nil
}

// reset forgets every kept answer (on a policy reload).
func (c *answerCache) reset() {
	c.mu.Lock()
	c.entries = nil
	c.mu.Unlock()
}
