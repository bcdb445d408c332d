package core

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/identity"
	"github.com/stirgate/stirgate/core/passport"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/core/tn"
	"github.com/stirgate/stirgate/core/x5u"
)

// VerifierOptions configures a Verifier.
type VerifierOptions struct {
	// Roots are the trust anchors (STI-PA's list). Required: the system
	// roots are never used for SHAKEN credentials.
	Roots *x509.CertPool
	// CRL, when set, is checked for every chain certificate.
	CRL *certs.CRLSet
	// Anchors, when set, replaces Roots: a trust anchor list read again
	// when its files change. A change drops the chains cached under the
	// old list.
	Anchors *certs.Anchors
	// Revocation, when set, is checked on every verification rather than
	// once per fetch, so that a refreshed CRL takes effect at once (package
	// crl). Close closes it when it is an io.Closer.
	Revocation certs.RevocationChecker
	// Fetch is the x5u fetch, cache and URL policy. Zero value: defaults
	// of x5u.Options (https only, 2 s, 64 KiB, no lab hosts).
	Fetch x5u.Options[*certs.Credential]

	Numbers tn.Rules
	Limits  identity.Limits

	// MaxAge and MaxFuture bound iat against now (defaults 60s and 60s).
	MaxAge    time.Duration
	MaxFuture time.Duration
	// DateMaxAge bounds a Date header against now (default MaxAge).
	DateMaxAge time.Duration
	// RequireDate fails a request without a Date header instead of judging
	// on iat alone.
	RequireDate bool
	// RequireIdentity makes a request with no SHAKEN Identity fail with 428.
	RequireIdentity bool
	// Strict fails validly signed tokens whose JSON is not canonical or
	// whose origid is not a UUID.
	Strict bool
	// MaxChain bounds the certificates accepted from one x5u (default 5).
	MaxChain int

	Now    func() time.Time
	Logger *slog.Logger
}

// Verifier is the STI-VS. Safe for concurrent use.
type Verifier struct {
	opts  VerifierOptions
	cache *x5u.Cache[*certs.Credential]
	// content holds the digests of rcd content fetched by URL (RFC 9795
	// rcdi), under the x5u URL policy, limits and preloads.
	content *x5u.Cache[string]
}

