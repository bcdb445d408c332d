package certs_test

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/internal/testpki"
)

var (
	oidCertificateIssuer = asn1.ObjectIdentifier{2, 5, 29, 29}
	oidIDP               = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidDeltaCRL          = asn1.ObjectIdentifier{2, 5, 29, 27}
)

// certIssuerExt is a critical certificateIssuer naming dn.
func certIssuerExt(t *testing.T, dn []byte) pkix.Extension {
	t.Helper()
	v, err := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: dn}})
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oidCertificateIssuer, Critical: true, Value: v}
}

// signCRL signs tmpl with the lab's CRL signer, filling the dates and
// number it leaves zero.
func signCRL(t *testing.T, lab *certs.Lab, tmpl x509.RevocationList) *x509.RevocationList {
	t.Helper()
	if tmpl.Number == nil {
		tmpl.Number = big.NewInt(7)
	}
	if tmpl.ThisUpdate.IsZero() {
		tmpl.ThisUpdate = lab.Now.Add(-time.Hour)
	}
	if tmpl.NextUpdate.IsZero() {
		tmpl.NextUpdate = lab.Now.Add(24 * time.Hour)
	}
	der, err := x509.CreateRevocationList(rand.Reader, &tmpl, lab.CRLSigner, lab.CRLSignerKey)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	return crl
}

func TestCRLSetCheck(t *testing.T) {
	lab := testpki.Default(t)
	now := lab.Now
	leaf := lab.Leaf
	indirect := []pkix.Extension{{Id: oidIDP, Critical: true, Value: []byte{0x30, 0x03, 0x84, 0x01, 0xff}}}
	other, _, err := lab.IssueLeaf(certs.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	signers := []*x509.Certificate{lab.CRLSigner}

	tests := []struct {
		name    string
		crl     x509.RevocationList
		signers []*x509.Certificate
		roots   *x509.CertPool
		at      time.Time
		want    *stir.Error
	}{
		{name: "empty CRL", signers: signers, want: nil},
		{name: "leaf listed with certificateIssuer", signers: signers, want: stir.ErrCertRevoked, crl: x509.RevocationList{
			ExtraExtensions: indirect,
			RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: leaf.SerialNumber, RevocationTime: now,
				ExtraExtensions: []pkix.Extension{certIssuerExt(t, leaf.RawIssuer)}}}}},
		{name: "issuer carries over to the next entry", signers: signers, want: stir.ErrCertRevoked, crl: x509.RevocationList{
			ExtraExtensions: indirect,
			RevokedCertificateEntries: []x509.RevocationListEntry{
				{SerialNumber: other.SerialNumber, RevocationTime: now, ExtraExtensions: []pkix.Extension{certIssuerExt(t, leaf.RawIssuer)}},
				{SerialNumber: leaf.SerialNumber, RevocationTime: now}}}},
		{name: "serial listed for another issuer", signers: signers, want: nil, crl: x509.RevocationList{
			ExtraExtensions: indirect,
			RevokedCertificateEntries: []x509.RevocationListEntry{
				{SerialNumber: leaf.SerialNumber, RevocationTime: now, ExtraExtensions: []pkix.Extension{certIssuerExt(t, lab.Root.RawSubject)}}}}},
		{name: "serial listed without certificateIssuer belongs to the CRL signer", signers: signers, want: nil, crl: x509.RevocationList{
			RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: leaf.SerialNumber, RevocationTime: now}}}},
		{name: "intermediate listed", signers: signers, want: stir.ErrCertRevoked, crl: x509.RevocationList{
			ExtraExtensions: indirect,
			RevokedCertificateEntries: []x509.RevocationListEntry{
				{SerialNumber: lab.CA.SerialNumber, RevocationTime: now, ExtraExtensions: []pkix.Extension{certIssuerExt(t, lab.CA.RawIssuer)}}}}},
		{name: "signer not provided", want: stir.ErrCRLUnusable},
		{name: "no roots", signers: signers, roots: x509.NewCertPool(), want: stir.ErrCRLUnusable},
		{name: "expired", signers: signers, at: now.Add(25 * time.Hour), want: stir.ErrCRLUnusable},
		{name: "not yet issued", signers: signers, crl: x509.RevocationList{ThisUpdate: now.Add(time.Hour), NextUpdate: now.Add(2 * time.Hour)}, want: stir.ErrCRLUnusable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set, err := certs.NewCRLSet([]*x509.RevocationList{signCRL(t, lab, tc.crl)}, tc.signers)
			if err != nil {
				t.Fatal(err)
			}
			roots := tc.roots
			if roots == nil {
				roots = lab.Roots()
			}
			at := tc.at
			if at.IsZero() {
				at = now
			}
			wantName(t, set.Check([]*x509.Certificate{leaf, lab.CA, lab.Root}, roots, at), tc.want)
		})
	}
}

