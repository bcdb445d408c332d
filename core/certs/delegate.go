package certs

import (
	"crypto/x509"
	"encoding/asn1"
	"math/big"
	"slices"
	"unicode/utf8"

	"github.com/stirgate/stirgate/core/stir"
)

// Delegate certificates (RFC 9060, ATIS-1000092): an end-entity
// certificate whose TNAuthList names telephone numbers or ranges instead of
// a service provider code, issued under a certificate whose own TNAuthList
// encompasses them. Such a certificate vouches only for its numbers.

// IsDelegate reports whether l names numbers and no SPC.
func (l TNAuthList) IsDelegate() bool { return len(l) > 0 && l.spcCount() == 0 }

// Covers reports whether l vouches for the claim TN tn: any SPC entry
// covers every number (the SHAKEN reading: the SP attests its own
// customers); otherwise tn must be one of the TNs or inside a range. A
// range covers the numbers of the same length from Start to
// Start+Count-1 (RFC 8226 §9: the count is of consecutive numbers).
func (l TNAuthList) Covers(tn string) bool {
	for _, e := range l {
		switch {
		case e.SPC != "":
			return true
		case e.TN != "":
			if e.TN == tn {
				return true
			}
		case e.Range != nil:
			if inRange(*e.Range, tn) {
				return true
			}
		}
	}
	return false
}

// inRange compares as decimal integers of equal length, so that a range
// never spills into numbers with more or fewer digits.
func inRange(r TNRange, tn string) bool {
	if len(tn) != len(r.Start) || !allDigits(tn) || !allDigits(r.Start) {
		return false
	}
	n, _ := new(big.Int).SetString(tn, 10)
	lo, _ := new(big.Int).SetString(r.Start, 10)
	if n.Cmp(lo) < 0 {
		return false
	}
	hi := new(big.Int).Add(lo, big.NewInt(int64(r.Count)))
	return n.Cmp(hi) < 0
}

// rangeWithin reports whether every number of r lies in one entry of l.
func (l TNAuthList) rangeWithin(r TNRange) bool {
	last := new(big.Int).Add(mustInt(r.Start), big.NewInt(int64(r.Count-1))).String()
	if len(last) != len(r.Start) {
		return false
	}
	for _, e := range l {
		switch {
		case e.Range != nil:
			if inRange(*e.Range, r.Start) && inRange(*e.Range, last) {
				return true
			}
		case e.TN != "":
			if r.Count == 1 && e.TN == r.Start {
				return true
			}
		}
	}
	return false
}

func mustInt(s string) *big.Int {
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return new(big.Int)
	}
	return n
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Encompasses reports whether parent's TNAuthList covers every entry of
// child's (RFC 9060 §5): an SPC-only parent may delegate any number (it
// holds the SPC's numbering resources); an SPC in the child must be in the
// parent; TNs and ranges must lie inside the parent's TNs and ranges.
func (l TNAuthList) Encompasses(child TNAuthList) bool {
	parentSPC := l.spcCount() > 0
	for _, e := range child {
		switch {
		case e.SPC != "":
			found := false
			for _, p := range l {
				if p.SPC == e.SPC {
					found = true
				}
			}
			if !found {
				return false
			}
		case parentSPC:
		case e.TN != "":
			if !l.Covers(e.TN) {
				return false
			}
		case e.Range != nil:
			if !l.rangeWithin(*e.Range) {
				return false
			}
		}
	}
	return true
}

// checkDelegation walks a verified path (leaf first) and requires each
// certificate's TNAuthList to be encompassed by its issuer's (conformance
// §6 C1). A certificate without a TNAuthList (an STI-CA) constrains
// nothing; but the issuer of a delegate certificate must carry one, or
// anyone's STI-CA could hand out numbers.
func checkDelegation(chain []*x509.Certificate) error {
	for i := 0; i+1 < len(chain); i++ {
		child, issuer := chain[i], chain[i+1]
		ctna, err := optionalTNAuthList(child)
		if err != nil {
			return err
		}
		if ctna == nil {
			continue
		}
		itna, err := optionalTNAuthList(issuer)
		if err != nil {
			return err
		}
		if itna == nil {
			if ctna.IsDelegate() {
				return stir.ErrCertTNScope.Withf("delegate certificate %q: issuer %q carries no TNAuthList", child.Subject.CommonName, issuer.Subject.CommonName)
			}
			continue
		}
		if !itna.Encompasses(ctna) {
			return stir.ErrCertTNScope.Withf("TNAuthList of %q is not encompassed by its issuer %q", child.Subject.CommonName, issuer.Subject.CommonName)
		}
	}
	return nil
}

func optionalTNAuthList(c *x509.Certificate) (TNAuthList, error) {
	for _, e := range c.Extensions {
		if e.Id.Equal(OIDTNAuthList) {
			return ParseTNAuthList(e.Value)
		}
	}
	return nil, nil
}

// JWT claim constraints (RFC 8226 §8, RFC 9118).
var (
	OIDJWTClaimConstraints  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 27}
	OIDEJWTClaimConstraints = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 33}
)

// maxConstraintBytes bounds what the constraint decoder looks at.
const maxConstraintBytes = 4096

// ClaimConstraints are the JWT claim constraints of a STIR certificate:
// claims that must be present, values a present claim may take, and claims
// that must be absent (the last only in the enhanced form of RFC 9118).
type ClaimConstraints struct {
	MustInclude     []string
	PermittedValues []PermittedValues
	MustExclude     []string
}

// PermittedValues lists the values one claim may take.
type PermittedValues struct {
	Claim  string
	Values []string
}

type asnClaimValues struct {
	Claim  string
	Values []string
}

