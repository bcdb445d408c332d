package core

import (
	"context"
	"encoding/json"
	"time"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/passport"
	"github.com/stirgate/stirgate/core/policy"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/core/x5u"
)

// newContentCache builds the cache of rcd content digests from the x5u
// options: the same URL policy, timeouts, body cap and preloads (house
// reading R1), but no disk cache, whose files are certificate chains.
func newContentCache(f x5u.Options[*certs.Credential]) (*x5u.Cache[string], error) {
	return x5u.New(x5u.Options[string]{
		Policy: f.Policy, Resolver: f.Resolver, RootCAs: f.RootCAs, Timeout: f.Timeout, MaxBody: f.MaxBody,
		MinTTL: f.MinTTL, MaxTTL: f.MaxTTL, DefaultTTL: f.DefaultTTL, NegativeTTL: f.NegativeTTL,
		MaxEntries: f.MaxEntries, Preload: f.Preload, PreloadBytes: f.PreloadBytes, Offline: f.Offline,
		Now: f.Now, Logger: f.Logger,
		Validate: func(_ context.Context, _ string, body []byte) (string, time.Time, error) {
			// Content has no expiry of its own: the HTTP lifetime rules.
			return passport.Digest(body), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), nil
		},
	})
}

// checkRCD verifies the rcdi digests of a SHAKEN PASSporT's rich call data
// (RFC 9795 §6, conformance §6 R1) and returns what the result exposes.
// Every digest must name an element of rcd and match its content: inline
// jCard JSON canonicalised, URL content as fetched. When rcdi is present,
// every URL- or jCard-carried element must have a digest.
func (v *Verifier) checkRCD(ctx context.Context, tok *passport.Token) (*stir.RCD, error) {
	c := tok.Claims
	if c.RCD == nil && c.Crn == "" {
		return nil, nil
	}
	out := &stir.RCD{Crn: c.Crn}
	if c.RCD == nil {
		return out, nil
	}
	r := c.RCD
	out.Nam, out.Jcl, out.Icn = r.Nam, r.Jcl, r.Icn
	if r.Jcd != "" {
		out.Jcd = json.RawMessage(r.Jcd)
	}
	if c.RCDI == nil {
		return out, nil
	}
	elems := [...]struct{ ptr, val string }{{"/icn", r.Icn}, {"/jcl", r.Jcl}, {"/jcd", r.Jcd}}
	element := func(ptr string) string {
		for _, e := range elems {
			if e.ptr == ptr {
				return e.val
			}
		}
		return ""
	}
	for _, e := range elems {
		if e.val != "" && c.RCDI[e.ptr] == "" {
			return nil, stir.ErrRCDIMismatch.Withf("rcdi has no digest for %s", e.ptr)
		}
	}
	for ptr, want := range c.RCDI {
		val := element(ptr)
		if val == "" {
			return nil, stir.ErrRCDIMismatch.Withf("rcdi names %.32q, which rcd does not carry", ptr)
		}
		var got string
		if ptr == "/jcd" {
			got = passport.Digest([]byte(val))
		} else {
			var err error
			if got, err = v.content.Get(ctx, val); err != nil {
				return nil, stir.ErrRCDIMismatch.With("rcd content "+ptr, err)
			}
		}
		if got != want {
			return nil, stir.ErrRCDIMismatch.Withf("rcdi %s: content digest %s, claimed %.64s", ptr, got, want)
		}
	}
	out.Integrity = true
	return out, nil
}

// addRCD puts the call's rich call data into claims: the request's, else
// its calling number's or customer's from policy, with an rcdi digest for the inline jCard and
// for the content behind every URL, fetched (and cached) under the x5u
// rules. Content that cannot be fetched fails the signature: a PASSporT
// whose rcdi no verifier can match would fail everywhere.
func (s *Signer) addRCD(ctx context.Context, claims *passport.Claims, req SignRequest) error {
	claims.Crn = req.Crn
	r := req.RCD
	if r == nil && s.opts.Policy != nil {
		// Per calling number first (claims.Orig is canonical by now), then
		// the customer's; the policy's crn is the default call reason.
		if p := s.opts.Policy.RCDFor(policy.Input{Customer: req.Customer, Source: req.Source, Orig: claims.Orig}); p != nil {
			r = &RCD{Nam: p.Nam, Icn: p.Icn, Jcl: p.Jcl, Jcd: p.Jcd}
			if claims.Crn == "" {
				claims.Crn = p.Crn
			}
		}
	}
	if r == nil {
		return nil
	}
	rc := *r
	if rc.Nam == "" {
		return stir.ErrSignInput.Withf("rcd without nam (RFC 9795)")
	}
	if rc.Jcd != "" && rc.Jcl != "" {
		return stir.ErrSignInput.Withf("rcd with both jcd and jcl")
	}
	rcdi := map[string]string{}
	if rc.Jcd != "" {
		canon, err := passport.CanonicalJSON([]byte(rc.Jcd))
		if err != nil || canon[0] != '[' {
			return stir.ErrSignInput.Withf("rcd jcd is not a jCard JSON array")
		}
		rc.Jcd = string(canon)
		rcdi["/jcd"] = passport.Digest(canon)
	}
	for ptr, u := range map[string]string{"/icn": rc.Icn, "/jcl": rc.Jcl} {
		if u == "" {
			continue
		}
		d, err := s.content.Get(ctx, u)
		if err != nil {
			return stir.ErrSignInput.With("rcd "+ptr+" content for rcdi", err)
		}
		rcdi[ptr] = d
	}
	claims.RCD = &rc
	if len(rcdi) > 0 {
		claims.RCDI = rcdi
	}
	return nil
}
