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

// Expiry reports the credential's state at now and logs a lead time
// crossed since the last look (see noteExpiry).
func (s *Signer) Expiry(now time.Time) Expiry {
	e := s.expiryAt(now)
	s.noteExpiry(now)
	return e
}

func (s *Signer) expiryAt(now time.Time) Expiry {
	c := s.opts.Credential
	e := Expiry{NotBefore: c.NotBefore, NotAfter: c.NotAfter, Left: c.NotAfter.Sub(now)}
	e.CanSign = !now.Before(c.NotBefore) && !now.After(c.NotAfter)
	if n := s.crossed(now); n > 0 {
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
func (s *Signer) crossed(now time.Time) int32 {
	left := s.opts.Credential.NotAfter.Sub(now)
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
func (s *Signer) noteExpiry(now time.Time) {
	n := s.crossed(now)
	for {
		old := s.expLevel.Load()
		if n <= old {
			return
		}
		if s.expLevel.CompareAndSwap(old, n) {
			c := s.opts.Credential
			s.opts.Logger.Warn("signing certificate expiry lead time crossed", "lead", s.leads[n-1],
				"not_after", c.NotAfter, "left", c.NotAfter.Sub(now).Round(time.Minute), "spc", c.SPC)
			return
		}
	}
}
