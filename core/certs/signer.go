package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"time"

	"github.com/stirgate/stirgate/core/stir"
)

// SigningCredential is an STI-AS's private key with its certificate
// chain (the body its x5u URL serves). It redacts itself in logs and in
// fmt's %v; only the Key field itself holds the secret.
type SigningCredential struct {
	Key   *ecdsa.PrivateKey
	Chain []*x509.Certificate // leaf first
	Leaf  *x509.Certificate
	SPC   string
	// TNAuth is the leaf's TNAuthList: one SPC, or the TNs and ranges of a
	// delegate certificate (RFC 9060), which may sign only for those.
	TNAuth    TNAuthList
	NotBefore time.Time // the leaf's notBefore
	NotAfter  time.Time // earliest notAfter on Chain
}

// LoadSigner parses a P-256 private key (SEC1 "EC PRIVATE KEY" or PKCS#8
// "PRIVATE KEY", optionally preceded by "EC PARAMETERS" as openssl writes
// it) and its certificate chain (leaf first). It refuses a key that is not
// P-256 or does not match the leaf (stir.ErrSignKey), and a chain whose
// leaf is unusable for SHAKEN signing, such as one without a TNAuthList SPC
// (stir.ErrSignCertInvalid). Load time is the moment to find out.
func LoadSigner(keyPEM, chainPEM []byte) (*SigningCredential, error) {
	key, err := ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, err
	}
	chain, err := ParsePEMChain(chainPEM, 10)
	if err != nil {
		return nil, stir.ErrSignCertInvalid.With("certificate chain", err)
	}
	leaf := chain[0]
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return nil, stir.ErrSignKey.Withf("private key does not match certificate %q", leaf.Subject.CommonName)
	}
	if leaf.IsCA {
		return nil, stir.ErrSignCertInvalid.Withf("certificate %q is a CA certificate", leaf.Subject.CommonName)
	}
	tna, err := TNAuthListOf(leaf)
	if err != nil {
		return nil, stir.ErrSignCertInvalid.With("leaf", err)
	}
	if tna.spcCount() != 1 && !tna.IsDelegate() {
		return nil, stir.ErrSignCertInvalid.Withf("leaf TNAuthList has %d SPC entries, want 1 or only numbers (RFC 9060)", tna.spcCount())
	}
	sc := &SigningCredential{Key: key, Chain: chain, Leaf: leaf, SPC: tna.SPC(), TNAuth: tna, NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter}
	for _, c := range chain[1:] {
		if c.NotAfter.Before(sc.NotAfter) {
			sc.NotAfter = c.NotAfter
		}
	}
	return sc, nil
}

// ParsePrivateKey reads one P-256 private key from PEM: SEC1 "EC PRIVATE
// KEY" or PKCS#8 "PRIVATE KEY", optionally after "EC PARAMETERS" as openssl
// writes it. Errors are stir.ErrSignKey; one whose cause (Unwrap) is set
// means the DER itself did not parse, the others that the PEM was not a
// usable key.
func ParsePrivateKey(data []byte) (*ecdsa.PrivateKey, error) {
	rest := data
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			return nil, stir.ErrSignKey.Withf("no PEM private key")
		}
		if len(blk.Headers) > 0 {
			return nil, stir.ErrSignKey.Withf("encrypted or annotated PEM keys are not supported")
		}
		var key any
		var err error
		switch blk.Type {
		case "EC PARAMETERS":
			continue
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(blk.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		default:
			return nil, stir.ErrSignKey.Withf("PEM block %q is not a private key", blk.Type)
		}
		if err != nil {
			return nil, stir.ErrSignKey.With("", err)
		}
		if len(bytes.TrimSpace(rest)) > 0 {
			return nil, stir.ErrSignKey.Withf("data after the private key")
		}
		k, ok := key.(*ecdsa.PrivateKey)
		if !ok {
			return nil, stir.ErrSignKey.Withf("%T is not an ECDSA key", key)
		}
		if k.Curve != elliptic.P256() {
			return nil, stir.ErrSignKey.Withf("curve %s, want P-256", k.Curve.Params().Name)
		}
		return k, nil
	}
}

// ExpiresWithin reports whether the credential stops being usable within d
// of now (conformance §1.10 warns 30 days ahead).
func (s *SigningCredential) ExpiresWithin(d time.Duration, now time.Time) bool {
	return !now.Add(d).Before(s.NotAfter)
}

// LogValue implements slog.LogValuer: identity and validity, never the key.
func (s *SigningCredential) LogValue() slog.Value {
	if s == nil {
		return slog.StringValue("<nil>")
	}
	attrs := []slog.Attr{
		slog.String("spc", s.SPC),
		slog.Time("not_before", s.NotBefore),
		slog.Time("not_after", s.NotAfter),
		slog.String("key", "REDACTED"),
	}
	if s.Leaf != nil {
		attrs = append(attrs, slog.String("subject", s.Leaf.Subject.String()))
	}
	return slog.GroupValue(attrs...)
}

// String keeps the key out of fmt's %v and %+v.
func (s *SigningCredential) String() string {
	if s == nil {
		return "<nil>"
	}
	return fmt.Sprintf("SigningCredential{SPC:%s NotAfter:%s Key:REDACTED}", s.SPC, s.NotAfter.UTC().Format(time.RFC3339))
}

// GoString keeps the key out of fmt's %#v.
func (s *SigningCredential) GoString() string { return s.String() }
