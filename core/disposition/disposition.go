// Package disposition turns a verification result into what a SIP surface
// does with the call (conformance §2, last paragraph): strict rejects with
// the result's code; relaxed continues and marks the call with verstat and
// a Reason header. Every surface (Kamailio, FastAGI, SIP redirect, HTTP)
// asks this package instead of deciding for itself.
package disposition

import (
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
