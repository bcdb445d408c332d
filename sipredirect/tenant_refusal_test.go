package sipredirect

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/policy"
	"github.com/stirgate/stirgate/core/tn"
	"github.com/stirgate/stirgate/outcome"
)

// TestRefusalRecordsTenant: a call the redirect server does not sign is
// recorded against the tenant and customer it was for, as a signed call
// is: an expired tenant certificate, a customer whose tenant (the
// default) is not configured, a gateway call with no default tenant, a
// stale Date from a known customer. A source the policy attributes to no
// one records none (the negative control).
func TestRefusalRecordsTenant(t *testing.T) {
	now := func() time.Time { return fixedNow }
	lab := func(name, spc string, o certs.LabOptions) core.Tenant {
		o.SPC = spc
		l, err := certs.NewLab(o)
		if err != nil {
			t.Fatal(err)
		}
		cred, err := l.Signer()
		if err != nil {
			t.Fatal(err)
		}
		return core.Tenant{Name: name, Credential: cred, X5U: "https://certs.example.net/" + name + ".pem"}
	}
	blue := lab("blue", "1002", certs.LabOptions{Now: fixedNow})
	old := lab("old", "1004", certs.LabOptions{Now: fixedNow.Add(-10 * 24 * time.Hour), Days: 1})
	pol, err := policy.New(policy.Options{
		Gateways: []string{"198.51.100.0/24"},
		Customers: []policy.Customer{
			{Name: "acme", Tenant: "blue", Numbers: []string{"12155550121"}, Sources: []string{"192.0.2.10"}},
			{Name: "stale", Tenant: "old", Sources: []string{"192.0.2.20", "stale-trunk"}},
			{Name: "gamma", Sources: []string{"192.0.2.30"}}, // the default tenant, not configured
		}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := core.NewSigner(core.SignerOptions{Tenants: []core.Tenant{blue, old}, Numbers: tn.NANP(), Policy: pol, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	st, err := outcome.Open(context.Background(), outcome.Options{Path: filepath.Join(t.TempDir(), "o.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h, err := NewHandler(Options{Signer: s, Allow: allowTest(), Recorder: st})
	if err != nil {
		t.Fatal(err)
	}
	src := func(a string) netip.AddrPort { return netip.MustParseAddrPort(a + ":5060") }
	staleDate := "Date: " + core.FormatDate(fixedNow.Add(-time.Hour))
	want := map[string]string{} // call-id -> result/error/tenant/spc/customer/rule
	for _, c := range []struct {
		id, src, want string
		extra         []string
	}{
		{"c-acme", "192.0.2.10", "signed//blue/1002/acme/customer_number", nil},
		{"c-stale", "192.0.2.20", "unsigned/sign_cert_invalid/old/1004/stale/customer", nil},
		{"c-gamma", "192.0.2.30", "unsigned/sign_cert_invalid/default//gamma/customer", nil},
		{"c-gateway", "198.51.100.7", "unsigned/sign_cert_invalid/default///gateway", nil},
		{"c-date", "192.0.2.10", "unsigned/sign_date_out_of_window/blue//acme/customer_number", []string{staleDate}},
		// No customer, no gateway, no default attestation: no one's.
		{"c-nobody", "127.0.0.1", "unsigned/sign_not_allowed////", nil},
	} {
		if _, ok := answer(t, h, Sign, invite(c.id, c.extra...), src(c.src)); !ok {
			t.Fatalf("%s: no answer", c.id)
		}
		want[c.id] = c.want
	}
	rows, err := st.Query(context.Background(), outcome.Filter{Kind: outcome.KindSign})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(want) {
		t.Errorf("%d rows, want %d", len(rows), len(want))
	}
	for _, o := range rows {
		if got := o.Result + "/" + o.ErrorName + "/" + o.Tenant + "/" + o.SPC + "/" + o.Customer + "/" + o.Rule; got != want[o.UniqueID] {
			t.Errorf("%s: record %s, want %s", o.UniqueID, got, want[o.UniqueID])
		}
	}
}
