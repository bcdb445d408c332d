// Package identity parses and formats the value of the SIP Identity header
// of RFC 8224 §4.1 as SHAKEN uses it:
//
//	<h>.<p>.<s>;info=<https://cert.example/sp.pem>;alg=ES256;ppt=shaken
//
// It judges syntax only (conformance rows 2-4). Decoding the token and
// checking what it says belongs to the PASSporT verifier, which must sign-check
// the received bytes Header.Protected and never a re-serialization.
package identity

import (
	"strings"

	"github.com/stirgate/stirgate/core/stir"
)

// Header is one parsed Identity header value. Every string field is a slice
// of the received value; only a quoted alg or ppt holding backslash escapes
// is copied to unescape it.
type Header struct {
	Token     string    // "h.p.s" exactly as received
	Protected string    // "h.p": the JWS signing input, sliced from Token
	Segments  [3]string // h, p, s as base64url text
	Info      string    // the URI inside <> of the info parameter
	Alg       string    // alg parameter; "" when absent
	Ppt       string    // ppt parameter, unquoted; "" when absent
	Raw       string    // the value handed to Parse
}

// IsShaken reports whether the header claims the SHAKEN extension, or makes
// no claim at all: RFC 8224 lets ppt be omitted, and the JOSE header decides
// then (conformance row 4).
func (h *Header) IsShaken() bool { return h.Ppt == "" || h.Ppt == "shaken" }

// IsDiv reports whether the header carries a diversion PASSporT (RFC 8946).
// Unlike SHAKEN, div is never the default: the parameter must say so.
func (h *Header) IsDiv() bool { return h.Ppt == "div" }

// Limits bound what Collect accepts before anything is decoded (conformance
// row 2). The zero value means the defaults.
type Limits struct {
	MaxCount int // Identity headers per request; 0 means 6
	MaxBytes int // bytes per header and in total; 0 means 8192
}

// Default limits.
const (
	// DefaultMaxCount admits a SHAKEN PASSporT and five diversions
	// (conformance §6 D1; French rules allow five).
	DefaultMaxCount = 6
	DefaultMaxBytes = 8192
)

