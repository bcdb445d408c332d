package certs_test

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"os"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/internal/testpki"
)

func wantName(t *testing.T, err error, want *stir.Error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		return
	}
	e := stir.As(err)
	if e == nil {
		t.Fatalf("err = %v (%T), want *stir.Error %s", err, err, want.Name)
	}
	if e.Name != want.Name {
		t.Fatalf("err = %v, want Name %s", err, want.Name)
	}
}

func TestVerify(t *testing.T) {
	lab := testpki.Default(t)
	now := lab.Now
	labCRL, err := lab.CRLSet()
	if err != nil {
		t.Fatal(err)
	}
	// An intermediate that expires while the leaf it issued is still valid.
	longLeaf, _, err := lab.IssueLeaf(certs.LeafOptions{NotAfter: now.Add(3 * 365 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	caExpired := now.Add(2*365*24*time.Hour + time.Hour)
	// A leaf that outlives the lab CRL's nextUpdate (Days) but not the CA.
	afterCRL := now.Add(365*24*time.Hour + time.Hour)
	midLeaf, _, err := lab.IssueLeaf(certs.LeafOptions{NotAfter: now.Add(2*365*24*time.Hour - time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	badCN, _, err := lab.IssueLeaf(certs.LeafOptions{CommonName: "Not SHAKEN"})
	if err != nil {
		t.Fatal(err)
	}
	otherLab, err := certs.NewLab(certs.LabOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	otherCRL, err := otherLab.CRLSet()
	if err != nil {
		t.Fatal(err)
	}
	revoked := testpki.Revoked(t, lab)

	tests := []struct {
		name  string
		chain []*x509.Certificate
		opts  certs.VerifyOptions
		want  *stir.Error
	}{
		{"valid", lab.Chain(), certs.VerifyOptions{Roots: lab.Roots(), CurrentTime: now}, nil},
		{"valid strict with CRL", lab.Chain(), certs.VerifyOptions{Roots: lab.Roots(), CurrentTime: now, CRL: labCRL, Strict: true}, nil},
		{"valid CN mismatch relaxed", []*x509.Certificate{badCN, lab.CA}, certs.VerifyOptions{Roots: lab.Roots(), CurrentTime: now}, nil},
		{"CN mismatch strict", []*x509.Certificate{badCN, lab.CA}, certs.VerifyOptions{Roots: lab.Roots(), CurrentTime: now, Strict: true}, stir.ErrCertProfile},
		{"nil roots", lab.Chain(), certs.VerifyOptions{CurrentTime: now}, stir.ErrCertUntrusted},
		{"empty chain", nil, certs.VerifyOptions{Roots: lab.Roots(), CurrentTime: now}, stir.ErrCertProfile},
		{"missing intermediate", lab.Chain()[:1], certs.VerifyOptions{Roots: lab.Roots(), CurrentTime: now}, stir.ErrCertUntrusted},
		{"expired leaf", testpki.Expired(t, lab).Chain, certs.VerifyOptions{Roots: lab.Roots(), CurrentTime: now}, stir.ErrCertExpired},
		{"not yet valid leaf", testpki.NotYetValid(t, lab).Chain, certs.VerifyOptions{Roots: lab.Roots(), CurrentTime: now}, stir.ErrCertExpired},
		{"expired intermediate", []*x509.Certificate{longLeaf, lab.CA}, certs.VerifyOptions{Roots: lab.Roots(), CurrentTime: caExpired}, stir.ErrCertExpired},
		{"RSA leaf", testpki.RSALeaf(t, lab).Chain, certs.VerifyOptions{Roots: lab.Roots(), CurrentTime: now}, stir.ErrCertProfile},
		{"P-384 leaf", testpki.P384Leaf(t, lab).Chain, certs.VerifyOptions{Roots: lab.Roots(), CurrentTime: now}, stir.ErrCertProfile},
		{"no TNAuthList", testpki.NoTNAuthList(t, lab).Chain, certs.VerifyOptions{Roots: lab.Roots(), CurrentTime: now}, stir.ErrCertNoTNAuth},
		{"CA leaf", testpki.CALeaf(t, lab).Chain, certs.VerifyOptions{Roots: lab.Roots(), CurrentTime: now}, stir.ErrCertProfile},
		{"untrusted root", testpki.UntrustedRoot(t, lab).Chain, certs.VerifyOptions{Roots: lab.Roots(), CurrentTime: now}, stir.ErrCertUntrusted},
		{"revoked", revoked.Chain, certs.VerifyOptions{Roots: lab.Roots(), CurrentTime: now, CRL: revoked.CRL}, stir.ErrCertRevoked},
		{"revoked but no CRL configured", revoked.Chain, certs.VerifyOptions{Roots: lab.Roots(), CurrentTime: now}, nil},
		{"other leaf not on the CRL", lab.Chain(), certs.VerifyOptions{Roots: lab.Roots(), CurrentTime: now, CRL: revoked.CRL}, nil},
		{"CRL expired", []*x509.Certificate{midLeaf, lab.CA}, certs.VerifyOptions{Roots: lab.Roots(), CurrentTime: afterCRL, CRL: labCRL}, stir.ErrCRLUnusable},
		{"CRL from an untrusted signer", lab.Chain(), certs.VerifyOptions{Roots: lab.Roots(), CurrentTime: now, CRL: otherCRL}, stir.ErrCRLUnusable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cred, err := certs.Verify(tc.chain, tc.opts)
			wantName(t, err, tc.want)
			if tc.want != nil {
				if cred != nil {
					t.Fatal("credential returned with an error")
				}
				return
			}
			if cred.SPC != lab.SPC || cred.PolicyOID != certs.LabPolicyOID || cred.Leaf != tc.chain[0] {
				t.Errorf("credential %+v", cred)
			}
			if len(cred.Chain) != 3 || !cred.Chain[2].Equal(lab.Root) {
				t.Errorf("chain length %d, want leaf, CA, root", len(cred.Chain))
			}
			if !cred.NotAfter.Equal(tc.chain[0].NotAfter) {
				t.Errorf("NotAfter %v, want the leaf's %v (the earliest)", cred.NotAfter, tc.chain[0].NotAfter)
			}
			if !cred.PublicKey.Equal(tc.chain[0].PublicKey) {
				t.Error("PublicKey is not the leaf's")
			}
		})
	}
}

func TestVerifyLibstirshakenLeaf(t *testing.T) {
	// sp_sp.pem carries a TNAuthList whose value is an IA5String URL, not
	// a TNAuthorizationList: a verifier answers 437.
	b, err := os.ReadFile("testdata/libstirshaken/sp_sp.pem")
	if err != nil {
		t.Fatal(err)
	}
	chain, err := certs.ParsePEMChain(b, 10)
	if err != nil {
		t.Fatal(err)
	}
	_, err = certs.TNAuthListOf(chain[0])
	wantName(t, err, stir.ErrCertNoTNAuth)
	_, err = certs.Verify(chain, certs.VerifyOptions{Roots: x509.NewCertPool(), CurrentTime: chain[0].NotBefore.Add(time.Hour)})
	if e := stir.As(err); e == nil || e.SIPCode != 437 {
		t.Fatalf("err = %v, want a 437 credential error", err)
	}
}

func TestParsePEMChain(t *testing.T) {
	lab := testpki.Default(t)
	chainPEM := lab.ChainPEM()
	three := append(append([]byte(nil), chainPEM...), certs.EncodePEM(lab.Root)...)
	crlPEM := func() []byte { _, p := lab.CRL(); return p }()
	tests := []struct {
		name string
		data []byte
		max  int
		n    int
		want *stir.Error
	}{
		{"chain", chainPEM, 10, 2, nil},
		{"surrounding whitespace", append(append([]byte("\r\n \t"), chainPEM...), "\n\n  \r\n"...), 10, 2, nil},
		{"exactly max", three, 3, 3, nil},
		{"default max", three, 0, 3, nil},
		{"more than max", three, 2, 0, stir.ErrX5UBadContent},
		{"empty", nil, 10, 0, stir.ErrX5UBadContent},
		{"whitespace only", []byte(" \n"), 10, 0, stir.ErrX5UBadContent},
		{"leading text", append([]byte("hello\n"), chainPEM...), 10, 0, stir.ErrX5UBadContent},
		{"trailing text", append(append([]byte(nil), chainPEM...), "garbage"...), 10, 0, stir.ErrX5UBadContent},
		{"text between", bytes.Replace(chainPEM, []byte("-----\n-----BEGIN"), []byte("-----\nx\n-----BEGIN"), 1), 10, 0, stir.ErrX5UBadContent},
		{"DER", lab.Leaf.Raw, 10, 0, stir.ErrX5UBadContent},
		{"CRL block", crlPEM, 10, 0, stir.ErrX5UBadContent},
		{"headers", []byte("-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END CERTIFICATE-----\n"), 10, 0, stir.ErrX5UBadContent},
		{"not a certificate", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 10, 0, stir.ErrX5UBadContent},
		{"truncated block", chainPEM[:len(chainPEM)-20], 10, 0, stir.ErrX5UBadContent},
		{"malformed block before a good one", append([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n"), chainPEM...), 10, 0, stir.ErrX5UBadContent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := certs.ParsePEMChain(tc.data, tc.max)
			wantName(t, err, tc.want)
			if len(got) != tc.n {
				t.Fatalf("%d certificates, want %d", len(got), tc.n)
			}
			if tc.n > 0 && !got[0].Equal(lab.Leaf) {
				t.Fatal("first certificate is not the leaf")
			}
		})
	}
}

func TestVerifyCriticalExtensions(t *testing.T) {
	lab := testpki.Default(t)
	tna, err := certs.MarshalTNAuthList(certs.TNAuthList{{SPC: lab.SPC}})
	if err != nil {
		t.Fatal(err)
	}
	reissue := func(t *testing.T, exts ...pkix.Extension) *x509.Certificate {
		t.Helper()
		tmpl := *lab.Leaf
		tmpl.ExtraExtensions = exts
		der, err := x509.CreateCertificate(rand.Reader, &tmpl, lab.CA, lab.LeafKey.Public(), lab.CAKey)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	critTNA := pkix.Extension{Id: certs.OIDTNAuthList, Critical: true, Value: tna}
	tests := []struct {
		name string
		leaf *x509.Certificate
		want *stir.Error
	}{
		{"critical TNAuthList", reissue(t, critTNA), nil},
		{"unknown critical extension", reissue(t, critTNA, pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Critical: true, Value: []byte{5, 0}}), stir.ErrCertProfile},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			unhandled := len(tc.leaf.UnhandledCriticalExtensions)
			cred, err := certs.Verify([]*x509.Certificate{tc.leaf, lab.CA}, certs.VerifyOptions{Roots: lab.Roots(), CurrentTime: lab.Now})
			wantName(t, err, tc.want)
			if len(tc.leaf.UnhandledCriticalExtensions) != unhandled {
				t.Error("Verify changed the caller's certificate")
			}
			if err == nil && cred.Chain[0] != tc.leaf {
				t.Error("credential chain does not start with the caller's leaf")
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	lab := testpki.Default(b)
	set, err := lab.CRLSet()
	if err != nil {
		b.Fatal(err)
	}
	opts := certs.VerifyOptions{Roots: lab.Roots(), CurrentTime: lab.Now, CRL: set}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := certs.Verify(lab.Chain(), opts); err != nil {
			b.Fatal(err)
		}
	}
}
