// Package passport encodes and decodes SHAKEN PASSporTs (RFC 8225, RFC 8588).
//
// Encoding is deterministic: members in lexicographic order, no whitespace,
// an integer iat, dest.tn always an array. Decoding is strict and never takes
// the algorithm from the token: the only algorithm is ES256.
package passport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"math/big"
	"sort"
	"strconv"

	"github.com/golang-jwt/jwt/v5"

	"github.com/stirgate/stirgate/core/stir"
)

// Alg, Typ and Ppt are the only values a SHAKEN PASSporT may carry.
const (
	Alg = "ES256"
	Typ = "passport"
	Ppt = "shaken"
	// PptDiv marks a diversion PASSporT (RFC 8946 §3): the same JOSE
	// header with ppt "div", and claims orig, dest, iat and div.
	PptDiv = "div"
)

// MaxTokenBytes bounds what Parse looks at; the Identity layer has already
// bounded the whole header, this guards direct callers.
const MaxTokenBytes = 8192

// Claims are the SHAKEN claims of RFC 8588 §6.
type Claims struct {
	Attest stir.Attestation
	Dest   []string // dest.tn
	IAT    int64
	Orig   string // orig.tn
	OrigID string

	// Div is div.tn, the number that diverted the call, and HI the
	// History-Info index of the diversion (RFC 8946 §3, optional). Only a
	// ppt=div PASSporT carries them, and it carries no attest or origid.
	Div string
	HI  string

	// Rich call data (RFC 9795), optional, in a SHAKEN PASSporT: the rcd
	// claim, the call reason crn, and rcdi, JSON pointers into rcd ("/icn",
	// "/jcd", "/jcl") mapped to the Digest of the content they name.
	RCD  *RCD
	Crn  string
	RCDI map[string]string
}

// Header is the JOSE header of a SHAKEN PASSporT.
type Header struct {
	Alg string
	Ppt string
	Typ string
	X5U string
}

// Token is a decoded, not yet verified, PASSporT.
type Token struct {
	Header Header
	Claims Claims

	// SigningInput is "h.p" exactly as received: signatures are checked over
	// these bytes, never over a re-serialization.
	SigningInput string
	Signature    []byte // raw R||S, 64 bytes

	headerJSON, claimsJSON []byte
	claims                 *jvalue // the decoded claims object, for Claim
}

// Claim returns a claim of the token by name: a string claim's value, or
// any other claim as canonical JSON (members sorted, no whitespace), and
// whether it is present. Certificate claim constraints (RFC 8226 §8,
// RFC 9118) are judged with it.
func (t *Token) Claim(name string) (value string, isString, present bool) {
	if t.claims == nil {
		return "", false, false
	}
	v := t.claims.get(name)
	if v == nil {
		return "", false, false
	}
	if v.kind == kString {
		return v.str, true, true
	}
	return string(appendCanonical(nil, v)), false, true
}

var b64 = base64.RawURLEncoding.Strict()

// EncodeHeader returns the base64url JOSE header for x5u. A Signer calls it
// once and reuses the result for every call.
func EncodeHeader(x5u string) string { return EncodeHeaderPpt(x5u, Ppt) }

// EncodeHeaderPpt is EncodeHeader for another extension (PptDiv).
func EncodeHeaderPpt(x5u, ppt string) string {
	b := make([]byte, 0, 64+len(x5u))
	b = append(b, `{"alg":"ES256","ppt":`...)
	b = appendString(b, ppt)
	b = append(b, `,"typ":"passport","x5u":`...)
	b = appendString(b, x5u)
	b = append(b, '}')
	return b64.EncodeToString(b)
}

// MarshalClaims returns the canonical claims JSON. Dest is sorted and
// de-duplicated in place of a copy; the caller's slice is untouched.
//
// Claims with a Div are a div PASSporT's: dest, div, iat and orig, without
// attest and origid (RFC 8946 §3).
func MarshalClaims(c Claims) []byte {
	if c.Div != "" {
		return marshalDiv(c)
	}
	dest := CanonicalDest(c.Dest)
	b := make([]byte, 0, 96+len(c.OrigID)+16*len(dest))
	b = append(b, `{"attest":`...)
	b = appendString(b, string(c.Attest))
	if c.Crn != "" {
		b = append(b, `,"crn":`...)
		b = appendString(b, c.Crn)
	}
	b = append(b, `,"dest":{"tn":[`...)
	for i, d := range dest {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, d)
	}
	b = append(b, `]},"iat":`...)
	b = strconv.AppendInt(b, c.IAT, 10)
	b = append(b, `,"orig":{"tn":`...)
	b = appendString(b, c.Orig)
	b = append(b, `},"origid":`...)
	b = appendString(b, c.OrigID)
	b = appendRCD(b, c)
	return append(b, '}')
}

