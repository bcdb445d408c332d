// Package testpki gives other packages' tests SHAKEN certificates: a lab
// PKI (certs.Lab) per option set, built once per test binary, and the
// broken credentials conformance tests need (expired, wrong key type, no
// TNAuthList, untrusted, CA-flagged, revoked). Everything is relative to
// a fixed clock so results never depend on the day the tests run.
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"sync"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/certs"
)

// Now is the lab clock when LabOptions.Now is zero. Tests that verify lab
// credentials pass it (or lab.Now) as their current time.
var Now = time.Date(2026, time.January, 15, 12, 0, 0, 0, time.UTC)

var (
	mu       sync.Mutex
	labs     = map[certs.LabOptions]*certs.Lab{}
	variants = map[variantKey]*Bundle{}
)

type variantKey struct {
	lab  *certs.Lab
	kind string
}

// New returns the lab for opts, generating it on first use. Labs are
// shared between tests: treat them as read-only (never call Revoke on
// one; use Revoked instead).
func New(t testing.TB, opts certs.LabOptions) *certs.Lab {
	t.Helper()
	if opts.Now.IsZero() {
		opts.Now = Now
	}
	mu.Lock()
	defer mu.Unlock()
	if l, ok := labs[opts]; ok {
		return l
	}
	l, err := certs.NewLab(opts)
	if err != nil {
		t.Fatalf("testpki: %v", err)
	}
	labs[opts] = l
	return l
}

// Default is New with zero options: SPC "1234", 365 days, Now.
func Default(t testing.TB) *certs.Lab {
	t.Helper()
	return New(t, certs.LabOptions{})
}

// Bundle is one credential as a verifier or a signer meets it.
type Bundle struct {
	Chain    []*x509.Certificate // x5u order: leaf, then the intermediate
	Key      crypto.Signer       // the leaf's private key
	ChainPEM []byte              // the x5u body
	KeyPEM   []byte              // PKCS#8
	Roots    *x509.CertPool      // the lab's trust anchors (not this chain's, for UntrustedRoot)
	CRL      *certs.CRLSet       // a CRL set listing the leaf (Revoked only)
	CRLPEM   []byte              // that CRL as PEM (Revoked only)
}

// Valid is the lab's own conformant leaf.
func Valid(t testing.TB, lab *certs.Lab) *Bundle {
	t.Helper()
	return variant(t, lab, "valid", func() (*Bundle, error) {
		return bundle(lab, lab.Chain(), lab.LeafKey)
	})
}

// Expired is a leaf whose validity ended a day before lab.Now.
func Expired(t testing.TB, lab *certs.Lab) *Bundle {
	t.Helper()
	return leafVariant(t, lab, "expired", certs.LeafOptions{NotBefore: lab.Now.Add(-48 * time.Hour), NotAfter: lab.Now.Add(-24 * time.Hour)})
}

// NotYetValid is a leaf whose validity starts a day after lab.Now.
func NotYetValid(t testing.TB, lab *certs.Lab) *Bundle {
	t.Helper()
	return leafVariant(t, lab, "not-yet-valid", certs.LeafOptions{NotBefore: lab.Now.Add(24 * time.Hour), NotAfter: lab.Now.Add(48 * time.Hour)})
}

// RSALeaf is a leaf with a 2048-bit RSA key.
func RSALeaf(t testing.TB, lab *certs.Lab) *Bundle {
	t.Helper()
	return variant(t, lab, "rsa", func() (*Bundle, error) {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		return issue(lab, certs.LeafOptions{Key: k})
	})
}

// P384Leaf is a leaf with an ECDSA P-384 key.
func P384Leaf(t testing.TB, lab *certs.Lab) *Bundle {
	t.Helper()
	return variant(t, lab, "p384", func() (*Bundle, error) {
		k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			return nil, err
		}
		return issue(lab, certs.LeafOptions{Key: k})
	})
}

// NoTNAuthList is a leaf without the TNAuthList extension.
func NoTNAuthList(t testing.TB, lab *certs.Lab) *Bundle {
	t.Helper()
	return leafVariant(t, lab, "no-tnauthlist", certs.LeafOptions{NoTNAuthList: true})
}

// CALeaf is a leaf marked as a CA (cA TRUE, keyCertSign).
func CALeaf(t testing.TB, lab *certs.Lab) *Bundle {
	t.Helper()
	return leafVariant(t, lab, "ca-leaf", certs.LeafOptions{IsCA: true})
}

// UntrustedRoot is a conformant chain from another lab with the same
// options: same names, different keys. Roots is still lab's, so verifying
// Chain against Roots must fail.
func UntrustedRoot(t testing.TB, lab *certs.Lab) *Bundle {
	t.Helper()
	return variant(t, lab, "untrusted", func() (*Bundle, error) {
		other, err := certs.NewLab(certs.LabOptions{SPC: lab.SPC, Now: lab.Now})
		if err != nil {
			return nil, err
		}
		b, err := bundle(other, other.Chain(), other.LeafKey)
		if err != nil {
			return nil, err
		}
		b.Roots = lab.Roots()
		return b, nil
	})
}

// Revoked is a fresh conformant leaf with a CRL (signed by the lab's CRL
// signer) that lists it. The lab's own CRL is left unchanged.
func Revoked(t testing.TB, lab *certs.Lab) *Bundle {
	t.Helper()
	return variant(t, lab, "revoked", func() (*Bundle, error) {
		b, err := issue(lab, certs.LeafOptions{})
		if err != nil {
			return nil, err
		}
		crl, p, err := lab.SignCRL(b.Chain[0])
		if err != nil {
			return nil, err
		}
		if b.CRL, err = certs.NewCRLSet([]*x509.RevocationList{crl}, []*x509.Certificate{lab.CRLSigner}); err != nil {
			return nil, err
		}
		b.CRLPEM = p
		return b, nil
	})
}

func leafVariant(t testing.TB, lab *certs.Lab, kind string, o certs.LeafOptions) *Bundle {
	t.Helper()
	return variant(t, lab, kind, func() (*Bundle, error) { return issue(lab, o) })
}

func variant(t testing.TB, lab *certs.Lab, kind string, make func() (*Bundle, error)) *Bundle {
	t.Helper()
	k := variantKey{lab, kind}
	mu.Lock()
	defer mu.Unlock()
	if b, ok := variants[k]; ok {
		return b
	}
	b, err := make()
	if err != nil {
		t.Fatalf("testpki %s: %v", kind, err)
	}
	variants[k] = b
	return b
}

func issue(lab *certs.Lab, o certs.LeafOptions) (*Bundle, error) {
	leaf, key, err := lab.IssueLeaf(o)
	if err != nil {
		return nil, err
	}
	return bundle(lab, []*x509.Certificate{leaf, lab.CA}, key)
}

func bundle(lab *certs.Lab, chain []*x509.Certificate, key crypto.Signer) (*Bundle, error) {
	kp, err := certs.KeyPEM(key)
	if err != nil {
		return nil, err
	}
	return &Bundle{Chain: chain, Key: key, ChainPEM: certs.EncodePEM(chain...), KeyPEM: kp, Roots: lab.Roots()}, nil
}
