package ami

import (
	"strconv"
	"strings"
	"time"

	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/outcome"
)

// The StirShaken UserEvent is the contract with the dialplan. A hangup
// handler raises it once per channel, e.g.
//
//	same => n,UserEvent(StirShaken,Direction: inbound,STIR_RESULT: ${STIR_RESULT},STIR_VERSTAT: ${STIR_VERSTAT},...)
//
// Each header below may also arrive as a "ChanVariable: NAME=value" line
// when the variable is listed in manager.conf channelvars; an explicit
// header wins.
const (
	UserEventName = "StirShaken"

	HdrKind      = "STIR_KIND" // "sign" or "verify"; else derived (see kindOf)
	HdrResult    = "STIR_RESULT"
	HdrVerstat   = "STIR_VERSTAT"
	HdrAttest    = "STIR_ATTEST"
	HdrOrigID    = "STIR_ORIGID"
	HdrSIPCode   = "STIR_SIP_CODE"
	HdrError     = "STIR_ERROR"
	HdrReason    = "STIR_REASON"
	HdrX5U       = "STIR_X5U"
	HdrSPC       = "STIR_SPC"
	HdrOrig      = "STIR_ORIG"
	HdrDest      = "STIR_DEST"
	HdrDirection = "Direction"

	// A PBX verifying with Asterisk's own res_stir_shaken passes
	// ${STIR_SHAKEN(0,verify_result)} and ${STIR_SHAKEN(0,attestation)}.
	HdrVerifyResult = "VerifyResult"
	HdrAttestation  = "Attestation"
)

// field reads a header, else the same-named channel variable.
func field(m Message, name string) string {
	if v := strings.TrimSpace(m.Get(name)); v != "" {
		return v
	}
	v, _ := m.Var(name)
	return strings.TrimSpace(v)
}

// eventTime reads the Timestamp header manager.conf's timestampevents adds
// ("1700000000.123456"), else now.
func eventTime(m Message, now time.Time) time.Time {
	ts := m.Get("Timestamp")
	if ts == "" {
		return now
	}
	sec, frac, _ := strings.Cut(ts, ".")
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || s <= 0 {
		return now
	}
	var ns int64
	if frac != "" {
		frac = (frac + "000000000")[:9]
		ns, _ = strconv.ParseInt(frac, 10, 64)
	}
	return time.Unix(s, ns).UTC()
}

// nativeResult is what one of res_stir_shaken's verify_result strings
// means in stirgate's vocabulary: a result and, where the meaning is the
// same, the stable error (whose SIP code and verstat the record takes).
type nativeResult struct {
	result string
	err    *stir.Error
}

// nativeResults maps res_stir_shaken's verify_result strings: the Asterisk
// 18 phrases, and exactly the names of Asterisk 22's vs_rc_map
// (res/res_stir_shaken/verification.c), which ast_stir_shaken_vs_rc_to_str
// emits for STIR_SHAKEN(N,verify_result).
var nativeResults = map[string]nativeResult{
	// Asterisk 18 (res_stir_shaken.c stir_shaken_verification_result_to_string).
	"verification passed":      {"pass", nil},
	"verification not present": {"none", stir.ErrNoIdentity},
	"signature failed":         {"fail", stir.ErrSignatureInvalid},
	"verification mismatch":    {"fail", stir.ErrOrigMismatch},

	// Asterisk 20+ vs_rc_map, in its order.
	"success":                 {"pass", nil},
	"disabled":                {"none", nil}, // verification off for the endpoint: nothing checked
	"invalid_arguments":       {"error", stir.ErrInternal},
	"internal_error":          {"error", stir.ErrInternal},
	"missing_identity_hdr":    {"none", stir.ErrNoIdentity},
	"missing_date_hdr":        {"fail", stir.ErrDateFormat},
	"date_hdr_parse_failure":  {"fail", stir.ErrDateFormat},
	"date_hdr_range_error":    {"fail", stir.ErrStaleDate},
	"missing_jwt_hdr":         {"fail", stir.ErrHeaderMalformed},
	"cert_cache_miss":         {"fail", stir.ErrX5UFetchFailed},
	"cert_cache_invalid":      {"fail", stir.ErrX5UBadContent},
	"cert_cache_expired":      {"fail", stir.ErrX5UFetchFailed},
	"cert_retrieval_failure":  {"fail", stir.ErrX5UFetchFailed},
	"cert_contents_invalid":   {"fail", stir.ErrX5UBadContent},
	"cert_not_trusted":        {"fail", stir.ErrCertUntrusted},
	"cert_date_failure":       {"fail", stir.ErrCertExpired},
	"cert_no_tn_auth_ext":     {"fail", stir.ErrCertNoTNAuth},
	"cert_no_spc_in_auth_ext": {"fail", stir.ErrCertProfile},
	"no_raw_key":              {"fail", stir.ErrCertProfile},
	"signature_validation":    {"fail", stir.ErrSignatureInvalid},
	"missing_iat":             {"fail", stir.ErrIATInvalid},
	"iat_range_error":         {"fail", stir.ErrStaleIAT},
	"invalid_or_no_ppt":       {"fail", stir.ErrPptInvalid},
	"invalid_or_no_alg":       {"fail", stir.ErrAlgUnsupported},
	"invalid_or_no_typ":       {"fail", stir.ErrTypInvalid},
	"invalid_or_no_grants":    {"fail", stir.ErrJSONMalformed},
	"invalid_or_no_attest":    {"fail", stir.ErrAttestInvalid},
	"missing_origid":          {"fail", stir.ErrOrigIDInvalid},
	"missing_orig_tn":         {"fail", stir.ErrOrigInvalid},
	"cid_orig_tn_mismatch":    {"fail", stir.ErrOrigMismatch},
	"missing_dest_tn":         {"fail", stir.ErrDestInvalid},
	"invalid_header":          {"fail", stir.ErrHeaderMalformed},
	"invalid_grant":           {"fail", stir.ErrJSONMalformed},
	"invalid_or_no_callerid":  {"fail", stir.ErrTNInvalid},
}

