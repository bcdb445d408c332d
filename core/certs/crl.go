package certs

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"os"
	"time"

	"github.com/stirgate/stirgate/core/stir"
)

// CRL and CRL-entry extensions (RFC 5280 §5.2, §5.3).
var (
	oidCRLNumber            = asn1.ObjectIdentifier{2, 5, 29, 20}
	oidCRLIssuerAltName     = asn1.ObjectIdentifier{2, 5, 29, 18}
	oidCRLDeltaIndicator    = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidCRLIssuingDP         = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidCRLFreshest          = asn1.ObjectIdentifier{2, 5, 29, 46}
	oidCRLAuthorityInfo     = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 1}
	oidEntryReasonCode      = asn1.ObjectIdentifier{2, 5, 29, 21}
	oidEntryInvalidityDate  = asn1.ObjectIdentifier{2, 5, 29, 24}
	oidEntryCertificateIssr = asn1.ObjectIdentifier{2, 5, 29, 29}
)

// CRLSet is a set of revocation lists and the certificates that may have
// signed them. The STI-PA's CRL is an indirect CRL: it is signed by the
// STI-PA's CRL signer (not by the CA that issued the revoked certificate)
// and its entries name their issuer in a certificateIssuer extension.
// Direct CRLs, signed by the issuing CA itself, work the same way.
//
// A CRLSet is immutable after construction and safe for concurrent use.
type CRLSet struct {
	crls    []*x509.RevocationList
	signers []*x509.Certificate
	revoked map[string]bool // revokedKey(issuer DER, serial)
}

// NewCRLSet builds a set from parsed CRLs and candidate signer
// certificates (the CRL signer and whatever links it to the trust
// anchors). It refuses delta CRLs and any critical extension it does not
// understand, as RFC 5280 §5.2 requires, with stir.ErrCRLUnusable.
func NewCRLSet(crls []*x509.RevocationList, signers []*x509.Certificate) (*CRLSet, error) {
	s := &CRLSet{crls: crls, signers: signers, revoked: map[string]bool{}}
	for i, crl := range crls {
		if err := s.index(crl); err != nil {
			return nil, stir.ErrCRLUnusable.With(fmt.Sprintf("CRL %d (%s)", i, crl.Issuer), err)
		}
	}
	return s, nil
}

func (s *CRLSet) index(crl *x509.RevocationList) error {
	for _, e := range crl.Extensions {
		switch {
		case e.Id.Equal(oidCRLDeltaIndicator):
			return fmt.Errorf("delta CRLs are not supported")
		case e.Id.Equal(oidExtAuthKeyID), e.Id.Equal(oidCRLNumber), e.Id.Equal(oidCRLIssuingDP),
			e.Id.Equal(oidCRLIssuerAltName), e.Id.Equal(oidCRLFreshest), e.Id.Equal(oidCRLAuthorityInfo):
		default:
			if e.Critical {
				return fmt.Errorf("unknown critical extension %v", e.Id)
			}
		}
	}
	// RFC 5280 §5.3.3: an entry without certificateIssuer belongs to the
	// issuer of the entry before it; the first entry's default is the CRL
	// issuer.
	issuer := crl.RawIssuer
	for _, ent := range crl.RevokedCertificateEntries {
		for _, e := range ent.Extensions {
			switch {
			case e.Id.Equal(oidEntryCertificateIssr):
				dn, err := directoryName(e.Value)
				if err != nil {
					return fmt.Errorf("entry %v: certificateIssuer: %w", ent.SerialNumber, err)
				}
				issuer = dn
			case e.Id.Equal(oidEntryReasonCode), e.Id.Equal(oidEntryInvalidityDate):
			default:
				if e.Critical {
					return fmt.Errorf("entry %v: unknown critical extension %v", ent.SerialNumber, e.Id)
				}
			}
		}
		if ent.SerialNumber != nil {
			s.revoked[revokedKey(issuer, ent.SerialNumber.Bytes())] = true
		}
	}
	return nil
}

