package stir

import "encoding/json"

// Outcome is the three-valued verification result surfaces print.
type Outcome string

// Outcomes. "none" means no SHAKEN Identity was there to judge.
const (
	Pass Outcome = "pass"
	Fail Outcome = "fail"
	None Outcome = "none"
)

// Result is what a verification produces. Its JSON form is API: the CLI,
// the C library, the HTTP service and the AGI variables print exactly these
// fields (absent ones omitted).
type Result struct {
	Result  Outcome     `json:"result"`
	Verstat Verstat     `json:"verstat"`
	SIPCode int         `json:"sip_code,omitempty"`
	Reason  string      `json:"reason,omitempty"`
	Error   string      `json:"error,omitempty"`
	Detail  string      `json:"detail,omitempty"`
	Attest  Attestation `json:"attest,omitempty"`
	OrigID  string      `json:"origid,omitempty"`
	Orig    string      `json:"orig,omitempty"`
	Dest    []string    `json:"dest,omitempty"`
	X5U     string      `json:"x5u,omitempty"`
	SPC     string      `json:"spc,omitempty"`
	IAT     int64       `json:"iat,omitempty"`
	// Div lists the verified diversions (RFC 8946), first diversion
	// first; only on pass.
	Div []Div `json:"div,omitempty"`
	// RCD is the verified rich call data (RFC 9795) with the call reason;
	// only on pass.
	RCD *RCD `json:"rcd,omitempty"`

	// Err is the failure behind Result when it is not Pass; nil on Pass.
	Err *Error `json:"-"`
}

// Div is one verified diversion: the number that diverted the call, and
// the new target it chose. The JSON form carries "tn" (the contract of
// `stirgate verify`); Dest and X5U are for surfaces that want more.
type Div struct {
	TN   string   `json:"tn"`
	Dest []string `json:"-"`
	X5U  string   `json:"-"`
}

// RCD is rich call data as verified: the display name, the jCard (inline
// JSON or its URL), the logo URL and the call reason. Content behind a URL
// matched its rcdi digest when the PASSporT carried one.
type RCD struct {
	Nam string          `json:"nam,omitempty"`
	Jcd json.RawMessage `json:"jcd,omitempty"`
	Jcl string          `json:"jcl,omitempty"`
	Icn string          `json:"icn,omitempty"`
	Crn string          `json:"crn,omitempty"`
	// Integrity reports whether rcdi digests vouched for the content.
	Integrity bool `json:"rcdi,omitempty"`
}

// Failed fills r from err and returns r. A non-*Error is reported as an
// internal error so that no failure is ever silent.
func (r *Result) Failed(err error) *Result {
	e := As(err)
	if e == nil {
		e = ErrInternal.With("", err)
	}
	r.Err = e
	r.Div = nil
	r.RCD = nil
	r.Result = Fail
	if e.Verstat == VerstatNone {
		r.Result = None
	}
	r.Verstat = e.Verstat
	if r.Verstat == "" {
		r.Verstat = VerstatFailed
	}
	r.SIPCode = e.SIPCode
	r.Reason = e.Reason
	r.Error = e.Name
	r.Detail = e.Error()
	return r
}
