package config

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/crl"
)

// TestSampleCRLDefaults: the sample's lifecycle values are the defaults
// the code applies to zero fields.
func TestSampleCRLDefaults(t *testing.T) {
	c, err := Load("../../examples/stirgate.toml")
	if err != nil {
		t.Fatal(err)
	}
	v := c.Verifier
	if v.CRLGrace.Duration != crl.DefaultGrace || v.CRLRefreshBefore.Duration != crl.DefaultRefreshBefore ||
		v.CRLRetry.Duration != crl.DefaultRetry || v.CRLMaxBody != crl.DefaultMaxBody ||
		v.CRLStale != string(crl.Reject) || v.TrustCheckInterval.Duration != time.Second {
		t.Fatalf("sample lifecycle values are not the defaults: %+v", v)
	}
	if got := durations(c.Signer.ExpiryWarn); !slices.Equal(got, core.DefaultExpiryLeads) {
		t.Fatalf("sample expiry_warn %v, want %v", got, core.DefaultExpiryLeads)
	}
}

// TestVerifierCRLFromConfig: [verifier] crl_urls builds a fetched CRL under
// the [x5u] policy and TLS roots, fetched once at start when nothing is on
// disk, and not again on a restart that finds the disk copy.
func TestVerifierCRLFromConfig(t *testing.T) {
	now := time.Now()
	lab, err := certs.NewLab(certs.LabOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := lab.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	_, crlPEM := lab.CRL()
	var hits atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write(crlPEM)
	}))
	defer srv.Close()
	caFile := filepath.Join(dir, "tls-ca.pem")
	if err := os.WriteFile(caFile, certs.EncodePEM(srv.Certificate()), 0o644); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(srv.URL, "https://")
	text := `[verifier]
trust = ["root.pem"]
crl_urls = ["` + srv.URL + `/sti-pa.crl"]
crl_signers = ["crl-signer.pem"]
crl_dir = "crl"
[x5u]
lab_hosts = ["` + host + `"]
ca_file = "tls-ca.pem"
timeout = "30s"
allow_hosts = ["cr.example.net"]
`
	build := func() *crl.Source {
		t.Helper()
		c, err := Parse([]byte(text), filepath.Join(dir, "stirgate.toml"))
		if err != nil {
			t.Fatal(err)
		}
		v, err := c.NewVerifier(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { v.Close() })
		src, ok := v.Revocation().(*crl.Source)
		if !ok {
			t.Fatalf("revocation checker %T", v.Revocation())
		}
		return src
	}
	src := build()
	if st := src.Status()[0]; !st.Usable || st.Fetches != 1 || hits.Load() != 1 {
		t.Fatalf("status %+v after start, %d requests", st, hits.Load())
	}
	if _, err := os.Stat(filepath.Join(dir, "crl")); err != nil {
		t.Fatal(err)
	}
	src = build()
	if st := src.Status()[0]; !st.Usable || st.Fetches != 0 || hits.Load() != 1 {
		t.Fatalf("status %+v after restart, %d requests; want the disk copy", st, hits.Load())
	}
}
