package ami

import (
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/stir"
)

// TestNativeResultsAsterisk22 runs every name Asterisk 22's vs_rc_map
// (res/res_stir_shaken/verification.c) emits for
// STIR_SHAKEN(N,verify_result) through the listener's event mapping. The
// list is copied from Asterisk 22.10.1, in its order, so that a name the
// map misses (or spells differently) fails here instead of being stored as
// "native:…".
func TestNativeResultsAsterisk22(t *testing.T) {
	tests := []struct {
		native, result, err string
	}{
		{"success", "pass", ""},
		{"disabled", "none", ""},
		{"invalid_arguments", "error", "internal_error"},
		{"internal_error", "error", "internal_error"},
		{"missing_identity_hdr", "none", "no_identity"},
		{"missing_date_hdr", "fail", "date_invalid"},
		{"date_hdr_parse_failure", "fail", "date_invalid"},
		{"date_hdr_range_error", "fail", "stale_date"},
		{"missing_jwt_hdr", "fail", "header_malformed"},
		{"cert_cache_miss", "fail", "x5u_fetch_failed"},
		{"cert_cache_invalid", "fail", "x5u_bad_content"},
		{"cert_cache_expired", "fail", "x5u_fetch_failed"},
		{"cert_retrieval_failure", "fail", "x5u_fetch_failed"},
		{"cert_contents_invalid", "fail", "x5u_bad_content"},
		{"cert_not_trusted", "fail", "cert_untrusted"},
		{"cert_date_failure", "fail", "cert_expired"},
		{"cert_no_tn_auth_ext", "fail", "cert_no_tnauthlist"},
		{"cert_no_spc_in_auth_ext", "fail", "cert_profile"},
		{"no_raw_key", "fail", "cert_profile"},
		{"signature_validation", "fail", "signature_invalid"},
		{"missing_iat", "fail", "iat_invalid"},
		{"iat_range_error", "fail", "stale_iat"},
		{"invalid_or_no_ppt", "fail", "ppt_invalid"},
		{"invalid_or_no_alg", "fail", "alg_unsupported"},
		{"invalid_or_no_typ", "fail", "typ_invalid"},
		{"invalid_or_no_grants", "fail", "json_malformed"},
		{"invalid_or_no_attest", "fail", "attest_invalid"},
		{"missing_origid", "fail", "origid_invalid"},
		{"missing_orig_tn", "fail", "orig_invalid"},
		{"cid_orig_tn_mismatch", "fail", "orig_mismatch"},
		{"missing_dest_tn", "fail", "dest_invalid"},
		{"invalid_header", "fail", "header_malformed"},
		{"invalid_grant", "fail", "json_malformed"},
		{"invalid_or_no_callerid", "fail", "tn_invalid"},
	}
	if len(tests) != 34 {
		t.Fatalf("Asterisk 22 emits 34 names, table has %d", len(tests))
	}
	byName := map[string]*stir.Error{}
	for _, e := range stir.All() {
		byName[e.Name] = e
	}
	now := time.Unix(1700000000, 0).UTC()
	for _, tt := range tests {
		t.Run(tt.native, func(t *testing.T) {
			m := Message{{Key: "Event", Value: "UserEvent"}, {Key: "Uniqueid", Value: "1.1"},
				{Key: "UserEvent", Value: UserEventName}, {Key: HdrVerifyResult, Value: tt.native}}
			o, ok := outcomeOf(m, "pbx1", nil, now)
			if !ok {
				t.Fatal("no outcome")
			}
			if o.Result != tt.result || o.ErrorName != tt.err || o.Kind != "verify" || o.Direction != "inbound" || o.Source != "native" {
				t.Fatalf("got %s/%s/%s/%s/%s, want verify/%s/%s/inbound/native", o.Kind, o.Result, o.ErrorName, o.Direction, o.Source, tt.result, tt.err)
			}
			if tt.err == "" {
				if o.SIPCode != 0 || o.Verstat != "" {
					t.Errorf("sip %d verstat %q for a result without error", o.SIPCode, o.Verstat)
				}
				return
			}
			e := byName[tt.err]
			if e == nil {
				t.Fatalf("%s is not a stirgate error name", tt.err)
			}
			if o.SIPCode != e.SIPCode || o.Verstat != string(e.Verstat) {
				t.Errorf("sip %d verstat %q, want %d %q", o.SIPCode, o.Verstat, e.SIPCode, e.Verstat)
			}
		})
	}
	// Names Asterisk never emits are not guessed at.
	for _, guess := range []string{"no_identity_hdr", "iat_expired"} {
		if _, ok := nativeResults[guess]; ok {
			t.Errorf("%s is mapped but no Asterisk release emits it", guess)
		}
	}
}
