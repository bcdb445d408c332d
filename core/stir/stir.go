// Package stir holds the vocabulary every stirgate surface shares: the
// verification status (verstat), the attestation level, the one error type
// that carries a SIP code and a stable name, and the verification result.
//
// Surfaces (the C library, FastAGI, AMI, HTTP, SIP) never invent their own
// codes: they do one errors.As into *Error and print its fields.
package stir

import (
	"errors"
	"fmt"
)

// Verstat is the TN verification status of 3GPP TS 24.229 §7.2A.20.
type Verstat string

// The only three verstat values a verifier emits. The attestation level is
// carried beside them, never folded in (a vendor suffix is a surface option).
const (
	VerstatPassed Verstat = "TN-Validation-Passed"
	VerstatFailed Verstat = "TN-Validation-Failed"
	VerstatNone   Verstat = "No-TN-Validation"
)

// Attestation is the SHAKEN attest claim (RFC 8588 §4).
type Attestation string

// Attestation levels.
const (
	AttestFull    Attestation = "A"
	AttestPartial Attestation = "B"
	AttestGateway Attestation = "C"
)

// ParseAttestation accepts exactly "A", "B" or "C".
func ParseAttestation(s string) (Attestation, error) {
	switch a := Attestation(s); a {
	case AttestFull, AttestPartial, AttestGateway:
		return a, nil
	}
	return "", fmt.Errorf("attestation %q: want A, B or C", s)
}

// Error is the single error type of stirgate. Name is API: it is stable
// across releases, printed by every surface, and compared by Is. SIPCode and
// Reason are what a SIP surface answers (RFC 8224 §6.2.2, RFC 9410 Reason).
type Error struct {
	Name    string  // stable machine name, e.g. "stale_iat"
	SIPCode int     // 403, 428, 436, 437, 438 for verification; others for signing
	Reason  string  // SIP reason phrase for SIPCode
	Verstat Verstat // what a relaxed verifier reports
	Detail  string  // human detail for logs; not API
	Err     error   // underlying cause, if any
}

func (e *Error) Error() string {
	s := e.Name
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error of the same Name, so that a
// sentinel matches any detailed copy made from it.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Name == e.Name
}

// With returns a copy of the sentinel e carrying detail and cause.
func (e *Error) With(detail string, cause error) *Error {
	c := *e
	c.Detail = detail
	c.Err = cause
	return &c
}

// Withf is With with a formatted detail and no cause.
func (e *Error) Withf(format string, args ...any) *Error {
	return e.With(fmt.Sprintf(format, args...), nil)
}

// As returns the *Error in err's chain, or nil.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// SIP reason phrases of RFC 8224 §13.4 and RFC 3261.
const (
	ReasonUseIdentity   = "Use Identity Header"
	ReasonBadInfo       = "Bad Identity Info"
	ReasonUnsupported   = "Unsupported Credential"
	ReasonInvalidHeader = "Invalid Identity Header"
	ReasonStaleDate     = "Stale Date"
	ReasonBadRequest    = "Bad Request"
	ReasonServerError   = "Server Internal Error"
	ReasonForbidden     = "Forbidden"
)

func verr(name string, code int, reason string, vs Verstat) *Error {
	e := &Error{Name: name, SIPCode: code, Reason: reason, Verstat: vs}
	all = append(all, e)
	return e
}

func invalid(name string) *Error { return verr(name, 438, ReasonInvalidHeader, VerstatFailed) }
func badInfo(name string) *Error { return verr(name, 436, ReasonBadInfo, VerstatFailed) }
func cred(name string) *Error    { return verr(name, 437, ReasonUnsupported, VerstatFailed) }
func stale(name string) *Error   { return verr(name, 403, ReasonStaleDate, VerstatFailed) }

var all []*Error

