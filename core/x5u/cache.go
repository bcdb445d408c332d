// Package x5u fetches and caches the certificate chains that SHAKEN
// PASSporTs point to with their x5u URL (conformance rows 9 and 10).
//
// A Cache checks every URL against a Policy before anything else, resolves
// the host itself and dials only addresses it has checked, bounds each
// fetch in time and size, and keeps the result of the caller's Validator
// (for the verifier: a parsed, path-validated chain), so that a warm
// verification does no parsing at all. Concurrent misses for one URL share
// one fetch; failures are cached briefly; a value whose refresh fails is
// served stale until its notAfter.
//
// Everything an unauthenticated caller can make it hold is bounded, since
// any INVITE can name any x5u URL: fetches in flight (MaxFetches, and
// MaxFetchesPerHost per host; beyond them a miss fails at once with
// ErrX5UFetchFailed rather than queuing), memory entries (MaxEntries, in
// two segments so that a flood of new URLs evicts other new URLs, not a
// chain that is being used), and the disk cache (DiskMaxEntries,
// DiskMaxBytes, shared by every process on the directory; see disk.go).
//
// A miss looks in memory, then the preloads, the disk, the cluster's
// Shared tier when set (see shared.go), and only then the network.
//
// The Cache is generic over the validated value so that it knows nothing
// of X.509: what makes a body acceptable is the Validator's business.
package x5u

import (
	"container/list"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/stirgate/stirgate/core/stir"
)

// Validator turns a fetched body into the value the Cache keeps. It
// returns the time after which the value must not be used (the earliest
// notAfter of the chain; zero if unknown). Its errors are returned to
// callers unchanged and cached like fetch failures.
type Validator[T any] func(ctx context.Context, url string, body []byte) (value T, notAfter time.Time, err error)

// Defaults for zero Options fields.
const (
	DefaultTimeout     = 2 * time.Second
	DefaultMaxBody     = 64 << 10
	DefaultMinTTL      = time.Minute
	DefaultMaxTTL      = 24 * time.Hour
	DefaultTTL         = time.Hour
	DefaultNegativeTTL = 30 * time.Second
	DefaultMaxEntries  = 10000

	DefaultMaxFetches        = 64
	DefaultMaxFetchesPerHost = 8
	DefaultDiskMaxEntries    = 5000
	DefaultDiskMaxBytes      = 64 << 20
)

// Options configures a Cache. Every field but Validate is optional; the
// zero value of each is the production default.
type Options[T any] struct {
	// Policy is checked before any look-up or fetch; see CheckURL.
	Policy

	// Validate is required.
	Validate Validator[T]

	// Resolver resolves x5u host names; nil means net.DefaultResolver.
	Resolver Resolver

	// RootCAs are trusted for TLS in addition to the system roots (labs).
	RootCAs *x509.CertPool

	// Timeout bounds one fetch end to end: DNS, connect, TLS, headers and
	// body (default 2s).
	Timeout time.Duration

	// MaxBody caps the response body in bytes (default 64 KiB).
	MaxBody int64

	// Cache lifetimes. A response's Cache-Control or Expires is clamped to
	// [MinTTL, MaxTTL] (defaults 1m, 24h); a response with neither lives
	// DefaultTTL (1h, also clamped). Nothing outlives its notAfter.
	MinTTL, MaxTTL, DefaultTTL time.Duration

	// NegativeTTL is how long a failure is remembered (default 30s;
	// negative disables negative caching). It is also how long a stale
	// value is served before the next refresh attempt.
	NegativeTTL time.Duration

	// MaxEntries bounds the in-memory cache (default 10000). Entries
	// start on probation and move to a protected segment (four fifths of
	// MaxEntries) once served from memory; eviction takes the oldest
	// probation entry first, so URLs named once (a flood of them) evict
	// each other, not a chain in use.
	MaxEntries int

	// MaxFetches bounds the network fetches in flight (default 64), and
	// MaxFetchesPerHost those to one host (default 8). A miss beyond
	// either fails at once with ErrX5UFetchFailed (SIP 436) instead of
	// waiting: queuing would make every caller wait behind a flood of
	// slow hosts. Such a refusal is not cached.
	MaxFetches, MaxFetchesPerHost int

	// Dir, when set, keeps fetched bodies on disk, one file per URL, so
	// that a restart or a sibling process need not fetch again. Bodies read
	// back are validated again; expired files are ignored, and removed at
	// the next write.
	Dir string

	// DiskMaxEntries and DiskMaxBytes bound the files in Dir (defaults
	// 5000 and 64 MiB), counted over the whole directory, whichever
	// processes wrote them. Beyond them the files least recently used
	// (written or read back) are removed.
	DiskMaxEntries int
	DiskMaxBytes   int64

	// Preload maps x5u URLs to local PEM files, PreloadBytes to PEM bytes.
	// They are served without network, after the URL policy check and
	// validation like any fetched body. A preloaded URL that the policy
	// refuses makes New fail.
	Preload      map[string]string
	PreloadBytes map[string][]byte

	// Offline refuses every network fetch: only preloaded URLs and fresh
	// disk entries are served, anything else is stir.ErrX5UOffline.
	Offline bool

	// Shared, when set, is a cache of fetched bodies shared by the nodes
	// of a cluster, consulted after the disk and before the network; it
	// also makes concurrent misses on several nodes one fetch. See Shared.
	Shared Shared

	// Now is the clock for cache lifetimes (default time.Now).
	Now func() time.Time

	// Logger receives start-up notices about relaxed policy, stale serving
	// and disk problems (default: discard).
	Logger *slog.Logger

	// Observe, when set, is called after each network fetch with its
	// duration and transport error (nil on a 200 within the caps). It runs
	// on the fetching goroutine and must not block.
	Observe func(url string, d time.Duration, err error)
}

