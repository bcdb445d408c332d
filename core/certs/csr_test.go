package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"testing"
)

func TestCreateCSR(t *testing.T) {
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	der, err := CreateCSR(key, CSROptions{SPC: "567J", Country: "us", Organization: "Example Telecom"})
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatalf("signature: %v", err)
	}
	if csr.Subject.CommonName != "SHAKEN 567J" || csr.Subject.Country[0] != "US" || csr.Subject.Organization[0] != "Example Telecom" {
		t.Fatalf("subject %v", csr.Subject)
	}
	var found bool
	for _, e := range csr.Extensions {
		if e.Id.Equal(OIDTNAuthList) {
			l, err := ParseTNAuthList(e.Value)
			if err != nil || l.SPC() != "567J" || len(l) != 1 {
				t.Fatalf("TNAuthList %v %v", l, err)
			}
			found = true
		}
	}
	if !found {
		t.Fatal("no TNAuthList in the request")
	}
	if !csr.PublicKey.(*ecdsa.PublicKey).Equal(key.Public()) {
		t.Fatal("request carries another key")
	}
}

func TestCreateCSRRefuses(t *testing.T) {
	p256, _ := NewKey()
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	good := CSROptions{SPC: "1234", Country: "US", Organization: "Example"}
	for _, tc := range []struct {
		name string
		key  crypto.Signer
		o    CSROptions
	}{
		{"P-384 key", p384, good},
		{"RSA key", rsaKey, good},
		{"no SPC", p256, CSROptions{Country: "US", Organization: "Example"}},
		{"SPC with a space", p256, CSROptions{SPC: "12 4", Country: "US", Organization: "Example"}},
		{"country of three letters", p256, CSROptions{SPC: "1234", Country: "USA", Organization: "Example"}},
		{"country with a digit", p256, CSROptions{SPC: "1234", Country: "U1", Organization: "Example"}},
		{"no organization", p256, CSROptions{SPC: "1234", Country: "US", Organization: " "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := CreateCSR(tc.key, tc.o); err == nil {
				t.Fatal("request created")
			}
		})
	}
}