func (l Limits) withDefaults() Limits {
	if l.MaxCount <= 0 {
		l.MaxCount = DefaultMaxCount
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	return l
}

// Format builds the header value a SHAKEN signer emits (conformance §1.4).
// info must be the x5u byte for byte.
func Format(token, info string) string {
	return FormatPpt(token, info, "shaken")
}

// FormatPpt is Format for another extension ("div").
func FormatPpt(token, info, ppt string) string {
	return token + ";info=<" + info + ">;alg=ES256;ppt=" + ppt
}

// Parse parses one Identity header value with the default size limit. The
// value may still carry SWS and CRLF folding as received.
func Parse(value string) (*Header, error) {
	return parse(value, DefaultMaxBytes)
}

func parse(value string, maxBytes int) (*Header, error) {
	// The size cap comes first so a hostile value costs nothing more.
	if len(value) > maxBytes {
		return nil, stir.ErrIdentityTooLong.Withf("%d bytes, limit %d", len(value), maxBytes)
	}
	h := &Header{Raw: value}
	s := value
	i := skipSWS(s, 0)

	// The token runs to the first byte outside the base64url alphabet and
	// '.'; the alphabet is checked before anything looks at the segments
	// because Go's base64 decoder would silently skip CR and LF.
	start := i
	i += scanToken(s[i:])
	tok := s[start:i]
	if i < len(s) && !isSWSStart(s, i) && s[i] != ';' {
		return nil, stir.ErrHeaderMalformed.Withf("byte %q at offset %d is not base64url", s[i], i)
	}
	if tok == "" {
		return nil, stir.ErrHeaderMalformed.Withf("no token")
	}
	if err := h.splitToken(tok); err != nil {
		return nil, err
	}

	var seenInfo, seenAlg, seenPpt bool
	for {
		i = skipSWS(s, i)
		if i == len(s) {
			break
		}
		if s[i] != ';' {
			return nil, stir.ErrHeaderMalformed.Withf("byte %q at offset %d: want ';'", s[i], i)
		}
		i = skipSWS(s, i+1)
		p, next, err := readParam(s, i)
		if err != nil {
			return nil, err
		}
		i = next
		switch {
		case strings.EqualFold(p.name, "info"):
			if seenInfo {
				return nil, stir.ErrHeaderMalformed.Withf("duplicate info parameter")
			}
			seenInfo = true
			if !p.hasValue || p.kind != angled {
				return nil, stir.ErrInfoMalformed.Withf("info is not in <>")
			}
			if err := checkAbsoluteURI(p.value); err != nil {
				return nil, err
			}
			h.Info = p.value
		case strings.EqualFold(p.name, "alg"):
			if seenAlg {
				return nil, stir.ErrHeaderMalformed.Withf("duplicate alg parameter")
			}
			seenAlg = true
			if !p.hasValue || p.kind == angled || p.value == "" {
				return nil, stir.ErrHeaderMalformed.Withf("alg parameter without a value")
			}
			h.Alg = p.value
		case strings.EqualFold(p.name, "ppt"):
			if seenPpt {
				return nil, stir.ErrHeaderMalformed.Withf("duplicate ppt parameter")
			}
			seenPpt = true
			// An empty ppt would read as "absent" and so as SHAKEN.
			if !p.hasValue || p.kind == angled || p.value == "" {
				return nil, stir.ErrHeaderMalformed.Withf("ppt parameter without a value")
			}
			h.Ppt = p.value
		}
	}
	if !seenInfo {
		return nil, stir.ErrInfoMissing.Withf("no info parameter")
	}
	return h, nil
}

// splitToken checks the segment structure of tok, which holds only
// base64url bytes and dots.
func (h *Header) splitToken(tok string) error {
	d1 := strings.IndexByte(tok, '.')
	if d1 < 0 {
		return stir.ErrHeaderMalformed.Withf("token has 1 segment, want 3")
	}
	d2 := strings.IndexByte(tok[d1+1:], '.')
	if d2 < 0 {
		return stir.ErrHeaderMalformed.Withf("token has 2 segments, want 3")
	}
	d2 += d1 + 1
	if strings.IndexByte(tok[d2+1:], '.') >= 0 {
		return stir.ErrHeaderMalformed.Withf("token has %d segments, want 3", strings.Count(tok, ".")+1)
	}
	hs, ps, ss := tok[:d1], tok[d1+1:d2], tok[d2+1:]
	if ps == "" && ss != "" {
		// RFC 8224 §7's compact form leaves header and claims to be
		// rebuilt from the SIP request; SHAKEN needs the full form.
		return stir.ErrCompactForm.Withf("token has an empty claims segment")
	}
	for n, seg := range [3]string{hs, ps, ss} {
		if seg == "" {
			return stir.ErrHeaderMalformed.Withf("token segment %d is empty", n+1)
		}
		// Unpadded base64 never leaves one character over.
		if len(seg)%4 == 1 {
			return stir.ErrHeaderMalformed.Withf("token segment %d has impossible base64 length %d", n+1, len(seg))
		}
	}
	h.Token = tok
	h.Protected = tok[:d2]
	h.Segments = [3]string{hs, ps, ss}
	return nil
}

type valueKind uint8

const (
	plain valueKind = iota
	quoted
	angled
)

type param struct {
	name     string
	value    string
	hasValue bool
	kind     valueKind
}

// readParam reads `name [SWS "=" SWS value]` at s[i:]. It leaves the
// index after the value; the caller checks what follows.
func readParam(s string, i int) (param, int, error) {
	var p param
	start := i
	for i < len(s) && isToken(s[i]) {
		i++
	}
	if i == start {
		if i == len(s) {
			return p, i, stir.ErrHeaderMalformed.Withf("empty parameter at end")
		}
		return p, i, stir.ErrHeaderMalformed.Withf("byte %q at offset %d: want a parameter name", s[i], i)
	}
	p.name = s[start:i]
	j := skipSWS(s, i)
	if j == len(s) || s[j] != '=' {
		return p, i, nil
	}
	p.hasValue = true
	i = skipSWS(s, j+1)
	if i == len(s) {
		return p, i, stir.ErrHeaderMalformed.Withf("parameter %q has '=' but no value", p.name)
	}
	switch s[i] {
	case '<':
		end := strings.IndexByte(s[i+1:], '>')
		if end < 0 {
			sentinel := stir.ErrHeaderMalformed
			if strings.EqualFold(p.name, "info") {
				sentinel = stir.ErrInfoMalformed
			}
			return p, i, sentinel.Withf("parameter %q: '<' without '>'", p.name)
		}
		p.kind = angled
		p.value = s[i+1 : i+1+end]
		return p, i + end + 2, nil
	case '"':
		v, next, err := readQuoted(s, i)
		if err != nil {
			return p, i, err
		}
		p.kind = quoted
		p.value = v
		return p, next, nil
	}
	start = i
	for i < len(s) && isValueByte(s[i]) {
		i++
	}
	if i == start {
		return p, i, stir.ErrHeaderMalformed.Withf("parameter %q: byte %q at offset %d is not a value", p.name, s[i], i)
	}
	p.value = s[start:i]
	return p, i, nil
}

// readQuoted reads an RFC 3261 quoted-string starting at the '"' at s[i]
// and returns its unescaped content.
func readQuoted(s string, i int) (string, int, error) {
	start := i + 1
	escaped := false
	for j := start; j < len(s); j++ {
		c := s[j]
		switch {
		case c == '"':
			v := s[start:j]
			if escaped {
				v = unescape(v)
			}
			return v, j + 1, nil
		case c == '\\':
			if j+1 == len(s) || isCtl(s[j+1]) && s[j+1] != '\t' {
				return "", j, stir.ErrHeaderMalformed.Withf("bad escape in quoted string at offset %d", j)
			}
			escaped = true
			j++
		case isCtl(c) && c != '\t':
			return "", j, stir.ErrHeaderMalformed.Withf("control byte in quoted string at offset %d", j)
		}
	}
	return "", len(s), stir.ErrHeaderMalformed.Withf("unterminated quoted string")
}

func unescape(v string) string {
	var b strings.Builder
	b.Grow(len(v))
	for j := 0; j < len(v); j++ {
		if v[j] == '\\' {
			j++
		}
		b.WriteByte(v[j])
	}
	return b.String()
}

// checkAbsoluteURI accepts RFC 3986 `scheme ":" rest` with printable ASCII
// only. Which URLs may be fetched is the x5u policy's business, not ours.
func checkAbsoluteURI(u string) error {
	colon := -1
	for j := 0; j < len(u); j++ {
		c := u[j]
		if c <= ' ' || c >= 0x7f || c == '<' || c == '"' {
			return stir.ErrInfoMalformed.Withf("byte %q in info URI", c)
		}
		if c == ':' && colon < 0 {
			colon = j
		}
	}
	if colon <= 0 || colon == len(u)-1 || !isAlpha(u[0]) {
		return stir.ErrInfoMalformed.Withf("info %q is not an absolute URI", u)
	}
	for j := 1; j < colon; j++ {
		c := u[j]
		if !isAlpha(c) && !isDigit(c) && c != '+' && c != '-' && c != '.' {
			return stir.ErrInfoMalformed.Withf("info %q has a bad scheme", u)
		}
	}
	return nil
}

// skipSWS skips spaces, tabs and line folding (CRLF or bare LF followed by
// a space or tab) from s[i:].
func skipSWS(s string, i int) int {
	for i < len(s) {
		switch s[i] {
		case ' ', '\t':
			i++
		case '\r', '\n':
			n := 1
			if s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n' {
				n = 2
			}
			// A line break is whitespace only when it folds, or when it
			// ends the value (a raw header line with its CRLF).
			if i+n == len(s) || s[i+n] == ' ' || s[i+n] == '\t' {
				i += n
				continue
			}
			return i
		default:
			return i
		}
	}
	return i
}