// NewVerifier validates opts and builds a Verifier. Close releases it.
func NewVerifier(opts VerifierOptions) (*Verifier, error) {
	if opts.Roots == nil && opts.Anchors == nil {
		return nil, stir.ErrCertUntrusted.Withf("no trust anchors configured")
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = 60 * time.Second
	}
	if opts.MaxFuture <= 0 {
		opts.MaxFuture = 60 * time.Second
	}
	if opts.DateMaxAge <= 0 {
		opts.DateMaxAge = opts.MaxAge
	}
	if opts.MaxChain <= 0 {
		opts.MaxChain = 5
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	v := &Verifier{opts: opts}
	f := opts.Fetch
	if f.Now == nil {
		f.Now = opts.Now
	}
	if f.Logger == nil {
		f.Logger = opts.Logger
	}
	f.Validate = v.validate
	c, err := x5u.New(f)
	if err != nil {
		return nil, err
	}
	v.cache = c
	if v.content, err = newContentCache(f); err != nil {
		c.Close()
		return nil, err
	}
	return v, nil
}

// validate turns an x5u body into a trusted credential. It runs once per
// fetch; the cache keeps its result so warm verifications build no paths.
func (v *Verifier) validate(ctx context.Context, url string, body []byte) (*certs.Credential, time.Time, error) {
	chain, err := certs.ParsePEMChain(body, v.opts.MaxChain)
	if err != nil {
		return nil, time.Time{}, err
	}
	for try := 0; ; try++ {
		var gen uint64
		if v.opts.Anchors != nil {
			gen = v.opts.Anchors.Generation()
		}
		cred, err := certs.Verify(chain, certs.VerifyOptions{
			Roots:       v.roots(),
			CurrentTime: v.opts.Now(),
			CRL:         v.opts.CRL,
		})
		// The anchors changed while this chain was checked: the cache was
		// purged meanwhile and must not receive a result of the old list.
		if v.opts.Anchors != nil && v.opts.Anchors.Generation() != gen && try < 3 {
			continue
		}
		if err != nil {
			return nil, time.Time{}, err
		}
		return cred, cred.NotAfter, nil
	}
}

// roots is the trust anchor pool in use.
func (v *Verifier) roots() *x509.CertPool {
	if v.opts.Anchors != nil {
		return v.opts.Anchors.Pool()
	}
	return v.opts.Roots
}

// Revocation is the checker of VerifierOptions.Revocation (nil if none),
// for metrics and readiness.
func (v *Verifier) Revocation() certs.RevocationChecker { return v.opts.Revocation }

// Close releases the x5u cache, the rcd content cache and the revocation
// checker.
func (v *Verifier) Close() error {
	v.content.Close()
	err := v.cache.Close()
	if c, ok := v.opts.Revocation.(io.Closer); ok {
		err = errors.Join(err, c.Close())
	}
	return err
}

// CacheStats reports x5u cache counters.
func (v *Verifier) CacheStats() x5u.Stats { return v.cache.Stats() }

// Anchors returns the trust anchors' certificates, when the options named
// them (VerifierOptions.Anchors).
func (v *Verifier) Anchors() []*x509.Certificate {
	if v.opts.Anchors == nil {
		return nil
	}
	return v.opts.Anchors.Certs()
}

// CRL returns the CRL set in use, or nil.
func (v *Verifier) CRL() *certs.CRLSet { return v.opts.CRL }

// Verify judges one request (conformance §2). It never returns nil and
// never panics on hostile input.
func (v *Verifier) Verify(ctx context.Context, req VerifyRequest) *stir.Result {
	res := &stir.Result{}
	now := v.opts.Now()

	hdrs, perHeader, err := identity.Collect(req.Identity, v.opts.Limits)
	if err != nil {
		return res.Failed(err)
	}
	require := req.RequireIdentity || v.opts.RequireIdentity
	var candidates, divHdrs []*identity.Header
	for _, h := range hdrs {
		switch {
		case h.IsShaken():
			candidates = append(candidates, h)
		case h.IsDiv():
			divHdrs = append(divHdrs, h)
		}
	}
	if len(candidates) == 0 {
		// A div PASSporT without the SHAKEN one it diverts cannot complete
		// a chain (conformance §6 D2).
		if len(divHdrs) > 0 {
			return res.Failed(stir.ErrDivNoShaken.Withf("%d div PASSporT(s) and no SHAKEN PASSporT", len(divHdrs)))
		}
		// A header that could not even be parsed may still have been meant
		// as SHAKEN: report it rather than "no identity".
		if best := mostRelevant(perHeader); best != nil {
			return res.Failed(best)
		}
		e := stir.ErrNoIdentity
		if len(hdrs) > 0 {
			e = stir.ErrNotShaken
		}
		if require {
			return res.Failed(e)
		}
		res.Result, res.Verstat, res.Error = stir.None, stir.VerstatNone, e.Name
		return res
	}

	// The Date and the request's numbers are judged once, but reported in
	// the table's order (rows 7 and 8), after each header's own rows 3-6.
	dateErr := v.checkDate(req.Date, now.Truncate(time.Second))
	orig, dest, reqErr := v.requestNumbers(req)

	failures := perHeader
	// reads[i] is what could be read of the header behind failures[i]
	// (nil for a header that did not even parse), so that a failure is
	// recorded with its orig, dest, x5u, SPC, iat, origid and attest.
	reads := make([]*stir.Result, len(perHeader), len(perHeader)+len(candidates))
	var divs *divSet
	if len(divHdrs) > 0 {
		divs = v.parseDivs(divHdrs)
	}
	if divs != nil && reqErr == nil && req.Target != "" {
		if dest, err = anyNumber(req.Target, v.opts.Numbers); err != nil {
			reqErr = stir.ErrDestMismatch.With("Request-URI of the request", err)
		}
	}
	for _, h := range candidates {
		r, err := v.verifyOne(ctx, h, now, dateErr, orig, dest, reqErr, divs)
		if err == nil {
			return r
		}
		failures = append(failures, err)
		reads = append(reads, r)
	}
	i := mostRelevantIndex(failures)
	if r := reads[i]; r != nil {
		res.Attest, res.OrigID, res.Orig, res.Dest, res.X5U, res.SPC, res.IAT = r.Attest, r.OrigID, r.Orig, r.Dest, r.X5U, r.SPC, r.IAT
	}
	return res.Failed(relevant(failures, i))
}

// checkDate judges a Date header against now, which the caller has
// truncated to whole seconds, the resolution of a Date.
func (v *Verifier) checkDate(date string, now time.Time) error {
	if date == "" {
		if v.opts.RequireDate {
			return stir.ErrStaleDate.Withf("no Date header")
		}
		return nil
	}
	d, err := http.ParseTime(date)
	if err != nil {
		return stir.ErrDateFormat.With("Date header", err)
	}
	if absDur(now.Sub(d)) > v.opts.DateMaxAge {
		return stir.ErrStaleDate.Withf("Date %s is %s from now", date, now.Sub(d).Round(time.Second))
	}
	return nil
}

func (v *Verifier) requestNumbers(req VerifyRequest) (string, string, error) {
	src := req.PAI
	if src == "" {
		src = req.From
	}
	orig, err := tn.FromHeader(src, v.opts.Numbers)
	if err != nil {
		return "", "", stir.ErrOrigMismatch.With("calling number of the request", err)
	}
	dest, err := tn.FromHeader(req.To, v.opts.Numbers)
	if err != nil {
		return "", "", stir.ErrDestMismatch.With("called number of the request", err)
	}
	return orig, dest, nil
}

// verifyOne judges one header. On failure it still returns what it read:
// the claims as the token states them (unverified, unless the failure came
// after the signature check) and the SPC once a certificate was obtained.
func (v *Verifier) verifyOne(ctx context.Context, h *identity.Header, now time.Time, dateErr error, orig, dest string, reqErr error, divs *divSet) (*stir.Result, error) {
	read := &stir.Result{X5U: h.Info}
	res, err := v.judgeOne(ctx, h, now, dateErr, orig, dest, reqErr, divs, read)
	if err != nil {
		return read, err
	}
	return res, nil
}

func (v *Verifier) judgeOne(ctx context.Context, h *identity.Header, now time.Time, dateErr error, orig, dest string, reqErr error, divs *divSet, read *stir.Result) (*stir.Result, error) {
	tok, err := parseToken(h, passport.Ppt)
	if tok != nil {
		read.Attest, read.OrigID, read.Orig, read.Dest, read.IAT = tok.Claims.Attest, tok.Claims.OrigID, tok.Claims.Orig, tok.Claims.Dest, tok.Claims.IAT
	}
	if err != nil {
		return nil, err
	}
	if v.opts.Strict && !validUUID(tok.Claims.OrigID) {
		return nil, stir.ErrOrigIDInvalid.Withf("origid %q is not a UUID", tok.Claims.OrigID)
	}

	// iat may be any positive int64. Clamped to ~136 years ahead, it can
	// neither overflow time.Unix nor saturate now.Sub, whose minimum
	// Duration would negate to itself and pass the future bound.
	// iat has whole seconds, so the clock is read in whole seconds too:
	// otherwise a token exactly at the limit fails for most of each second.
	if err := v.checkIAT(tok, now); err != nil {
		return nil, err
	}
	if dateErr != nil {
		return nil, dateErr
	}

	if reqErr != nil {
		return nil, reqErr
	}
	if tok.Claims.Orig != orig {
		return nil, stir.ErrOrigMismatch.Withf("orig.tn %s, request %s", tok.Claims.Orig, orig)
	}
	var chain []divLink
	if divs == nil {
		if !contains(tok.Claims.Dest, dest) {
			return nil, stir.ErrDestMismatch.Withf("request %s not in dest.tn %v", dest, tok.Claims.Dest)
		}
	} else if chain, err = divs.chain(tok, dest); err != nil {
		return nil, err
	}

	// A changed trust anchor list drops the chains cached under the old
	// one, before any link is checked.
	if v.opts.Anchors != nil && v.opts.Anchors.Check() {
		v.cache.Purge()
	}
	// Every link is as fresh and as well signed as the SHAKEN PASSporT
	// (conformance §6 D4, D5). The clock is read first, for all; the
	// credentials and signatures of the links are then checked side by
	// side, because a diverted call's latency is otherwise one ECDSA
	// verification per diversion. Failures are reported in chain order.
	for _, l := range chain {
		if err := v.checkIAT(l.tok, now); err != nil {
			return nil, err
		}
	}
	linkErrs := make([]error, len(chain))
	// No more goroutines than there are processors to run them beside
	// this one: more would not end sooner, and each costs its start and
	// the growth of its stack to what ECDSA needs (a few percent of a
	// diverted call's CPU). With one processor the links are checked here.
	groups := min(len(chain), runtime.GOMAXPROCS(0)-1)
	var wg sync.WaitGroup
	links := chain // assigned once, so the goroutines copy it rather than move chain to the heap
	for g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v.checkLinks(ctx, now, links, linkErrs, g*len(links)/groups, (g+1)*len(links)/groups)
		}()
	}
	cred, err := v.checkSigned(ctx, h, tok, now, tok.Claims.Orig)
	if groups <= 0 {
		v.checkLinks(ctx, now, links, linkErrs, 0, len(links))
	}
	wg.Wait()
	if cred != nil {
		read.SPC = cred.SPC
	}
	if err != nil {
		return nil, err
	}
	rcd, err := v.checkRCD(ctx, tok)
	if err != nil {
		return nil, err
	}
	var hops []stir.Div
	for i, l := range chain {
		if linkErrs[i] != nil {
			return nil, linkErrs[i]
		}
		hops = append(hops, stir.Div{TN: l.tok.Claims.Div, Dest: l.tok.Claims.Dest, X5U: l.hdr.Info})
	}
	return &stir.Result{
		Result:  stir.Pass,
		Verstat: stir.VerstatPassed,
		Attest:  tok.Claims.Attest,
		OrigID:  tok.Claims.OrigID,
		Orig:    tok.Claims.Orig,
		Dest:    tok.Claims.Dest,
		X5U:     h.Info,
		SPC:     cred.SPC,
		IAT:     tok.Claims.IAT,
		Div:     hops,
		RCD:     rcd,
	}, nil
}