// Sentinels. Their Name values are API: surfaces print them and operators
// alert on them. Add, never rename.
var (
	// Presence and limits (conformance row 2).
	ErrNoIdentity      = verr("no_identity", 428, ReasonUseIdentity, VerstatNone)
	ErrNotShaken       = verr("not_shaken", 428, ReasonUseIdentity, VerstatNone)
	ErrTooManyIdentity = invalid("too_many_identity")
	ErrIdentityTooLong = invalid("identity_too_large")

	// Header syntax (row 3).
	ErrHeaderMalformed = invalid("header_malformed")
	ErrCompactForm     = invalid("compact_form")
	ErrInfoMissing     = invalid("info_missing")
	ErrInfoMalformed   = invalid("info_malformed")

	// JOSE header (row 5).
	ErrJSONMalformed   = invalid("json_malformed")
	ErrAlgUnsupported  = invalid("alg_unsupported")
	ErrTypInvalid      = invalid("typ_invalid")
	ErrPptInvalid      = invalid("ppt_invalid")
	ErrX5UMismatch     = invalid("x5u_info_mismatch")
	ErrCritUnsupported = invalid("crit_unsupported")

	// Claims (row 6).
	ErrIATInvalid    = invalid("iat_invalid")
	ErrOrigInvalid   = invalid("orig_invalid")
	ErrDestInvalid   = invalid("dest_invalid")
	ErrAttestInvalid = invalid("attest_invalid")
	ErrOrigIDInvalid = invalid("origid_invalid")

	// Freshness (row 7).
	ErrStaleIAT   = stale("stale_iat")
	ErrFutureIAT  = stale("future_iat")
	ErrStaleDate  = stale("stale_date")
	ErrDateFormat = stale("date_invalid")

	// Request binding (row 8).
	ErrOrigMismatch = invalid("orig_mismatch")
	ErrDestMismatch = invalid("dest_mismatch")
	ErrTNInvalid    = invalid("tn_invalid")

	// Credential retrieval (rows 9-10).
	ErrX5UForbidden   = badInfo("x5u_forbidden")
	ErrX5UFetchFailed = badInfo("x5u_fetch_failed")
	ErrX5UBadContent  = badInfo("x5u_bad_content")
	ErrX5UOffline     = badInfo("x5u_not_preloaded")

	// Certificate profile and path (row 11).
	ErrCertProfile   = cred("cert_profile")
	ErrCertUntrusted = cred("cert_untrusted")
	ErrCertExpired   = cred("cert_expired")
	ErrCertRevoked   = cred("cert_revoked")
	ErrCertNoTNAuth  = cred("cert_no_tnauthlist")
	ErrCRLUnusable   = cred("crl_unusable")

	// Signature (row 12).
	ErrSignatureMalformed = invalid("signature_malformed")
	ErrSignatureInvalid   = invalid("signature_invalid")
	ErrNonCanonical       = invalid("non_canonical_json")

	// Request shape (row 1).
	ErrNotInitialInvite = verr("not_initial_invite", 0, "", VerstatNone)

	// Signing side (STI-AS). These never reach a verifier's peer; a SIP
	// surface answers them with its configured "not signed" disposition.
	ErrSignInput       = verr("sign_input_invalid", 400, ReasonBadRequest, "")
	ErrSignDate        = verr("sign_date_out_of_window", 403, ReasonStaleDate, "")
	ErrSignCertInvalid = verr("sign_cert_invalid", 500, ReasonServerError, "")
	ErrSignKey         = verr("sign_key_invalid", 500, ReasonServerError, "")
	ErrSignNotAllowed  = verr("sign_not_allowed", 403, ReasonForbidden, "")
	ErrAlreadySigned   = verr("already_signed", 0, "", "")

	// Internal failure that is not the caller's fault (never expected).
	ErrInternal = verr("internal_error", 500, ReasonServerError, VerstatNone)
)

// All returns every sentinel, for tests that assert names are unique and
// for documentation generators.
func All() []*Error { return append([]*Error(nil), all...) }

// Rank orders failures for "report the most relevant" (conformance row 13):
// a failure further along the pipeline says more about the header. A fetch
// failure (436) is the least relevant, so it is reported only when no
// credential could be fetched for any header.
func Rank(e *Error) int {
	switch e.SIPCode {
	case 436:
		return 1
	case 428:
		return 0
	case 438:
		return 2
	case 403:
		return 3
	case 437:
		return 4
	}
	return 2
}