func isSWSStart(s string, i int) bool { return skipSWS(s, i) > i }

// scanToken returns the length of the run of tokenByte bytes that starts
// s. Eight bytes per step: the token is most of a header's ~400 bytes.
func scanToken(s string) int {
	i := 0
	for ; i+8 <= len(s); i += 8 {
		b := s[i : i+8]
		if !(tokenByte[b[0]] && tokenByte[b[1]] && tokenByte[b[2]] && tokenByte[b[3]] &&
			tokenByte[b[4]] && tokenByte[b[5]] && tokenByte[b[6]] && tokenByte[b[7]]) {
			break
		}
	}
	for i < len(s) && tokenByte[s[i]] {
		i++
	}
	return i
}

// tokenByte marks the bytes of a JWS compact token: the base64url
// alphabet and '.'. A table keeps the scan of a ~400-byte token cheap.
var tokenByte = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		t[c] = isAlpha(b) || isDigit(b) || b == '-' || b == '_' || b == '.'
	}
	return t
}()

func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isCtl(c byte) bool   { return c < 0x20 || c == 0x7f }

// isToken reports RFC 3261 token bytes.
func isToken(c byte) bool {
	if isAlpha(c) || isDigit(c) {
		return true
	}
	switch c {
	case '-', '.', '!', '%', '*', '_', '+', '`', '\'', '~':
		return true
	}
	return false
}

// isValueByte admits RFC 3261 gen-value as token or host (which adds ':'
// and the brackets of an IPv6 reference).
func isValueByte(c byte) bool {
	return isToken(c) || c == ':' || c == '[' || c == ']'
}
