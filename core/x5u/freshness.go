package x5u

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// lifetime reads how long a response may be reused (RFC 9111 §4.2.1):
// s-maxage, then max-age (less Age), then Expires less Date. no-store and
// no-cache yield 0, which the caller raises to MinTTL: a certificate
// server that forbids caching would otherwise be fetched on every call.
// ok is false when the response says nothing, so the caller uses its
// default.
func lifetime(h http.Header, now time.Time) (ttl time.Duration, ok bool) {
	var maxAge, sMaxAge = -1, -1
	for _, v := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(v, ",") {
			name, arg, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store", "no-cache":
				return 0, true
			case "max-age":
				maxAge = deltaSeconds(arg)
			case "s-maxage":
				sMaxAge = deltaSeconds(arg)
			}
		}
	}
	age := time.Duration(max(deltaSeconds(h.Get("Age")), 0)) * time.Second
	switch {
	case sMaxAge >= 0:
		return max(time.Duration(sMaxAge)*time.Second-age, 0), true
	case maxAge >= 0:
		return max(time.Duration(maxAge)*time.Second-age, 0), true
	}
	if ev := h.Get("Expires"); ev != "" {
		exp, err := http.ParseTime(ev)
		if err != nil {
			// RFC 9111 §5.3: an invalid Expires ("0") means already
			// expired.
			return 0, true
		}
		// Expires is judged against the server's own Date, so that clock
		// skew between us and the server does not change the lifetime.
		base := now
		if d, err := http.ParseTime(h.Get("Date")); err == nil {
			base = d
		}
		return max(exp.Sub(base), 0), true
	}
	return 0, false
}

// deltaSeconds parses a delta-seconds value, -1 when malformed. Values too
// large for an int saturate (RFC 9111 §1.2.2); they are clamped later.
func deltaSeconds(s string) int {
	s = strings.Trim(strings.TrimSpace(s), `"`)
	if s == "" {
		return -1
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return -1
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > 1<<31 {
		return 1 << 31
	}
	return n
}