// Stats are cumulative counters since New.
type Stats struct {
	Hits         uint64 // fresh value served from memory
	Misses       uint64 // Get that had to load (policy passed)
	Fetches      uint64 // network fetches started
	FetchErrors  uint64 // network fetches that failed (validation aside)
	NegativeHits uint64 // cached failure returned
	StaleServed  uint64 // expired value served because its refresh failed
	Forbidden    uint64 // Get refused by the URL policy
	DiskLoads    uint64 // entries read back from Dir
	SharedLoads  uint64 // entries another node fetched, read from Shared
	SharedErrors uint64 // misses for which Shared failed (then fetched alone)
	Evictions    uint64 // entries dropped for MaxEntries
	Throttled    uint64 // misses refused for MaxFetches or MaxFetchesPerHost
	DiskRemoved  uint64 // files this Cache removed from Dir (expired or over a bound)
	Entries      int    // entries held now
}

// Cache is an x5u fetcher with a validated-value cache. Safe for
// concurrent use.
type Cache[T any] struct {
	policy      Policy
	validate    Validator[T]
	f           fetcher
	timeout     time.Duration
	minTTL      time.Duration
	maxTTL      time.Duration
	defaultTTL  time.Duration
	negativeTTL time.Duration
	maxEntries  int
	protCap     int // most entries in the protected segment
	maxFetches  int
	maxPerHost  int
	dir         string
	diskMaxN    int
	diskMaxB    int64
	diskMu      sync.Mutex // one writer per Cache; other processes: the lock file
	preload     map[string][]byte
	shared      Shared
	offline     bool
	now         func() time.Time
	log         *slog.Logger
	observe     func(string, time.Duration, error)

	mu        sync.RWMutex
	m         map[string]*slot[T]
	probation *list.List // of *slot[T], least recently stored first
	protected *list.List // of *slot[T], least recently promoted first

	flightMu   sync.Mutex
	inFlight   int            // network fetches now
	hostFlight map[string]int // per host
	lastWarn   atomic.Int64   // unix nanos of the last throttling warning

	lastSharedWarn atomic.Int64 // unix nanos of the last shared-tier warning

	sf        singleflight.Group
	closed    bool // guarded by mu
	closing   chan struct{}
	inflight  sync.WaitGroup
	closeOnce sync.Once

	hits, misses, fetches, fetchErrors, negHits, stale, forbidden, diskLoads, sharedLoads, sharedErrors, evictions, throttled, diskRemoved atomic.Uint64
}

// slot holds one key's entry and its place in the eviction order.
type slot[T any] struct {
	key  string
	e    *entry[T] // guarded by Cache.mu
	el   *list.Element
	prot bool        // in the protected segment
	hit  atomic.Bool // served from memory since it was last placed
}

// entry is immutable once stored, so readers need the lock only to find it.
type entry[T any] struct {
	value    T
	err      error     // non-nil: a cached failure
	expires  time.Time // served as is until then
	notAfter time.Time // never served after; zero if unknown
	stale    bool      // kept past its lifetime because a refresh failed
}

