// Package crl keeps the STI-PA's certificate revocation list current: it
// fetches each configured URL under the x5u URL policy and bounds, checks
// the CRL (signed by a configured CRL signer that chains to the trust
// anchors, thisUpdate and nextUpdate, never older than the copy held),
// keeps the last good copy on disk so that a restart needs no network,
// refreshes it before nextUpdate, and serves the last good copy while
// refreshes fail, up to a grace period after nextUpdate. Past the grace,
// or before any copy was ever obtained, the Stale policy decides: reject
// (437 crl_unusable) or fail open with a warning.
//
// A Source is a certs.RevocationChecker: the verifier asks it on every
// verification, so a refresh takes effect on the next call.
//
// With Discover, the CRL distribution points of the intermediates (the
// STI-CAs) of the chains it is asked about are fetched too, under the same
// policy, limits and checks, at most MaxDiscovered of them: the first
// verification naming a new point waits for its first fetch, so a revoked
// certificate is caught on its first call.
package crl

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/core/x5u"
)

// Stale is what a verification does when no usable CRL is held.
type Stale string

const (
	// Reject fails the verification with 437 crl_unusable: the default,
	// since a revoked certificate must not pass because a server is down.
	Reject Stale = "reject"
	// FailOpen verifies without the CRL and logs a warning (rate-limited).
	FailOpen Stale = "fail_open"
)

// Defaults for zero Options fields.
const (
	DefaultGrace         = 24 * time.Hour
	DefaultRefreshBefore = time.Hour
	DefaultRetry         = 5 * time.Minute
	DefaultMaxBody       = 4 << 20 // a CRL grows with the revocations it lists
	DefaultMaxDiscovered = 4
	// warnEvery rate-limits the fail-open warning.
	warnEvery = time.Minute
)

// Options configures New. Signers and Roots are required, and URLs
// unless Discover is set.
type Options struct {
	URLs []string
	// Discover also fetches the CRL distribution points of the
	// intermediate certificates of every chain checked, beside URLs.
	Discover bool
	// MaxDiscovered bounds the points Discover adds (default 4): a CRLDP
	// is the CA's choice, and a flood of CAs must not mean a flood of
	// fetches. Beyond it a new point is ignored, with a warning.
	MaxDiscovered int
	// Signers are the CRL signer certificates (the STI-PA's); a CRL must be
	// signed by one of them, and it must chain to Roots.
	Signers []*x509.Certificate
	// Roots returns the trust anchors in use (they may be reloaded).
	Roots func() *x509.CertPool
	// Fetch is the x5u URL policy and bounds. MaxBody defaults to 4 MiB
	// here rather than x5u's 64 KiB.
	Fetch x5u.GetOptions
	// Dir keeps the last good copy of each CRL; "" keeps none.
	Dir string
	// Grace is how long past nextUpdate the last good copy is still used
	// while refreshes fail (default 24h).
	Grace time.Duration
	// Stale is the policy past the grace (default Reject).
	Stale Stale
	// RefreshBefore is how long before nextUpdate a refresh starts
	// (default 1h); Retry is the wait after a failed one (default 5m).
	RefreshBefore, Retry time.Duration
	// Offline never fetches ([x5u] offline): only the copies in Dir.
	Offline bool
	// Shared, when set, is the cluster's shared tier ([x5u] shared_dsn,
	// internal/pgshared): one node fetches a URL per refresh and the others
	// read its copy. Every node still checks what it reads (signature,
	// issuer, times) as if it had fetched it: nothing in the shared store
	// is trusted. SetShared sets it after New.
	Shared x5u.Shared
	Now    func() time.Time
	Logger *slog.Logger
}

// Status is what metrics and readiness report about one URL.
type Status struct {
	URL                    string
	ThisUpdate, NextUpdate time.Time // of the copy held; zero if none
	LastSuccess            time.Time // last fetch that gave a good CRL
	LastError              error     // of the last refresh; nil after a success
	Fetches, Failures      uint64
	Usable                 bool // the copy held is within nextUpdate + Grace
}

