package httpapi

import (
	"context"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/crl"
	"github.com/stirgate/stirgate/core/x5u"
)

// TestCRLMetrics: the fetched CRL's times and fetch results are on the
// serve registry.
func TestCRLMetrics(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	lab, err := certs.NewLab(certs.LabOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	crlObj, crlPEM := lab.CRL()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(crlPEM) }))
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	src, err := crl.New(crl.Options{
		URLs:    []string{srv.URL + "/crl"},
		Signers: []*x509.Certificate{lab.CRLSigner},
		Roots:   lab.Roots,
		Fetch:   x5u.GetOptions{Policy: x5u.Policy{LabHosts: []string{strings.TrimPrefix(srv.URL, "https://")}}, RootCAs: pool, Timeout: 30 * time.Second},
		Now:     func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	v, err := core.NewVerifier(core.VerifierOptions{Roots: lab.Roots(), Revocation: src})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	m := NewMetrics(func() time.Time { return now })
	m.SetSource(Source{Verifier: v})
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			key := f.GetName()
			for _, l := range mt.GetLabel() {
				if l.GetName() == "result" {
					key += "/" + l.GetValue()
				}
			}
			if mt.Gauge != nil {
				got[key] = mt.GetGauge().GetValue()
			} else if mt.Counter != nil {
				got[key] = mt.GetCounter().GetValue()
			}
		}
	}
	want := map[string]float64{
		"stirgate_crl_next_update_timestamp_seconds":  float64(crlObj.NextUpdate.Unix()),
		"stirgate_crl_this_update_timestamp_seconds":  float64(crlObj.ThisUpdate.Unix()),
		"stirgate_crl_last_success_timestamp_seconds": float64(now.Unix()),
		"stirgate_crl_fetch_total/ok":                 1,
		"stirgate_crl_fetch_total/error":              0,
		"stirgate_crl_usable":                         1,
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, w)
		}
	}
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "stirgate_crl_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
}