func marshalDiv(c Claims) []byte {
	b := make([]byte, 0, 96+len(c.HI)+16*len(c.Dest))
	b = appendDest(b, CanonicalDest(c.Dest))
	b = append(b, `,"div":{`...)
	if c.HI != "" {
		b = append(b, `"hi":`...)
		b = appendString(b, c.HI)
		b = append(b, ',')
	}
	b = append(b, `"tn":`...)
	b = appendString(b, c.Div)
	b = append(b, `},"iat":`...)
	b = strconv.AppendInt(b, c.IAT, 10)
	b = append(b, `,"orig":{"tn":`...)
	b = appendString(b, c.Orig)
	return append(b, `}}`...)
}

func appendDest(b []byte, dest []string) []byte {
	b = append(b, `{"dest":{"tn":[`...)
	for i, d := range dest {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, d)
	}
	return append(b, `]}`...)
}

// CanonicalDest returns dest sorted and without duplicates, as a new slice.
func CanonicalDest(dest []string) []string {
	out := append([]string(nil), dest...)
	if len(out) < 2 {
		return out
	}
	sort.Strings(out)
	n := 1
	for _, d := range out[1:] {
		if d != out[n-1] {
			out[n] = d
			n++
		}
	}
	return out[:n]
}

// Sign returns the compact JWS "h.p.s" for claims, where encodedHeader is
// EncodeHeader(x5u).
func Sign(encodedHeader string, c Claims, key *ecdsa.PrivateKey) (string, error) {
	claims := MarshalClaims(c)
	n := len(encodedHeader) + 1 + b64.EncodedLen(len(claims))
	buf := make([]byte, n, n+1+86)
	copy(buf, encodedHeader)
	buf[len(encodedHeader)] = '.'
	b64.Encode(buf[len(encodedHeader)+1:], claims)
	digest := sha256.Sum256(buf)
	// SignASN1 rather than jwt's ES256 Sign: the latter goes through the
	// big.Int API (sign, encode, re-parse) and costs about a tenth more
	// per signature, which is the whole of our budget over raw ECDSA.
	der, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		return "", stir.ErrSignKey.With("ES256 signature", err)
	}
	var raw [64]byte
	if !derToRaw(der, &raw) {
		return "", stir.ErrSignKey.Withf("ECDSA signature is not a P-256 DER pair")
	}
	buf = append(buf, '.')
	buf = b64.AppendEncode(buf, raw[:])
	return string(buf), nil
}

// derToRaw converts an ECDSA-Sig-Value (SEQUENCE of two INTEGERs, as
// SignASN1 emits for P-256: always short-form lengths) into JOSE's fixed
// 64-byte R||S (RFC 7518 §3.4).
func derToRaw(der []byte, out *[64]byte) bool {
	if len(der) < 8 || der[0] != 0x30 || int(der[1]) != len(der)-2 {
		return false
	}
	rest := der[2:]
	for i := 0; i < 2; i++ {
		if len(rest) < 2 || rest[0] != 0x02 {
			return false
		}
		n := int(rest[1])
		if n == 0 || n > 33 || len(rest) < 2+n {
			return false
		}
		v := rest[2 : 2+n]
		for len(v) > 0 && v[0] == 0 {
			v = v[1:]
		}
		if len(v) > 32 {
			return false
		}
		copy(out[i*32+32-len(v):(i+1)*32], v)
		rest = rest[2+n:]
	}
	return len(rest) == 0
}

// Parse decodes a compact PASSporT with every SHAKEN structural check
// (conformance rows 5 and 6). It does not check the signature, freshness or
// the x5u URL: those need a clock, a request and a credential.
func Parse(token string) (*Token, error) { return ParseAs(token, Ppt) }

