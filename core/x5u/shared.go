package x5u

// The shared tier sits between the disk and the network: several nodes of
// a cluster keep the bodies they fetched in one place (PostgreSQL, see
// internal/pgshared), so that a URL is fetched once for the cluster while
// its entry is fresh, not once per node. It is an interface here so that
// core carries no database driver.

import (
	"context"
	"errors"
	"time"
)

// Shared is a cache of fetched bodies shared by several Caches, typically
// on several hosts. Implementations must be safe for concurrent use.
type Shared interface {
	// Do returns url's body if a fresh one (expires after now) is stored.
	// Otherwise it calls fetch once for the whole cluster: concurrent Do
	// calls for url, on any node, wait for that fetch and return its body
	// (fromShared true) rather than fetching again. A body fetch returns
	// with a nil error is stored until its expiry; fetch's error is
	// returned as is and nothing is stored.
	Do(ctx context.Context, url string, now time.Time, fetch func(context.Context) (body []byte, expires time.Time, err error)) (body []byte, expires time.Time, fromShared bool, err error)
}

// errNotShared marks a fetch whose result must not go to the shared tier
// (a failure, or a stale value served for one): the caller's own entry
// stands.
var errNotShared = errors.New("x5u: result not shared")

// loadShared runs the shared tier for a miss. It returns the entry to
// store: either the body another node fetched (validated again here, since
// nothing in the shared store is trusted), or the result of this node's own
// network fetch, done under the cluster-wide claim. A shared tier that
// fails is logged and bypassed: it is an optimisation, and a fetch without
// it is what a single node does anyway.
func (c *Cache[T]) loadShared(ctx context.Context, raw string, now time.Time, network func() (*entry[T], []byte)) *entry[T] {
	var own *entry[T]
	body, expires, fromShared, err := c.shared.Do(ctx, raw, now, func(ctx context.Context) ([]byte, time.Time, error) {
		e, b := network()
		own = e
		if e.err != nil || e.stale || b == nil {
			return nil, time.Time{}, errNotShared
		}
		return b, e.expires, nil
	})
	if own != nil {
		return own // this node fetched (and stored) under the claim
	}
	if err == nil && fromShared {
		if e := c.sharedEntry(ctx, raw, body, expires, now); e != nil {
			c.sharedLoads.Add(1)
			if c.dir != "" {
				c.writeDisk(raw, body, now, e.expires)
			}
			return c.store(raw, e)
		}
	} else if err != nil && !errors.Is(err, errNotShared) {
		c.sharedErrors.Add(1)
		// One line per 10 s at most: a database outage must not flood the
		// log with one line per miss.
		now := time.Now().UnixNano()
		if last := c.lastSharedWarn.Load(); now-last > int64(10*time.Second) && c.lastSharedWarn.CompareAndSwap(last, now) {
			c.log.Warn("x5u: shared cache unavailable, fetching alone", "url", raw, "err", err, "shared_errors_total", c.sharedErrors.Load())
		}
	}
	e, _ := network()
	return e
}

// sharedEntry validates a body read from the shared tier, as loadDisk does
// for a file: the store may be written by other nodes, and a body may have
// outlived a revocation.
func (c *Cache[T]) sharedEntry(ctx context.Context, raw string, body []byte, expires, now time.Time) *entry[T] {
	if len(body) == 0 || int64(len(body)) > c.f.maxBody || !now.Before(expires) {
		c.log.Warn("x5u: shared cache entry unusable", "url", raw, "bytes", len(body), "expires", expires)
		return nil
	}
	v, notAfter, err := c.validate(ctx, raw, body)
	if err != nil {
		c.log.Warn("x5u: shared cache entry no longer validates, fetching again", "url", raw, "err", err)
		return nil
	}
	// Another node's clock could claim any expiry; never keep longer than
	// MaxTTL from now.
	if limit := now.Add(c.maxTTL); expires.After(limit) {
		expires = limit
	}
	return &entry[T]{value: v, notAfter: notAfter, expires: clampTo(expires, notAfter)}
}
