package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/policy"
	"github.com/stirgate/stirgate/core/tn"
	"github.com/stirgate/stirgate/outcome"
)

// TestRefusalRecordsTenant: a refused signature is recorded against the
// tenant and customer it was for, as a signature is: an expired tenant
// certificate, a customer whose tenant (the default) is not configured, a
// stale iat from a known customer. A request the policy attributes to no
// one records none (the negative control), and a signature still records
// its own tenant.
func TestRefusalRecordsTenant(t *testing.T) {
	lab := func(spc string, o certs.LabOptions) core.Tenant {
		o.SPC = spc
		l, err := certs.NewLab(o)
		if err != nil {
			t.Fatal(err)
		}
		cred, err := l.Signer()
		if err != nil {
			t.Fatal(err)
		}
		return core.Tenant{Credential: cred}
	}
	blue := lab("1002", certs.LabOptions{Now: fixedNow})
	blue.Name, blue.X5U = "blue", "https://certs.example.net/blue.pem"
	old := lab("1004", certs.LabOptions{Now: fixedNow.Add(-10 * 24 * time.Hour), Days: 1})
	old.Name, old.X5U = "old", "https://certs.example.net/old.pem"
	pol, err := policy.New(policy.Options{Customers: []policy.Customer{
		{Name: "acme", Tenant: "blue", Numbers: []string{"12155550121"}},
		{Name: "stale", Tenant: "old"},
		{Name: "gamma"}, // the default tenant, which is not configured
	}})
	if err != nil {
		t.Fatal(err)
	}
	// No [signer]: only named tenants.
	s, err := core.NewSigner(core.SignerOptions{Tenants: []core.Tenant{blue, old}, Numbers: tn.NANP(), Policy: pol, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	st, err := outcome.Open(context.Background(), outcome.Options{Path: filepath.Join(t.TempDir(), "o.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := newFixture(t, func(o *Options) { o.Recorder, o.Signer = st, s })
	// As the API's authentication does: the client names its customer.
	f.api.mux.Handle("POST /as/{client}/stir/v1/signing", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := r.PathValue("client")
		r = r.WithContext(context.WithValue(r.Context(), clientKey{}, &Client{Name: c + "-api", Customer: c}))
		f.api.signing(w, r)
	}))
	body := func(iat int64) string {
		return fmt.Sprintf(`{"signingRequest":{"dest":{"tn":["12155550131"]},"iat":%d,"orig":{"tn":"12155550121"}}}`, iat)
	}
	now := fixedNow.Unix()
	seen := map[string]bool{}
	for _, c := range []struct {
		path   string
		iat    int64
		status int
		want   string // result/error/tenant/spc/customer/rule
	}{
		{"/as/acme/stir/v1/signing", now, 200, "signed//blue/1002/acme/customer_number"},
		{"/as/stale/stir/v1/signing", now, 500, "unsigned/sign_cert_invalid/old/1004/stale/customer"},
		{"/as/gamma/stir/v1/signing", now, 500, "unsigned/sign_cert_invalid/default//gamma/customer"},
		{"/as/acme/stir/v1/signing", now - 3600, 400, "unsigned/sign_date_out_of_window/blue//acme/customer_number"},
		// 192.0.2.1 is no customer's and there is no default attestation.
		{"/stir/v1/signing", now, 403, "unsigned/sign_not_allowed////"},
	} {
		r := f.do(t, "POST", c.path, "application/json", body(c.iat))
		if r.status != c.status {
			t.Fatalf("%s iat %d: %d %s, want %d", c.path, c.iat, r.status, r.body, c.status)
		}
		rows, err := st.Query(context.Background(), outcome.Filter{Kind: outcome.KindSign})
		if err != nil {
			t.Fatal(err)
		}
		// One row per request: the one not seen before is this one's.
		var fresh []outcome.Outcome
		for _, o := range rows {
			if !seen[o.UniqueID] {
				seen[o.UniqueID] = true
				fresh = append(fresh, o)
			}
		}
		if len(fresh) != 1 {
			t.Fatalf("%s: %d new rows", c.path, len(fresh))
		}
		last := fresh[0]
		if got := last.Result + "/" + last.ErrorName + "/" + last.Tenant + "/" + last.SPC + "/" + last.Customer + "/" + last.Rule; got != c.want {
			t.Errorf("%s iat %d: record %s, want %s", c.path, c.iat, got, c.want)
		}
	}
}