// Source holds the current CRL of every URL. Safe for concurrent use.
type Source struct {
	o    Options
	mu   sync.RWMutex
	held map[string]*held // by URL
	urls []string         // configured, then discovered, in order
	nDis int              // discovered URLs

	warnMu      sync.Mutex
	lastWarn    time.Time
	lastDisWarn time.Time

	sharedMu sync.Mutex
	shared   x5u.Shared
	sharedN  sharedCounts

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// sharedCounts say how refreshes used the shared tier.
type sharedCounts struct {
	Loads, Fetches, Errors uint64 // read another node's copy; fetched under the claim; tier failed
}

type held struct {
	// discovered: from a certificate's CRLDP, not from URLs; ready closes
	// once its first fetch is done (nil for a configured URL).
	discovered bool
	ready      chan struct{}

	set                    *certs.CRLSet
	thisUpdate, nextUpdate time.Time
	lastSuccess, attempted time.Time
	lastErr                error
	fetches, failures      uint64
}

// New validates o and loads the copies kept in Dir. It does not touch the
// network: call Refresh, or Start.
func New(o Options) (*Source, error) {
	switch {
	case len(o.URLs) == 0 && !o.Discover:
		return nil, errors.New("crl: no URLs")
	case len(o.Signers) == 0:
		return nil, errors.New("crl: no CRL signer certificates")
	case o.Roots == nil:
		return nil, errors.New("crl: no trust anchors")
	}
	switch o.Stale {
	case "":
		o.Stale = Reject
	case Reject, FailOpen:
	default:
		return nil, fmt.Errorf("crl: stale policy %q: want %q or %q", o.Stale, Reject, FailOpen)
	}
	for _, u := range o.URLs {
		if _, err := x5u.CheckURL(u, o.Fetch.Policy); err != nil {
			return nil, fmt.Errorf("crl: %s: %w", u, err)
		}
	}
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	if o.RefreshBefore <= 0 {
		o.RefreshBefore = DefaultRefreshBefore
	}
	if o.Retry <= 0 {
		o.Retry = DefaultRetry
	}
	if o.MaxDiscovered <= 0 {
		o.MaxDiscovered = DefaultMaxDiscovered
	}
	if o.Fetch.MaxBody <= 0 {
		o.Fetch.MaxBody = DefaultMaxBody
	}
	if o.Fetch.Accept == "" {
		o.Fetch.Accept = "application/pkix-crl"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Source{o: o, held: map[string]*held{}, shared: o.Shared, urls: append([]string(nil), o.URLs...)}
	if o.Dir != "" {
		if err := os.MkdirAll(o.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("crl: cache dir: %w", err)
		}
	}
	for _, u := range o.URLs {
		h := &held{}
		s.held[u] = h
		s.loadDisk(u, h)
	}
	return s, nil
}

// loadDisk fills h from the copy of u kept in Dir, if there is a good one.
// h is not yet visible to other goroutines.
func (s *Source) loadDisk(u string, h *held) {
	if s.o.Dir == "" {
		return
	}
	body, err := os.ReadFile(s.path(u))
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err == nil {
		var c *parsed
		if c, err = s.parse(body, false); err == nil {
			h.set, h.thisUpdate, h.nextUpdate = c.set, c.thisUpdate, c.nextUpdate
			s.o.Logger.Info("crl: loaded the copy on disk", "url", u, "next_update", c.nextUpdate)
			return
		}
	}
	// A damaged copy is as good as none; the next refresh replaces it.
	s.o.Logger.Warn("crl: ignoring the copy on disk", "url", u, "err", err)
}

// points are the CRL distribution points of chain's intermediates: the
// certificates after the leaf (a root carries none, and a trust anchor's
// would not be the STI-PA's to name).
func points(chain []*x509.Certificate) []string {
	var out []string
	for i, c := range chain {
		if i == 0 {
			continue
		}
		out = append(out, c.CRLDistributionPoints...)
	}
	return out
}

// discover learns the points of chain not known yet, fetching each once
// (concurrent verifications naming it wait for that fetch).
func (s *Source) discover(chain []*x509.Certificate) {
	for _, u := range points(chain) {
		s.mu.RLock()
		h := s.held[u]
		s.mu.RUnlock()
		if h == nil {
			h = s.learn(u)
		}
		if h != nil && h.ready != nil {
			<-h.ready // bounded by the fetch's timeout
		}
	}
}

// learn adds u, a discovered point, and fetches it; nil if u is refused
// (the URL policy, or MaxDiscovered reached).
func (s *Source) learn(u string) *held {
	if _, err := x5u.CheckURL(u, s.o.Fetch.Policy); err != nil {
		s.warnDiscover(u, err)
		return nil
	}
	s.mu.RLock()
	full := s.nDis >= s.o.MaxDiscovered
	s.mu.RUnlock()
	if full {
		s.warnDiscover(u, fmt.Errorf("already %d discovered CRL URLs (the most kept)", s.o.MaxDiscovered))
		return nil
	}
	h := &held{discovered: true, ready: make(chan struct{})}
	s.loadDisk(u, h) // outside the lock: it reads a file and checks a signature
	s.mu.Lock()
	if old := s.held[u]; old != nil {
		s.mu.Unlock()
		return old
	}
	if s.nDis >= s.o.MaxDiscovered {
		s.mu.Unlock()
		s.warnDiscover(u, fmt.Errorf("already %d discovered CRL URLs (the most kept)", s.o.MaxDiscovered))
		return nil
	}
	s.held[u] = h
	s.urls = append(s.urls, u)
	s.nDis++
	s.mu.Unlock()
	defer close(h.ready)
	s.o.Logger.Info("crl: distribution point of a verified chain", "url", u)
	if h.set != nil && s.o.Now().Before(h.nextUpdate.Add(-s.o.RefreshBefore)) {
		return h // the copy on disk serves until the refresh it is due for
	}
	s.refresh(context.Background(), u) // failures are logged; Check applies the stale policy
	return h
}

func (s *Source) warnDiscover(u string, err error) {
	now := s.o.Now()
	s.warnMu.Lock()
	defer s.warnMu.Unlock()
	if !s.lastDisWarn.IsZero() && now.Sub(s.lastDisWarn) < warnEvery {
		return
	}
	s.lastDisWarn = now
	s.o.Logger.Warn("crl: not fetching a distribution point", "url", u, "err", err)
}

// urlList is a snapshot of the URLs held.
func (s *Source) urlList() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]string(nil), s.urls...)
}

