package httpapi

import (
	"bytes"
	"errors"
	"net/http/httptest"
	"strings"
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

// TestReadinessTenants: the default tenant decides readiness; another
// tenant that cannot sign degrades it, naming the tenant; without a
// default, readiness fails only when no tenant can sign.
func TestReadinessTenants(t *testing.T) {
	now := time.Now()
	cred := func(days int, at time.Time) *certs.SigningCredential {
		l, err := certs.NewLab(certs.LabOptions{Now: at, Days: days})
		if err != nil {
			t.Fatal(err)
		}
		c, err := l.Signer()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	good, expired := cred(365, now), cred(1, now.Add(-10*24*time.Hour))
	tenant := func(name string, c *certs.SigningCredential) core.Tenant {
		return core.Tenant{Name: name, Credential: c, X5U: "https://cr.example.net/certs/" + name + ".pem"}
	}
	for name, tc := range map[string]struct {
		tenants  []core.Tenant
		ready    bool
		degraded string
	}{
		"all can sign":         {[]core.Tenant{tenant("default", good), tenant("blue", good)}, true, ""},
		"another cannot":       {[]core.Tenant{tenant("default", good), tenant("blue", expired)}, true, "tenant blue signing certificate cannot sign now"},
		"default cannot":       {[]core.Tenant{tenant("default", expired), tenant("blue", good)}, false, ""},
		"no default, one can":  {[]core.Tenant{tenant("blue", good), tenant("green", expired)}, true, "tenant green"},
		"no default, none can": {[]core.Tenant{tenant("blue", expired), tenant("green", expired)}, false, ""},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := core.NewSigner(core.SignerOptions{Tenants: tc.tenants, Numbers: tn.NANP()})
			if err != nil {
				t.Fatal(err)
			}
			err = Readiness(s, nil, now)
			var deg *Degraded
			switch {
			case !tc.ready && (err == nil || errors.As(err, &deg)):
				t.Errorf("ready: %v", err)
			case tc.ready && tc.degraded == "" && err != nil:
				t.Errorf("not ready: %v", err)
			case tc.degraded != "" && (!errors.As(err, &deg) || !strings.Contains(err.Error(), tc.degraded)):
				t.Errorf("%v, want degraded: %s", err, tc.degraded)
			}
		})
	}
}
