package core

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"time"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/identity"
	"github.com/stirgate/stirgate/core/passport"
	"github.com/stirgate/stirgate/core/policy"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/core/tn"
	"github.com/stirgate/stirgate/core/x5u"
)

// SignerOptions configures a Signer.
type SignerOptions struct {
	// Credential is the signing key and its certificate chain of the
	// tenant named "default" (DefaultTenant). Required unless Tenants
	// is set.
	Credential *certs.SigningCredential
	// X5U is the public URL of the certificate chain. Required with
	// Credential; it is written byte-identical into x5u and info.
	X5U string
	// Next is the default tenant's next credential (rotation), if any.
	Next *NextCredential
	// Tenants are further signing identities; Policy customers name theirs
	// (policy.Customer.Tenant). A Tenant named "default" stands in for
	// Credential and X5U, which must then be unset.
	Tenants []Tenant
	// Revoked, when set, reports stir.ErrCertRevoked when a certificate of
	// a signing chain is listed in a CRL (config passes the verifier's):
	// a tenant whose certificate was revoked is refused, not signed for.
	Revoked func(chain []*x509.Certificate, now time.Time) error
	// Numbers converts national numbers to E.164 (zero: digits as given).
	Numbers tn.Rules
	// Policy chooses attestation; a request's Attest may only lower it
	// (SignRequest.Trusted and Customer.AttestOverride aside). Nil trusts
	// the caller: only requests that carry Attest are signed, as given.
	// Config-built signers always have one.
	Policy *policy.Policy
	// DateWindow is how far a request's Date header may be from now and
	// still become iat (default 60s).
	DateWindow time.Duration
	// ExpiryWarning logs a warning at construction when the certificate
	// expires within it (default 30 days).
	ExpiryWarning time.Duration
	// ExpiryLeads are the lead times before notAfter at which a running
	// Signer logs a warning, once each (default DefaultExpiryLeads).
	ExpiryLeads []time.Duration
	// AnyOrigID signs a caller's origid even when it is not a UUID. RFC 8588
	// wants a UUID and a strict verifier refuses anything else; only the
	// libsecsipid drop-in sets this, because libsecsipid signed whatever its
	// callers passed and existing Kamailio configs rely on it.
	AnyOrigID bool
	// RCDFetch fetches the content behind rich call data URLs (icn, jcl)
	// to compute their rcdi digests (RFC 9795): the x5u URL policy, limits
	// and preloads apply. Zero value: x5u defaults.
	RCDFetch x5u.Options[*certs.Credential]
	Now      func() time.Time
	Logger   *slog.Logger
}

// Signer is the STI-AS. Safe for concurrent use. It is the tenant router:
// every surface signs through it, so every surface signs each customer's
// calls with that customer's tenant's credential.
type Signer struct {
	opts    SignerOptions
	tenants []*tenant // the default first, when there is one
	byName  map[string]*tenant
	// content caches the digests of rcd content (RFC 9795 rcdi).
	content *x5u.Cache[string]
	leads   []time.Duration // ExpiryLeads, largest first
}

