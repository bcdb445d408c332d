package agi

import (
	"context"
	"testing"
	"time"

	"github.com/stirgate/stirgate/agi/agitest"
	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/policy"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/core/tn"
	"github.com/stirgate/stirgate/core/x5u"
)

// TestTenantSigning: through the FastAGI sign script, a customer= names
// the policy customer, and its calls are signed with its tenant's
// credential: the Identity verifies with that tenant's chain as the only
// trust and with no other tenant's. A customer whose tenant's certificate
// has expired is refused (unsigned, never signed with another tenant's
// certificate), and its record names the tenant and customer it was for.
func TestTenantSigning(t *testing.T) {
	urls := map[string]string{"default": "https://cr.example.net/sp.pem", "blue": "https://cr.example.net/blue.pem",
		"green": "https://cr.example.net/green.pem", "old": "https://cr.example.net/old.pem"}
	type tlab struct {
		lab      *certs.Lab
		cred     *certs.SigningCredential
		verifier *core.Verifier
	}
	labs := map[string]tlab{}
	for name, o := range map[string]certs.LabOptions{
		"default": {SPC: "1001"}, "blue": {SPC: "1002"}, "green": {SPC: "1003"},
		"old": {SPC: "1004", Now: fixedNow.Add(-10 * 24 * time.Hour), Days: 1},
	} {
		if o.Now.IsZero() {
			o.Now = fixedNow.Add(-24 * time.Hour)
		}
		l, err := certs.NewLab(o)
		if err != nil {
			t.Fatal(err)
		}
		cred, err := l.Signer()
		if err != nil {
			t.Fatal(err)
		}
		// This lab's chain for every URL: a token passes only when this
		// lab's key signed it.
		pre := map[string][]byte{}
		for _, u := range urls {
			pre[u] = l.ChainPEM()
		}
		v, err := core.NewVerifier(core.VerifierOptions{Roots: l.Roots(), Numbers: tn.NANP(), Now: func() time.Time { return fixedNow },
			Fetch: x5u.Options[*certs.Credential]{Offline: true, PreloadBytes: pre}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { v.Close() })
		labs[name] = tlab{lab: l, cred: cred, verifier: v}
	}
	pol, err := policy.New(policy.Options{Customers: []policy.Customer{
		{Name: "acme", Tenant: "blue", Numbers: []string{"12155550121"}},
		{Name: "beta", Tenant: "green"},
		{Name: "gamma"}, // no tenant: the default
		{Name: "delta", Tenant: "old"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var tenants []core.Tenant
	for _, n := range []string{"blue", "green", "old"} {
		tenants = append(tenants, core.Tenant{Name: n, Credential: labs[n].cred, X5U: urls[n]})
	}
	s, err := core.NewSigner(core.SignerOptions{Credential: labs["default"].cred, X5U: urls["default"], Tenants: tenants,
		Numbers: tn.NANP(), Policy: pol, Now: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	rec := &memRecorder{}
	srv, addr := start(t, Options{Service: Core{Signer: s}, Recorder: rec})

	cases := []struct {
		customer, tenant, spc, attest, rule string
	}{
		{"acme", "blue", "1002", "A", policy.RuleCustomerNumber},
		{"beta", "green", "1003", "B", policy.RuleCustomer},
		{"gamma", "default", "1001", "B", policy.RuleCustomer},
	}
	for i, c := range cases {
		tr := play(t, addr, agitest.Channel{Script: "sign", CallerID: "12155550121", Exten: "12155550131", Args: []string{"customer=" + c.customer}})
		checkVars(t, tr, map[string]string{VarResult: Signed, VarAttest: c.attest, VarError: ""})
		for name, l := range labs {
			r := l.verifier.Verify(context.Background(), core.VerifyRequest{Identity: []string{tr.Set[VarIdentity]},
				From: "<sip:+12155550121@pbx.example;user=phone>", To: "<sip:+12155550131@carrier.example;user=phone>", Date: tr.Set[VarDate]})
			if got := r.Result == stir.Pass; got != (name == c.tenant) {
				t.Errorf("%s's call verifies with %s's chain: %v (%s)", c.customer, name, got, r.Error)
			}
		}
		waitFor(t, func() bool { return srv.Stats().Recorded == int64(i+1) })
		o := rec.all()[i]
		if o.Result != Signed || o.Tenant != c.tenant || o.SPC != c.spc || o.Customer != c.customer || o.Rule != c.rule {
			t.Errorf("%s: record %+v", c.customer, o)
		}
	}

	tr := play(t, addr, agitest.Channel{Script: "sign", CallerID: "12155550121", Exten: "12155550131", Args: []string{"customer=delta"}})
	checkVars(t, tr, map[string]string{VarResult: Errored, VarError: stir.ErrSignCertInvalid.Name, VarIdentity: ""})
	waitFor(t, func() bool { return srv.Stats().Recorded == int64(len(cases)+1) })
	if o := rec.all()[len(cases)]; o.ErrorName != stir.ErrSignCertInvalid.Name || o.Tenant != "old" || o.SPC != "1004" || o.Customer != "delta" || o.Rule != policy.RuleCustomer {
		t.Errorf("refusal record %+v, want tenant old, SPC 1004, customer delta", o)
	}
}
