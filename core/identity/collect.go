package identity

import (
	"strings"

	"github.com/stirgate/stirgate/core/stir"
)

// Collect parses every Identity header of one request (conformance rows
// 2-3). values are the header values in the order received, from both
// "Identity" and its compact form "y"; a value may hold several Identity
// values joined by commas, as some stacks fold repeated headers.
//
// err is non-nil when the request as a whole breaks a limit (too many
// headers, too many bytes); then nothing was parsed. Otherwise hdrs holds the
// values that parsed and errs the failures of those that did not, each in
// received order. No values at all yields three nils: whether that is a
// failure is the verifier's policy.
func Collect(values []string, lim Limits) (hdrs []*Header, errs []error, err error) {
	lim = lim.withDefaults()
	// Both limits are checked before any value is looked at closely.
	if len(values) > lim.MaxCount {
		return nil, nil, stir.ErrTooManyIdentity.Withf("%d Identity headers, limit %d", len(values), lim.MaxCount)
	}
	total := 0
	for _, v := range values {
		total += len(v)
	}
	if total > lim.MaxBytes {
		return nil, nil, stir.ErrIdentityTooLong.Withf("%d bytes of Identity headers, limit %d", total, lim.MaxBytes)
	}

	var parts []string
	for _, v := range values {
		parts = split(parts, v)
		if len(parts) > lim.MaxCount {
			return nil, nil, stir.ErrTooManyIdentity.Withf("more than %d Identity values", lim.MaxCount)
		}
	}
	for _, p := range parts {
		h, perr := parse(p, lim.MaxBytes)
		if perr != nil {
			errs = append(errs, perr)
			continue
		}
		hdrs = append(hdrs, h)
	}
	return hdrs, errs, nil
}

// split appends to dst the comma-separated elements of v, splitting only on
// commas outside <> and quoted strings. A value with no such comma is
// appended whole, untouched.
func split(dst []string, v string) []string {
	if strings.IndexByte(v, ',') < 0 {
		return append(dst, v)
	}
	start := 0
	angle, quote := false, false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case quote:
			if c == '\\' {
				i++
			} else if c == '"' {
				quote = false
			}
		case angle:
			if c == '>' {
				angle = false
			}
		case c == '"':
			quote = true
		case c == '<':
			angle = true
		case c == ',':
			dst = append(dst, v[start:i])
			start = i + 1
		}
	}
	return append(dst, v[start:])
}
