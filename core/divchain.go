package core

import (
	"github.com/stirgate/stirgate/core/identity"
	"github.com/stirgate/stirgate/core/passport"
	"github.com/stirgate/stirgate/core/stir"
)

// divLink is one diversion PASSporT (RFC 8946) with the header it came in.
type divLink struct {
	hdr *identity.Header
	tok *passport.Token
}

// divSet holds the ppt=div PASSporTs of one request, decoded but not yet
// ordered or verified. Identity headers are unordered (conformance §6 D1),
// so the chain is built from the claims, not from the arrival order.
type divSet struct {
	links []divLink
	err   error // the first div header that did not decode
}

// It returns nil when no div header decodes: such headers cannot take part
// in a chain, so the call is judged as if they were absent, as any other
// header that is not ours.
func (v *Verifier) parseDivs(hdrs []*identity.Header) *divSet {
	d := &divSet{}
	for _, h := range hdrs {
		tok, err := parseToken(h, passport.PptDiv)
		if err != nil {
			if d.err == nil {
				d.err = err
			}
			continue
		}
		d.links = append(d.links, divLink{hdr: h, tok: tok})
	}
	if len(d.links) == 0 {
		return nil
	}
	return d
}

// chain orders the div PASSporTs after root (conformance §6 D3): each
// div.tn is a dest of the link before it, orig never changes, every div
// PASSporT of the request takes part, and the last dest names target. A
// div header that did not decode breaks the chain with its own error: a
// diversion nobody can read cannot be vouched for.
func (d *divSet) chain(root *passport.Token, target string) ([]divLink, error) {
	if d.err != nil {
		return nil, d.err
	}
	used := make([]bool, len(d.links))
	out := make([]divLink, 0, len(d.links))
	cur := root
	for len(out) < len(d.links) {
		next := -1
		for i, l := range d.links {
			if !used[i] && contains(cur.Claims.Dest, l.tok.Claims.Div) {
				next = i
				break
			}
		}
		if next < 0 {
			return nil, stir.ErrDivChainBroken.Withf("no div PASSporT diverts from dest.tn %v; %d of %d unlinked",
				cur.Claims.Dest, len(d.links)-len(out), len(d.links))
		}
		l := d.links[next]
		if l.tok.Claims.Orig != root.Claims.Orig {
			return nil, stir.ErrDivOrigMismatch.Withf("div orig.tn %s, SHAKEN orig.tn %s", l.tok.Claims.Orig, root.Claims.Orig)
		}
		used[next] = true
		out = append(out, l)
		cur = l.tok
	}
	if !contains(cur.Claims.Dest, target) {
		return nil, stir.ErrDestMismatch.Withf("call target %s not in the last div dest.tn %v", target, cur.Claims.Dest)
	}
	return out, nil
}