// NewSigner validates opts and builds a Signer.
func NewSigner(opts SignerOptions) (*Signer, error) {
	if opts.DateWindow <= 0 {
		opts.DateWindow = 60 * time.Second
	}
	if opts.ExpiryWarning <= 0 {
		opts.ExpiryWarning = 30 * 24 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Signer{opts: opts, leads: sortLeads(opts.ExpiryLeads)}
	if err := s.buildTenants(opts); err != nil {
		return nil, err
	}
	rf := opts.RCDFetch
	if rf.Now == nil {
		rf.Now = opts.Now
	}
	if rf.Logger == nil {
		rf.Logger = opts.Logger
	}
	var err error
	if s.content, err = newContentCache(rf); err != nil {
		return nil, stir.ErrSignCertInvalid.With("rcd fetch options", err)
	}
	now := opts.Now()
	for _, t := range s.tenants {
		for _, cr := range []*credential{t.cur, t.next} {
			if cr == nil {
				continue
			}
			cr.expLevel.Store(s.crossed(cr, now))
			c := cr.c
			switch {
			case cr == t.cur && t.next != nil && !now.Before(t.activate):
				// Replaced already: its expiry no longer matters.
			case now.After(c.NotAfter):
				opts.Logger.Error("signing certificate has expired", "tenant", t.name, "not_after", c.NotAfter, "spc", c.SPC)
			case c.NotAfter.Sub(now) < opts.ExpiryWarning:
				opts.Logger.Warn("signing certificate expires soon", "tenant", t.name, "not_after", c.NotAfter,
					"days", int(c.NotAfter.Sub(now).Hours()/24), "spc", c.SPC)
			}
		}
	}
	return s, nil
}

// X5U returns the certificate URL the default tenant writes into tokens
// now ("" without a default tenant).
func (s *Signer) X5U() string {
	if t := s.defaultTenant(); t != nil {
		return t.at(s.opts.Now()).x5u
	}
	return ""
}

// Credential returns the default tenant's signing credential now (for
// publishing the chain and reporting its expiry), nil without a default
// tenant. Tenants lists them all.
func (s *Signer) Credential() *certs.SigningCredential {
	if t := s.defaultTenant(); t != nil {
		return t.at(s.opts.Now()).c
	}
	return nil
}

// Sign signs one call. Failures are *stir.Error values with a Signing-side
// name (sign_input_invalid, sign_date_out_of_window, sign_not_allowed, ...),
// found by stir.As / errors.As and matched by errors.Is. A call refused
// after it was attributed to a customer or tenant (an expired tenant
// certificate, a tenant not configured, a stale Date from a known
// customer) returns a *SignError wrapping that *stir.Error and naming
// whom the signature was for, so that the refusal is recorded like a
// signature (outcome.Outcome.SetRefused). The result is always nil with
// an error: nothing half-signed leaves the Signer.
func (s *Signer) Sign(ctx context.Context, req SignRequest) (*SignResult, error) {
	var who SignError
	res, err := s.sign(ctx, req, &who)
	if err != nil {
		return nil, who.wrap(err)
	}
	return res, nil
}

func (s *Signer) sign(ctx context.Context, req SignRequest, who *SignError) (*SignResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, stir.ErrInternal.With("context", err)
	}
	orig, dest, nerr := s.numbers(req)
	// The attribution does not need the numbers (a customer is known by
	// name or source): a refused call is recorded against it all the same.
	dec, derr := s.attestation(req, orig)
	who.attribute(dec, derr)
	if nerr != nil {
		// Which rule would have decided depends on the calling number.
		who.Rule = ""
		return nil, nerr
	}
	now := req.At
	if now.IsZero() {
		now = s.opts.Now()
	}
	iat := now
	date := ""
	if req.Date != "" {
		d, err := http.ParseTime(req.Date)
		if err != nil {
			return nil, stir.ErrSignDate.With("Date header", err)
		}
		// A Date has whole seconds; so has the clock it is judged by.
		if absDur(now.Truncate(time.Second).Sub(d)) > s.opts.DateWindow {
			return nil, stir.ErrSignDate.Withf("Date %s is %s from now, window %s", req.Date, now.Sub(d).Round(time.Second), s.opts.DateWindow)
		}
		iat, date = d, req.Date
	} else {
		date = FormatDate(now)
	}
	if derr != nil {
		return nil, derr
	}
	t, err := s.tenantFor(dec.tenant)
	if err != nil {
		return nil, err
	}
	// The signing time picks the credential: every process switches to a
	// tenant's next one at the same instant.
	cr := t.at(now)
	who.SPC = cr.c.SPC
	if err := s.canSign(t, cr, iat); err != nil {
		return nil, err
	}
	if err := mayVouchFor(cr, orig); err != nil {
		return nil, err
	}
	s.noteExpiry(t, cr, now)

	attest, origid := dec.attest, dec.origid
	if origid == "" {
		origid = t.origid
	}
	if origid == "" {
		origid = newOrigID(req.CallID)
	} else if !s.opts.AnyOrigID && !validUUID(origid) {
		return nil, stir.ErrSignInput.Withf("origid %q is not a UUID (RFC 8588)", origid)
	}

	claims := passport.Claims{Attest: attest, Dest: dest, IAT: iat.Unix(), Orig: orig, OrigID: origid}
	if err := s.addRCD(ctx, &claims, req); err != nil {
		return nil, err
	}
	tok, err := passport.Sign(cr.header, claims, cr.c.Key)
	if err != nil {
		return nil, err
	}
	return &SignResult{
		Identity: identity.Format(tok, cr.x5u),
		Date:     date,
		Attest:   attest,
		OrigID:   origid,
		Orig:     orig,
		Dest:     passport.CanonicalDest(dest),
		IAT:      claims.IAT,
		X5U:      cr.x5u,
		Customer: dec.customer,
		Client:   req.Client,
		Why:      dec.why,
		Rule:     dec.rule,
		Tenant:   t.name,
		SPC:      cr.c.SPC,
	}, nil
}

// mayVouchFor refuses a number a delegate certificate (RFC 9060) does not
// list: every verifier would refuse the PASSporT (cert_tn_out_of_scope).
func mayVouchFor(cr *credential, tn string) error {
	if t := cr.c.TNAuth; t.IsDelegate() && !t.Covers(tn) {
		return stir.ErrSignNotAllowed.Withf("%s is outside the delegate certificate's TNAuthList", tn)
	}
	return nil
}

// decision is what attestation decides for one call.
type decision struct {
	attest   stir.Attestation
	origid   string
	customer string
	tenant   string // "" is the default tenant
	why      string // human text
	rule     string // policy.Rule*
}