func revokedKey(issuer, serial []byte) string {
	return string(issuer) + "\x00" + string(serial)
}

// directoryName returns the DER Name of the first directoryName in a
// GeneralNames value. Names are compared as DER, as crypto/x509 does.
func directoryName(gns []byte) ([]byte, error) {
	tag, body, rest, ok := readTLV(gns)
	if !ok || tag != tagSequence || len(rest) != 0 {
		return nil, fmt.Errorf("not a GeneralNames SEQUENCE")
	}
	for len(body) > 0 {
		var gn []byte
		tag, gn, body, ok = readTLV(body)
		if !ok {
			return nil, fmt.Errorf("bad GeneralName")
		}
		if tag == 0xa4 { // [4] EXPLICIT Name
			if t, _, r, ok := readTLV(gn); !ok || t != tagSequence || len(r) != 0 {
				return nil, fmt.Errorf("bad directoryName")
			}
			return gn, nil
		}
	}
	return nil, fmt.Errorf("no directoryName")
}

// ParseCRLSet reads CRLs and signer certificates from PEM data ("X509 CRL"
// and "CERTIFICATE" blocks, in any order and any number of inputs); an
// input with no PEM block is taken as one DER CRL.
func ParseCRLSet(data ...[]byte) (*CRLSet, error) {
	var crls []*x509.RevocationList
	var signers []*x509.Certificate
	for i, d := range data {
		if !bytes.Contains(d, []byte("-----BEGIN ")) {
			crl, err := x509.ParseRevocationList(d)
			if err != nil {
				return nil, stir.ErrCRLUnusable.With(fmt.Sprintf("input %d", i), err)
			}
			crls = append(crls, crl)
			continue
		}
		rest := d
		for {
			var blk *pem.Block
			blk, rest = pem.Decode(rest)
			if blk == nil {
				break
			}
			switch blk.Type {
			case "X509 CRL":
				crl, err := x509.ParseRevocationList(blk.Bytes)
				if err != nil {
					return nil, stir.ErrCRLUnusable.With(fmt.Sprintf("input %d", i), err)
				}
				crls = append(crls, crl)
			case "CERTIFICATE":
				c, err := x509.ParseCertificate(blk.Bytes)
				if err != nil {
					return nil, stir.ErrCRLUnusable.With(fmt.Sprintf("input %d", i), err)
				}
				signers = append(signers, c)
			default:
				return nil, stir.ErrCRLUnusable.Withf("input %d: unexpected PEM block %q", i, blk.Type)
			}
		}
	}
	if len(crls) == 0 {
		return nil, stir.ErrCRLUnusable.Withf("no CRL in input")
	}
	return NewCRLSet(crls, signers)
}

// LoadCRLSet is ParseCRLSet over files: typically the STI-PA CRL and the
// certificate of its CRL signer.
func LoadCRLSet(files ...string) (*CRLSet, error) {
	data := make([][]byte, 0, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, stir.ErrCRLUnusable.With(f, err)
		}
		data = append(data, b)
	}
	return ParseCRLSet(data...)
}

// Len is the number of CRLs in the set.
func (s *CRLSet) Len() int { return len(s.crls) }

// CRLInfo describes one CRL of a set, for reports.
type CRLInfo struct {
	Issuer     string
	NextUpdate time.Time
}

// Info describes each CRL of the set.
func (s *CRLSet) Info() []CRLInfo {
	if s == nil {
		return nil
	}
	out := make([]CRLInfo, 0, len(s.crls))
	for _, c := range s.crls {
		out = append(out, CRLInfo{Issuer: c.Issuer.String(), NextUpdate: c.NextUpdate})
	}
	return out
}

// NextUpdate is the earliest nextUpdate of the set: when it must be
// refreshed.
func (s *CRLSet) NextUpdate() time.Time {
	var t time.Time
	for _, c := range s.crls {
		if t.IsZero() || c.NextUpdate.Before(t) {
			t = c.NextUpdate
		}
	}
	return t
}