// kindOf decides whether a StirShaken event reports a signature or a
// verification: explicit STIR_KIND, else the direction, else the result
// vocabulary (signed/unsigned only come from signing).
func kindOf(kind, dir, result string) string {
	switch strings.ToLower(kind) {
	case outcome.KindSign, outcome.KindVerify:
		return strings.ToLower(kind)
	}
	switch strings.ToLower(dir) {
	case "outbound":
		return outcome.KindSign
	case "inbound":
		return outcome.KindVerify
	}
	switch result {
	case "signed", "unsigned":
		return outcome.KindSign
	}
	return outcome.KindVerify
}

// outcomeOf turns a StirShaken UserEvent into an outcome, filling the
// caller and dialled number from the channel's Newchannel when the event
// lacks them. ok is false for an event without a Uniqueid.
func outcomeOf(m Message, system string, ch *channel, now time.Time) (outcome.Outcome, bool) {
	uid := m.Get("Uniqueid")
	if uid == "" {
		return outcome.Outcome{}, false
	}
	o := outcome.Outcome{
		Time:      eventTime(m, now),
		System:    system,
		UniqueID:  uid,
		LinkedID:  m.Get("Linkedid"),
		Direction: strings.ToLower(field(m, HdrDirection)),
		Orig:      field(m, HdrOrig),
		Dest:      field(m, HdrDest),
		Result:    strings.ToLower(field(m, HdrResult)),
		Verstat:   field(m, HdrVerstat),
		Attest:    strings.ToUpper(field(m, HdrAttest)),
		OrigID:    field(m, HdrOrigID),
		ErrorName: field(m, HdrError),
		Reason:    field(m, HdrReason),
		X5U:       field(m, HdrX5U),
		SPC:       field(m, HdrSPC),
		Source:    outcome.SourceAMI,
	}
	o.SIPCode, _ = strconv.Atoi(field(m, HdrSIPCode))
	if native := field(m, HdrVerifyResult); native != "" && o.Result == "" {
		o.Source = outcome.SourceNative
		if r, ok := nativeResults[strings.ToLower(native)]; ok {
			o.Result = r.result
			if r.err != nil {
				o.ErrorName = r.err.Name
				if o.SIPCode == 0 {
					o.SIPCode = r.err.SIPCode
				}
				if o.Verstat == "" {
					o.Verstat = string(r.err.Verstat)
				}
			}
		} else {
			o.Result = "fail"
		}
		if o.ErrorName == "" && o.Result == "fail" {
			// Unknown to us: keep Asterisk's own words, namespaced so
			// they never collide with stirgate's stable names.
			o.ErrorName = "native:" + strings.ToLower(native)
		}
		if o.Reason == "" {
			o.Reason = native
		}
		if o.Direction == "" {
			o.Direction = "inbound"
		}
	}
	if o.Attest == "" {
		o.Attest = strings.ToUpper(field(m, HdrAttestation))
	}
	o.Kind = kindOf(field(m, HdrKind), o.Direction, o.Result)
	if ch != nil {
		if o.LinkedID == "" {
			o.LinkedID = ch.linkedID
		}
		if o.Orig == "" {
			o.Orig = ch.caller
		}
		if o.Dest == "" {
			o.Dest = ch.exten
		}
	}
	if o.Orig == "" {
		o.Orig = usable(m.Get("CallerIDNum"))
	}
	return o, true
}

// usable drops Asterisk's placeholder for an unknown caller ID.
func usable(v string) string {
	if v == "<unknown>" {
		return ""
	}
	return v
}
