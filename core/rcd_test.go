package core

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/passport"
	"github.com/stirgate/stirgate/core/policy"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/core/tn"
)

// Conformance §6 R1 through the public Signer and Verifier: rich call data
// (RFC 9795) in the SHAKEN PASSporT, rcdi digests made at signing over the
// jCard and the content behind each URL, checked again at verification.

const jcard = `["vcard", [["version", {}, "text", "4.0"], ["fn", {}, "text", "ACME Corp"]]]`

func (f *fixture) rcdSigner(pol *policy.Policy) *Signer {
	f.t.Helper()
	cred, err := f.lab.Signer()
	if err != nil {
		f.t.Fatal(err)
	}
	s, err := NewSigner(SignerOptions{Credential: cred, X5U: f.x5u, Numbers: tn.NANP(), Policy: pol,
		RCDFetch: f.options().Fetch, Now: func() time.Time { return testNow }})
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func TestRCD(t *testing.T) {
	f := newFixture(t)
	logo := f.url("/logo.png", []byte("\x89PNG not really"))
	card := f.url("/card.json", []byte(jcard))
	s := f.rcdSigner(nil)
	ctx := context.Background()
	sign := func(r *RCD, crn string) string {
		t.Helper()
		res, err := s.Sign(ctx, SignRequest{Orig: origTN, Dest: []string{destTN}, Attest: "A", OrigID: uuidOK, RCD: r, Crn: crn})
		if err != nil {
			t.Fatal(err)
		}
		return res.Identity
	}
	full := sign(&RCD{Nam: "ACME Corp", Icn: logo, Jcd: jcard}, "Your appointment")
	byURL := sign(&RCD{Nam: "ACME Corp", Jcl: card}, "")
	tampered := sign(&RCD{Nam: "ACME Corp", Icn: f.url("/changes.png", []byte("before"))}, "")
	f.url("/changes.png", []byte("after"))
	withClaims := func(extra string) string {
		c := claimsJSON(testNow.Unix())
		return raw(t, f.lab.LeafKey, hdrJSON(f.x5u), c[:len(c)-1]+","+extra+"}", f.x5u)
	}
	jcdCanon, _ := passport.CanonicalJSON([]byte(jcard))

	cases := []struct {
		reviewCase
		rcd *stir.RCD
	}{
		{reviewCase{name: "nam, icn, jcd and crn", identity: []string{full}, result: stir.Pass},
			&stir.RCD{Nam: "ACME Corp", Icn: logo, Jcd: jcdCanon, Crn: "Your appointment", Integrity: true}},
		{reviewCase{name: "jCard by URL", identity: []string{byURL}, result: stir.Pass},
			&stir.RCD{Nam: "ACME Corp", Jcl: card, Integrity: true}},
		{reviewCase{name: "strict mode", identity: []string{full}, mod: func(o *VerifierOptions) { o.Strict = true }, result: stir.Pass},
			&stir.RCD{Nam: "ACME Corp", Icn: logo, Jcd: jcdCanon, Crn: "Your appointment", Integrity: true}},
		{reviewCase{name: "no rcdi: claims without integrity", identity: []string{withClaims(`"rcd":{"nam":"ACME Corp"}`)}, result: stir.Pass},
			&stir.RCD{Nam: "ACME Corp"}},
		{reviewCase{name: "crn alone", identity: []string{withClaims(`"crn":"Delivery"`)}, result: stir.Pass}, &stir.RCD{Crn: "Delivery"}},
		{reviewCase{name: "content changed since signing", identity: []string{tampered}, result: stir.Fail, want: stir.ErrRCDIMismatch}, nil},
		{reviewCase{name: "jcd digest wrong", identity: []string{withClaims(`"rcd":{"jcd":["vcard",[]],"nam":"A"},"rcdi":{"/jcd":"sha256-AAAA"}`)}, result: stir.Fail, want: stir.ErrRCDIMismatch}, nil},
		{reviewCase{name: "icn without digest", identity: []string{withClaims(`"rcd":{"icn":"` + logo + `","jcd":["vcard",[]],"nam":"A"},"rcdi":{"/jcd":"` + passport.Digest([]byte(`["vcard",[]]`)) + `"}`)}, result: stir.Fail, want: stir.ErrRCDIMismatch}, nil},
		{reviewCase{name: "digest for an absent element", identity: []string{withClaims(`"rcd":{"nam":"A"},"rcdi":{"/icn":"sha256-AAAA"}`)}, result: stir.Fail, want: stir.ErrRCDIMismatch}, nil},
		{reviewCase{name: "icn on a forbidden URL", identity: []string{withClaims(`"rcd":{"icn":"http://127.0.0.1/logo.png","nam":"A"},"rcdi":{"/icn":"sha256-AAAA"}`)}, result: stir.Fail, want: stir.ErrRCDIMismatch}, nil},
		{reviewCase{name: "icn not found", identity: []string{withClaims(`"rcd":{"icn":"` + f.srv.URL + `/nothing.png","nam":"A"},"rcdi":{"/icn":"sha256-AAAA"}`)}, result: stir.Fail, want: stir.ErrRCDIMismatch}, nil},
		{reviewCase{name: "nam missing", identity: []string{withClaims(`"rcd":{"icn":"` + logo + `"}`)}, result: stir.Fail, want: stir.ErrRCDInvalid}, nil},
		{reviewCase{name: "jcd and jcl", identity: []string{withClaims(`"rcd":{"jcd":[],"jcl":"` + card + `","nam":"A"}`)}, result: stir.Fail, want: stir.ErrRCDInvalid}, nil},
		{reviewCase{name: "rcd not an object", identity: []string{withClaims(`"rcd":"ACME"`)}, result: stir.Fail, want: stir.ErrRCDInvalid}, nil},
		{reviewCase{name: "rcdi without rcd", identity: []string{withClaims(`"rcdi":{"/icn":"sha256-AAAA"}`)}, result: stir.Fail, want: stir.ErrRCDInvalid}, nil},
		{reviewCase{name: "unknown rcd member relaxed", identity: []string{withClaims(`"rcd":{"apn":"x","nam":"A"}`)}, result: stir.Pass}, &stir.RCD{Nam: "A"}},
		{reviewCase{name: "unknown rcd member strict", identity: []string{withClaims(`"rcd":{"apn":"x","nam":"A"}`)}, mod: func(o *VerifierOptions) { o.Strict = true }, result: stir.Fail, want: stir.ErrNonCanonical}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := f.verifier(tc.mod).Verify(ctx, VerifyRequest{Identity: tc.identity, From: fromHdr, To: toHdr})
			checkResult(t, r, tc.result, tc.want)
			if tc.rcd == nil {
				if r.RCD != nil {
					t.Fatalf("rcd %+v on %s", r.RCD, r.Result)
				}
				return
			}
			if r.RCD == nil || r.RCD.Nam != tc.rcd.Nam || r.RCD.Icn != tc.rcd.Icn || r.RCD.Jcl != tc.rcd.Jcl || r.RCD.Crn != tc.rcd.Crn ||
				string(r.RCD.Jcd) != string(tc.rcd.Jcd) || r.RCD.Integrity != tc.rcd.Integrity {
				t.Fatalf("rcd %+v, want %+v", r.RCD, tc.rcd)
			}
		})
	}

	// The signer refuses what it could not vouch for.
	for _, bad := range []*RCD{{Icn: logo}, {Nam: "A", Jcd: jcard, Jcl: card}, {Nam: "A", Jcd: "{"}, {Nam: "A", Jcd: `{"a":1}`},
		{Nam: "A", Icn: f.srv.URL + "/nothing.png"}, {Nam: "A", Icn: "http://127.0.0.1/x.png"}} {
		_, err := s.Sign(ctx, SignRequest{Orig: origTN, Dest: []string{destTN}, Attest: "A", RCD: bad})
		if e := stir.As(err); e == nil || e.Name != stir.ErrSignInput.Name {
			t.Errorf("Sign(%+v): %v, want %s", bad, err, stir.ErrSignInput.Name)
		}
	}
}