// Check verifies every CRL of the set (current at now, signed by a
// certificate that chains to roots) and then reports stir.ErrCertRevoked
// if any certificate of chain is listed. A CRL that cannot be trusted is
// stir.ErrCRLUnusable: a configured CRL that cannot be used fails closed.
func (s *CRLSet) Check(chain []*x509.Certificate, roots *x509.CertPool, now time.Time) error {
	for _, crl := range s.crls {
		if err := s.verifyCRL(crl, chain, roots, now); err != nil {
			return err
		}
	}
	for _, c := range chain {
		if s.revoked[revokedKey(c.RawIssuer, c.SerialNumber.Bytes())] {
			return stir.ErrCertRevoked.Withf("%q serial %x issued by %q", c.Subject.CommonName, c.SerialNumber, c.Issuer.CommonName)
		}
	}
	return nil
}

func (s *CRLSet) verifyCRL(crl *x509.RevocationList, chain []*x509.Certificate, roots *x509.CertPool, now time.Time) error {
	name := crl.Issuer.String()
	switch {
	case now.Before(crl.ThisUpdate):
		return stir.ErrCRLUnusable.Withf("CRL of %s not valid before %s", name, crl.ThisUpdate.UTC().Format(time.RFC3339))
	case crl.NextUpdate.IsZero():
		return stir.ErrCRLUnusable.Withf("CRL of %s has no nextUpdate", name)
	case now.After(crl.NextUpdate):
		return stir.ErrCRLUnusable.Withf("CRL of %s expired at %s", name, crl.NextUpdate.UTC().Format(time.RFC3339))
	}
	if roots == nil {
		return stir.ErrCRLUnusable.Withf("no trust anchors to verify the CRL of %s", name)
	}
	inter := x509.NewCertPool()
	candidates := append(append([]*x509.Certificate(nil), s.signers...), chain...)
	for _, c := range candidates {
		inter.AddCert(c)
	}
	var last error
	for _, c := range candidates {
		if !bytes.Equal(c.RawSubject, crl.RawIssuer) {
			continue
		}
		if err := crl.CheckSignatureFrom(c); err != nil {
			last = err
			continue
		}
		_, err := c.Verify(x509.VerifyOptions{
			Roots:         roots,
			Intermediates: inter,
			CurrentTime:   now,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		})
		if err == nil {
			return nil
		}
		last = err
	}
	return stir.ErrCRLUnusable.With("no trusted signer for the CRL of "+name, last)
}

// RevocationChecker reports stir.ErrCertRevoked for a revoked certificate
// of chain, or another *stir.Error when revocation cannot be decided.
// *CRLSet is one; a fetched, refreshed CRL (package crl) is another.
type RevocationChecker interface {
	Check(chain []*x509.Certificate, roots *x509.CertPool, now time.Time) error
}

// VerifySigners checks every CRL of the set as Check does (signed by one
// of the set's own signer certificates, which chains to roots, and current
// at at), without looking at any chain. A fetched CRL is checked once this
// way, so that each verification needs only Revoked.
func (s *CRLSet) VerifySigners(roots *x509.CertPool, at time.Time) error {
	for _, crl := range s.crls {
		if err := s.verifyCRL(crl, nil, roots, at); err != nil {
			return err
		}
	}
	return nil
}

// Revoked reports stir.ErrCertRevoked if a certificate of chain is listed;
// it does not check the CRLs themselves (see VerifySigners).
func (s *CRLSet) Revoked(chain []*x509.Certificate) error {
	for _, c := range chain {
		if s.revoked[revokedKey(c.RawIssuer, c.SerialNumber.Bytes())] {
			return stir.ErrCertRevoked.Withf("%q serial %x issued by %q", c.Subject.CommonName, c.SerialNumber, c.Issuer.CommonName)
		}
	}
	return nil
}