// checkLinks checks the signatures of chain[from:to] into errs.
func (v *Verifier) checkLinks(ctx context.Context, now time.Time, chain []divLink, errs []error, from, to int) {
	for i := from; i < to; i++ {
		l := chain[i]
		_, errs[i] = v.checkSigned(ctx, l.hdr, l.tok, now, l.tok.Claims.Div)
	}
}

// parseToken decodes one Identity header's PASSporT and checks that the
// header parameters agree with it (conformance rows 4-5). want is the ppt
// the header was sorted under: a header without a ppt parameter is SHAKEN.
func parseToken(h *identity.Header, want string) (*passport.Token, error) {
	tok, err := passport.ParseAs(h.Token, want)
	if err != nil {
		return nil, err
	}
	if h.Alg != "" && h.Alg != passport.Alg {
		return nil, stir.ErrAlgUnsupported.Withf("alg parameter %q", h.Alg)
	}
	if tok.Header.X5U != h.Info {
		return nil, stir.ErrX5UMismatch.Withf("x5u %q, info %q", tok.Header.X5U, h.Info)
	}
	return tok, nil
}

// checkIAT judges a PASSporT's iat against now (conformance row 7).
func (v *Verifier) checkIAT(tok *passport.Token, now time.Time) error {
	// iat may be any positive int64. Clamped to ~136 years ahead, it can
	// neither overflow time.Unix nor saturate now.Sub, whose minimum
	// Duration would negate to itself and pass the future bound.
	// iat has whole seconds, so the clock is read in whole seconds too:
	// otherwise a token exactly at the limit fails for most of each second.
	iatSec := tok.Claims.IAT
	if lim := now.Unix() + 1<<32; iatSec > lim {
		iatSec = lim
	}
	iat := time.Unix(iatSec, 0)
	if age := now.Truncate(time.Second).Sub(iat); age > v.opts.MaxAge {
		return stir.ErrStaleIAT.Withf("%s iat is %s old, limit %s", tok.Header.Ppt, age.Round(time.Second), v.opts.MaxAge)
	} else if age < -v.opts.MaxFuture {
		return stir.ErrFutureIAT.Withf("%s iat is %s in the future, limit %s", tok.Header.Ppt, (-age).Round(time.Second), v.opts.MaxFuture)
	}
	return nil
}

