package ami

import (
	"strconv"
	"strings"
	"time"

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

// nativeResults maps res_stir_shaken's verify_result strings (both the
// Asterisk 18 phrases and the 20+ response-code names) to stirgate's
// result and, where the meaning is the same, its stable error name.
var nativeResults = map[string]struct{ result, err string }{
	"verification passed":        {"pass", ""},
	"success":                    {"pass", ""},
	"verification not present":   {"none", "no_identity"},
	"no_identity_hdr":            {"none", "no_identity"},
	"disabled":                   {"none", ""},
	"signature failed":           {"fail", "signature_invalid"},
	"signature_validation":       {"fail", "signature_invalid"},
	"verification mismatch":      {"fail", "orig_mismatch"},
	"iat_expired":                {"fail", "stale_iat"},
	"no_iat":                     {"fail", "iat_invalid"},
	"date_hdr_expired":           {"fail", "stale_date"},
	"date_hdr_parse_failure":     {"fail", "date_invalid"},
	"cert_retrieval_failure":     {"fail", "x5u_fetch_failed"},
	"cert_not_trusted":           {"fail", "cert_untrusted"},
	"cert_date_invalid":          {"fail", "cert_expired"},
	"cert_no_tn_auth_ext":        {"fail", "cert_no_tnauthlist"},
	"cert_contents_invalid":      {"fail", "cert_profile"},
	"invalid_or_no_attest":       {"fail", "attest_invalid"},
	"invalid_or_no_origid":       {"fail", "origid_invalid"},
	"invalid_or_no_orig_tn":      {"fail", "orig_invalid"},
	"invalid_or_no_dest_tn":      {"fail", "dest_invalid"},
	"invalid_or_no_alg":          {"fail", "alg_unsupported"},
	"invalid_or_no_typ":          {"fail", "typ_invalid"},
	"invalid_or_no_ppt":          {"fail", "ppt_invalid"},
	"invalid_or_no_x5u":          {"fail", "info_malformed"},
	"verification_failed_noinfo": {"fail", ""},
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
			o.Result, o.ErrorName = r.result, r.err
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