// path is the disk copy of u: named by a hash, so no URL text reaches the
// file system.
func (s *Source) path(u string) string {
	sum := sha256.Sum256([]byte(u))
	return filepath.Join(s.o.Dir, "crl-"+hex.EncodeToString(sum[:16])+".der")
}

type parsed struct {
	set                    *certs.CRLSet
	der                    []byte
	thisUpdate, nextUpdate time.Time
}

// parse reads one CRL (DER or PEM) and checks it: signed by a configured
// signer chaining to the anchors, with a nextUpdate. current also demands
// that it be current now (a fetched CRL); a disk copy is checked as of its
// own thisUpdate, since the grace may still cover it.
func (s *Source) parse(body []byte, current bool) (*parsed, error) {
	der := body
	if bytes.Contains(body, []byte("-----BEGIN")) {
		blk, rest := pem.Decode(body)
		if blk == nil || blk.Type != "X509 CRL" || len(bytes.TrimSpace(rest)) != 0 {
			return nil, stir.ErrCRLUnusable.Withf("want one PEM \"X509 CRL\" block")
		}
		der = blk.Bytes
	}
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, stir.ErrCRLUnusable.With("parse", err)
	}
	if rl.NextUpdate.IsZero() {
		return nil, stir.ErrCRLUnusable.Withf("CRL of %s has no nextUpdate", rl.Issuer)
	}
	set, err := certs.NewCRLSet([]*x509.RevocationList{rl}, s.o.Signers)
	if err != nil {
		return nil, err
	}
	at := rl.ThisUpdate
	if current {
		at = s.o.Now()
	}
	if err := set.VerifySigners(s.o.Roots(), at); err != nil {
		return nil, err
	}
	return &parsed{set: set, der: der, thisUpdate: rl.ThisUpdate, nextUpdate: rl.NextUpdate}, nil
}

// Refresh fetches every URL now. A URL whose fetch or check fails keeps
// its last good copy; the joined errors are returned.
func (s *Source) Refresh(ctx context.Context) error {
	var errs []error
	for _, u := range s.urlList() {
		s.mu.RLock()
		h := s.held[u]
		s.mu.RUnlock()
		if h.ready != nil {
			select {
			case <-h.ready:
			default:
				continue // its first fetch is under way
			}
		}
		if err := s.refresh(ctx, u); err != nil {
			errs = append(errs, fmt.Errorf("crl %s: %w", u, err))
		}
	}
	return errors.Join(errs...)
}

// SetShared sets Options.Shared: the tier a caller opens after building
// the Source (cmd/stirgate opens it once for the process, across reloads).
func (s *Source) SetShared(sh x5u.Shared) {
	s.sharedMu.Lock()
	s.shared = sh
	s.sharedMu.Unlock()
}

