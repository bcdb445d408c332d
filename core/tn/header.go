package tn

import (
	"strings"

	"github.com/stirgate/stirgate/core/stir"
)

// FromHeader returns the canonical TN of a From, To or P-Asserted-Identity
// header value: a name-addr (`"Alice" <sip:+12155550121;npdi@host>;tag=x`)
// or an addr-spec without brackets (`tel:+1-215-555-0121;tag=x`), with a
// sip, sips or tel URI. The number is the user part (or the tel number),
// without its parameters (;npdi ;rn= ;verstat= ;isub= ;ext= ;cic=),
// percent-decoded, then Canonical. A tel phone-context is not applied: a
// local number goes through the national rules like any other.
func FromHeader(value string, r Rules) (string, error) {
	a, err := locate(value)
	if err != nil {
		return "", err
	}
	num, err := a.number()
	if err != nil {
		return "", err
	}
	if strings.IndexByte(num, '%') >= 0 {
		if num, err = unescape(num); err != nil {
			return "", err
		}
	}
	return Canonical(num, r)
}

// addr locates the URI of a header value: value[start:end].
type addr struct {
	value      string
	start, end int
	bracketed  bool
	scheme     int // length of "sip:", "sips:" or "tel:"; the URI's rest follows
	tel        bool
}

// locate finds the URI of a name-addr or addr-spec header value.
func locate(v string) (addr, error) {
	a := addr{value: v}
	i := skipWS(v, 0)
	lt := -1
scan:
	for j := i; j < len(v) && lt < 0; j++ {
		switch v[j] {
		case ',':
			// After an addr-spec, a comma starts the next element of a list
			// (P-Asserted-Identity: tel:..., <sip:...>). Otherwise it sits
			// in an unquoted display name ("Smith, John <sip:...>"), which
			// RFC 3261 forbids and some user agents send anyway.
			if hasScheme(v[i:j]) {
				break scan
			}
		case '"':
			k := skipQuoted(v, j)
			if k > len(v) {
				return a, stir.ErrTNInvalid.Withf("unterminated quoted display name")
			}
			j = k - 1
		case '<':
			lt = j
		}
	}
	if lt >= 0 {
		gt := strings.IndexByte(v[lt+1:], '>')
		if gt < 0 {
			return a, stir.ErrTNInvalid.Withf("'<' without '>'")
		}
		a.start, a.end, a.bracketed = lt+1, lt+1+gt, true
	} else {
		// An addr-spec without brackets cannot hold ',' or whitespace, and
		// its own parameters are the header's. Leniently, a sip user part
		// with parameters (illegal here) still ends at its '@'.
		limit := i
		for limit < len(v) && v[limit] != ',' && v[limit] != ' ' && v[limit] != '\t' && v[limit] != '\r' && v[limit] != '\n' {
			limit++
		}
		a.start, a.end = i, limit
		if k := strings.IndexAny(v[i:limit], "<>\""); k >= 0 {
			return a, stir.ErrTNInvalid.Withf("byte %q in URI", v[i+k])
		}
	}
	u := v[a.start:a.end]
	switch {
	case hasPrefixFold(u, "sip:"):
		a.scheme = 4
	case hasPrefixFold(u, "sips:"):
		a.scheme = 5
	case hasPrefixFold(u, "tel:"):
		a.scheme, a.tel = 4, true
	default:
		return a, stir.ErrTNInvalid.Withf("URI %.40q is not sip, sips or tel", u)
	}
	if !a.bracketed {
		from := a.start + a.scheme
		if !a.tel {
			if at := strings.IndexByte(u, '@'); at >= 0 {
				from = a.start + at
			}
		}
		if k := strings.IndexAny(v[from:a.end], ";?"); k >= 0 {
			a.end = from + k
		}
	}
	return a, nil
}

// number returns the user part of a sip URI or the number of a tel URI,
// without parameters and still escaped.
func (a addr) number() (string, error) {
	rest := a.value[a.start+a.scheme : a.end]
	if a.tel {
		if k := strings.IndexByte(rest, ';'); k >= 0 {
			rest = rest[:k]
		}
		if rest == "" {
			return "", stir.ErrTNInvalid.Withf("tel URI has no number")
		}
		return rest, nil
	}
	at := strings.IndexByte(rest, '@')
	if at < 0 {
		return "", stir.ErrTNInvalid.Withf("sip URI has no user part")
	}
	user := rest[:at]
	if k := strings.IndexAny(user, ";:"); k >= 0 {
		user = user[:k]
	}
	if user == "" {
		return "", stir.ErrTNInvalid.Withf("sip URI has an empty user part")
	}
	return user, nil
}

// unescape percent-decodes a user part.
func unescape(s string) (string, error) {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) || unhex(s[i+1]) < 0 || unhex(s[i+2]) < 0 {
			return "", stir.ErrTNInvalid.Withf("bad percent escape in %.40q", s)
		}
		b.WriteByte(byte(unhex(s[i+1])<<4 | unhex(s[i+2])))
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c|0x20 >= 'a' && c|0x20 <= 'f':
		return int(c|0x20-'a') + 10
	}
	return -1
}

// skipQuoted returns the index after the quoted string opening at s[i], or
// len(s)+1 when it is unterminated.
func skipQuoted(s string, i int) int {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(s) + 1
}

func skipWS(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n') {
		i++
	}
	return i
}

func hasScheme(s string) bool {
	return hasPrefixFold(s, "sip:") || hasPrefixFold(s, "sips:") || hasPrefixFold(s, "tel:")
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
