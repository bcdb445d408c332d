package httpapi

import (
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/certs"
)

// TestReadinessExpiry: not ready when the certificate cannot sign now,
// degraded (200) within the last expiry lead time, ready otherwise.
func TestReadinessExpiry(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	lab, err := certs.NewLab(certs.LabOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	cred, err := lab.Signer()
	if err != nil {
		t.Fatal(err)
	}
	s, err := core.NewSigner(core.SignerOptions{Credential: cred, X5U: "https://cr.example.net/sp.pem"})
	if err != nil {
		t.Fatal(err)
	}
	end := cred.NotAfter
	for _, tc := range []struct {
		at                time.Time
		wantErr, degraded bool
	}{
		{now, false, false},
		{end.Add(-48 * time.Hour), false, false}, // within 168h: logged, still plainly ready
		{end.Add(-time.Hour), true, true},        // within the last lead (24h)
		{end.Add(time.Second), true, false},      // cannot sign
		{cred.NotBefore.Add(-time.Second), true, false},
	} {
		err := Readiness(s, nil, tc.at)
		if (err != nil) != tc.wantErr || IsDegraded(err) != tc.degraded {
			t.Errorf("at %s: %v (degraded %v), want error %v degraded %v", tc.at, err, IsDegraded(err), tc.wantErr, tc.degraded)
		}
	}

	// The crossed lead time is on the serve registry too.
	m := NewMetrics(func() time.Time { return end.Add(-time.Hour) })
	m.SetSource(Source{Signer: s})
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	lead := -1.0
	for _, f := range fams {
		if f.GetName() == "stirgate_signing_cert_expiry_lead_seconds" {
			lead = f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	if lead != (24 * time.Hour).Seconds() {
		t.Errorf("stirgate_signing_cert_expiry_lead_seconds = %v, want 86400", lead)
	}
	deg := newFixture(t, func(o *Options) { o.Ready = func() error { return Readiness(s, nil, end.Add(-time.Hour)) } })
	if r := deg.do(t, "GET", "/readyz", "", ""); r.status != 200 || !strings.Contains(r.body, "degraded: signing certificate expires in 1h0m0s") {
		t.Errorf("readyz when degraded: %d %q", r.status, r.body)
	}
	gone := newFixture(t, func(o *Options) { o.Ready = func() error { return Readiness(s, nil, end.Add(time.Hour)) } })
	if r := gone.do(t, "GET", "/readyz", "", ""); r.status != 503 || !strings.Contains(r.body, "cannot sign now") {
		t.Errorf("readyz when expired: %d %q", r.status, r.body)
	}
}