// SharedCounts reports how refreshes used the shared tier.
func (s *Source) SharedCounts() (loads, fetches, errs uint64) {
	s.sharedMu.Lock()
	defer s.sharedMu.Unlock()
	return s.sharedN.Loads, s.sharedN.Fetches, s.sharedN.Errors
}

// sharedKey keeps CRLs apart from x5u chains in a tier they may share.
func sharedKey(u string) string { return "crl:" + u }

// obtain fetches u and checks it; through the shared tier when there is
// one, so that the cluster fetches it once per refresh.
func (s *Source) obtain(ctx context.Context, u string) (*parsed, error) {
	if s.o.Offline {
		return nil, stir.ErrCRLUnusable.Withf("offline: not fetching")
	}
	fetch := func(ctx context.Context) (*parsed, []byte, error) {
		body, err := x5u.Get(ctx, u, s.o.Fetch)
		if err != nil {
			return nil, nil, err
		}
		c, err := s.parse(body, true)
		return c, body, err
	}
	s.sharedMu.Lock()
	sh := s.shared
	s.sharedMu.Unlock()
	if sh == nil {
		c, _, err := fetch(ctx)
		return c, err
	}
	var own *parsed
	var ownErr error
	fetched := false
	body, _, fromShared, err := sh.Do(ctx, sharedKey(u), s.o.Now(), func(ctx context.Context) ([]byte, time.Time, error) {
		fetched = true
		own, _, ownErr = fetch(ctx)
		if ownErr != nil {
			return nil, time.Time{}, ownErr // not shared: each node retries on its own
		}
		// The copy is fresh for the cluster until the refresh that would
		// replace it is due, as Due reckons it; a CRL whose nextUpdate is
		// near (the STI-PA has not published its successor) still holds
		// for Retry, so the cluster does not fetch it in a loop.
		exp := own.nextUpdate.Add(-s.o.RefreshBefore)
		if min := s.o.Now().Add(s.o.Retry); exp.Before(min) {
			exp = min
		}
		return own.der, exp, nil
	})
	s.sharedMu.Lock()
	switch {
	case fetched:
		s.sharedN.Fetches++
	case err == nil && fromShared:
		s.sharedN.Loads++
	case err != nil:
		s.sharedN.Errors++
	}
	s.sharedMu.Unlock()
	if fetched {
		// This node's own fetch: its result stands whether or not the
		// tier kept it.
		if err != nil && ownErr == nil {
			s.o.Logger.Warn("crl: shared tier did not keep the copy", "url", u, "err", err)
		}
		return own, ownErr
	}
	if err == nil && fromShared {
		c, perr := s.parse(body, true)
		if perr == nil {
			s.o.Logger.Info("crl: read the cluster's copy", "url", u)
			return c, nil
		}
		s.o.Logger.Warn("crl: the cluster's copy does not check, fetching", "url", u, "err", perr)
	} else if err != nil {
		s.o.Logger.Warn("crl: shared tier unavailable, fetching alone", "url", u, "err", err)
	}
	c, _, err := fetch(ctx)
	return c, err
}

func (s *Source) refresh(ctx context.Context, u string) error {
	c, err := s.obtain(ctx, u)
	now := s.o.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.held[u]
	h.fetches++
	h.attempted = now
	if err == nil && h.set != nil && c.thisUpdate.Before(h.thisUpdate) {
		// An older CRL than the one held is a replay (or a lagging
		// mirror): taking it could un-revoke a certificate.
		err = stir.ErrCRLUnusable.Withf("thisUpdate %s is older than the copy held (%s)",
			c.thisUpdate.UTC().Format(time.RFC3339), h.thisUpdate.UTC().Format(time.RFC3339))
	}
	if err != nil {
		h.failures++
		h.lastErr = err
		s.o.Logger.Warn("crl: refresh failed, keeping the last good copy", "url", u, "err", err,
			"next_update", h.nextUpdate, "usable_until", h.nextUpdate.Add(s.o.Grace))
		return err
	}
	h.set, h.thisUpdate, h.nextUpdate = c.set, c.thisUpdate, c.nextUpdate
	h.lastSuccess, h.lastErr = now, nil
	if s.o.Dir != "" {
		if werr := writeAtomic(s.path(u), c.der); werr != nil {
			s.o.Logger.Warn("crl: cannot keep the copy on disk", "url", u, "err", werr)
		}
	}
	s.o.Logger.Info("crl: refreshed", "url", u, "this_update", c.thisUpdate, "next_update", c.nextUpdate)
	return nil
}