// ParseAs is Parse for the extension ppt (Ppt or PptDiv): the JOSE ppt must
// be exactly that one, and the claims are read as it defines them.
func ParseAs(token, ppt string) (*Token, error) {
	if len(token) > MaxTokenBytes {
		return nil, stir.ErrIdentityTooLong.Withf("token of %d bytes", len(token))
	}
	d1, d2 := -1, -1
	for i := 0; i < len(token); i++ {
		c := token[i]
		switch {
		case c == '.':
			switch {
			case d1 < 0:
				d1 = i
			case d2 < 0:
				d2 = i
			default:
				return nil, stir.ErrHeaderMalformed.Withf("more than three segments")
			}
		case !isB64URL(c):
			return nil, stir.ErrHeaderMalformed.Withf("byte %q at %d is not base64url", c, i)
		}
	}
	if d2 < 0 {
		return nil, stir.ErrHeaderMalformed.Withf("fewer than three segments")
	}
	h, p, s := token[:d1], token[d1+1:d2], token[d2+1:]
	if p == "" {
		return nil, stir.ErrCompactForm.Withf("empty claims segment")
	}
	if h == "" || s == "" {
		return nil, stir.ErrHeaderMalformed.Withf("empty segment")
	}
	t := &Token{SigningInput: token[:d2]}
	var err error
	if t.headerJSON, err = b64.DecodeString(h); err != nil {
		return nil, stir.ErrHeaderMalformed.With("header segment", err)
	}
	if t.claimsJSON, err = b64.DecodeString(p); err != nil {
		return nil, stir.ErrHeaderMalformed.With("claims segment", err)
	}
	if t.Signature, err = b64.DecodeString(s); err != nil {
		return nil, stir.ErrSignatureMalformed.With("signature segment", err)
	}
	if err := t.parseHeader(ppt); err != nil {
		return nil, err
	}
	if err := t.parseClaims(); err != nil {
		return nil, err
	}
	// The length is a row-12 check: an HS256 or RS256 token must fail on
	// its alg (row 5), not on the size of the signature it carries.
	if len(t.Signature) != 64 {
		return nil, stir.ErrSignatureMalformed.Withf("signature is %d bytes, want 64 (raw R||S)", len(t.Signature))
	}
	return t, nil
}

