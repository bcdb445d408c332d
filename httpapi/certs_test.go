package httpapi

import (
	"bytes"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/tn"
)

// TestPublishTenants: the public handler serves every tenant's chain at
// /certs/<name>.pem and each x5u a tenant signs with (current and next)
// at its base name; <name>.pem switches at the activation, the x5u paths
// never do.
func TestPublishTenants(t *testing.T) {
	lab := func(spc string) *certs.SigningCredential {
		l, err := certs.NewLab(certs.LabOptions{SPC: spc})
		if err != nil {
			t.Fatal(err)
		}
		c, err := l.Signer()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	def, b1, b2 := lab("1001"), lab("1002"), lab("1002")
	chain := func(c *certs.SigningCredential) []byte { return newPubChain(c).body }
	for name, tc := range map[string]struct {
		activate time.Time
		blue     *certs.SigningCredential
	}{
		"before the activation": {time.Now().Add(time.Hour), b1},
		"after the activation":  {time.Now().Add(-time.Hour), b2},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := core.NewSigner(core.SignerOptions{Credential: def, X5U: "https://cr.example.net/certs/sp.pem", Numbers: tn.NANP(),
				Tenants: []core.Tenant{{Name: "blue", Credential: b1, X5U: "https://cr.example.net/certs/b1.pem",
					Next: &core.NextCredential{Credential: b2, X5U: "https://cr.example.net/certs/b2.pem", Activate: tc.activate}}}})
			if err != nil {
				t.Fatal(err)
			}
			a, err := New(Options{Signer: s})
			if err != nil {
				t.Fatal(err)
			}
			// Metrics: every chain's certificates (default, blue, blue's
			// next: two each) and one lead per tenant, labelled by tenant.
			m := NewMetrics(nil)
			m.SetSource(Source{Signer: s})
			if n, err := testutil.GatherAndCount(m.Registry(), "stirgate_signing_cert_not_after_timestamp_seconds"); err != nil || n != 6 {
				t.Errorf("expiry series %d (%v), want 6", n, err)
			}
			if n, err := testutil.GatherAndCount(m.Registry(), "stirgate_signing_cert_expiry_lead_seconds"); err != nil || n != 2 {
				t.Errorf("lead series %d (%v), want 2", n, err)
			}
			pub := a.Public()
			for path, want := range map[string][]byte{
				"/certs/sp.pem": chain(def), "/certs/default.pem": chain(def),
				"/certs/b1.pem": chain(b1), "/certs/b2.pem": chain(b2), "/certs/blue.pem": chain(tc.blue),
				"/certs/green.pem": nil,
			} {
				w := httptest.NewRecorder()
				pub.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
				switch {
				case want == nil && w.Code != 404:
					t.Errorf("%s: %d, want 404", path, w.Code)
				case want != nil && (w.Code != 200 || !bytes.Equal(w.Body.Bytes(), want)):
					t.Errorf("%s: %d, not the expected chain", path, w.Code)
				}
			}
		})
	}
}