func TestCRLSetTamperedSignature(t *testing.T) {
	lab := testpki.Default(t)
	crl := signCRL(t, lab, x509.RevocationList{})
	der := append([]byte(nil), crl.Raw...)
	der[len(der)-3] ^= 0x01
	bad, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	set, err := certs.NewCRLSet([]*x509.RevocationList{bad}, []*x509.Certificate{lab.CRLSigner})
	if err != nil {
		t.Fatal(err)
	}
	wantName(t, set.Check(lab.Chain(), lab.Roots(), lab.Now), stir.ErrCRLUnusable)
}

func TestNewCRLSetRefuses(t *testing.T) {
	lab := testpki.Default(t)
	tests := map[string]x509.RevocationList{
		"delta CRL":                      {ExtraExtensions: []pkix.Extension{{Id: oidDeltaCRL, Critical: true, Value: []byte{2, 1, 1}}}},
		"unknown critical CRL extension": {ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Critical: true, Value: []byte{5, 0}}}},
		"unknown critical entry extension": {RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: big.NewInt(5), RevocationTime: lab.Now,
			ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Critical: true, Value: []byte{5, 0}}}}}},
		"certificateIssuer without directoryName": {RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: big.NewInt(5), RevocationTime: lab.Now,
			ExtraExtensions: []pkix.Extension{{Id: oidCertificateIssuer, Critical: true, Value: []byte{0x30, 0x03, 0x82, 0x01, 'x'}}}}}},
	}
	for name, tmpl := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := certs.NewCRLSet([]*x509.RevocationList{signCRL(t, lab, tmpl)}, nil)
			wantName(t, err, stir.ErrCRLUnusable)
		})
	}
	t.Run("unknown non-critical extensions are fine", func(t *testing.T) {
		_, err := certs.NewCRLSet([]*x509.RevocationList{signCRL(t, lab, x509.RevocationList{
			ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Value: []byte{5, 0}}}})}, nil)
		wantName(t, err, nil)
	})
}

func TestParseCRLSet(t *testing.T) {
	lab := testpki.Default(t)
	crl, crlPEM := lab.CRL()
	signerPEM := certs.EncodePEM(lab.CRLSigner)
	tests := []struct {
		name string
		data [][]byte
		want *stir.Error
	}{
		{"PEM CRL and signer", [][]byte{crlPEM, signerPEM}, nil},
		{"one file with both", [][]byte{append(append([]byte(nil), signerPEM...), crlPEM...)}, nil},
		{"DER CRL", [][]byte{crl.Raw, signerPEM}, nil},
		{"no CRL", [][]byte{signerPEM}, stir.ErrCRLUnusable},
		{"garbage", [][]byte{[]byte("garbage")}, stir.ErrCRLUnusable},
		{"wrong PEM type", [][]byte{pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})}, stir.ErrCRLUnusable},
		{"bad CRL bytes", [][]byte{pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: []byte{0x30, 0}})}, stir.ErrCRLUnusable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set, err := certs.ParseCRLSet(tc.data...)
			wantName(t, err, tc.want)
			if err != nil {
				return
			}
			wantName(t, set.Check(lab.Chain(), lab.Roots(), lab.Now), nil)
			if !set.NextUpdate().Equal(crl.NextUpdate) {
				t.Errorf("NextUpdate %v, want %v", set.NextUpdate(), crl.NextUpdate)
			}
		})
	}
}

// TestLabRevoke revokes on a private lab (never a shared one) and checks
// the CRL files round-trip through WriteDir and LoadCRLSet.
func TestLabRevoke(t *testing.T) {
	lab, err := certs.NewLab(certs.LabOptions{Now: testpki.Now, SPC: "77AB"})
	if err != nil {
		t.Fatal(err)
	}
	opts := func(set *certs.CRLSet) certs.VerifyOptions {
		return certs.VerifyOptions{Roots: lab.Roots(), CurrentTime: lab.Now, CRL: set}
	}
	set, err := lab.CRLSet()
	if err != nil {
		t.Fatal(err)
	}
	_, err = certs.Verify(lab.Chain(), opts(set))
	wantName(t, err, nil)

	p, err := lab.Revoke(lab.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := lab.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	_, onDisk := lab.CRL()
	if string(onDisk) != string(p) {
		t.Fatal("Revoke's PEM is not the lab's current CRL")
	}
	set, err = certs.LoadCRLSet(filepath.Join(dir, certs.LabCRLFile), filepath.Join(dir, certs.LabCRLSignerFile))
	if err != nil {
		t.Fatal(err)
	}
	_, err = certs.Verify(lab.Chain(), opts(set))
	wantName(t, err, stir.ErrCertRevoked)

	fresh, _, err := lab.IssueLeaf(certs.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = certs.Verify([]*x509.Certificate{fresh, lab.CA}, opts(set))
	wantName(t, err, nil)

	_, err = certs.LoadCRLSet(filepath.Join(dir, "missing.pem"))
	wantName(t, err, stir.ErrCRLUnusable)
}
