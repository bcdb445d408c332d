package certs_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/internal/testpki"
)

func sec1(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func TestLoadSigner(t *testing.T) {
	lab := testpki.Default(t)
	good := testpki.Valid(t, lab)
	ecParams := []byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n")
	other := testpki.UntrustedRoot(t, lab)
	p384 := testpki.P384Leaf(t, lab)
	rsaLeaf := testpki.RSALeaf(t, lab)
	noTNA := testpki.NoTNAuthList(t, lab)
	caLeaf := testpki.CALeaf(t, lab)
	encrypted := []byte("-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00000000000000000000000000000000\n\nAAAA\n-----END EC PRIVATE KEY-----\n")

	tests := []struct {
		name       string
		key, chain []byte
		want       *stir.Error
	}{
		{"PKCS#8", good.KeyPEM, good.ChainPEM, nil},
		{"SEC1", sec1(t, lab.LeafKey), good.ChainPEM, nil},
		{"SEC1 after EC PARAMETERS", append(append([]byte(nil), ecParams...), sec1(t, lab.LeafKey)...), good.ChainPEM, nil},
		{"leaf only", good.KeyPEM, certs.EncodePEM(lab.Leaf), nil},
		{"key of another certificate", other.KeyPEM, good.ChainPEM, stir.ErrSignKey},
		{"P-384", p384.KeyPEM, p384.ChainPEM, stir.ErrSignKey},
		{"RSA", rsaLeaf.KeyPEM, rsaLeaf.ChainPEM, stir.ErrSignKey},
		{"no TNAuthList", noTNA.KeyPEM, noTNA.ChainPEM, stir.ErrSignCertInvalid},
		{"CA certificate", caLeaf.KeyPEM, caLeaf.ChainPEM, stir.ErrSignCertInvalid},
		{"no key", nil, good.ChainPEM, stir.ErrSignKey},
		{"certificate as key", good.ChainPEM, good.ChainPEM, stir.ErrSignKey},
		{"encrypted key", encrypted, good.ChainPEM, stir.ErrSignKey},
		{"data after the key", append(append([]byte(nil), good.KeyPEM...), "junk"...), good.ChainPEM, stir.ErrSignKey},
		{"no chain", good.KeyPEM, nil, stir.ErrSignCertInvalid},
		{"garbage chain", good.KeyPEM, []byte("junk"), stir.ErrSignCertInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := certs.LoadSigner(tc.key, tc.chain)
			wantName(t, err, tc.want)
			if err != nil {
				return
			}
			if sc.SPC != lab.SPC || !sc.Leaf.Equal(lab.Leaf) || !sc.Key.Equal(lab.LeafKey) {
				t.Fatalf("credential %v", sc)
			}
			if !sc.NotBefore.Equal(lab.Leaf.NotBefore) || !sc.NotAfter.Equal(lab.Leaf.NotAfter) {
				t.Fatalf("validity %v..%v", sc.NotBefore, sc.NotAfter)
			}
		})
	}
}

func TestSigningCredentialNotAfterIsEarliest(t *testing.T) {
	lab := testpki.Default(t)
	// A leaf that outlives its intermediate: the credential ends with the CA.
	leaf, key, err := lab.IssueLeaf(certs.LeafOptions{NotAfter: lab.CA.NotAfter.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	kp, err := certs.KeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := certs.LoadSigner(kp, certs.EncodePEM(leaf, lab.CA))
	if err != nil {
		t.Fatal(err)
	}
	if !sc.NotAfter.Equal(lab.CA.NotAfter) {
		t.Fatalf("NotAfter %v, want the CA's %v", sc.NotAfter, lab.CA.NotAfter)
	}
}

func TestExpiresWithin(t *testing.T) {
	end := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	sc := &certs.SigningCredential{NotAfter: end}
	day := 24 * time.Hour
	tests := []struct {
		now  time.Time
		d    time.Duration
		want bool
	}{
		{end.Add(-31 * day), 30 * day, false},
		{end.Add(-30 * day), 30 * day, true},
		{end.Add(-29 * day), 30 * day, true},
		{end.Add(day), 30 * day, true},
		{end.Add(-time.Second), 0, false},
		{end, 0, true},
	}
	for _, tc := range tests {
		if got := sc.ExpiresWithin(tc.d, tc.now); got != tc.want {
			t.Errorf("ExpiresWithin(%v, %v) = %v, want %v", tc.d, tc.now, got, tc.want)
		}
	}
}

// TestSigningCredentialRedacts logs and prints a credential every way a
// careless caller might and looks for the private scalar and the PEM.
func TestSigningCredentialRedacts(t *testing.T) {
	lab := testpki.Default(t)
	sc, err := lab.Signer()
	if err != nil {
		t.Fatal(err)
	}
	kp, _ := lab.KeyPEM()
	raw, err := sc.Key.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	d := new(big.Int).SetBytes(raw)
	secrets := []string{
		d.Text(16), d.Text(10), // encoding/json prints big.Int in decimal
		strings.Split(string(kp), "\n")[1], // first base64 line of the PEM body
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("loaded", "cred", sc)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("loaded", "cred", sc)
	fmt.Fprintf(&buf, "%v %+v %#v %s", sc, sc, sc, sc)
	out := buf.String()
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Fatalf("secret %q leaked into %s", s, out)
		}
	}
	if !strings.Contains(out, "REDACTED") || !strings.Contains(out, lab.SPC) {
		t.Fatalf("log lacks the redaction marker or the SPC: %s", out)
	}
}