// New builds a Cache. It reads preloaded files and creates Dir, so that
// configuration mistakes surface at start rather than on the first call.
func New[T any](opts Options[T]) (*Cache[T], error) {
	if opts.Validate == nil {
		return nil, errors.New("x5u: Options.Validate is required")
	}
	if err := opts.Policy.Validate(); err != nil {
		return nil, err
	}
	c := &Cache[T]{
		policy:      clonePolicy(opts.Policy),
		validate:    opts.Validate,
		timeout:     orDefault(opts.Timeout, DefaultTimeout),
		minTTL:      orDefault(opts.MinTTL, DefaultMinTTL),
		maxTTL:      orDefault(opts.MaxTTL, DefaultMaxTTL),
		defaultTTL:  orDefault(opts.DefaultTTL, DefaultTTL),
		negativeTTL: orDefault(opts.NegativeTTL, DefaultNegativeTTL),
		maxEntries:  orDefault(opts.MaxEntries, DefaultMaxEntries),
		maxFetches:  orDefault(opts.MaxFetches, DefaultMaxFetches),
		maxPerHost:  orDefault(opts.MaxFetchesPerHost, DefaultMaxFetchesPerHost),
		dir:         opts.Dir,
		diskMaxN:    orDefault(opts.DiskMaxEntries, DefaultDiskMaxEntries),
		diskMaxB:    orDefault(opts.DiskMaxBytes, DefaultDiskMaxBytes),
		preload:     map[string][]byte{},
		offline:     opts.Offline,
		shared:      opts.Shared,
		now:         opts.Now,
		log:         opts.Logger,
		observe:     opts.Observe,
		m:           map[string]*slot[T]{},
		probation:   list.New(),
		protected:   list.New(),
		hostFlight:  map[string]int{},
		closing:     make(chan struct{}),
	}
	c.f = fetcher{resolver: opts.Resolver, roots: opts.RootCAs, maxBody: orDefault(opts.MaxBody, DefaultMaxBody)}
	if c.f.resolver == nil {
		c.f.resolver = net.DefaultResolver
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.timeout < 0, c.minTTL < 0, c.maxTTL < 0, c.defaultTTL < 0, c.f.maxBody < 0:
		return nil, errors.New("x5u: negative Timeout, MaxBody or TTL")
	case c.minTTL > c.maxTTL:
		return nil, fmt.Errorf("x5u: MinTTL %v exceeds MaxTTL %v", c.minTTL, c.maxTTL)
	case c.maxEntries < 0, c.maxFetches < 0, c.maxPerHost < 0, c.diskMaxN < 0, c.diskMaxB < 0:
		return nil, errors.New("x5u: negative MaxEntries, MaxFetches, MaxFetchesPerHost, DiskMaxEntries or DiskMaxBytes")
	}
	c.protCap = c.maxEntries - max(1, c.maxEntries/5)
	if err := c.loadPreloads(opts.Preload, opts.PreloadBytes); err != nil {
		return nil, err
	}
	if c.dir != "" {
		if err := os.MkdirAll(c.dir, 0o700); err != nil {
			return nil, fmt.Errorf("x5u: cache dir: %w", err)
		}
		// Files left by an earlier run may be expired, or exceed bounds
		// lowered since.
		if !c.offline {
			c.trimDisk("")
		}
	}
	c.logRelaxations(opts.RootCAs != nil)
	return c, nil
}

func orDefault[N int | int64 | time.Duration](v, d N) N {
	if v == 0 {
		return d
	}
	return v
}

// clonePolicy copies the slices so that a caller mutating its Options
// afterwards cannot change the policy of a running Cache, which would void
// the guarantee that every cached URL passed the current policy.
func clonePolicy(p Policy) Policy {
	p.Ports = append([]int(nil), p.Ports...)
	p.AllowHosts = append([]string(nil), p.AllowHosts...)
	p.LabHosts = append([]string(nil), p.LabHosts...)
	return p
}

func (c *Cache[T]) loadPreloads(files map[string]string, blobs map[string][]byte) error {
	all := make(map[string][]byte, len(files)+len(blobs))
	for u, path := range files {
		if _, ok := blobs[u]; ok {
			return fmt.Errorf("x5u: preload %s: in both Preload and PreloadBytes", u)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("x5u: preload %s: %w", u, err)
		}
		all[u] = b
	}
	for u, b := range blobs {
		all[u] = append([]byte(nil), b...)
	}
	for u, b := range all {
		if _, err := CheckURL(u, c.policy); err != nil {
			return fmt.Errorf("x5u: preload %s: %w", u, err)
		}
		if len(b) == 0 {
			return fmt.Errorf("x5u: preload %s: empty", u)
		}
		c.preload[u] = b
	}
	return nil
}

