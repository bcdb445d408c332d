package testpki_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/internal/testpki"
)

func TestNewCachesPerOptions(t *testing.T) {
	a := testpki.Default(t)
	if b := testpki.New(t, certs.LabOptions{Now: testpki.Now}); b != a {
		t.Error("zero Now and testpki.Now gave different labs")
	}
	if !a.Now.Equal(testpki.Now) {
		t.Errorf("lab Now %v, want %v", a.Now, testpki.Now)
	}
	c := testpki.New(t, certs.LabOptions{SPC: "555X"})
	if c == a || c.SPC != "555X" {
		t.Error("different options shared a lab")
	}
	if testpki.New(t, certs.LabOptions{SPC: "555X"}) != c {
		t.Error("same options built a second lab")
	}
	first := testpki.Expired(t, a)
	if testpki.Expired(t, a) != first {
		t.Error("variant rebuilt")
	}
}

func TestVariants(t *testing.T) {
	lab := testpki.Default(t)
	now := lab.Now
	day := 24 * time.Hour
	tests := []struct {
		name  string
		b     *testpki.Bundle
		check func(t *testing.T, b *testpki.Bundle)
	}{
		{"valid", testpki.Valid(t, lab), func(t *testing.T, b *testpki.Bundle) {
			if !b.Chain[0].Equal(lab.Leaf) {
				t.Error("not the lab leaf")
			}
		}},
		{"expired", testpki.Expired(t, lab), func(t *testing.T, b *testpki.Bundle) {
			if !b.Chain[0].NotAfter.Equal(now.Add(-day)) || !b.Chain[0].NotBefore.Equal(now.Add(-2*day)) {
				t.Errorf("valid %v..%v", b.Chain[0].NotBefore, b.Chain[0].NotAfter)
			}
		}},
		{"not yet valid", testpki.NotYetValid(t, lab), func(t *testing.T, b *testpki.Bundle) {
			if !b.Chain[0].NotBefore.Equal(now.Add(day)) {
				t.Errorf("valid from %v", b.Chain[0].NotBefore)
			}
		}},
		{"RSA", testpki.RSALeaf(t, lab), func(t *testing.T, b *testpki.Bundle) {
			if _, ok := b.Chain[0].PublicKey.(*rsa.PublicKey); !ok {
				t.Errorf("key %T", b.Chain[0].PublicKey)
			}
		}},
		{"P-384", testpki.P384Leaf(t, lab), func(t *testing.T, b *testpki.Bundle) {
			if k, ok := b.Chain[0].PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P384() {
				t.Errorf("key %T", b.Chain[0].PublicKey)
			}
		}},
		{"no TNAuthList", testpki.NoTNAuthList(t, lab), func(t *testing.T, b *testpki.Bundle) {
			for _, e := range b.Chain[0].Extensions {
				if e.Id.Equal(certs.OIDTNAuthList) {
					t.Error("TNAuthList present")
				}
			}
		}},
		{"CA leaf", testpki.CALeaf(t, lab), func(t *testing.T, b *testpki.Bundle) {
			if !b.Chain[0].IsCA {
				t.Error("not a CA")
			}
		}},
		{"untrusted root", testpki.UntrustedRoot(t, lab), func(t *testing.T, b *testpki.Bundle) {
			if b.Chain[1].Equal(lab.CA) || b.Chain[1].Subject.String() != lab.CA.Subject.String() {
				t.Error("want a different CA with the same name")
			}
		}},
		{"revoked", testpki.Revoked(t, lab), func(t *testing.T, b *testpki.Bundle) {
			if b.CRL == nil || len(b.CRLPEM) == 0 {
				t.Fatal("no CRL")
			}
			if err := b.CRL.Check(b.Chain, lab.Roots(), now); err == nil {
				t.Error("leaf not listed")
			}
			if crl, _ := lab.CRL(); len(crl.RevokedCertificateEntries) != 0 {
				t.Error("the shared lab's CRL changed")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.b.Chain) != 2 || tc.b.Key == nil || len(tc.b.ChainPEM) == 0 || len(tc.b.KeyPEM) == 0 || tc.b.Roots == nil {
				t.Fatalf("incomplete bundle %+v", tc.b)
			}
			if !tc.b.Key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(tc.b.Chain[0].PublicKey) {
				t.Fatal("key does not match the leaf")
			}
			tc.check(t, tc.b)
		})
	}
}
