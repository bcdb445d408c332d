package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/stirgate/stirgate/core/stir"
)

// Credential is a verified STI-SP certificate: what a verifier needs from
// x5u to check a PASSporT and to report who signed it.
type Credential struct {
	Leaf      *x509.Certificate
	Chain     []*x509.Certificate // the verified path, leaf first, trust anchor last
	PublicKey *ecdsa.PublicKey    // the leaf's P-256 key
	SPC       string              // service provider code from the TNAuthList
	TNAuth    TNAuthList
	PolicyOID string    // the SHAKEN certificate policy, dotted
	NotAfter  time.Time // earliest notAfter on Chain: cache no longer than this
	// Constraints are the leaf's JWT claim constraints (RFC 8226 §8,
	// RFC 9118), nil when it has none.
	Constraints *ClaimConstraints
}

// Covers reports whether the credential vouches for the claim TN tn: an
// SPC certificate for any, a delegate certificate (RFC 9060) for its own
// TNs and ranges only.
func (c *Credential) Covers(tn string) bool { return c.TNAuth.Covers(tn) }

// VerifyOptions configures Verify. The zero value is not usable on its
// own: Roots must be set, because a SHAKEN verifier trusts the STI-PA's
// list of STI-CAs and never the system's web roots.
type VerifyOptions struct {
	Roots       *x509.CertPool // trust anchors; nil fails every verification
	CurrentTime time.Time      // zero means time.Now()
	CRL         *CRLSet        // nil: no revocation check
	// Strict additionally applies every CheckProfile rule to every
	// certificate of the verified path (CheckProfile's role for each).
	Strict bool
}