type asnConstraints struct {
	MustInclude     []string         `asn1:"optional,explicit,tag:0"`
	PermittedValues []asnClaimValues `asn1:"optional,explicit,tag:1"`
	MustExclude     []string         `asn1:"optional,explicit,tag:2"`
}

// ParseClaimConstraints decodes a JWTClaimConstraints or
// EnhancedJWTClaimConstraints extension value (EXPLICIT tags, DER).
// enhanced admits mustExclude. Errors are stir.ErrCertProfile.
func ParseClaimConstraints(der []byte, enhanced bool) (*ClaimConstraints, error) {
	if len(der) > maxConstraintBytes {
		return nil, stir.ErrCertProfile.Withf("claim constraints: %d bytes exceeds %d", len(der), maxConstraintBytes)
	}
	var a asnConstraints
	rest, err := asn1.Unmarshal(der, &a)
	if err != nil {
		return nil, stir.ErrCertProfile.With("claim constraints", err)
	}
	if len(rest) != 0 {
		return nil, stir.ErrCertProfile.Withf("claim constraints: %d trailing bytes", len(rest))
	}
	if !enhanced && a.MustExclude != nil {
		return nil, stir.ErrCertProfile.Withf("claim constraints: mustExclude outside the enhanced extension")
	}
	if a.MustInclude == nil && a.PermittedValues == nil && a.MustExclude == nil {
		return nil, stir.ErrCertProfile.Withf("claim constraints: empty")
	}
	// Every list present is SIZE (1..MAX), and a claim name is never empty.
	for _, l := range [][]string{a.MustInclude, a.MustExclude} {
		if l != nil && len(l) == 0 || slices.ContainsFunc(l, func(n string) bool { return !validClaimName(n) }) {
			return nil, stir.ErrCertProfile.Withf("claim constraints: empty list or claim name that is not IA5 text")
		}
	}
	if a.PermittedValues != nil && len(a.PermittedValues) == 0 {
		return nil, stir.ErrCertProfile.Withf("claim constraints: empty permittedValues")
	}
	c := &ClaimConstraints{MustInclude: a.MustInclude, MustExclude: a.MustExclude}
	for _, p := range a.PermittedValues {
		if !validClaimName(p.Claim) || len(p.Values) == 0 || slices.ContainsFunc(p.Values, func(v string) bool { return !utf8.ValidString(v) }) {
			return nil, stir.ErrCertProfile.Withf("claim constraints: permittedValues for %.32q empty or not text", p.Claim)
		}
		c.PermittedValues = append(c.PermittedValues, PermittedValues(p))
	}
	return c, nil
}

// MarshalClaimConstraints encodes c as an EnhancedJWTClaimConstraints
// value (or a plain JWTClaimConstraints one when c has no MustExclude), with
// IA5String claim names and UTF8String values.
func MarshalClaimConstraints(c ClaimConstraints) []byte {
	names := func(ns []string) []byte {
		var b []byte
		for _, n := range ns {
			b = appendTLV(b, tagIA5String, []byte(n))
		}
		return appendTLV(nil, tagSequence, b)
	}
	var body []byte
	if len(c.MustInclude) > 0 {
		body = appendTLV(body, 0xa0, names(c.MustInclude))
	}
	if len(c.PermittedValues) > 0 {
		var list []byte
		for _, p := range c.PermittedValues {
			var vals []byte
			for _, v := range p.Values {
				vals = appendTLV(vals, 0x0c, []byte(v))
			}
			item := appendTLV(nil, tagIA5String, []byte(p.Claim))
			item = appendTLV(item, tagSequence, vals)
			list = appendTLV(list, tagSequence, item)
		}
		body = appendTLV(body, 0xa1, appendTLV(nil, tagSequence, list))
	}
	if len(c.MustExclude) > 0 {
		body = appendTLV(body, 0xa2, names(c.MustExclude))
	}
	return appendTLV(nil, tagSequence, body)
}

// validClaimName: a JWT claim name as an IA5String, printable and non-empty.
func validClaimName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		if n[i] < 0x20 || n[i] > 0x7e {
			return false
		}
	}
	return true
}

// ClaimConstraintsOf returns the claim constraints of cert (the enhanced
// extension when both are present: it carries everything the plain one
// does), or nil when it has none.
func ClaimConstraintsOf(cert *x509.Certificate) (*ClaimConstraints, error) {
	var plain []byte
	for _, e := range cert.Extensions {
		switch {
		case e.Id.Equal(OIDEJWTClaimConstraints):
			return ParseClaimConstraints(e.Value, true)
		case e.Id.Equal(OIDJWTClaimConstraints):
			plain = e.Value
		}
	}
	if plain == nil {
		return nil, nil
	}
	return ParseClaimConstraints(plain, false)
}

// Check judges a PASSporT's claims against c (conformance §6 C2). claim
// returns a claim's value (a string's contents, or canonical JSON) and
// whether it is present.
func (c *ClaimConstraints) Check(claim func(name string) (string, bool)) error {
	if c == nil {
		return nil
	}
	for _, n := range c.MustInclude {
		if _, ok := claim(n); !ok {
			return stir.ErrClaimConstraint.Withf("certificate requires claim %q", n)
		}
	}
	for _, p := range c.PermittedValues {
		v, ok := claim(p.Claim)
		if !ok {
			continue
		}
		allowed := false
		for _, w := range p.Values {
			if v == w {
				allowed = true
				break
			}
		}
		if !allowed {
			return stir.ErrClaimConstraint.Withf("claim %q value %.64q not permitted by the certificate", p.Claim, v)
		}
	}
	for _, n := range c.MustExclude {
		if _, ok := claim(n); ok {
			return stir.ErrClaimConstraint.Withf("certificate excludes claim %q", n)
		}
	}
	return nil
}
