package crl

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/stir"
)

// FuzzParse feeds arbitrary CRL server responses to the check a fetched
// body goes through: it must return a crl_unusable error or a CRL signed
// by the configured signer, never panic.
func FuzzParse(f *testing.F) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	lab, err := certs.NewLab(certs.LabOptions{Now: now})
	if err != nil {
		f.Fatal(err)
	}
	crl, pemCRL := lab.CRL()
	f.Add(pemCRL)
	f.Add(crl.Raw)
	f.Add([]byte("-----BEGIN X509 CRL-----\n-----END X509 CRL-----\n"))
	f.Add([]byte{0x30, 0x82, 0xff, 0xff})
	s, err := New(Options{
		URLs:    []string{"https://crl.example.net/sti-pa.crl"},
		Signers: []*x509.Certificate{lab.CRLSigner},
		Roots:   lab.Roots,
		Now:     func() time.Time { return now },
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := s.parse(body, true)
		if err != nil {
			if se := stir.As(err); se == nil {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if p.set == nil || p.nextUpdate.IsZero() {
			t.Fatalf("accepted without a set or nextUpdate: %+v", p)
		}
	})
}
