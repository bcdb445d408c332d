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

	// stage is the conformance row that produces the error; Rank uses it.
	stage int
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

// row is the conformance-table row whose check the sentinels that follow
// belong to; it is set while the var block below is initialised.
var row int

func verr(name string, code int, reason string, vs Verstat) *Error {
	e := &Error{Name: name, SIPCode: code, Reason: reason, Verstat: vs, stage: row}
	all = append(all, e)
	return e
}

func invalid(name string) *Error { return verr(name, 438, ReasonInvalidHeader, VerstatFailed) }
func badInfo(name string) *Error { return verr(name, 436, ReasonBadInfo, VerstatFailed) }
func cred(name string) *Error    { return verr(name, 437, ReasonUnsupported, VerstatFailed) }
func stale(name string) *Error   { return verr(name, 403, ReasonStaleDate, VerstatFailed) }

// at sets the row for the sentinels declared after it and returns nothing
// useful; it exists so that each group of the var block names its row.
func at(r int) struct{} { row = r; return struct{}{} }

var all []*Error

// Sentinels. Their Name values are API: surfaces print them and operators
// alert on them. Add, never rename.
var (
	_                  = at(2) // Presence and limits.
	ErrNoIdentity      = verr("no_identity", 428, ReasonUseIdentity, VerstatNone)
	ErrNotShaken       = verr("not_shaken", 428, ReasonUseIdentity, VerstatNone)
	ErrTooManyIdentity = invalid("too_many_identity")
	ErrIdentityTooLong = invalid("identity_too_large")

	_                  = at(3) // Header syntax.
	ErrHeaderMalformed = invalid("header_malformed")
	ErrCompactForm     = invalid("compact_form")
	ErrInfoMissing     = invalid("info_missing")
	ErrInfoMalformed   = invalid("info_malformed")

	_                  = at(5) // JOSE header.
	ErrJSONMalformed   = invalid("json_malformed")
	ErrAlgUnsupported  = invalid("alg_unsupported")
	ErrTypInvalid      = invalid("typ_invalid")
	ErrPptInvalid      = invalid("ppt_invalid")
	ErrX5UMismatch     = invalid("x5u_info_mismatch")
	ErrCritUnsupported = invalid("crit_unsupported")

	_                = at(6) // Claims.
	ErrIATInvalid    = invalid("iat_invalid")
	ErrOrigInvalid   = invalid("orig_invalid")
	ErrDestInvalid   = invalid("dest_invalid")
	ErrAttestInvalid = invalid("attest_invalid")
	ErrOrigIDInvalid = invalid("origid_invalid")

	_             = at(7) // Freshness.
	ErrStaleIAT   = stale("stale_iat")
	ErrFutureIAT  = stale("future_iat")
	ErrStaleDate  = stale("stale_date")
	ErrDateFormat = stale("date_invalid")

	_               = at(8) // Request binding.
	ErrOrigMismatch = invalid("orig_mismatch")
	ErrDestMismatch = invalid("dest_mismatch")
	ErrTNInvalid    = invalid("tn_invalid")

	_                 = at(9) // Credential retrieval (rows 9 and 10).
	ErrX5UForbidden   = badInfo("x5u_forbidden")
	ErrX5UFetchFailed = badInfo("x5u_fetch_failed")
	ErrX5UBadContent  = badInfo("x5u_bad_content")
	ErrX5UOffline     = badInfo("x5u_not_preloaded")

	_                = at(11) // Certificate profile and path.
	ErrCertProfile   = cred("cert_profile")
	ErrCertUntrusted = cred("cert_untrusted")
	ErrCertExpired   = cred("cert_expired")
	ErrCertRevoked   = cred("cert_revoked")
	ErrCertNoTNAuth  = cred("cert_no_tnauthlist")
	ErrCRLUnusable   = cred("crl_unusable")
	// Delegate certificates (RFC 9060, conformance §6 C1): a TNAuthList
	// outside its issuer's, or a signed number outside the certificate's.
	ErrCertTNScope = cred("cert_tn_out_of_scope")

	_                     = at(12) // Signature.
	ErrSignatureMalformed = invalid("signature_malformed")
	ErrSignatureInvalid   = invalid("signature_invalid")
	ErrNonCanonical       = invalid("non_canonical_json")
	// JWT claim constraints of the certificate (RFC 8226 §8, RFC 9118;
	// conformance §6 C2).
	ErrClaimConstraint = invalid("claim_constraint_violated")
	// An rcdi digest (RFC 9795) that does not match the content, or whose
	// content could not be fetched (conformance §6 R1).
	ErrRCDIMismatch = invalid("rcdi_mismatch")

	_             = at(6) // div claims (RFC 8946 §3), rcd claims (RFC 9795).
	ErrDivInvalid = invalid("div_invalid")
	ErrRCDInvalid = invalid("rcd_invalid")

	_                  = at(8) // div chain (conformance §6, D1-D3).
	ErrDivNoShaken     = invalid("div_without_shaken")
	ErrDivChainBroken  = invalid("div_chain_broken")
	ErrDivOrigMismatch = invalid("div_orig_mismatch")

	_                   = at(1) // Request shape.
	ErrNotInitialInvite = verr("not_initial_invite", 0, "", VerstatNone)

	_ = at(0) // Signing side (STI-AS). These never reach a verifier's peer; a SIP
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

// Rank orders failures for "report the most relevant" (conformance row
// 13): a header that failed further along the pipeline says more, so the
// rank is the row of the failing check. A fetch failure (436) ranks below
// every other failure: it is reported only when no credential could be
// fetched for any header. "No identity" (428) ranks lowest of all.
func Rank(e *Error) int {
	switch {
	case e.SIPCode == 436:
		return 1
	case e.SIPCode == 428:
		return 0
	}
	return 2 + e.stage
}