// checkSigned fetches the credential of h and checks tok's signature with
// it (conformance rows 9-12).
//
// tn is the number the certificate must vouch for: orig.tn of a SHAKEN
// PASSporT, div.tn of a div one. An SPC certificate vouches for any; a
// delegate certificate (RFC 9060) only for its TNs and ranges (§6 C1). The
// certificate's JWT claim constraints are then enforced on the verified
// claims (§6 C2). Once the credential is obtained it is returned with any
// later error, so that a failure is still recorded with its SPC.
func (v *Verifier) checkSigned(ctx context.Context, h *identity.Header, tok *passport.Token, now time.Time, tn string) (*certs.Credential, error) {
	cred, err := v.cache.Get(ctx, h.Info)
	if err != nil {
		return nil, err
	}
	if v.opts.Revocation != nil {
		if err := v.opts.Revocation.Check(cred.Chain, v.roots(), now); err != nil {
			return cred, err
		}
	}
	// The chain was validated when fetched; the cache never outlives the
	// leaf, but a fixed verification time (--at) may be outside it.
	if now.Before(cred.Leaf.NotBefore) || now.After(cred.NotAfter) {
		return cred, stir.ErrCertExpired.Withf("credential valid %s..%s", cred.Leaf.NotBefore.UTC().Format(time.RFC3339), cred.NotAfter.UTC().Format(time.RFC3339))
	}
	if !cred.Covers(tn) {
		return cred, stir.ErrCertTNScope.Withf("%s PASSporT for %s: the delegate certificate's TNAuthList does not cover it", tok.Header.Ppt, tn)
	}
	if err := tok.Verify(cred.PublicKey); err != nil {
		return cred, err
	}
	if v.opts.Strict && !tok.Canonical() {
		return cred, stir.ErrNonCanonical.Withf("%s token JSON is not in canonical form", tok.Header.Ppt)
	}
	if err := cred.Constraints.Check(func(name string) (string, bool) {
		val, _, ok := tok.Claim(name)
		return val, ok
	}); err != nil {
		return cred, err
	}
	return cred, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// mostRelevant picks the failure to report when no header passed
// (conformance row 13): 436 only when nothing better is known.
func mostRelevant(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return relevant(errs, mostRelevantIndex(errs))
}

// mostRelevantIndex is the index of the failure mostRelevant reports.
func mostRelevantIndex(errs []error) int {
	var best *stir.Error
	bestI := 0
	for i, err := range errs {
		e := stir.As(err)
		if e == nil {
			e = stir.ErrInternal.With("", err)
		}
		if best == nil || stir.Rank(e) > stir.Rank(best) {
			best, bestI = e, i
		}
	}
	return bestI
}

// relevant is errs[i] as mostRelevant reports it: a non-*stir.Error
// becomes an internal error.
func relevant(errs []error, i int) error {
	if stir.As(errs[i]) == nil {
		return stir.ErrInternal.With("", errs[i])
	}
	return errs[i]
}

func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
