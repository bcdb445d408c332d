package spool

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// appendRecord encodes r as encoding/json would (the same field names, an
// RFC 3339 time with nanoseconds), followed by a newline, without
// reflection or allocation: it runs on a SIP worker for every call.
func appendRecord(b []byte, r *Record) []byte {
	b = append(b, `{"Time":"`...)
	b = r.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = appendField(b, "System", r.System)
	b = appendField(b, "UniqueID", r.UniqueID)
	b = appendField(b, "Kind", r.Kind)
	b = appendField(b, "Direction", r.Direction)
	b = appendField(b, "Orig", r.Orig)
	b = appendField(b, "Dest", r.Dest)
	b = appendField(b, "Result", r.Result)
	b = appendField(b, "Verstat", r.Verstat)
	b = appendField(b, "Attest", r.Attest)
	b = appendField(b, "OrigID", r.OrigID)
	b = append(b, `,"SIPCode":`...)
	b = strconv.AppendInt(b, int64(r.SIPCode), 10)
	b = appendField(b, "ErrorName", r.ErrorName)
	b = appendField(b, "Reason", r.Reason)
	b = appendField(b, "X5U", r.X5U)
	b = appendField(b, "SPC", r.SPC)
	b = appendField(b, "Source", r.Source)
	b = appendField(b, "Peer", r.Peer)
	if r.Div != "" {
		b = appendField(b, "Div", r.Div)
	}
	if r.RCDNam != "" {
		b = appendField(b, "RCDNam", r.RCDNam)
	}
	if r.RCDCrn != "" {
		b = appendField(b, "RCDCrn", r.RCDCrn)
	}
	if r.Tenant != "" {
		b = appendField(b, "Tenant", r.Tenant)
	}
	if r.Customer != "" {
		b = appendField(b, "Customer", r.Customer)
	}
	if r.Rule != "" {
		b = appendField(b, "Rule", r.Rule)
	}
	return append(b, "}\n"...)
}

func appendField(b []byte, name, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, v)
}

const hex = "0123456789abcdef"

// appendString quotes s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as encoding/json does; no NUL byte is ever written (a NUL ends the
// records of an open segment).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, `\ufffd`...)
		} else if r == '\u2028' || r == '\u2029' {
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return append(b, '"')
}