// logRelaxations says at start what weakens the production policy, so an
// operator never runs a lab setting unknowingly.
func (c *Cache[T]) logRelaxations(extraRoots bool) {
	if c.policy.AllowHTTP {
		c.log.Warn("x5u: plain http allowed (labs only)")
	}
	if len(c.policy.LabHosts) > 0 {
		c.log.Warn("x5u: lab hosts admitted, exempt from address rules", "hosts", c.policy.LabHosts)
	}
	if extraRoots {
		c.log.Warn("x5u: extra TLS roots trusted for fetches (labs only)")
	}
	if c.offline {
		c.log.Info("x5u: offline, serving preloaded and disk-cached chains only", "preloaded", len(c.preload))
	}
}

// Get returns the validated value for the x5u URL raw. Failures are
// *stir.Error values: ErrX5UForbidden (policy), ErrX5UFetchFailed,
// ErrX5UBadContent, ErrX5UOffline, or whatever Validate returned.
//
// The policy runs before any look-up. The warm path does not re-run it:
// the policy is fixed for the Cache's life and nothing enters the cache
// (preloads and disk entries included) without having passed it, so a
// cached URL is one that passes.
//
// When ctx ends first, Get returns at once with ErrX5UFetchFailed; the
// shared fetch goes on for the other callers and the cache.
func (c *Cache[T]) Get(ctx context.Context, raw string) (T, error) {
	now := c.now()
	var e *entry[T]
	c.mu.RLock()
	s := c.m[raw]
	if s != nil {
		e = s.e
	}
	c.mu.RUnlock()
	if e != nil && now.Before(e.expires) {
		switch {
		case e.err != nil:
			c.negHits.Add(1)
		case e.stale:
			c.stale.Add(1)
		default:
			c.hits.Add(1)
		}
		if e.err == nil && !s.hit.Load() {
			s.hit.Store(true) // a failure repeated is no reason to keep it
		}
		return e.value, e.err
	}
	return c.miss(ctx, raw)
}

func (c *Cache[T]) miss(ctx context.Context, raw string) (T, error) {
	var zero T
	u, lab, err := checkURL(raw, c.policy)
	if err != nil {
		c.forbidden.Add(1)
		return zero, err
	}
	c.misses.Add(1)
	ch := c.sf.DoChan(raw, func() (any, error) {
		return c.flight(ctx, raw, u, lab), nil
	})
	select {
	case r := <-ch:
		e := r.Val.(*entry[T])
		if e.err == nil && e.stale {
			c.stale.Add(1)
		}
		return e.value, e.err
	case <-ctx.Done():
		return zero, stir.ErrX5UFetchFailed.With("caller gave up", ctx.Err())
	}
}

// flight loads raw once for every concurrent caller. Its context keeps the
// first caller's values but not its cancellation, so one caller leaving
// does not fail the others; it is bounded by Timeout and by Close.
func (c *Cache[T]) flight(caller context.Context, raw string, u *url.URL, lab bool) *entry[T] {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return &entry[T]{err: stir.ErrX5UFetchFailed.Withf("cache closed")}
	}
	c.inflight.Add(1)
	var old *entry[T]
	if s := c.m[raw]; s != nil {
		old = s.e
	}
	c.mu.Unlock()
	defer c.inflight.Done()

	// A flight that ended between our caller's look-up and this one has
	// already done the work.
	now := c.now()
	if old != nil && now.Before(old.expires) {
		return old
	}

	ctx, cancel := context.WithTimeout(context.WithoutCancel(caller), c.timeout)
	defer cancel()
	go func() {
		select {
		case <-c.closing:
			cancel()
		case <-ctx.Done():
		}
	}()

	if body, ok := c.preload[raw]; ok {
		v, notAfter, err := c.validate(ctx, raw, body)
		if err != nil {
			return c.failed(raw, nil, err)
		}
		// A preload is checked again after MaxTTL, which catches a chain
		// that has since expired or been revoked.
		return c.store(raw, &entry[T]{value: v, notAfter: notAfter, expires: clampTo(c.now().Add(c.maxTTL), notAfter)})
	}
	if c.dir != "" {
		if e := c.loadDisk(ctx, raw, now); e != nil {
			c.diskLoads.Add(1)
			return c.store(raw, e)
		}
	}
	if c.offline {
		return &entry[T]{err: stir.ErrX5UOffline.Withf("%s is not preloaded", raw)}
	}

	network := func() (*entry[T], []byte) { return c.fetchNetwork(ctx, raw, u, lab, old) }
	if c.shared != nil {
		return c.loadShared(ctx, raw, now, network)
	}
	e, _ := network()
	return e
}