// attestation decides the attest claim (and the policy's origid). The
// policy is the authority: a requested level may only lower what it
// grants, unless the customer is allowed to choose (AttestOverride) or
// the request is Trusted. A request the policy refuses is refused whatever
// it asks for. A higher level than granted is lowered to the grant, not
// refused: the call is still signed with what the operator can vouch for,
// and SignResult.Attest says which level was used.
func (s *Signer) attestation(req SignRequest, orig string) (decision, error) {
	out := decision{attest: req.Attest, origid: req.OrigID}
	var attestErr error
	if out.attest != "" {
		if _, err := stir.ParseAttestation(string(out.attest)); err != nil {
			attestErr = stir.ErrSignInput.With("attest", err)
		}
	}
	if s.opts.Policy == nil {
		// No policy: the embedding program decides, as documented on
		// SignerOptions.Policy. Every config-built signer has a policy.
		if attestErr != nil {
			return decision{}, attestErr
		}
		if out.attest == "" {
			return decision{}, stir.ErrSignNotAllowed.Withf("no attestation given and no policy configured")
		}
		out.why, out.rule = "requested, no policy", policy.RuleTrustedCaller
		return out, nil
	}
	d, perr := s.opts.Policy.Decide(policy.Input{Customer: req.Customer, Source: req.Source, Orig: orig})
	if out.origid == "" {
		out.origid = d.OrigID
	}
	out.customer, out.tenant = d.Customer, d.Tenant
	if attestErr != nil {
		// Attributed (SignError), but refused.
		return decision{customer: d.Customer, tenant: d.Tenant, rule: d.Rule}, attestErr
	}
	switch {
	case req.Trusted && out.attest != "":
		out.why, out.rule = "chosen by the local caller", policy.RuleTrustedCaller
	case perr != nil:
		return decision{}, perr
	case out.attest == "":
		out.attest, out.why, out.rule = d.Attest, d.Why, d.Rule
	case d.Override:
		out.why, out.rule = "chosen by customer "+d.Customer+" (attest_override)", policy.RuleOverride
	case out.attest == d.Attest:
		out.why, out.rule = "requested, policy grants "+string(d.Attest), d.Rule
	case rank(out.attest) < rank(d.Attest):
		out.why, out.rule = "requested, policy grants "+string(d.Attest), policy.RuleRequestedLower
	default:
		out.why = "requested " + string(out.attest) + ", lowered to the policy's " + string(d.Attest) + ": " + d.Why
		out.attest, out.rule = d.Attest, d.Rule
	}
	return out, nil
}

// rank orders attestation levels: A vouches for the most.
func rank(a stir.Attestation) int {
	switch a {
	case stir.AttestFull:
		return 3
	case stir.AttestPartial:
		return 2
	case stir.AttestGateway:
		return 1
	}
	return 0
}

func (s *Signer) numbers(req SignRequest) (string, []string, error) {
	var orig string
	var err error
	switch {
	case req.Orig != "":
		orig, err = tn.Canonical(req.Orig, s.opts.Numbers)
	case req.PAI != "":
		orig, err = tn.FromHeader(req.PAI, s.opts.Numbers)
	case req.From != "":
		orig, err = tn.FromHeader(req.From, s.opts.Numbers)
	default:
		return "", nil, stir.ErrSignInput.Withf("no calling number (orig, P-Asserted-Identity or From)")
	}
	if err != nil {
		return "", nil, stir.ErrSignInput.With("calling number", err)
	}
	var dest []string
	switch {
	case len(req.Dest) > 0:
		for _, d := range req.Dest {
			c, err := tn.Canonical(d, s.opts.Numbers)
			if err != nil {
				return "", nil, stir.ErrSignInput.With("called number", err)
			}
			dest = append(dest, c)
		}
	case req.To != "":
		c, err := tn.FromHeader(req.To, s.opts.Numbers)
		if err != nil {
			return "", nil, stir.ErrSignInput.With("called number", err)
		}
		dest = []string{c}
	default:
		return "", nil, stir.ErrSignInput.Withf("no called number (dest or To)")
	}
	return orig, dest, nil
}

// FormatDate formats t as a SIP Date header value (RFC 3261 §20.17, the
// RFC 1123 form in GMT).
func FormatDate(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

// absDur is |d|. time.Time.Sub saturates a span beyond ±292 years to the
// minimum Duration, whose negation overflows back to itself: that case
// must read as "very far", not as a negative distance inside any window.
func absDur(d time.Duration) time.Duration {
	switch {
	case d == math.MinInt64:
		return math.MaxInt64
	case d < 0:
		return -d
	}
	return d
}

// origidNamespace makes name-based origids distinct from any other UUIDv5
// use of the same Call-ID.
var origidNamespace = [16]byte{0x6f, 0x72, 0x69, 0x67, 0x69, 0x64, 0x2e, 0x73, 0x74, 0x69, 0x72, 0x67, 0x61, 0x74, 0x65, 0x00}

// newOrigID returns a UUIDv5 of callID when there is one, so that retries of
// one call carry the same origid, and a random UUIDv4 otherwise.
func newOrigID(callID string) string {
	var u [16]byte
	if callID != "" {
		h := sha1.New()
		h.Write(origidNamespace[:])
		h.Write([]byte(callID))
		copy(u[:], h.Sum(nil))
		u[6] = u[6]&0x0f | 0x50
	} else {
		_, _ = rand.Read(u[:])
		u[6] = u[6]&0x0f | 0x40
	}
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
