package sipmsg

import "strings"

// compact maps the one-letter header names of RFC 3261 §7.3.3 and later
// RFCs to their full names.
var compact = map[byte]string{
	'a': "Accept-Contact",      // RFC 3841
	'b': "Referred-By",         // RFC 3892
	'c': "Content-Type",        // RFC 3261
	'd': "Request-Disposition", // RFC 3841
	'e': "Content-Encoding",    // RFC 3261
	'f': "From",                // RFC 3261
	'i': "Call-ID",             // RFC 3261
	'j': "Reject-Contact",      // RFC 3841
	'k': "Supported",           // RFC 3261
	'l': "Content-Length",      // RFC 3261
	'm': "Contact",             // RFC 3261
	'o': "Event",               // RFC 6665
	'r': "Refer-To",            // RFC 3515
	's': "Subject",             // RFC 3261
	't': "To",                  // RFC 3261
	'u': "Allow-Events",        // RFC 6665
	'v': "Via",                 // RFC 3261
	'x': "Session-Expires",     // RFC 4028
	'y': "Identity",            // RFC 8224
}

// fullName returns the full form of a compact header name, or name.
func fullName(name string) string {
	if len(name) == 1 {
		if full, ok := compact[name[0]|0x20]; ok {
			return full
		}
	}
	return name
}

// Values returns the values of every header named name, in order. Names
// compare case-insensitively and a compact name matches its full name:
// Values("Identity") also returns the "y" headers. Values are returned as
// received; a value holding several comma-separated elements is not split.
func (m *Message) Values(name string) []string {
	name = fullName(name)
	var vs []string
	for _, f := range m.Headers {
		if strings.EqualFold(fullName(f.Name), name) {
			vs = append(vs, f.Value)
		}
	}
	return vs
}

// Get returns the first value of the header named name (as Values), or "".
func (m *Message) Get(name string) string {
	name = fullName(name)
	for _, f := range m.Headers {
		if strings.EqualFold(fullName(f.Name), name) {
			return f.Value
		}
	}
	return ""
}

// ToTag returns the tag parameter of the To header, or "" when there is
// none: an initial INVITE has no To tag (conformance row 1).
func (m *Message) ToTag() string {
	return headerParam(m.Get("To"), "tag")
}

// headerParam returns the value of the header parameter name of a name-addr
// or addr-spec value. Without <>, every ';' parameter belongs to the header
// (RFC 3261 §20.10).
func headerParam(v, name string) string {
	params := ""
	inQuote := false
scan:
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case inQuote:
		case c == '<':
			gt := strings.IndexByte(v[i:], '>')
			if gt < 0 {
				return ""
			}
			params = v[i+gt+1:]
			break scan
		case c == ';':
			params = v[i:]
			break scan
		}
	}
	for params != "" {
		semi := strings.IndexByte(params, ';')
		if semi < 0 {
			return ""
		}
		params = params[semi+1:]
		p := params
		if k := strings.IndexByte(p, ';'); k >= 0 {
			p = p[:k]
		}
		k, val, _ := strings.Cut(p, "=")
		if strings.EqualFold(trimWS(k), name) {
			return trimWS(val)
		}
	}
	return ""
}