func isB64URL(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

func (t *Token) parseHeader(ppt string) error {
	v, err := parseJSON(t.headerJSON)
	if err != nil {
		return stir.ErrJSONMalformed.With("JOSE header", err)
	}
	if v.kind != kObject {
		return stir.ErrJSONMalformed.Withf("JOSE header is not an object")
	}
	str := func(name string, e *stir.Error) (string, error) {
		m := v.get(name)
		if m == nil {
			return "", e.Withf("%s missing", name)
		}
		if m.kind != kString {
			return "", e.Withf("%s is not a string", name)
		}
		return m.str, nil
	}
	h := &t.Header
	if h.Alg, err = str("alg", stir.ErrAlgUnsupported); err != nil {
		return err
	}
	if h.Alg != Alg {
		return stir.ErrAlgUnsupported.Withf("alg %q", h.Alg)
	}
	if h.Typ, err = str("typ", stir.ErrTypInvalid); err != nil {
		return err
	}
	if h.Typ != Typ {
		return stir.ErrTypInvalid.Withf("typ %q", h.Typ)
	}
	if h.Ppt, err = str("ppt", stir.ErrPptInvalid); err != nil {
		return err
	}
	if h.Ppt != ppt {
		return stir.ErrPptInvalid.Withf("ppt %q", h.Ppt)
	}
	if h.X5U, err = str("x5u", stir.ErrX5UMismatch); err != nil {
		return err
	}
	// SHAKEN defines no critical extension, so any crit is one we do not
	// understand (RFC 7515 §4.1.11).
	if v.get("crit") != nil {
		return stir.ErrCritUnsupported.Withf("crit present")
	}
	return nil
}

func (t *Token) parseClaims() error {
	v, err := parseJSON(t.claimsJSON)
	if err != nil {
		return stir.ErrJSONMalformed.With("claims", err)
	}
	if v.kind != kObject {
		return stir.ErrJSONMalformed.Withf("claims are not an object")
	}
	t.claims = v
	c := &t.Claims

	iat := v.get("iat")
	switch {
	case iat == nil:
		return stir.ErrIATInvalid.Withf("iat missing")
	case iat.kind != kNumber:
		return stir.ErrIATInvalid.Withf("iat is not a number")
	}
	n, err := strconv.ParseInt(iat.str, 10, 64)
	if err != nil || n <= 0 {
		return stir.ErrIATInvalid.Withf("iat %s is not a positive integer", iat.str)
	}
	c.IAT = n

	orig := v.get("orig")
	if orig == nil || orig.kind != kObject || len(orig.obj) != 1 || orig.obj[0].name != "tn" ||
		orig.obj[0].val.kind != kString || !validTN(orig.obj[0].val.str) {
		return stir.ErrOrigInvalid.Withf("orig must be {\"tn\":\"<digits>\"}")
	}
	c.Orig = orig.obj[0].val.str

	dest := v.get("dest")
	if dest == nil || dest.kind != kObject {
		return stir.ErrDestInvalid.Withf("dest missing or not an object")
	}
	tns := dest.get("tn")
	if tns == nil || tns.kind != kArray || len(tns.arr) == 0 {
		return stir.ErrDestInvalid.Withf("dest.tn must be a non-empty array")
	}
	c.Dest = make([]string, len(tns.arr))
	for i, d := range tns.arr {
		if d.kind != kString || !validTN(d.str) {
			return stir.ErrDestInvalid.Withf("dest.tn[%d] is not a telephone number", i)
		}
		c.Dest[i] = d.str
	}

	if t.Header.Ppt == PptDiv {
		return c.parseDiv(v)
	}

	attest := v.get("attest")
	if attest == nil || attest.kind != kString {
		return stir.ErrAttestInvalid.Withf("attest missing")
	}
	a, err := stir.ParseAttestation(attest.str)
	if err != nil {
		return stir.ErrAttestInvalid.With("", err)
	}
	c.Attest = a

	origid := v.get("origid")
	if origid == nil || origid.kind != kString || origid.str == "" {
		return stir.ErrOrigIDInvalid.Withf("origid missing or empty")
	}
	c.OrigID = origid.str
	return c.parseRCD(v)
}

// parseDiv reads the div claim of a ppt=div PASSporT (RFC 8946 §3): an
// object with a tn and an optional hi string. attest and origid do not
// belong to it and are not read; a diverted call's attestation is the
// SHAKEN PASSporT's.
func (c *Claims) parseDiv(v *jvalue) error {
	div := v.get("div")
	if div == nil || div.kind != kObject {
		return stir.ErrDivInvalid.Withf("div missing or not an object")
	}
	tn := div.get("tn")
	if tn == nil || tn.kind != kString || !validTN(tn.str) {
		return stir.ErrDivInvalid.Withf("div must carry {\"tn\":\"<digits>\"}")
	}
	c.Div = tn.str
	if hi := div.get("hi"); hi != nil {
		if hi.kind != kString || hi.str == "" {
			return stir.ErrDivInvalid.Withf("div.hi is not a non-empty string")
		}
		c.HI = hi.str
	}
	for _, m := range div.obj {
		if m.name != "tn" && m.name != "hi" {
			return stir.ErrDivInvalid.Withf("div member %q (only tn and hi are understood)", m.name)
		}
	}
	return nil
}

// validTN is the claim form of a telephone number: RFC 8224 §8.3 canonical,
// at most 15 digits (E.164) with an optional leading # or *.
func validTN(s string) bool {
	if s != "" && (s[0] == '#' || s[0] == '*') {
		s = s[1:]
	}
	if len(s) == 0 || len(s) > 15 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Canonical reports whether the received header and claims are byte-equal
// to what this package would emit: strict mode refuses anything else.
func (t *Token) Canonical() bool {
	return string(t.headerJSON) == mustDecode(EncodeHeaderPpt(t.Header.X5U, t.Header.Ppt)) &&
		string(t.claimsJSON) == string(MarshalClaims(t.Claims))
}

func mustDecode(s string) string {
	b, _ := b64.DecodeString(s)
	return string(b)
}

// HeaderJSON and ClaimsJSON return the decoded segments, for display.
func (t *Token) HeaderJSON() []byte { return t.headerJSON }

// ClaimsJSON returns the decoded claims segment.
func (t *Token) ClaimsJSON() []byte { return t.claimsJSON }

var p256Order = elliptic.P256().Params().N

// Verify checks the ES256 signature over SigningInput with pub.
func (t *Token) Verify(pub *ecdsa.PublicKey) error {
	if pub == nil || pub.Curve != elliptic.P256() {
		return stir.ErrCertProfile.Withf("public key is not P-256")
	}
	r := new(big.Int).SetBytes(t.Signature[:32])
	s := new(big.Int).SetBytes(t.Signature[32:])
	if r.Sign() == 0 || s.Sign() == 0 || r.Cmp(p256Order) >= 0 || s.Cmp(p256Order) >= 0 {
		return stir.ErrSignatureMalformed.Withf("r or s out of range")
	}
	if err := jwt.SigningMethodES256.Verify(t.SigningInput, t.Signature, pub); err != nil {
		return stir.ErrSignatureInvalid.With("", err)
	}
	return nil
}

// Digest returns SHA-256 of the signing input (used by benchmarks that
// compare with raw ECDSA on the same digest).
func (t *Token) Digest() [32]byte { return sha256.Sum256([]byte(t.SigningInput)) }
