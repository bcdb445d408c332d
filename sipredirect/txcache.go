package sipredirect

import (
	"sync"
	"time"
)

// txCache remembers the answer to each INVITE transaction for the life of
// a UDP transaction (64*T1 = 32 s, RFC 3261 §17.2.1), so that a
// retransmission gets the same bytes and never a second signature.
type txCache struct {
	mu    sync.Mutex
	ttl   time.Duration
	max   int
	m     map[string]*txEntry
	order []txOrder // insertion order; one TTL for all, so FIFO expiry
	head  int
}

type txEntry struct {
	resp []byte // nil while the first copy is being answered
}

type txOrder struct {
	key string
	exp time.Time
}

func newTxCache(ttl time.Duration, max int) *txCache {
	return &txCache{ttl: ttl, max: max, m: map[string]*txEntry{}}
}

// begin claims key. It returns (nil, true) when the caller is first and
// must answer, (resp, false) with the cached answer for a retransmission,
// or (nil, false) for a retransmission whose answer is still being made.
func (c *txCache) begin(key string, now time.Time) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now)
	if e, ok := c.m[key]; ok {
		return e.resp, false
	}
	if len(c.m) >= c.max {
		// Full (a flood): answer without remembering rather than refuse.
		return nil, true
	}
	c.m[key] = &txEntry{}
	c.order = append(c.order, txOrder{key, now.Add(c.ttl)})
	return nil, true
}

// finish stores the answer of a claimed key.
func (c *txCache) finish(key string, resp []byte) {
	c.mu.Lock()
	if e, ok := c.m[key]; ok {
		e.resp = resp
	}
	c.mu.Unlock()
}

func (c *txCache) expire(now time.Time) {
	for c.head < len(c.order) && !now.Before(c.order[c.head].exp) {
		delete(c.m, c.order[c.head].key)
		c.order[c.head] = txOrder{}
		c.head++
	}
	// Compact when the dead prefix dominates, to bound memory.
	if c.head > 1024 && c.head*2 > len(c.order) {
		c.order = append(c.order[:0:0], c.order[c.head:]...)
		c.head = 0
	}
}

func (c *txCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
