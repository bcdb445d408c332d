package disposition

import (
	"reflect"
	"strings"
	"testing"

	"github.com/stirgate/stirgate/core/stir"
)

func TestDecide(t *testing.T) {
	pass := &stir.Result{Result: stir.Pass, Verstat: stir.VerstatPassed, Attest: "B"}
	fail := (&stir.Result{}).Failed(stir.ErrSignatureInvalid)
	none := &stir.Result{Result: stir.None, Verstat: stir.VerstatNone}
	required := (&stir.Result{}).Failed(stir.ErrNoIdentity)
	tests := []struct {
		name string
		r    *stir.Result
		o    Options
		want Action
	}{
		{"pass relaxed", pass, Options{}, Action{Verstat: "TN-Validation-Passed"}},
		{"pass suffix", pass, Options{VerstatSuffix: true}, Action{Verstat: "TN-Validation-Passed-B"}},
		{"pass strict", pass, Options{Mode: Strict}, Action{Verstat: "TN-Validation-Passed"}},
		{"fail relaxed", fail, Options{}, Action{Code: 438, Reason: "Invalid Identity Header", Verstat: "TN-Validation-Failed",
			ReasonHeader: `SIP;cause=438;text="Invalid Identity Header"`}},
		{"fail relaxed STIR", fail, Options{ReasonProtocol: "STIR"}, Action{Code: 438, Reason: "Invalid Identity Header", Verstat: "TN-Validation-Failed",
			ReasonHeader: `STIR;cause=438;text="Invalid Identity Header"`}},
		{"fail strict", fail, Options{Mode: Strict, VerstatSuffix: true}, Action{Reject: true, Code: 438, Reason: "Invalid Identity Header", Verstat: "TN-Validation-Failed"}},
		{"none relaxed", none, Options{}, Action{Verstat: "No-TN-Validation"}},
		{"none strict", none, Options{Mode: Strict}, Action{Verstat: "No-TN-Validation"}},
		{"required strict", required, Options{Mode: Strict}, Action{Reject: true, Code: 428, Reason: "Use Identity Header", Verstat: "No-TN-Validation"}},
		{"empty result", &stir.Result{}, Options{}, Action{Verstat: "No-TN-Validation"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Decide(tc.r, tc.o); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
	if got := ReasonHeader("", 403, `Stale "Date"`); got != `SIP;cause=403;text="Stale \"Date\""` {
		t.Fatal(got)
	}
}

func TestCallInfo(t *testing.T) {
	pass := func(r *stir.RCD) *stir.Result {
		return &stir.Result{Result: stir.Pass, Verstat: stir.VerstatPassed, Attest: "A", RCD: r}
	}
	a := Decide(pass(&stir.RCD{Nam: "ACME", Jcl: "https://rcd.example/acme.json", Icn: "https://rcd.example/acme.png", Crn: `Your "order"`}), Options{})
	want := []string{`<https://rcd.example/acme.json>;purpose=jcard;call-reason="Your \"order\"";verified`, `<https://rcd.example/acme.png>;purpose=icon;verified`}
	if len(a.CallInfo) != 2 || a.CallInfo[0] != want[0] || a.CallInfo[1] != want[1] || a.DisplayName != "" {
		t.Fatalf("%q %q", a.CallInfo, a.DisplayName)
	}
	// An inline jCard, or the name alone, travels as a data: URI.
	a = Decide(pass(&stir.RCD{Nam: "ACME", Jcd: []byte(`["vcard",[]]`)}), Options{RCDDisplayName: true})
	if len(a.CallInfo) != 1 || a.CallInfo[0] != "<data:application/json;base64,WyJ2Y2FyZCIsW11d>;purpose=jcard;verified" || a.DisplayName != "ACME" {
		t.Fatalf("%q %q", a.CallInfo, a.DisplayName)
	}
	a = Decide(pass(&stir.RCD{Nam: "ACME"}), Options{})
	if len(a.CallInfo) != 1 || !strings.HasPrefix(a.CallInfo[0], "<data:application/json;base64,") {
		t.Fatalf("%q", a.CallInfo)
	}
	// URLs that would break the header are left out; nothing on failure.
	a = Decide(pass(&stir.RCD{Nam: "A", Jcl: "https://x/a>\r\nVia: x", Icn: "https://x/ b.png"}), Options{})
	for _, v := range a.CallInfo {
		if strings.ContainsAny(v, "\r\n ") || strings.Contains(v, "purpose=icon") {
			t.Fatalf("unsafe Call-Info %q", v)
		}
	}
	fail := (&stir.Result{RCD: &stir.RCD{Nam: "A"}}).Failed(stir.ErrStaleIAT)
	if a := Decide(fail, Options{RCDDisplayName: true}); a.CallInfo != nil || a.DisplayName != "" {
		t.Fatalf("failure carries rcd: %+v", a)
	}
}
