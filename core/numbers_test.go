package core

import (
	"context"
	"testing"

	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/core/tn"
)

// Numbers as switches hand them over: RFC 4904 trunk-group parameters in
// the user part, and anonymous callers (RFC 3323 From, Privacy: id) whose
// number is in the P-Asserted-Identity alone. Both through the public
// Signer and Verifier.
func TestNumbersAsReceived(t *testing.T) {
	f := newFixture(t)
	const (
		anonFrom = `"Anonymous" <sip:anonymous@anonymous.invalid>;tag=a1`
		tgrpPAI  = `<sip:+12155550121;tgrp=TG-1;trunk-context=example.com@gw.example.com;user=phone>`
		tgrpTo   = `<sip:2155550131;tgrp=7;trunk-context=+1-215@example.net>`
	)
	ctx := context.Background()
	for _, tc := range []struct {
		name           string
		sign           SignRequest
		from, pai, to  string
		result         stir.Outcome
		want           *stir.Error
		fromVerstatted bool // From gains ;verstat (a TN), or stays as is (anonymous)
	}{
		{name: "anonymous From, PAI signs and verifies", sign: SignRequest{From: anonFrom, PAI: tgrpPAI, To: toHdr},
			from: anonFrom, pai: tgrpPAI, to: toHdr, result: stir.Pass},
		{name: "trunk groups on orig and dest", sign: SignRequest{Orig: "+12155550121;tgrp=TG-1;trunk-context=example.com", Dest: []string{"2155550131;tgrp=7"}},
			from: tgrpPAI, to: tgrpTo, result: stir.Pass, fromVerstatted: true},
		{name: "trunk-group headers", sign: SignRequest{From: tgrpPAI, To: tgrpTo},
			from: fromHdr, to: toHdr, result: stir.Pass, fromVerstatted: true},
		{name: "anonymous without PAI cannot match", sign: SignRequest{PAI: tgrpPAI, To: toHdr},
			from: anonFrom, to: toHdr, result: stir.Fail, want: stir.ErrOrigMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.sign.Attest, tc.sign.OrigID = "A", uuidOK
			s, err := f.signer.Sign(ctx, tc.sign)
			if err != nil {
				t.Fatal(err)
			}
			if s.Orig != origTN || s.Dest[0] != destTN {
				t.Fatalf("signed %s → %v", s.Orig, s.Dest)
			}
			r := f.verifier(nil).Verify(ctx, VerifyRequest{Identity: []string{s.Identity}, From: tc.from, PAI: tc.pai, To: tc.to})
			checkResult(t, r, tc.result, tc.want)
			// verstat goes where a number is: the PAI, and the From only
			// when it holds one.
			from := tn.AddVerstat(tc.from, string(r.Verstat))
			if got := from != tc.from; got != tc.fromVerstatted {
				t.Fatalf("From with verstat: %s", from)
			}
			if tc.pai != "" && tn.AddVerstat(tc.pai, string(r.Verstat)) == tc.pai {
				t.Fatalf("PAI without verstat")
			}
		})
	}
}
