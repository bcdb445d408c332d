// Package disposition turns a verification result into what a SIP surface
// does with the call (conformance §2, last paragraph): strict rejects with
// the result's code; relaxed continues and marks the call with verstat and
// a Reason header. Every surface (Kamailio, FastAGI, SIP redirect, HTTP)
// asks this package instead of deciding for itself.
package disposition

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/stirgate/stirgate/core/stir"
)

// Mode is the disposition policy.
type Mode string

// Modes.
const (
	Relaxed Mode = "relaxed"
	Strict  Mode = "strict"
)

// Options configures Decide. The zero value is relaxed, SIP Reason, no
// verstat suffix.
type Options struct {
	Mode Mode
	// ReasonProtocol is "SIP" (default) or "STIR" (RFC 9410).
	ReasonProtocol string
	// VerstatSuffix appends "-A", "-B" or "-C" to a passed verstat, as some
	// carriers' equipment expects. Off by default: 3GPP defines only the
	// three plain values.
	VerstatSuffix bool
	// RCDDisplayName puts a verified rcd nam (RFC 9795) into the display
	// name of From and P-Asserted-Identity. Off by default: the caller's
	// own display name is then replaced by what the signer asserted.
	RCDDisplayName bool
}

// Action is what to do with the call.
type Action struct {
	// Reject: answer Code Reason instead of forwarding (strict mode).
	Reject bool
	Code   int
	Reason string
	// Verstat is the value for the verstat URI parameter of From and
	// P-Asserted-Identity when the call continues.
	Verstat string
	// ReasonHeader is the value of a Reason header to add when the call
	// continues with a failure (RFC 9410), or "" when there is none.
	ReasonHeader string
	// CallInfo are Call-Info header values (RFC 9796) carrying verified
	// rich call data when the call continues: the jCard, the logo and the
	// call reason, each marked verified.
	CallInfo []string
	// DisplayName, when not empty, is the verified rcd nam to show as the
	// caller's display name (Options.RCDDisplayName).
	DisplayName string
}

// Decide maps r to an Action under o.
func Decide(r *stir.Result, o Options) Action {
	a := Action{Verstat: string(r.Verstat), Code: r.SIPCode, Reason: r.Reason}
	if a.Verstat == "" {
		a.Verstat = string(stir.VerstatNone)
	}
	if o.VerstatSuffix && r.Result == stir.Pass && r.Attest != "" {
		a.Verstat += "-" + string(r.Attest)
	}
	if r.Result == stir.Pass && r.RCD != nil {
		a.CallInfo = CallInfo(r.RCD)
		if o.RCDDisplayName {
			a.DisplayName = r.RCD.Nam
		}
	}
	if r.SIPCode == 0 {
		return a
	}
	if o.Mode == Strict {
		a.Reject = true
		return a
	}
	a.ReasonHeader = ReasonHeader(o.ReasonProtocol, r.SIPCode, r.Reason)
	return a
}

// CallInfo formats verified rich call data as RFC 9796 Call-Info values:
// the jCard (its URL, or the inline or name-only jCard as a data: URI)
// with purpose=jcard and the call reason, and the logo with purpose=icon.
// The "verified" parameter says a verification service vouched for them.
func CallInfo(r *stir.RCD) []string {
	var card string
	// URLs come from the signer: one that could end or split the header
	// value (<, >, quotes, whitespace, controls) is left out.
	switch {
	case r.Jcl != "" && safeURI(r.Jcl):
		card = r.Jcl
	case len(r.Jcd) > 0:
		card = "data:application/json;base64," + base64.StdEncoding.EncodeToString(r.Jcd)
	case r.Nam != "":
		j, _ := json.Marshal([]any{"vcard", [][]any{{"version", map[string]any{}, "text", "4.0"}, {"fn", map[string]any{}, "text", r.Nam}}})
		card = "data:application/json;base64," + base64.StdEncoding.EncodeToString(j)
	}
	var out []string
	if card != "" || r.Crn != "" {
		if card == "" {
			card = "data:,"
		}
		v := "<" + card + ">;purpose=jcard"
		if r.Crn != "" {
			v += `;call-reason="` + quote(r.Crn) + `"`
		}
		out = append(out, v+";verified")
	}
	if r.Icn != "" && safeURI(r.Icn) {
		out = append(out, "<"+r.Icn+">;purpose=icon;verified")
	}
	return out
}

func safeURI(u string) bool {
	return u != "" && !strings.ContainsFunc(u, func(r rune) bool {
		return r <= ' ' || r == 0x7f || r == '<' || r == '>' || r == '"' || r > 0x7e
	})
}

// quote escapes s for a quoted-string, dropping the control characters a
// header value cannot carry.
func quote(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

// ReasonHeader formats a Reason header value: `SIP;cause=438;text="..."`.
func ReasonHeader(protocol string, code int, text string) string {
	if protocol == "" {
		protocol = "SIP"
	}
	var b strings.Builder
	b.WriteString(protocol)
	b.WriteString(";cause=")
	b.WriteString(strconv.Itoa(code))
	b.WriteString(`;text="`)
	b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(text))
	b.WriteString(`"`)
	return b.String()
}
