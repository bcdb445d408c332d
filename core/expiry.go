package core

import (
	"slices"
	"time"
)

// DefaultExpiryLeads are the lead times of SignerOptions.ExpiryLeads.
var DefaultExpiryLeads = []time.Duration{720 * time.Hour, 168 * time.Hour, 24 * time.Hour}

// Expiry is the signing credential's state at one instant.
type Expiry struct {
	NotBefore, NotAfter time.Time     // of the credential (earliest notAfter on its chain)
	CanSign             bool          // the instant is within [NotBefore, NotAfter]
	Left                time.Duration // until NotAfter (negative once expired)
	// Lead is the smallest configured lead time already crossed (0: none):
	// with the default leads, 24h means "expires within a day".
	Lead time.Duration
	// Last is true when Lead is the smallest configured lead time: the
	// last warning before the credential stops signing.
	Last bool
}

// Expiry reports the state at now of the credential the default tenant
// (else the first tenant) signs with, and logs a lead time crossed since
// the last look (see noteExpiry). TenantExpiry reports every tenant.
func (s *Signer) Expiry(now time.Time) Expiry {
	t := s.tenants[0]
	cr := t.at(now)
	e := s.expiryAt(cr, now)
	s.noteExpiry(t, cr, now)
	return e
}

// TenantExpiry is one tenant's Expiry.
type TenantExpiry struct {
	Tenant string
	SPC    string
	X5U    string
	Expiry
}

// TenantExpiry reports, per tenant (in Tenants order), the state at now of
// the credential it signs with then, and logs lead times crossed.
func (s *Signer) TenantExpiry(now time.Time) []TenantExpiry {
	out := make([]TenantExpiry, len(s.tenants))
	for i, t := range s.tenants {
		cr := t.at(now)
		out[i] = TenantExpiry{Tenant: t.name, SPC: cr.c.SPC, X5U: cr.x5u, Expiry: s.expiryAt(cr, now)}
		s.noteExpiry(t, cr, now)
	}
	return out
}

func (s *Signer) expiryAt(cr *credential, now time.Time) Expiry {
	c := cr.c
	e := Expiry{NotBefore: c.NotBefore, NotAfter: c.NotAfter, Left: c.NotAfter.Sub(now)}
	e.CanSign = !now.Before(c.NotBefore) && !now.After(c.NotAfter)
	if n := s.crossed(cr, now); n > 0 {
		e.Lead = s.leads[n-1]
		e.Last = int(n) == len(s.leads)
	}
	return e
}

// sortLeads returns the lead times, largest first, without duplicates or
// non-positive values.
func sortLeads(leads []time.Duration) []time.Duration {
	if len(leads) == 0 {
		leads = DefaultExpiryLeads
	}
	out := make([]time.Duration, 0, len(leads))
	for _, l := range leads {
		if l > 0 {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	slices.Reverse(out)
	return slices.Compact(out)
}

// crossed counts the lead times already crossed at now (leads are sorted
// largest first, so they are crossed in order).
func (s *Signer) crossed(cr *credential, now time.Time) int32 {
	left := cr.c.NotAfter.Sub(now)
	n := int32(0)
	for _, l := range s.leads {
		if left <= l {
			n++
		}
	}
	return n
}

// noteExpiry logs each lead time once, when it is first seen crossed: it
// runs on every signature and every readiness or metrics look, so a
// long-running process warns at 30 days, 7 days and 1 day without a timer.
// A lead already crossed when the Signer was built is not logged again
// (NewSigner's own warning covers it); a reload builds a new Signer.
func (s *Signer) noteExpiry(t *tenant, cr *credential, now time.Time) {
	n := s.crossed(cr, now)
	for {
		old := cr.expLevel.Load()
		if n <= old {
			return
		}
		if cr.expLevel.CompareAndSwap(old, n) {
			c := cr.c
			s.opts.Logger.Warn("signing certificate expiry lead time crossed", "tenant", t.name, "lead", s.leads[n-1],
				"not_after", c.NotAfter, "left", c.NotAfter.Sub(now).Round(time.Minute), "spc", c.SPC)
			return
		}
	}
}
