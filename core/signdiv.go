package core

import (
	"context"
	"strings"

	"github.com/stirgate/stirgate/core/identity"
	"github.com/stirgate/stirgate/core/passport"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/core/tn"
)

// maxHI bounds a History-Info index ("1.1.2"): it is copied into a claim.
const maxHI = 32

// SignDiv signs the diversion of a call that already carries a SHAKEN
// PASSporT (RFC 8946 §3, ATIS-1000085): a ppt=div PASSporT whose orig is
// the received one, dest the new target and div the diverting number. The
// result's Identity is to be added beside the received headers.
//
// The received PASSporTs are decoded, not verified: a diverting network
// vouches for its own retargeting, and the terminating verifier judges the
// whole chain. Attestation does not apply: a div PASSporT carries none.
func (s *Signer) SignDiv(ctx context.Context, req DivRequest) (*SignResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, stir.ErrInternal.With("context", err)
	}
	root, last, err := receivedChain(req.Identity)
	if err != nil {
		return nil, err
	}

	div := req.Div
	switch {
	case div == "" && len(last.Dest) == 1:
		div = last.Dest[0]
	case div == "":
		return nil, stir.ErrSignInput.Withf("no diverting number, and the received dest.tn %v does not name one", last.Dest)
	default:
		if div, err = s.anyNumber(div); err != nil {
			return nil, stir.ErrSignInput.With("diverting number", err)
		}
	}
	if len(req.HI) > maxHI || strings.ContainsAny(req.HI, "\"\\\x00") {
		return nil, stir.ErrSignInput.Withf("History-Info index %q", req.HI)
	}

	var dest []string
	switch {
	case len(req.Dest) > 0:
		for _, d := range req.Dest {
			c, err := s.anyNumber(d)
			if err != nil {
				return nil, stir.ErrSignInput.With("new target", err)
			}
			dest = append(dest, c)
		}
	case req.Target != "":
		c, err := tn.FromHeader(req.Target, s.opts.Numbers)
		if err != nil {
			return nil, stir.ErrSignInput.With("new target", err)
		}
		dest = []string{c}
	default:
		return nil, stir.ErrSignInput.Withf("no new target (dest or Request-URI)")
	}
	if len(dest) == 1 && dest[0] == div {
		return nil, stir.ErrSignInput.Withf("new target %s is the diverting number", div)
	}

	now := req.At
	if now.IsZero() {
		now = s.opts.Now()
	}
	// A diversion is the diverting network's own statement, signed with
	// the default tenant's credential (its customer's tenant when named).
	who := SignError{Tenant: s.opts.Policy.TenantOf(req.Customer), Customer: req.Customer}
	t, err := s.tenantFor(who.Tenant)
	if who.Tenant == "" {
		who.Tenant = DefaultTenant
	}
	if err != nil {
		return nil, who.wrap(err)
	}
	cr := t.at(now)
	who.SPC = cr.c.SPC
	if err := s.canSign(t, cr, now); err != nil {
		return nil, who.wrap(err)
	}
	if err := mayVouchFor(cr, div); err != nil {
		return nil, who.wrap(err)
	}
	claims := passport.Claims{Dest: dest, IAT: now.Unix(), Orig: root.Orig, Div: div, HI: req.HI}
	tok, err := passport.Sign(cr.divHeader, claims, cr.c.Key)
	if err != nil {
		return nil, who.wrap(err)
	}
	return &SignResult{
		Identity: identity.FormatPpt(tok, cr.x5u, passport.PptDiv),
		Orig:     root.Orig,
		Dest:     passport.CanonicalDest(dest),
		IAT:      claims.IAT,
		X5U:      cr.x5u,
		Div:      div,
		HI:       req.HI,
		Tenant:   t.name,
		SPC:      cr.c.SPC,
	}, nil
}

// anyNumber canonicalises a bare number or the URI of a header value.
func (s *Signer) anyNumber(v string) (string, error) { return anyNumber(v, s.opts.Numbers) }

func anyNumber(v string, r tn.Rules) (string, error) {
	if strings.ContainsAny(v, ":<") {
		return tn.FromHeader(v, r)
	}
	return tn.Canonical(v, r)
}

// receivedChain decodes the received Identity headers and returns the
// SHAKEN claims and those of the chain's last link (the SHAKEN one when
// the call was not diverted before).
func receivedChain(values []string) (root, last *passport.Claims, err error) {
	hdrs, _, err := identity.Collect(values, identity.Limits{})
	if err != nil {
		return nil, nil, stir.ErrSignInput.With("received Identity headers", err)
	}
	var divs []*passport.Claims
	for _, h := range hdrs {
		switch {
		case h.IsShaken() && root == nil:
			if tok, err := passport.Parse(h.Token); err == nil {
				root = &tok.Claims
			}
		case h.IsDiv():
			if tok, err := passport.ParseAs(h.Token, passport.PptDiv); err == nil {
				divs = append(divs, &tok.Claims)
			}
		}
	}
	if root == nil {
		return nil, nil, stir.ErrSignInput.Withf("no SHAKEN PASSporT received: a diversion has nothing to extend")
	}
	// Follow earlier diversions so that a second one names the right
	// default diverting number; headers may arrive in any order.
	last = root
	used := make([]bool, len(divs))
	for progress := true; progress; {
		progress = false
		for i, d := range divs {
			if !used[i] && contains(last.Dest, d.Div) {
				used[i], last, progress = true, d, true
			}
		}
	}
	return root, last, nil
}