// fetchNetwork fetches raw, validates and stores it; it returns the entry
// and, when it is a fresh value, the body it came from.
func (c *Cache[T]) fetchNetwork(ctx context.Context, raw string, u *url.URL, lab bool, old *entry[T]) (*entry[T], []byte) {
	release, err := c.acquireFetch(u)
	if err != nil {
		return c.throttledResult(raw, old, err), nil
	}
	defer release()
	c.fetches.Add(1)
	start := time.Now()
	r, err := c.f.fetch(ctx, raw, u, lab)
	if c.observe != nil {
		c.observe(raw, time.Since(start), err)
	}
	if err != nil {
		c.fetchErrors.Add(1)
		return c.failed(raw, old, err), nil
	}
	v, notAfter, err := c.validate(ctx, raw, r.body)
	if err != nil {
		return c.failed(raw, old, err), nil
	}
	now := c.now()
	ttl, ok := lifetime(r.header, now)
	if !ok {
		ttl = c.defaultTTL
	}
	ttl = min(max(ttl, c.minTTL), c.maxTTL)
	e := &entry[T]{value: v, notAfter: notAfter, expires: clampTo(now.Add(ttl), notAfter)}
	if c.dir != "" {
		c.writeDisk(raw, r.body, now, e.expires)
	}
	return c.store(raw, e), r.body
}

// failed records err for raw. When the server could not be reached or did
// not answer 200 and an earlier value is still within its notAfter, that
// value is served instead: an outage at the certificate host should not
// fail every call. A refresh that fetched bad content or failed validation
// is not masked (it may be a revocation).
func (c *Cache[T]) failed(raw string, old *entry[T], err error) *entry[T] {
	now := c.now()
	if c.isClosed() {
		return &entry[T]{err: err}
	}
	if old != nil && old.err == nil && !old.notAfter.IsZero() && now.Before(old.notAfter) &&
		errors.Is(err, stir.ErrX5UFetchFailed) {
		if !old.stale {
			c.log.Warn("x5u: refresh failed, serving stale chain", "url", raw, "not_after", old.notAfter, "err", err)
		}
		retry := max(c.negativeTTL, 0)
		return c.store(raw, &entry[T]{value: old.value, notAfter: old.notAfter, stale: true, expires: clampTo(now.Add(retry), old.notAfter)})
	}
	e := &entry[T]{err: err, expires: now.Add(c.negativeTTL)}
	if c.negativeTTL < 0 {
		return e
	}
	return c.store(raw, e)
}

func (c *Cache[T]) isClosed() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}

// acquireFetch takes a place for one network fetch of u, or refuses at
// once when MaxFetches or MaxFetchesPerHost are in flight.
func (c *Cache[T]) acquireFetch(u *url.URL) (release func(), err error) {
	host := normHost(u.Hostname())
	c.flightMu.Lock()
	defer c.flightMu.Unlock()
	switch {
	case c.inFlight >= c.maxFetches:
		err = stir.ErrX5UFetchFailed.Withf("%d x5u fetches in flight (max_fetches): refused, not queued", c.inFlight)
	case c.hostFlight[host] >= c.maxPerHost:
		err = stir.ErrX5UFetchFailed.Withf("%d x5u fetches in flight to %s (max_fetches_per_host): refused, not queued", c.hostFlight[host], host)
	}
	if err != nil {
		c.throttled.Add(1)
		// One line per 10 s at most: a flood must not flood the log too.
		now := time.Now().UnixNano()
		if last := c.lastWarn.Load(); now-last > int64(10*time.Second) && c.lastWarn.CompareAndSwap(last, now) {
			c.log.Warn("x5u: fetch limit reached, refusing misses", "host", host, "err", err, "throttled_total", c.throttled.Load())
		}
		return nil, err
	}
	c.inFlight++
	c.hostFlight[host]++
	return func() {
		c.flightMu.Lock()
		defer c.flightMu.Unlock()
		c.inFlight--
		if c.hostFlight[host]--; c.hostFlight[host] <= 0 {
			delete(c.hostFlight, host)
		}
	}, nil
}