// Verify checks a certificate chain as fetched from x5u (end entity first,
// then intermediates) against the SHAKEN profile (conformance row 11), and
// returns the credential on success. Errors are *stir.Error with one of the
// Names of ErrCertProfile, ErrCertNoTNAuth, ErrCertUntrusted,
// ErrCertExpired, ErrCertRevoked or ErrCRLUnusable.
//
// The profile is checked before the path because it is cheap and says
// more precisely what is wrong with a certificate that is also untrusted.
func Verify(chain []*x509.Certificate, opts VerifyOptions) (*Credential, error) {
	if len(chain) == 0 || chain[0] == nil {
		return nil, stir.ErrCertProfile.Withf("empty certificate chain")
	}
	leaf := chain[0]
	cred, err := leafProfile(leaf)
	if err != nil {
		return nil, err
	}
	if opts.Roots == nil {
		return nil, stir.ErrCertUntrusted.Withf("no trust anchors configured")
	}
	now := opts.CurrentTime
	if now.IsZero() {
		now = time.Now()
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		if c != nil {
			inter.AddCert(c)
		}
	}
	// The TNAuthList is handled above, so a critical one must not make
	// crypto/x509 refuse the leaf; the caller's certificate is not changed.
	vleaf := leaf
	unhandled := withoutOID(withoutOID(withoutOID(leaf.UnhandledCriticalExtensions, OIDTNAuthList), OIDJWTClaimConstraints), OIDEJWTClaimConstraints)
	if len(unhandled) != len(leaf.UnhandledCriticalExtensions) {
		cp := *leaf
		cp.UnhandledCriticalExtensions = unhandled
		vleaf = &cp
	}
	chains, err := vleaf.Verify(x509.VerifyOptions{
		Roots:         opts.Roots,
		Intermediates: inter,
		CurrentTime:   now,
		// SHAKEN certificates carry no extended key usage; the policy OID
		// and key usage checked above are what restrict them.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, pathError(err, chain, now)
	}
	cred.Chain = chains[0]
	cred.Chain[0] = leaf
	cred.NotAfter = cred.Chain[0].NotAfter
	for _, c := range cred.Chain[1:] {
		if c.NotAfter.Before(cred.NotAfter) {
			cred.NotAfter = c.NotAfter
		}
	}
	if err := checkDelegation(cred.Chain); err != nil {
		return nil, err
	}
	if opts.CRL != nil {
		if err := opts.CRL.Check(cred.Chain, opts.Roots, now); err != nil {
			return nil, err
		}
	}
	if opts.Strict {
		for _, c := range cred.Chain {
			role := RoleOf(c)
			if c == leaf {
				role = RoleEE
			}
			f := Failed(CheckProfile(c, role))
			if c == leaf && cred.TNAuth.IsDelegate() {
				// ATIS-1000080 wants an SPC; a delegate certificate
				// (ATIS-1000092) has numbers instead, judged by
				// checkDelegation above.
				f = slices.DeleteFunc(f, func(c Check) bool { return c.Rule == RuleTNAuthList })
			}
			if len(f) > 0 {
				return nil, stir.ErrCertProfile.Withf("%s certificate %q: %s", role, c.Subject.CommonName, describeFailed(f))
			}
		}
	}
	return cred, nil
}

func describeFailed(f []Check) string {
	s := make([]string, len(f))
	for i, c := range f {
		s[i] = c.Rule + ": " + c.Detail
	}
	return strings.Join(s, "; ")
}

// leafProfile runs the checks conformance row 11 makes mandatory for the
// end-entity certificate, in every mode.
func leafProfile(leaf *x509.Certificate) (*Credential, error) {
	if d := checkP256(leaf); d != "" {
		return nil, stir.ErrCertProfile.Withf("leaf: %s", d)
	}
	crit, ok := false, false
	for _, e := range leaf.Extensions {
		if e.Id.Equal(oidExtKeyUsage) {
			crit, ok = e.Critical, true
		}
	}
	switch {
	case !ok:
		return nil, stir.ErrCertProfile.Withf("leaf: no key usage extension")
	case !crit:
		return nil, stir.ErrCertProfile.Withf("leaf: key usage not critical")
	case leaf.KeyUsage != x509.KeyUsageDigitalSignature:
		return nil, stir.ErrCertProfile.Withf("leaf: key usage %s, want digitalSignature only", kuString(leaf.KeyUsage))
	case leaf.IsCA:
		return nil, stir.ErrCertProfile.Withf("leaf: is a CA certificate")
	}
	tna, err := TNAuthListOf(leaf)
	if err != nil {
		return nil, err
	}
	// One SPC (an STI-SP certificate), or numbers and no SPC (a delegate
	// certificate, RFC 9060), whose issuer is judged by checkDelegation.
	if n := tna.spcCount(); n != 1 && !tna.IsDelegate() {
		return nil, stir.ErrCertNoTNAuth.Withf("leaf: TNAuthList has %d SPC entries, want 1 or only numbers", n)
	}
	cc, err := ClaimConstraintsOf(leaf)
	if err != nil {
		return nil, err
	}
	var policy string
	n := 0
	for _, o := range policyOIDs(leaf) {
		if IsShakenPolicy(o) {
			policy = o
			n++
		}
	}
	if n != 1 {
		return nil, stir.ErrCertProfile.Withf("leaf: %d SHAKEN certificate policies, want 1", n)
	}
	return &Credential{
		Leaf:        leaf,
		PublicKey:   leaf.PublicKey.(*ecdsa.PublicKey),
		SPC:         tna.SPC(),
		TNAuth:      tna,
		PolicyOID:   policy,
		Constraints: cc,
	}, nil
}

func withoutOID(oids []asn1.ObjectIdentifier, drop asn1.ObjectIdentifier) []asn1.ObjectIdentifier {
	var out []asn1.ObjectIdentifier
	for _, o := range oids {
		if !o.Equal(drop) {
			out = append(out, o)
		}
	}
	return out
}

// pathError maps crypto/x509's verification errors to stirgate's. Go
// reports an expired leaf directly but an expired intermediate only as the
// unexported hint of an UnknownAuthorityError, so for that case the
// intermediates we were given are checked against the clock here.
func pathError(err error, chain []*x509.Certificate, now time.Time) error {
	var cie x509.CertificateInvalidError
	if errors.As(err, &cie) {
		if cie.Reason == x509.Expired {
			return stir.ErrCertExpired.With(describeCert(cie.Cert), err)
		}
		return stir.ErrCertUntrusted.With(describeCert(cie.Cert), err)
	}
	var uce x509.UnhandledCriticalExtension
	if errors.As(err, &uce) {
		return stir.ErrCertProfile.With("a certificate on the path has a critical extension stirgate does not handle", err)
	}
	var uae x509.UnknownAuthorityError
	if errors.As(err, &uae) {
		for _, c := range chain[1:] {
			if c != nil && (now.Before(c.NotBefore) || now.After(c.NotAfter)) {
				return stir.ErrCertExpired.With("intermediate "+describeCert(c), err)
			}
		}
	}
	return stir.ErrCertUntrusted.With("no path to a configured trust anchor", err)
}

func describeCert(c *x509.Certificate) string {
	if c == nil {
		return ""
	}
	return fmt.Sprintf("%q valid %s to %s", c.Subject.CommonName,
		c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
}

// ParsePEMChain parses an x5u body: one or more PEM CERTIFICATE blocks and
// nothing else but whitespace between and around them. At most max
// certificates are accepted (max <= 0 means 10). Errors are
// stir.ErrX5UBadContent.
func ParsePEMChain(data []byte, max int) ([]*x509.Certificate, error) {
	if max <= 0 {
		max = 10
	}
	var certs []*x509.Certificate
	rest := bytes.TrimLeft(data, " \t\r\n")
	for len(rest) > 0 {
		// pem.Decode silently skips text before a block; we do not.
		if !bytes.HasPrefix(rest, []byte("-----BEGIN ")) {
			return nil, stir.ErrX5UBadContent.Withf("non-PEM content after %d certificates", len(certs))
		}
		var blk *pem.Block
		before := rest
		blk, rest = pem.Decode(rest)
		// pem.Decode also skips a malformed block to return the next one:
		// the span it consumed must hold exactly one BEGIN line.
		if blk == nil || bytes.Count(before[:len(before)-len(rest)], []byte("-----BEGIN ")) != 1 {
			return nil, stir.ErrX5UBadContent.Withf("malformed PEM block after %d certificates", len(certs))
		}
		if blk.Type != "CERTIFICATE" || len(blk.Headers) > 0 {
			return nil, stir.ErrX5UBadContent.Withf("PEM block %q is not a plain CERTIFICATE", blk.Type)
		}
		if len(certs) == max {
			return nil, stir.ErrX5UBadContent.Withf("more than %d certificates", max)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, stir.ErrX5UBadContent.With(fmt.Sprintf("certificate %d", len(certs)), err)
		}
		certs = append(certs, c)
		rest = bytes.TrimLeft(rest, " \t\r\n")
	}
	if len(certs) == 0 {
		return nil, stir.ErrX5UBadContent.Withf("no PEM certificate")
	}
	return certs, nil
}