func TestRCDFromPolicy(t *testing.T) {
	f := newFixture(t)
	pol, err := policy.New(policy.Options{Customers: []policy.Customer{
		{Name: "acme", Numbers: []string{origTN}, RCD: &policy.RCD{Nam: "ACME Corp", Jcd: jcard}},
		{Name: "plain", Numbers: []string{origTN}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	s := f.rcdSigner(pol)
	ctx := context.Background()
	for cust, want := range map[string]string{"acme": "ACME Corp", "plain": ""} {
		res, err := s.Sign(ctx, SignRequest{Orig: origTN, Dest: []string{destTN}, Customer: cust})
		if err != nil {
			t.Fatal(err)
		}
		r := f.verifier(nil).Verify(ctx, VerifyRequest{Identity: []string{res.Identity}, From: fromHdr, To: toHdr})
		got := ""
		if r.RCD != nil {
			got = r.RCD.Nam
		}
		if r.Result != stir.Pass || got != want || (want != "" && !strings.Contains(string(r.RCD.Jcd), "ACME")) {
			t.Fatalf("%s: %+v %+v", cust, r, r.RCD)
		}
	}
	if _, err := policy.New(policy.Options{Customers: []policy.Customer{{Name: "x", RCD: &policy.RCD{Icn: "https://a/b"}}}}); err == nil {
		t.Fatal("policy rcd without nam accepted")
	}
}

// Rich call data per calling number: the most specific rcd_number entry
// of the customer is signed, else the customer's rcd; the policy's crn is
// the call reason unless the request gives one.
func TestRCDPerNumberFromPolicy(t *testing.T) {
	f := newFixture(t)
	pol, err := policy.New(policy.Options{Customers: []policy.Customer{
		{Name: "acme", Numbers: []string{"1215555*"}, RCD: &policy.RCD{Nam: "ACME Corp", Crn: "General"},
			RCDNumbers: []policy.NumberRCD{
				{Numbers: []string{"1215555*"}, RCD: policy.RCD{Nam: "ACME Philadelphia"}},
				{Numbers: []string{origTN}, RCD: policy.RCD{Nam: "ACME Front Desk", Crn: "Appointment"}},
			}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	s := f.rcdSigner(pol)
	ctx := context.Background()
	tests := []struct {
		orig, reqCrn, nam, crn string
	}{
		{origTN, "", "ACME Front Desk", "Appointment"},
		{origTN, "Refund", "ACME Front Desk", "Refund"},
		{"12155550122", "", "ACME Philadelphia", ""},
		{"12675550122", "", "ACME Corp", "General"},
	}
	for _, tc := range tests {
		res, err := s.Sign(ctx, SignRequest{Orig: tc.orig, Dest: []string{destTN}, Customer: "acme", Crn: tc.reqCrn})
		if err != nil {
			t.Fatal(err)
		}
		from := strings.Replace(fromHdr, origTN, tc.orig, 1)
		r := f.verifier(nil).Verify(ctx, VerifyRequest{Identity: []string{res.Identity}, From: from, To: toHdr})
		if r.Result != stir.Pass || r.RCD == nil || r.RCD.Nam != tc.nam || r.RCD.Crn != tc.crn {
			t.Fatalf("%+v: %+v %+v", tc, r, r.RCD)
		}
	}
}
