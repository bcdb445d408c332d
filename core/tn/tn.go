// Package tn canonicalises telephone numbers the way RFC 8224 §8.3 and the
// SHAKEN claims need them: digits only, with the country code, no '+' and
// no visual separators ("+1 (215) 555-0121" becomes "12155550121").
//
// It also reads the number out of a From, To or P-Asserted-Identity header
// value and writes the verstat parameter of 3GPP TS 24.229 into one.
package tn

import (
	"strings"

	"github.com/stirgate/stirgate/core/stir"
)

// MaxDigits is the E.164 limit on the digits of a number.
const MaxDigits = 15

// Rule converts one national format to E.164. A number written without '+'
// matches when it has Length digits (0 means any) and starts with Prefix and
// Strip; Strip (a trunk prefix such as "0") is then removed and Add (the
// country code) prepended. Example: UK national "01632960000" with
// {Length: 11, Strip: "0", Add: "44"} becomes "441632960000".
type Rule struct {
	Length int    // digit count the rule applies to; 0 = any
	Prefix string // leading digits required; "" = any
	Add    string // digits to prepend
	Strip  string // leading digits to remove first
}

// Rules holds the national conversions, tried in order; the first that
// matches wins. The zero value converts nothing.
type Rules struct {
	National []Rule
}

// NANP is the North American Numbering Plan: a 10-digit number gains the
// country code 1.
func NANP() Rules {
	return Rules{National: []Rule{{Length: 10, Add: "1"}}}
}

// Validate reports a rule that could produce something other than digits,
// for configuration loaders.
func (r Rules) Validate() error {
	for i, rule := range r.National {
		if rule.Length < 0 || rule.Length > MaxDigits {
			return stir.ErrTNInvalid.Withf("rule %d: length %d out of range 0..%d", i, rule.Length, MaxDigits)
		}
		for _, f := range [...]struct{ name, v string }{{"prefix", rule.Prefix}, {"add", rule.Add}, {"strip", rule.Strip}} {
			if !allDigits(f.v) {
				return stir.ErrTNInvalid.Withf("rule %d: %s %q is not digits", i, f.name, f.v)
			}
		}
		if rule.Add == "" && rule.Strip == "" {
			return stir.ErrTNInvalid.Withf("rule %d changes nothing", i)
		}
	}
	return nil
}

// Canonical returns s as a claim TN: optional leading '#' or '*', then 1 to
// 15 digits. It drops one leading '+' and the visual separators
// "-", ".", "(", ")" and space, ends at the first ';' (user parameters such
// as RFC 4904 ;tgrp= and ;trunk-context=), and rejects anything else,
// letters included.
// The national rules apply only to numbers written without '+' (and without
// '#' or '*'). An input already canonical is returned without copying.
func Canonical(s string, r Rules) (string, error) {
	var buf [MaxDigits + 1]byte
	n := 0        // bytes in buf
	lead := 0     // 1 when buf starts with '#' or '*'
	plus := false // a '+' was seen
	clean := true // s is already canonical
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			if n-lead == MaxDigits {
				return "", stir.ErrTNInvalid.Withf("%.40q has more than %d digits", s, MaxDigits)
			}
			buf[n] = c
			n++
		case '+':
			if plus || n > 0 {
				return "", stir.ErrTNInvalid.Withf("%.40q: '+' not at the start", s)
			}
			plus = true
			clean = false
		case '#', '*':
			if plus || n > 0 {
				return "", stir.ErrTNInvalid.Withf("%.40q: %q not at the start", s, c)
			}
			buf[0] = c
			n, lead = 1, 1
		case '-', '.', '(', ')', ' ':
			clean = false
		case ';':
			// User and tel parameters end the number: RFC 4904's ;tgrp=
			// and ;trunk-context=, RFC 4694's ;npdi and ;rn=, RFC 3966's
			// ;isub= and ;ext=. Switches hand over a user part with them
			// attached, and the number must match without them.
			if n-lead == 0 {
				return "", stir.ErrTNInvalid.Withf("%.40q has no digits before its parameters", s)
			}
			clean = false
			i = len(s)
		default:
			return "", stir.ErrTNInvalid.Withf("%.40q: byte %q is not part of a number", s, c)
		}
	}
	if n-lead == 0 {
		return "", stir.ErrTNInvalid.Withf("%.40q has no digits", s)
	}
	if !plus && lead == 0 {
		digits := string(buf[:n]) // escapes only when a rule matches
		for _, rule := range r.National {
			if rule.Length != 0 && rule.Length != n ||
				!strings.HasPrefix(digits, rule.Prefix) || !strings.HasPrefix(digits, rule.Strip) {
				continue
			}
			out := rule.Add + digits[len(rule.Strip):]
			if !ValidClaimTN(out) || out[0] == '#' || out[0] == '*' {
				return "", stir.ErrTNInvalid.Withf("%.40q: national rule gives %q", s, out)
			}
			return out, nil
		}
	}
	if clean {
		return s, nil
	}
	return string(buf[:n]), nil
}

// ValidClaimTN reports whether s is a TN as the claims carry it:
// ^[#*]?[0-9]+$ with 1 to 15 digits.
func ValidClaimTN(s string) bool {
	if s != "" && (s[0] == '#' || s[0] == '*') {
		s = s[1:]
	}
	return len(s) >= 1 && len(s) <= MaxDigits && allDigits(s)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
