package tn

import "strings"

// AddVerstat returns value with ";verstat=v" in the place 3GPP TS 24.229
// §7.2A.20 gives it: the user part of a sip or sips URI
// (`sip:+12155550121;verstat=TN-Validation-Passed@host;user=phone`) or
// right after the number of a tel URI (`tel:+12155550121;verstat=...`).
// Every verstat already present is removed first, as StripVerstat does. In a
// list (P-Asserted-Identity with a sip and a tel URI) each URI that holds a
// number gets the parameter.
//
// Display names, header parameters and brackets are kept; an addr-spec
// without brackets gains them, because RFC 3261 §20 requires brackets
// around a URI holding ';'. A v that is not a token (letters, digits, '-',
// '_', '.'; at most 64 bytes) adds nothing, and neither does a URI without a
// number: those come back as StripVerstat would return them.
func AddVerstat(value string, v string) string {
	if !isVerstatToken(v) {
		v = ""
	}
	return rewrite(value, v)
}

// StripVerstat removes every verstat parameter from value: user part, URI
// parameters, tel parameters and header parameters of every element. A
// verifier strips what arrived from outside so that no verstat travels on
// as if it had set it.
func StripVerstat(value string) string {
	if !containsFold(value, "verstat") {
		return value
	}
	return rewrite(value, "")
}

// rewrite removes verstat parameters from each comma-separated element of
// value and, when v is not empty, adds ;verstat=v where it belongs.
func rewrite(value, v string) string {
	var b strings.Builder
	b.Grow(len(value) + len(";verstat=") + len(v) + 2)
	for {
		a, err := locate(value)
		if err != nil {
			// Not an address: remove what looks like a parameter, so that
			// nothing downstream mistakes it for ours.
			for {
				e := stripParams(&b, value, true)
				if e == len(value) {
					return b.String()
				}
				b.WriteByte(',')
				value = value[e+1:]
			}
		}
		writeURI(&b, a, v)
		post := value[a.end:]
		e := stripParams(&b, post, true)
		if e == len(post) {
			return b.String()
		}
		b.WriteByte(',')
		value = post[e+1:]
	}
}

// writeURI writes a.value up to the end of the URI with verstat removed
// and, when v is set and the URI holds a number, ;verstat=v added.
func writeURI(b *strings.Builder, a addr, v string) {
	if v != "" && !holdsTN(a) {
		v = ""
	}
	add := func() {
		if v != "" {
			b.WriteString(";verstat=")
			b.WriteString(v)
		}
	}
	wrap := v != "" && !a.bracketed
	b.WriteString(a.value[:a.start])
	if wrap {
		b.WriteByte('<')
	}
	b.WriteString(a.value[a.start : a.start+a.scheme])
	rest := a.value[a.start+a.scheme : a.end]
	if a.tel {
		k := indexOr(rest, ';')
		b.WriteString(rest[:k])
		add()
		stripParams(b, rest[k:], false)
	} else {
		if at := strings.IndexByte(rest, '@'); at >= 0 {
			userinfo := rest[:at]
			c := indexOr(userinfo, ':')
			user := userinfo[:c]
			k := indexOr(user, ';')
			b.WriteString(user[:k])
			stripParams(b, user[k:], false)
			add()
			b.WriteString(userinfo[c:])
			b.WriteByte('@')
			rest = rest[at+1:]
		}
		q := indexOr(rest, '?')
		k := indexOr(rest[:q], ';')
		b.WriteString(rest[:k])
		stripParams(b, rest[k:q], false)
		b.WriteString(rest[q:]) // URI headers are not parameters
	}
	if wrap {
		b.WriteByte('>')
	}
}

// holdsTN reports whether the URI's user part (or tel number) is a
// telephone number. An anonymous From (`sip:anonymous@anonymous.invalid`,
// RFC 3323) is not: its call is signed and verified on the
// P-Asserted-Identity, and the verstat belongs there alone.
func holdsTN(a addr) bool {
	num, err := a.number()
	if err != nil {
		return false
	}
	if strings.IndexByte(num, '%') >= 0 {
		if num, err = unescape(num); err != nil {
			return false
		}
	}
	_, err = Canonical(num, Rules{})
	return err == nil
}

// stripParams writes s without its verstat parameters. s is a run of
// ';'-separated parameters after a leading part that is always kept. In
// header parameters (header true) quoted strings are skipped and a ','
// ends the element; stripParams then returns the comma's index, else len(s).
func stripParams(b *strings.Builder, s string, header bool) int {
	next := func(from int) int {
		for i := from; i < len(s); i++ {
			switch s[i] {
			case '"':
				if header {
					i = skipQuoted(s, i) - 1
				}
			case ';':
				return i
			case ',':
				if header {
					return i
				}
			}
		}
		return len(s)
	}
	end := next(0)
	b.WriteString(s[:end])
	for end < len(s) && s[end] == ';' {
		e := next(end + 1)
		if !isVerstatParam(s[end+1 : e]) {
			b.WriteString(s[end:e])
		}
		end = e
	}
	return end
}

// isVerstatParam reports whether seg, a parameter without its ';', is
// named verstat, with or without a value.
func isVerstatParam(seg string) bool {
	seg = seg[skipWS(seg, 0):]
	if !hasPrefixFold(seg, "verstat") {
		return false
	}
	seg = seg[skipWS(seg, len("verstat")):]
	return seg == "" || seg[0] == '='
}

func indexOr(s string, c byte) int {
	if i := strings.IndexByte(s, c); i >= 0 {
		return i
	}
	return len(s)
}

func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i]|0x20 == sub[0] && strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

func isVerstatToken(v string) bool {
	if v == "" || len(v) > 64 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'z' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