// writeAtomic replaces path with data by a rename, so that a reader (a
// sibling process, or a restart after a crash) sees the old copy or the
// new one, never half of one.
func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".crl-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// Due is when the next refresh should run: RefreshBefore ahead of the
// earliest nextUpdate, or Retry after a failed or missing copy.
func (s *Source) Due() time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var due time.Time
	some := false
	for _, h := range s.held {
		if h.ready != nil {
			select {
			case <-h.ready:
			default:
				continue // its first fetch is under way; learn does it
			}
		}
		var d time.Time
		switch {
		case h.attempted.IsZero() && h.set == nil:
			d = time.Time{} // never tried and nothing held: at once
		case h.set == nil || h.lastErr != nil:
			d = h.attempted.Add(s.o.Retry)
		default:
			d = h.nextUpdate.Add(-s.o.RefreshBefore)
			if min := h.attempted.Add(s.o.Retry); d.Before(min) {
				d = min // a CRL whose nextUpdate is near must not loop
			}
		}
		if due.IsZero() || d.Before(due) {
			due = d
		}
		some = true
	}
	if !some {
		// Nothing to refresh yet (Discover with no point seen): look again
		// after Retry rather than at once, which would spin Start's loop.
		return s.o.Now().Add(s.o.Retry)
	}
	return due
}

// Start refreshes in the background whenever Due; Close stops it.
// Waiting uses real time; tests drive Refresh directly with their clock.
func (s *Source) Start() {
	s.once.Do(func() {
		s.stop, s.done = make(chan struct{}), make(chan struct{})
		go s.run()
	})
}

func (s *Source) run() {
	defer close(s.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.stop
		cancel()
	}()
	for {
		wait := s.Due().Sub(s.o.Now())
		if wait > 0 {
			t := time.NewTimer(min(wait, s.o.Retry)) // re-read Due: the clock may jump
			select {
			case <-s.stop:
				t.Stop()
				return
			case <-t.C:
				continue
			}
		}
		s.Refresh(ctx) // failures are logged and counted
		select {
		case <-s.stop:
			return
		default:
		}
	}
}

// Close stops Start's loop and waits for it.
func (s *Source) Close() error {
	s.once.Do(func() {}) // a Start after Close does nothing
	if s.stop != nil {
		select {
		case <-s.stop:
		default:
			close(s.stop)
		}
		<-s.done
	}
	return nil
}

// Check implements certs.RevocationChecker. roots is not used: each CRL
// was checked against the anchors when it was fetched or loaded.
func (s *Source) Check(chain []*x509.Certificate, _ *x509.CertPool, now time.Time) error {
	var named []string
	if s.o.Discover {
		s.discover(chain)
		named = points(chain)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, u := range s.urls {
		h := s.held[u]
		// Revocation is permanent: a certificate listed in a copy past its
		// grace is still revoked, whatever the stale policy.
		if h.set != nil {
			if err := h.set.Revoked(chain); err != nil {
				return err
			}
		}
		if h.discovered && !slices.Contains(named, u) {
			// Another CA's point: its revocations count (above), its
			// staleness is not this chain's to answer for.
			continue
		}
		if h.set == nil || now.After(h.nextUpdate.Add(s.o.Grace)) {
			why := "no CRL obtained yet"
			if h.set != nil {
				why = "CRL expired at " + h.nextUpdate.UTC().Format(time.RFC3339) + " and its grace has ended"
			}
			if s.o.Stale == Reject {
				return stir.ErrCRLUnusable.Withf("%s: %s", u, why)
			}
			s.warnOpen(now, u, why)
		}
	}
	return nil
}

func (s *Source) warnOpen(now time.Time, u, why string) {
	s.warnMu.Lock()
	defer s.warnMu.Unlock()
	if !s.lastWarn.IsZero() && now.Sub(s.lastWarn) < warnEvery {
		return
	}
	s.lastWarn = now
	s.o.Logger.Warn("crl: verifying without revocation data (crl_stale = fail_open)", "url", u, "why", why)
}

// Status reports every URL, in configuration order.
func (s *Source) Status() []Status {
	now := s.o.Now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Status, 0, len(s.urls))
	for _, u := range s.urls {
		h := s.held[u]
		out = append(out, Status{
			URL: u, ThisUpdate: h.thisUpdate, NextUpdate: h.nextUpdate,
			LastSuccess: h.lastSuccess, LastError: h.lastErr,
			Fetches: h.fetches, Failures: h.failures,
			Usable: h.set != nil && !now.After(h.nextUpdate.Add(s.o.Grace)),
		})
	}
	return out
}