// throttledResult answers a miss refused for the fetch limits: the value
// it replaces if that is still within its notAfter (served stale, as for
// an unreachable host), else the error. Nothing is stored: the refusal
// says nothing about the URL, and must not outlive the flood.
func (c *Cache[T]) throttledResult(raw string, old *entry[T], err error) *entry[T] {
	if old != nil && old.err == nil && !old.notAfter.IsZero() && c.now().Before(old.notAfter) {
		return &entry[T]{value: old.value, notAfter: old.notAfter, stale: true, expires: old.expires}
	}
	return &entry[T]{err: err}
}

// store publishes e for raw and evicts beyond MaxEntries. It returns e.
func (c *Cache[T]) store(raw string, e *entry[T]) *entry[T] {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.m[raw]; ok {
		s.e = e
		if s.prot {
			c.protected.MoveToBack(s.el)
		} else {
			c.probation.MoveToBack(s.el)
		}
	} else {
		s = &slot[T]{key: raw, e: e}
		s.el = c.probation.PushBack(s)
		c.m[raw] = s
	}
	for len(c.m) > c.maxEntries {
		c.evictOne()
	}
	return e
}

// evictOne removes one entry; c.mu is held. It is a segmented LRU with
// CLOCK-style reference bits (no lock on the hit path): the oldest
// probation entry goes, unless it was served from memory since it was
// placed, in which case it is promoted to the protected segment and the
// next one is considered. The protected segment overflows into the back
// of probation, where its entries must earn another hit to stay. Every
// step clears a bit or removes an entry, so the loop ends.
func (c *Cache[T]) evictOne() {
	for {
		el := c.probation.Front()
		if el == nil {
			el = c.protected.Front() // everything is protected: its oldest
			s := c.protected.Remove(el).(*slot[T])
			delete(c.m, s.key)
			c.evictions.Add(1)
			return
		}
		s := el.Value.(*slot[T])
		if c.protCap > 0 && s.hit.Swap(false) {
			c.probation.Remove(el)
			s.prot, s.el = true, c.protected.PushBack(s)
			for c.protected.Len() > c.protCap {
				f := c.protected.Front()
				d := f.Value.(*slot[T])
				if d.hit.Swap(false) {
					c.protected.MoveToBack(f) // used again: a second chance
					continue
				}
				c.protected.Remove(f)
				d.prot, d.el = false, c.probation.PushBack(d)
			}
			continue
		}
		c.probation.Remove(el)
		delete(c.m, s.key)
		c.evictions.Add(1)
		return
	}
}

// clampTo returns t, or notAfter when that comes first.
func clampTo(t, notAfter time.Time) time.Time {
	if !notAfter.IsZero() && notAfter.Before(t) {
		return notAfter
	}
	return t
}

// Stats returns the counters.
func (c *Cache[T]) Stats() Stats {
	c.mu.RLock()
	n := len(c.m)
	c.mu.RUnlock()
	return Stats{
		Hits:         c.hits.Load(),
		Misses:       c.misses.Load(),
		Fetches:      c.fetches.Load(),
		FetchErrors:  c.fetchErrors.Load(),
		NegativeHits: c.negHits.Load(),
		StaleServed:  c.stale.Load(),
		Forbidden:    c.forbidden.Load(),
		DiskLoads:    c.diskLoads.Load(),
		SharedLoads:  c.sharedLoads.Load(),
		SharedErrors: c.sharedErrors.Load(),
		Evictions:    c.evictions.Load(),
		Throttled:    c.throttled.Load(),
		DiskRemoved:  c.diskRemoved.Load(),
		Entries:      n,
	}
}

// Close cancels fetches in progress and waits for them. Values already
// cached are still served; a miss after Close fails. Close is idempotent.
func (c *Cache[T]) Close() error {
	if c == nil {
		return nil
	}
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		if c.closing != nil {
			close(c.closing)
		}
		c.mu.Unlock()
	})
	c.inflight.Wait()
	return nil
}

// Purge drops every value held in memory, so that the next Get of each URL
// validates its body again (from disk, a preload or the network). The
// verifier calls it when its trust anchors change: a chain validated
// against the old anchors must not be served under the new ones. Disk
// files stay: their bodies are validated again when read back.
func (c *Cache[T]) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = map[string]*slot[T]{}
	c.probation.Init()
	c.protected.Init()
}
