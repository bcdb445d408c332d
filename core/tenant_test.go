package core

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/policy"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/core/tn"
)

// tenantLab is one tenant's PKI: its own root, CA and SPC.
type tenantLab struct {
	name string
	lab  *certs.Lab
	cred *certs.SigningCredential
	x5u  string
}

func newTenantLab(t *testing.T, name, spc string, o certs.LabOptions) tenantLab {
	t.Helper()
	o.SPC = spc
	if o.Now.IsZero() {
		o.Now = testNow.Add(-24 * time.Hour)
	}
	lab, err := certs.NewLab(o)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := lab.Signer()
	if err != nil {
		t.Fatal(err)
	}
	return tenantLab{name: name, lab: lab, cred: cred, x5u: "https://cr.example.net/" + name + ".pem"}
}

func (l tenantLab) tenant() Tenant { return Tenant{Name: l.name, Credential: l.cred, X5U: l.x5u} }

// signedBy reports whether the PASSporT of an Identity header value
// carries a valid ES256 signature of key.
func signedBy(t *testing.T, ident string, key *ecdsa.PublicKey) bool {
	t.Helper()
	tok, _, _ := strings.Cut(ident, ";")
	_, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return key, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithoutClaimsValidation())
	return err == nil
}

// TestTenantRouting: each customer's calls are signed with its tenant's
// credential, x5u and SPC, and the result names the tenant and the rule
// that decided the attestation. Every signature is checked against every
// tenant's key: it verifies with its own and with no other.
func TestTenantRouting(t *testing.T) {
	def := newTenantLab(t, DefaultTenant, "1001", certs.LabOptions{})
	blue := newTenantLab(t, "blue", "1002", certs.LabOptions{})
	green := newTenantLab(t, "green", "1003", certs.LabOptions{})
	labs := []tenantLab{def, blue, green}
	pol, err := policy.New(policy.Options{
		Customers: []policy.Customer{
			{Name: "acme", Tenant: "blue", Numbers: []string{"12155550121"}, Sources: []string{"192.0.2.1"}},
			{Name: "beta", Tenant: "green", Sources: []string{"192.0.2.2"}, AttestOverride: true},
			{Name: "gamma", Sources: []string{"192.0.2.3"}}, // no tenant: default
		},
		Gateways: []string{"198.51.100.0/24"},
		Default:  "B",
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(SignerOptions{Credential: def.cred, X5U: def.x5u, Tenants: []Tenant{blue.tenant(), green.tenant()},
		Numbers: tn.NANP(), Policy: pol, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	const owned, other = "12155550121", "12155550199"
	for _, tc := range []struct {
		name, source, customer, orig string
		attest                       stir.Attestation
		trusted                      bool
		tenant, rule, cust           string
		want                         stir.Attestation
	}{
		{"customer's own number", "192.0.2.1", "", owned, "", false, "blue", policy.RuleCustomerNumber, "acme", "A"},
		{"customer by name", "", "acme", owned, "", false, "blue", policy.RuleCustomerNumber, "acme", "A"},
		{"known customer, other number", "192.0.2.1", "", other, "", false, "blue", policy.RuleCustomer, "acme", "B"},
		{"request lowers", "192.0.2.1", "", owned, "B", false, "blue", policy.RuleRequestedLower, "acme", "B"},
		{"request asks the grant", "192.0.2.1", "", owned, "A", false, "blue", policy.RuleCustomerNumber, "acme", "A"},
		{"request asks above the grant", "192.0.2.1", "", other, "A", false, "blue", policy.RuleCustomer, "acme", "B"},
		{"override", "192.0.2.2", "", other, "A", false, "green", policy.RuleOverride, "beta", "A"},
		{"customer without tenant", "192.0.2.3", "", other, "", false, DefaultTenant, policy.RuleCustomer, "gamma", "B"},
		{"gateway", "198.51.100.9", "", other, "", false, DefaultTenant, policy.RuleGateway, "", "C"},
		{"default", "203.0.113.1", "", other, "", false, DefaultTenant, policy.RuleDefault, "", "B"},
		{"trusted caller for a customer", "192.0.2.2", "", other, "A", true, "green", policy.RuleTrustedCaller, "beta", "A"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := s.Sign(context.Background(), SignRequest{Orig: tc.orig, Dest: []string{destTN}, Source: tc.source,
				Customer: tc.customer, Attest: tc.attest, Trusted: tc.trusted, CallID: "c1"})
			if err != nil {
				t.Fatal(err)
			}
			if res.Tenant != tc.tenant || res.Rule != tc.rule || res.Customer != tc.cust || res.Attest != tc.want {
				t.Fatalf("tenant %q rule %q customer %q attest %s; want %q %q %q %s (why: %s)",
					res.Tenant, res.Rule, res.Customer, res.Attest, tc.tenant, tc.rule, tc.cust, tc.want, res.Why)
			}
			for _, l := range labs {
				mine := l.name == tc.tenant
				if mine && (res.SPC != l.lab.SPC || res.X5U != l.x5u || !strings.Contains(res.Identity, "info=<"+l.x5u+">")) {
					t.Errorf("spc %q x5u %q, want %q %q", res.SPC, res.X5U, l.lab.SPC, l.x5u)
				}
				if got := signedBy(t, res.Identity, &l.cred.Key.PublicKey); got != mine {
					t.Errorf("signature verifies with tenant %s's key: %v, want %v", l.name, got, mine)
				}
			}
		})
	}
}

// TestTenantDiversion: a diversion signed for a customer uses its
// tenant's credential; without a customer, the default's.
func TestTenantDiversion(t *testing.T) {
	def := newTenantLab(t, DefaultTenant, "1001", certs.LabOptions{})
	blue := newTenantLab(t, "blue", "1002", certs.LabOptions{})
	pol, err := policy.New(policy.Options{Customers: []policy.Customer{{Name: "acme", Tenant: "blue"}}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(SignerOptions{Credential: def.cred, X5U: def.x5u, Tenants: []Tenant{blue.tenant()}, Numbers: tn.NANP(), Policy: pol,
		Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := s.Sign(context.Background(), SignRequest{Orig: origTN, Dest: []string{destTN}, Attest: "A", Trusted: true})
	if err != nil {
		t.Fatal(err)
	}
	for customer, want := range map[string]tenantLab{"acme": blue, "": def} {
		res, err := s.SignDiv(context.Background(), DivRequest{Identity: []string{rcv.Identity}, Dest: []string{"12155550141"}, Customer: customer})
		if err != nil {
			t.Fatal(err)
		}
		if res.Tenant != want.name || res.X5U != want.x5u || !signedBy(t, res.Identity, &want.cred.Key.PublicKey) {
			t.Errorf("customer %q: tenant %s x5u %s, want %s", customer, res.Tenant, res.X5U, want.name)
		}
	}
}

// TestTenantRefusals: a call whose tenant cannot sign is refused with a
// sign_cert_invalid naming the tenant, never signed with another tenant's
// certificate; a configuration that cannot work is refused when built.
func TestTenantRefusals(t *testing.T) {
	blue := newTenantLab(t, "blue", "1002", certs.LabOptions{})
	// Valid for a day, ended a day before testNow.
	old := newTenantLab(t, "old", "1004", certs.LabOptions{Now: testNow.Add(-3 * 24 * time.Hour), Days: 1})
	// Starts a day after testNow.
	early := newTenantLab(t, "early", "1005", certs.LabOptions{Now: testNow.Add(2 * 24 * time.Hour)})
	pol, err := policy.New(policy.Options{
		Customers: []policy.Customer{
			{Name: "acme", Tenant: "blue", Sources: []string{"192.0.2.1"}},
			{Name: "gamma", Sources: []string{"192.0.2.3"}},
			{Name: "stale", Tenant: "old", Sources: []string{"192.0.2.4"}},
			{Name: "future", Tenant: "early", Sources: []string{"192.0.2.5"}},
		},
		Gateways: []string{"198.51.100.0/24"},
	})
	if err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return testNow }
	// No default tenant: only named tenants.
	s, err := NewSigner(SignerOptions{Tenants: []Tenant{blue.tenant(), old.tenant(), early.tenant()}, Numbers: tn.NANP(), Policy: pol, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if s.Credential() != nil || s.X5U() != "" {
		t.Error("Credential/X5U without a default tenant")
	}
	for _, tc := range []struct {
		source, tenant string // tenant "" = signed by blue
		// The refusal's SignError: whom the call was for.
		customer, rule, spc string
	}{
		{"192.0.2.1", "", "", "", ""},
		{"192.0.2.3", DefaultTenant, "gamma", policy.RuleCustomer, ""}, // customer without tenant, no default
		{"198.51.100.7", DefaultTenant, "", policy.RuleGateway, ""},    // gateway traffic, no default
		{"192.0.2.4", "old", "stale", policy.RuleCustomer, "1004"},     // expired
		{"192.0.2.5", "early", "future", policy.RuleCustomer, "1005"},  // not yet valid
	} {
		res, err := s.Sign(context.Background(), SignRequest{Orig: origTN, Dest: []string{destTN}, Source: tc.source})
		if tc.tenant == "" {
			if err != nil || res.Tenant != "blue" {
				t.Errorf("%s: %v %+v", tc.source, err, res)
			}
			continue
		}
		var se *stir.Error
		if !errors.As(err, &se) || se.Name != stir.ErrSignCertInvalid.Name || !strings.Contains(se.Error(), `tenant "`+tc.tenant+`"`) {
			t.Errorf("%s: %v, want %s naming tenant %q", tc.source, err, stir.ErrSignCertInvalid.Name, tc.tenant)
		}
		var who *SignError
		if !errors.As(err, &who) || who.Tenant != tc.tenant || who.Customer != tc.customer || who.Rule != tc.rule || who.SPC != tc.spc {
			t.Errorf("%s: refusal attributed to %+v, want tenant %q customer %q rule %q spc %q", tc.source, who, tc.tenant, tc.customer, tc.rule, tc.spc)
		} else if !errors.Is(err, stir.ErrSignCertInvalid) || who.Error() != se.Error() {
			t.Errorf("%s: SignError %q does not read as its *stir.Error %q", tc.source, who, se)
		}
	}
	// A call no rule attributes (no customer, no gateway, no default
	// attestation) is refused with the bare *stir.Error: it was no one's.
	_, err = s.Sign(context.Background(), SignRequest{Orig: origTN, Dest: []string{destTN}, Source: "203.0.113.1"})
	var who *SignError
	if !errors.Is(err, stir.ErrSignNotAllowed) || errors.As(err, &who) {
		t.Errorf("unattributed call: %v (%+v), want a bare sign_not_allowed", err, who)
	}
	// A bad calling number from a known customer: attributed, no rule
	// (the rule depends on the number).
	_, err = s.Sign(context.Background(), SignRequest{Orig: "not-a-number", Dest: []string{destTN}, Source: "192.0.2.1"})
	if !errors.Is(err, stir.ErrSignInput) || !errors.As(err, &who) || who.Customer != "acme" || who.Tenant != "blue" || who.Rule != "" {
		t.Errorf("bad number from acme: %v (%+v)", err, who)
	}

	bad := blue.tenant()
	bad.Credential = &certs.SigningCredential{}
	*bad.Credential = *blue.cred
	bad.Credential.Key = old.cred.Key // the wrong key for the certificate
	unknown, err := policy.New(policy.Options{Customers: []policy.Customer{{Name: "acme", Tenant: "nosuch"}}})
	if err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]SignerOptions{
		"nothing":          {},
		"key mismatch":     {Tenants: []Tenant{bad}},
		"unknown tenant":   {Tenants: []Tenant{blue.tenant()}, Policy: unknown},
		"twice":            {Tenants: []Tenant{blue.tenant(), blue.tenant()}},
		"default twice":    {Credential: blue.cred, X5U: blue.x5u, Tenants: []Tenant{{Name: DefaultTenant, Credential: old.cred, X5U: old.x5u}}},
		"no name":          {Tenants: []Tenant{{Credential: blue.cred, X5U: blue.x5u}}},
		"bad x5u":          {Tenants: []Tenant{{Name: "x", Credential: blue.cred, X5U: "cr.example.net/x.pem"}}},
		"next same x5u":    {Tenants: []Tenant{{Name: "x", Credential: blue.cred, X5U: blue.x5u, Next: &NextCredential{Credential: old.cred, X5U: blue.x5u, Activate: testNow}}}},
		"next no activate": {Tenants: []Tenant{{Name: "x", Credential: blue.cred, X5U: blue.x5u, Next: &NextCredential{Credential: old.cred, X5U: old.x5u}}}},
	} {
		o.Now = now
		if _, err := NewSigner(o); err == nil {
			t.Errorf("%s: built", name)
		} else if se := (*stir.Error)(nil); !errors.As(err, &se) {
			t.Errorf("%s: %v is not a *stir.Error", name, err)
		}
	}
}

// TestRotation: a tenant signs with its current credential before the
// activation instant and with the next one from it on, decided per
// signature by the signing time; the default tenant's Credential and X5U
// follow.
func TestRotation(t *testing.T) {
	cur := newTenantLab(t, "cur", "1001", certs.LabOptions{})
	next := newTenantLab(t, "next", "1001", certs.LabOptions{})
	at := testNow.Add(time.Hour)
	var clk atomic.Int64
	clk.Store(testNow.UnixNano())
	s, err := NewSigner(SignerOptions{Credential: cur.cred, X5U: cur.x5u, Next: &NextCredential{Credential: next.cred, X5U: next.x5u, Activate: at},
		Numbers: tn.NANP(), Now: func() time.Time { return time.Unix(0, clk.Load()).UTC() }})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		now  time.Time
		want tenantLab
	}{
		{testNow, cur},
		{at.Add(-time.Nanosecond), cur},
		{at, next},
		{at.Add(time.Minute), next},
	} {
		clk.Store(tc.now.UnixNano())
		res, err := s.Sign(context.Background(), SignRequest{Orig: origTN, Dest: []string{destTN}, Attest: "A", Trusted: true})
		if err != nil {
			t.Fatal(err)
		}
		other := cur
		if tc.want.name == cur.name {
			other = next
		}
		if res.X5U != tc.want.x5u || !signedBy(t, res.Identity, &tc.want.cred.Key.PublicKey) || signedBy(t, res.Identity, &other.cred.Key.PublicKey) {
			t.Errorf("at %s: x5u %s, want %s's credential", tc.now, res.X5U, tc.want.name)
		}
		if s.X5U() != tc.want.x5u || s.Credential() != tc.want.cred {
			t.Errorf("at %s: X5U() %s, want %s", tc.now, s.X5U(), tc.want.x5u)
		}
	}
	ts := s.Tenants()
	if len(ts) != 1 || ts[0].Next == nil || ts[0].Next.X5U != next.x5u || ts[0].X5U != cur.x5u {
		t.Errorf("Tenants() = %+v", ts)
	}
}
