package passport

import (
	"errors"
	"sort"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// A small strict JSON reader. encoding/json is unsuitable for PASSporT
// claims because it matches member names case-insensitively and keeps the
// last of duplicate members, so {"attest":"C","Attest":"A"} would read as
// A. Here names are exact, duplicates and case variants are errors, and
// numbers keep their text so that 1.7e9 is not taken for an integer.

type kind uint8

const (
	kString kind = iota + 1
	kNumber
	kObject
	kArray
	kBool
	kNull
)

type member struct {
	name string
	val  *jvalue
}

type jvalue struct {
	kind kind
	str  string // string value, or number text
	obj  []member
	arr  []*jvalue
}

func (v *jvalue) get(name string) *jvalue {
	for _, m := range v.obj {
		if m.name == name {
			return m.val
		}
	}
	return nil
}

// maxDepth bounds recursion on hostile input such as [[[[...]]]].
const maxDepth = 16

var (
	errSyntax    = errors.New("invalid JSON")
	errDuplicate = errors.New("duplicate or case-variant member")
	errDepth     = errors.New("JSON nested too deeply")
)

type jparser struct {
	b   []byte
	s   string // b as one string: values are substrings of it, one allocation in all
	pos int
	// nodes is a chunk that values are carved from, so that a PASSporT's
	// dozen values cost one allocation rather than twelve.
	nodes []jvalue
}

func (p *jparser) node(k kind) *jvalue {
	if len(p.nodes) == cap(p.nodes) {
		// A value takes at least ~6 bytes of JSON: size the first chunk
		// for the whole input, so that a PASSporT with rich call data (a
		// jCard of dozens of values) still costs one allocation.
		n := 10
		if len(p.nodes) == 0 && len(p.b)/6 > n {
			n = len(p.b) / 6
		}
		p.nodes = make([]jvalue, 0, n)
	}
	p.nodes = append(p.nodes, jvalue{kind: k})
	return &p.nodes[len(p.nodes)-1]
}

func parseJSON(b []byte) (*jvalue, error) {
	p := jparser{b: b, s: string(b)}
	p.ws()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.ws()
	if p.pos != len(p.b) {
		return nil, errSyntax
	}
	return v, nil
}

func (p *jparser) ws() {
	for p.pos < len(p.b) {
		switch p.b[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jparser) value(depth int) (*jvalue, error) {
	if depth > maxDepth {
		return nil, errDepth
	}
	if p.pos >= len(p.b) {
		return nil, errSyntax
	}
	switch c := p.b[p.pos]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		s, err := p.string()
		if err != nil {
			return nil, err
		}
		v := p.node(kString)
		v.str = s
		return v, nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case p.lit("true"):
		v := p.node(kBool)
		v.str = "true"
		return v, nil
	case p.lit("false"):
		v := p.node(kBool)
		v.str = "false"
		return v, nil
	case p.lit("null"):
		v := p.node(kNull)
		v.str = "null"
		return v, nil
	}
	return nil, errSyntax
}

func (p *jparser) lit(s string) bool {
	if len(p.b)-p.pos >= len(s) && string(p.b[p.pos:p.pos+len(s)]) == s {
		p.pos += len(s)
		return true
	}
	return false
}

func (p *jparser) object(depth int) (*jvalue, error) {
	p.pos++ // {
	v := p.node(kObject)
	// PASSporT objects have at most a handful of members.
	v.obj = make([]member, 0, 6)
	p.ws()
	if p.pos < len(p.b) && p.b[p.pos] == '}' {
		p.pos++
		return v, nil
	}
	for {
		p.ws()
		if p.pos >= len(p.b) || p.b[p.pos] != '"' {
			return nil, errSyntax
		}
		name, err := p.string()
		if err != nil {
			return nil, err
		}
		for _, m := range v.obj {
			if equalFold(m.name, name) {
				return nil, errDuplicate
			}
		}
		p.ws()
		if p.pos >= len(p.b) || p.b[p.pos] != ':' {
			return nil, errSyntax
		}
		p.pos++
		p.ws()
		val, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		v.obj = append(v.obj, member{name, val})
		p.ws()
		if p.pos >= len(p.b) {
			return nil, errSyntax
		}
		switch p.b[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return v, nil
		default:
			return nil, errSyntax
		}
	}
}

func (p *jparser) array(depth int) (*jvalue, error) {
	p.pos++ // [
	v := p.node(kArray)
	p.ws()
	if p.pos < len(p.b) && p.b[p.pos] == ']' {
		p.pos++
		return v, nil
	}
	for {
		p.ws()
		val, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		v.arr = append(v.arr, val)
		p.ws()
		if p.pos >= len(p.b) {
			return nil, errSyntax
		}
		switch p.b[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return v, nil
		default:
			return nil, errSyntax
		}
	}
}

func (p *jparser) number() (*jvalue, error) {
	start := p.pos
	if p.b[p.pos] == '-' {
		p.pos++
	}
	digits := func() int {
		n := 0
		for p.pos < len(p.b) && p.b[p.pos] >= '0' && p.b[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	intStart := p.pos
	if digits() == 0 {
		return nil, errSyntax
	}
	if p.b[intStart] == '0' && p.pos-intStart > 1 {
		return nil, errSyntax // leading zero
	}
	if p.pos < len(p.b) && p.b[p.pos] == '.' {
		p.pos++
		if digits() == 0 {
			return nil, errSyntax
		}
	}
	if p.pos < len(p.b) && (p.b[p.pos] == 'e' || p.b[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.b) && (p.b[p.pos] == '+' || p.b[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return nil, errSyntax
		}
	}
	v := p.node(kNumber)
	v.str = p.s[start:p.pos]
	return v, nil
}

func (p *jparser) string() (string, error) {
	p.pos++ // opening quote
	start := p.pos
	// Fast path: no escapes, all ASCII printable.
	for p.pos < len(p.b) {
		c := p.b[p.pos]
		if c == '"' {
			s := p.s[start:p.pos]
			p.pos++
			return s, nil
		}
		if c == '\\' || c < 0x20 || c >= 0x80 {
			break
		}
		p.pos++
	}
	buf := append([]byte(nil), p.b[start:p.pos]...)
	for p.pos < len(p.b) {
		c := p.b[p.pos]
		switch {
		case c == '"':
			p.pos++
			return string(buf), nil
		case c < 0x20:
			return "", errSyntax
		case c == '\\':
			p.pos++
			if p.pos >= len(p.b) {
				return "", errSyntax
			}
			e := p.b[p.pos]
			p.pos++
			switch e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, ok := p.hex4()
				if !ok {
					return "", errSyntax
				}
				if utf16.IsSurrogate(r) {
					// A lone surrogate becomes U+FFFD, as encoding/json does.
					r2 := rune(-1)
					if p.pos+1 < len(p.b) && p.b[p.pos] == '\\' && p.b[p.pos+1] == 'u' {
						p.pos += 2
						if r2, ok = p.hex4(); !ok {
							return "", errSyntax
						}
					}
					r = utf16.DecodeRune(r, r2)
				}
				buf = utf8.AppendRune(buf, r)
			default:
				return "", errSyntax
			}
		case c < 0x80:
			buf = append(buf, c)
			p.pos++
		default:
			r, n := utf8.DecodeRune(p.b[p.pos:])
			if r == utf8.RuneError && n <= 1 {
				return "", errSyntax
			}
			buf = append(buf, p.b[p.pos:p.pos+n]...)
			p.pos += n
		}
	}
	return "", errSyntax
}

func (p *jparser) hex4() (rune, bool) {
	if len(p.b)-p.pos < 4 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(p.b[p.pos:p.pos+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	p.pos += 4
	return rune(v), true
}

// equalFold is ASCII case folding: JSON member names that differ only in
// case are what a lenient decoder would conflate.
func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// appendString writes s as a JSON string. Only what JSON requires is
// escaped: '/' and HTML characters stay literal, which is what the
// conformance notes and other SHAKEN implementations emit.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			const hex = "0123456789abcdef"
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// appendCanonical writes v as JSON with object members sorted by name and
// no whitespace (the RFC 8785 shape for the values PASSporTs carry: numbers
// are kept as received).
func appendCanonical(b []byte, v *jvalue) []byte {
	switch v.kind {
	case kString:
		return appendString(b, v.str)
	case kNumber:
		return append(b, v.str...)
	case kBool, kNull:
		return append(b, v.str...)
	case kArray:
		b = append(b, '[')
		for i, e := range v.arr {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendCanonical(b, e)
		}
		return append(b, ']')
	case kObject:
		ms := append([]member(nil), v.obj...)
		sort.Slice(ms, func(i, j int) bool { return ms[i].name < ms[j].name })
		b = append(b, '{')
		for i, m := range ms {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, m.name)
			b = append(b, ':')
			b = appendCanonical(b, m.val)
		}
		return append(b, '}')
	}
	return b
}
