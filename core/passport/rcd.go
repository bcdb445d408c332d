package passport

import (
	"crypto/sha256"
	"encoding/base64"
	"sort"

	"github.com/stirgate/stirgate/core/stir"
)

// RCD is rich call data (RFC 9795): what the callee may be shown about the
// caller. It travels in the "rcd" claim of the SHAKEN PASSporT (the BCID
// form); the call reason "crn" and the integrity digests "rcdi" are claims
// beside it.
type RCD struct {
	Nam string // display name
	Jcd string // jCard, inline: its canonical JSON text
	Jcl string // jCard, by URL
	Icn string // logo, by URL
}

// rcd claim bounds: hostile input must not make us keep or hash much.
const (
	maxRCDString = 1024
	maxRCDI      = 8
)

// Digest is the rcdi form of content's SHA-256: "sha256-" and standard
// base64 (RFC 9795 §6, the Subresource Integrity notation).
func Digest(content []byte) string {
	h := sha256.Sum256(content)
	return "sha256-" + base64.StdEncoding.EncodeToString(h[:])
}

// CanonicalJSON returns b re-encoded with members sorted and no
// whitespace, the form an inline jCard is hashed in (RFC 8785's shape for
// the strings, arrays and objects a jCard holds).
func CanonicalJSON(b []byte) ([]byte, error) {
	v, err := parseJSON(b)
	if err != nil {
		return nil, stir.ErrRCDInvalid.With("JSON", err)
	}
	return appendCanonical(nil, v), nil
}

// parseRCD reads the rcd, crn and rcdi claims of a SHAKEN PASSporT, each
// optional. Unknown rcd members are ignored (the claim is extensible), so
// strict mode, which compares with our encoding, refuses them.
func (c *Claims) parseRCD(v *jvalue) error {
	if r := v.get("rcd"); r != nil {
		if r.kind != kObject {
			return stir.ErrRCDInvalid.Withf("rcd is not an object")
		}
		d := &RCD{}
		str := func(name string, dst *string) error {
			m := r.get(name)
			if m == nil {
				return nil
			}
			if m.kind != kString || m.str == "" || len(m.str) > maxRCDString {
				return stir.ErrRCDInvalid.Withf("rcd.%s is not a string of 1 to %d bytes", name, maxRCDString)
			}
			*dst = m.str
			return nil
		}
		for _, f := range [...]struct {
			name string
			dst  *string
		}{{"nam", &d.Nam}, {"jcl", &d.Jcl}, {"icn", &d.Icn}} {
			if err := str(f.name, f.dst); err != nil {
				return err
			}
		}
		if d.Nam == "" {
			return stir.ErrRCDInvalid.Withf("rcd.nam missing")
		}
		if j := r.get("jcd"); j != nil {
			if j.kind != kArray {
				return stir.ErrRCDInvalid.Withf("rcd.jcd is not a jCard array")
			}
			d.Jcd = string(appendCanonical(nil, j))
			if len(d.Jcd) > 4*maxRCDString {
				return stir.ErrRCDInvalid.Withf("rcd.jcd of %d bytes", len(d.Jcd))
			}
		}
		if d.Jcd != "" && d.Jcl != "" {
			return stir.ErrRCDInvalid.Withf("rcd carries both jcd and jcl")
		}
		c.RCD = d
	}
	if crn := v.get("crn"); crn != nil {
		if crn.kind != kString || crn.str == "" || len(crn.str) > maxRCDString {
			return stir.ErrRCDInvalid.Withf("crn is not a string of 1 to %d bytes", maxRCDString)
		}
		c.Crn = crn.str
	}
	if ri := v.get("rcdi"); ri != nil {
		if ri.kind != kObject || len(ri.obj) == 0 || len(ri.obj) > maxRCDI {
			return stir.ErrRCDInvalid.Withf("rcdi is not an object of 1 to %d digests", maxRCDI)
		}
		if c.RCD == nil {
			return stir.ErrRCDInvalid.Withf("rcdi without rcd")
		}
		c.RCDI = make(map[string]string, len(ri.obj))
		for _, m := range ri.obj {
			if m.val.kind != kString || m.name == "" || m.name[0] != '/' || len(m.val.str) > 128 {
				return stir.ErrRCDInvalid.Withf("rcdi member %.32q is not a JSON pointer to a digest", m.name)
			}
			c.RCDI[m.name] = m.val.str
		}
	}
	return nil
}

// appendRCD writes the crn, rcd and rcdi members that follow a SHAKEN
// claim set's origid, keys in order (crn comes earlier; see MarshalClaims).
func appendRCD(b []byte, c Claims) []byte {
	if c.RCD != nil {
		b = append(b, `,"rcd":{`...)
		first := true
		field := func(name, val string, raw bool) {
			if val == "" {
				return
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendString(b, name)
			b = append(b, ':')
			if raw {
				b = append(b, val...)
			} else {
				b = appendString(b, val)
			}
		}
		field("icn", c.RCD.Icn, false)
		field("jcd", c.RCD.Jcd, true)
		field("jcl", c.RCD.Jcl, false)
		field("nam", c.RCD.Nam, false)
		b = append(b, '}')
	}
	if len(c.RCDI) > 0 {
		keys := make([]string, 0, len(c.RCDI))
		for k := range c.RCDI {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = append(b, `,"rcdi":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, c.RCDI[k])
		}
		b = append(b, '}')
	}
	return b
}
