package disposition

import (
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
			if got := Decide(tc.r, tc.o); got != tc.want {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
	if got := ReasonHeader("", 403, `Stale "Date"`); got != `SIP;cause=403;text="Stale \"Date\""` {
		t.Fatal(got)
	}
}
