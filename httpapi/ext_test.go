package httpapi

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/outcome"
)

// TestVerificationExtensions: a diverted call's div PASSporTs travel in
// "identities", and its chain must end at to.tn; a pass answers the
// verified "div" and "rcd" as `stirgate verify` prints them, a failure
// neither.
func TestVerificationExtensions(t *testing.T) {
	st, err := outcome.Open(context.Background(), outcome.Options{Path: filepath.Join(t.TempDir(), "o.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := newFixture(t, func(o *Options) { o.Recorder, o.System = st, "api1" })
	ctx := context.Background()
	shaken, err := f.signer.Sign(ctx, core.SignRequest{Orig: "12155550121", Dest: []string{"12155550131"}, Attest: "A"})
	if err != nil {
		t.Fatal(err)
	}
	div, err := f.signer.SignDiv(ctx, core.DivRequest{Identity: []string{shaken.Identity}, Dest: []string{"12155550141"}})
	if err != nil {
		t.Fatal(err)
	}
	rcd, err := f.signer.Sign(ctx, core.SignRequest{Orig: "12155550121", Dest: []string{"12155550131"}, Attest: "A",
		RCD: &core.RCD{Nam: "ACME Corp"}, Crn: "Delivery"})
	if err != nil {
		t.Fatal(err)
	}
	body := func(to, ident string, more ...string) string {
		req := map[string]any{"from": map[string]any{"tn": "12155550121"}, "to": map[string]any{"tn": []string{to}}, "identity": ident}
		if more != nil {
			req["identities"] = more
		}
		b, _ := json.Marshal(map[string]any{"verificationRequest": req})
		return string(b)
	}
	tests := []struct {
		name, body, verstat, want string
		absent                    []string
	}{
		{"diverted", body("12155550141", shaken.Identity, div.Identity), "TN-Validation-Passed", `"div":[{"tn":"12155550131"}]`, []string{`"rcd"`}},
		{"diverted, div first", body("12155550141", div.Identity, shaken.Identity), "TN-Validation-Passed", `"div":[{"tn":"12155550131"}]`, nil},
		{"diverted elsewhere", body("12155550199", shaken.Identity, div.Identity), "TN-Validation-Failed", `"error":"dest_mismatch"`, []string{`"div"`}},
		{"div without its SHAKEN", body("12155550141", div.Identity), "TN-Validation-Failed", `"reasoncode":`, []string{`"div"`}},
		{"rcd", body("12155550131", rcd.Identity), "TN-Validation-Passed", `"rcd":{"nam":"ACME Corp","crn":"Delivery"}`, []string{`"div"`}},
		{"rcd to another number", body("12155550199", rcd.Identity), "TN-Validation-Failed", `"reasoncode":438`, []string{`"rcd"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do(t, "POST", "/stir/v1/verification", "application/json", tc.body)
			if r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			var out VerificationResponse
			if err := json.Unmarshal([]byte(r.body), &out); err != nil {
				t.Fatal(err)
			}
			if out.VerificationResponse.Verstat != tc.verstat || !strings.Contains(r.body, tc.want) {
				t.Errorf("got %s, want verstat %s and %s", r.body, tc.verstat, tc.want)
			}
			for _, a := range tc.absent {
				if strings.Contains(r.body, a) {
					t.Errorf("%s in %s", a, r.body)
				}
			}
		})
	}

	// Each verification is recorded, a pass with its div and rcd.
	rows, err := st.Query(context.Background(), outcome.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range rows {
		got = append(got, o.Result+"/"+o.Div+"/"+o.RCDNam+"/"+o.RCDCrn)
	}
	sort.Strings(got)
	want := []string{"fail///", "fail///", "fail///", "pass//ACME Corp/Delivery", "pass/12155550131//", "pass/12155550131//"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("records %q, want %q", got, want)
	}
}
