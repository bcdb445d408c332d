package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"net/url"
	"strings"
)

// Role is the place of a certificate in a SHAKEN PKI; ATIS-1000080 §6.4.1
// gives each its own profile.
type Role string

// Roles.
const (
	RoleEE   Role = "ee"   // STI-SP certificate: what x5u points at
	RoleCA   Role = "ca"   // STI-CA intermediate
	RoleRoot Role = "root" // trust anchor (STI-CA root listed by the STI-PA)
)

// RoleOf guesses a certificate's role from its own content: a self-issued
// CA is a root, another CA an intermediate, anything else an end entity.
func RoleOf(c *x509.Certificate) Role {
	switch {
	case c.IsCA && bytes.Equal(c.RawSubject, c.RawIssuer):
		return RoleRoot
	case c.IsCA:
		return RoleCA
	}
	return RoleEE
}

// Check is one profile rule's outcome. Rule names are stable: the CLI
// prints them and operators grep for them.
type Check struct {
	Rule   string `json:"rule"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// Profile rule names, in the order CheckProfile reports them.
const (
	RuleVersion        = "version"              // X.509 v3
	RuleSerial         = "serial"               // positive, at least 64 bits
	RuleSigAlg         = "sig-alg"              // ecdsa-with-SHA256
	RuleKey            = "key"                  // ECDSA P-256
	RuleSubject        = "subject"              // C, O and CN present
	RuleSubjectCN      = "subject-cn"           // EE: CN = "SHAKEN <SPC>"; CA: CN names SHAKEN
	RuleSubjectSerial  = "subject-serialnumber" // EE: exactly one serialNumber attribute
	RuleSubjectRDN     = "subject-rdn"          // no attributes outside the profile
	RuleIssuer         = "issuer"               // issuer C, O and CN present
	RuleBasicConst     = "basic-constraints"    // present, critical, cA matching the role
	RuleKeyUsage       = "key-usage"            // present, critical, bits allowed for the role
	RuleKeyUsageCRL    = "key-usage-crl-sign"   // CA: no cRLSign (the STI-PA signs CRLs)
	RulePolicy         = "certificate-policies" // EE/CA: exactly one SHAKEN OID, non-critical; root: none
	RuleCRLDP          = "crl-distribution"     // EE/CA: one HTTP(S) distribution point; root: none
	RuleTNAuthList     = "tnauthlist"           // EE: exactly one non-empty SPC; CA/root: absent
	RuleAuthorityKeyID = "authority-key-id"     // present; root: equal to the subject key id
	RuleSubjectKeyID   = "subject-key-id"       // present
	RuleExtensions     = "extensions"           // nothing the profile does not specify
)

// Extension and attribute identifiers the profile names.
var (
	oidExtSubjectKeyID = asn1.ObjectIdentifier{2, 5, 29, 14}
	oidExtKeyUsage     = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtBasicConst   = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidExtCRLDP        = asn1.ObjectIdentifier{2, 5, 29, 31}
	oidExtCertPolicies = asn1.ObjectIdentifier{2, 5, 29, 32}
	oidExtAuthKeyID    = asn1.ObjectIdentifier{2, 5, 29, 35}

	oidAttrCN           = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidAttrSerialNumber = asn1.ObjectIdentifier{2, 5, 4, 5}
	oidAttrC            = asn1.ObjectIdentifier{2, 5, 4, 6}
	oidAttrL            = asn1.ObjectIdentifier{2, 5, 4, 7}
	oidAttrST           = asn1.ObjectIdentifier{2, 5, 4, 8}
	oidAttrO            = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidAttrOU           = asn1.ObjectIdentifier{2, 5, 4, 11}
)

// ShakenPolicyPrefix is the arc of the US SHAKEN certificate policy OIDs;
// versions 1.1 to 1.4 are .1 to .4 under it.
const ShakenPolicyPrefix = "2.16.840.1.114569.1.1."

// IsShakenPolicy reports whether oid (dotted) is a SHAKEN CP OID .1-.4.
func IsShakenPolicy(oid string) bool {
	switch oid {
	case ShakenPolicyPrefix + "1", ShakenPolicyPrefix + "2", ShakenPolicyPrefix + "3", ShakenPolicyPrefix + "4":
		return true
	}
	return false
}

// CheckProfile reports every ATIS-1000080 / SHAKEN CP rule for cert in the
// given role, failed or not, so a report shows what was checked. It never
// stops early: a certificate with several defects lists them all.
func CheckProfile(cert *x509.Certificate, role Role) []Check {
	p := profiler{c: cert, role: role}
	p.check(RuleVersion, p.version)
	p.check(RuleSerial, p.serial)
	p.check(RuleSigAlg, p.sigAlg)
	p.check(RuleKey, p.key)
	p.check(RuleSubject, func() string {
		return dnComplete(cert.Subject.Country, cert.Subject.Organization, cert.Subject.CommonName)
	})
	p.check(RuleSubjectCN, p.subjectCN)
	if role == RoleEE {
		p.check(RuleSubjectSerial, p.subjectSerial)
	}
	p.check(RuleSubjectRDN, p.subjectRDN)
	p.check(RuleIssuer, func() string {
		return dnComplete(cert.Issuer.Country, cert.Issuer.Organization, cert.Issuer.CommonName)
	})
	p.check(RuleBasicConst, p.basicConstraints)
	p.check(RuleKeyUsage, p.keyUsage)
	if role != RoleEE {
		p.check(RuleKeyUsageCRL, p.keyUsageCRL)
	}
	p.check(RulePolicy, p.policy)
	p.check(RuleCRLDP, p.crlDP)
	p.check(RuleTNAuthList, p.tnAuthList)
	p.check(RuleAuthorityKeyID, p.authorityKeyID)
	p.check(RuleSubjectKeyID, func() string {
		if len(cert.SubjectKeyId) == 0 {
			return "missing"
		}
		return ""
	})
	p.check(RuleExtensions, p.extensions)
	return p.out
}

// Failed returns the checks that did not pass.
func Failed(checks []Check) []Check {
	var f []Check
	for _, c := range checks {
		if !c.OK {
			f = append(f, c)
		}
	}
	return f
}

type profiler struct {
	c    *x509.Certificate
	role Role
	out  []Check
}

// check runs one rule; the rule returns "" when it passes, else the reason.
func (p *profiler) check(rule string, f func() string) {
	d := f()
	p.out = append(p.out, Check{Rule: rule, OK: d == "", Detail: d})
}

func (p *profiler) ext(oid asn1.ObjectIdentifier) (critical, present bool) {
	for _, e := range p.c.Extensions {
		if e.Id.Equal(oid) {
			return e.Critical, true
		}
	}
	return false, false
}

func (p *profiler) version() string {
	if p.c.Version != 3 {
		return fmt.Sprintf("version %d, want 3", p.c.Version)
	}
	return ""
}

func (p *profiler) serial() string {
	s := p.c.SerialNumber
	switch {
	case s == nil || s.Sign() <= 0:
		return "serial number is not positive"
	case s.BitLen() < 64:
		return fmt.Sprintf("serial number has %d bits, want at least 64", s.BitLen())
	case s.BitLen() > 159:
		return "serial number longer than 20 octets"
	}
	return ""
}

func (p *profiler) sigAlg() string {
	if p.c.SignatureAlgorithm != x509.ECDSAWithSHA256 {
		return fmt.Sprintf("signature algorithm %v, want ecdsa-with-SHA256", p.c.SignatureAlgorithm)
	}
	return ""
}

func (p *profiler) key() string {
	return checkP256(p.c)
}

func checkP256(c *x509.Certificate) string {
	k, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return fmt.Sprintf("public key is %v, want ECDSA P-256", c.PublicKeyAlgorithm)
	}
	if k.Curve != elliptic.P256() {
		return fmt.Sprintf("ECDSA curve %s, want P-256", k.Curve.Params().Name)
	}
	return ""
}

func dnComplete(c, o []string, cn string) string {
	var miss []string
	if len(c) == 0 {
		miss = append(miss, "C")
	}
	if len(o) == 0 {
		miss = append(miss, "O")
	}
	if cn == "" {
		miss = append(miss, "CN")
	}
	if len(miss) > 0 {
		return "missing " + strings.Join(miss, ", ")
	}
	return ""
}

func (p *profiler) subjectCN() string {
	cn := p.c.Subject.CommonName
	if p.role != RoleEE {
		if !strings.Contains(cn, "SHAKEN") {
			return fmt.Sprintf("CN %q does not name SHAKEN", cn)
		}
		return ""
	}
	spc := ""
	if l, err := TNAuthListOf(p.c); err == nil && l.spcCount() == 1 {
		spc = l.SPC()
	}
	if spc == "" {
		return "no single SPC in the TNAuthList to match the CN against"
	}
	if want := "SHAKEN " + spc; cn != want {
		return fmt.Sprintf("CN %q, want %q", cn, want)
	}
	return ""
}

func (p *profiler) subjectSerial() string {
	n := 0
	for _, a := range p.c.Subject.Names {
		if a.Type.Equal(oidAttrSerialNumber) {
			n++
		}
	}
	if n != 1 {
		return fmt.Sprintf("%d serialNumber attributes, want 1", n)
	}
	return ""
}

func (p *profiler) subjectRDN() string {
	for _, a := range p.c.Subject.Names {
		switch {
		case a.Type.Equal(oidAttrC), a.Type.Equal(oidAttrO), a.Type.Equal(oidAttrCN),
			a.Type.Equal(oidAttrSerialNumber), a.Type.Equal(oidAttrL), a.Type.Equal(oidAttrST),
			a.Type.Equal(oidAttrOU):
		default:
			return fmt.Sprintf("attribute %v is not in the profile", a.Type)
		}
	}
	return ""
}

func (p *profiler) basicConstraints() string {
	crit, ok := p.ext(oidExtBasicConst)
	switch {
	case !ok:
		return "missing"
	case !crit:
		return "not critical"
	case p.role == RoleEE && p.c.IsCA:
		return "cA is TRUE on an end-entity certificate"
	case p.role != RoleEE && !p.c.IsCA:
		return "cA is FALSE on a CA certificate"
	}
	return ""
}

func (p *profiler) keyUsage() string {
	crit, ok := p.ext(oidExtKeyUsage)
	ku := p.c.KeyUsage
	switch {
	case !ok:
		return "missing"
	case !crit:
		return "not critical"
	case p.role == RoleEE && ku != x509.KeyUsageDigitalSignature:
		return fmt.Sprintf("key usage %s, want digitalSignature only", kuString(ku))
	case p.role != RoleEE && ku&x509.KeyUsageCertSign == 0:
		return fmt.Sprintf("key usage %s lacks keyCertSign", kuString(ku))
	case p.role != RoleEE && ku&^(x509.KeyUsageCertSign|x509.KeyUsageDigitalSignature|x509.KeyUsageCRLSign) != 0:
		return fmt.Sprintf("key usage %s, want keyCertSign with optional digitalSignature", kuString(ku))
	}
	return ""
}

func (p *profiler) keyUsageCRL() string {
	if p.c.KeyUsage&x509.KeyUsageCRLSign != 0 {
		return "cRLSign set: SHAKEN CRLs are the STI-PA's"
	}
	return ""
}

func kuString(ku x509.KeyUsage) string {
	names := []string{"digitalSignature", "contentCommitment", "keyEncipherment", "dataEncipherment",
		"keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly"}
	var s []string
	for i, n := range names {
		if ku&(1<<i) != 0 {
			s = append(s, n)
		}
	}
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, "+")
}

func (p *profiler) policy() string {
	crit, ok := p.ext(oidExtCertPolicies)
	if p.role == RoleRoot {
		if ok {
			return "a root carries no certificate policies"
		}
		return ""
	}
	if !ok {
		return "missing"
	}
	if crit {
		return "critical"
	}
	oids := policyOIDs(p.c)
	if len(oids) != 1 {
		return fmt.Sprintf("%d policies (%s), want exactly one", len(oids), strings.Join(oids, ", "))
	}
	// An STI-CA may carry anyPolicy instead of the SHAKEN CP OID
	// (ATIS-1000080 v004 draft change list; conformance §6 C3).
	if p.role == RoleCA && oids[0] == anyPolicyOID {
		return ""
	}
	if !IsShakenPolicy(oids[0]) {
		return fmt.Sprintf("policy %s is not a SHAKEN CP OID", oids[0])
	}
	return ""
}

// anyPolicyOID is RFC 5280 §4.2.1.4's anyPolicy.
const anyPolicyOID = "2.5.29.32.0"

func policyOIDs(c *x509.Certificate) []string {
	var s []string
	for _, o := range c.Policies {
		s = append(s, o.String())
	}
	return s
}

func (p *profiler) crlDP() string {
	_, ok := p.ext(oidExtCRLDP)
	if p.role == RoleRoot {
		if ok {
			return "a root carries no CRL distribution point"
		}
		return ""
	}
	if !ok {
		return "missing"
	}
	// crypto/x509 flattens every URI of every point, so one URI means one
	// point with one name; two points or two names both show as more.
	if n := len(p.c.CRLDistributionPoints); n != 1 {
		return fmt.Sprintf("%d distribution point URIs, want exactly one", n)
	}
	u, err := url.Parse(p.c.CRLDistributionPoints[0])
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Sprintf("distribution point %q is not an HTTP(S) URL", p.c.CRLDistributionPoints[0])
	}
	return ""
}

func (p *profiler) tnAuthList() string {
	_, ok := p.ext(OIDTNAuthList)
	if p.role != RoleEE {
		// A CA below an STI-CA may hold a TNAuthList to delegate from
		// (RFC 9060); the STI-CA and the root hold none.
		if ok && p.role == RoleRoot {
			return "a root carries no TNAuthList"
		}
		return ""
	}
	if !ok {
		return "missing"
	}
	l, err := TNAuthListOf(p.c)
	if err != nil {
		return err.Error()
	}
	if len(l) != 1 || l[0].SPC == "" {
		return fmt.Sprintf("%d entries (%d SPC), want exactly one SPC", len(l), l.spcCount())
	}
	return ""
}

func (p *profiler) authorityKeyID() string {
	if len(p.c.AuthorityKeyId) == 0 {
		return "missing"
	}
	if p.role == RoleRoot && !bytes.Equal(p.c.AuthorityKeyId, p.c.SubjectKeyId) {
		return "a root's authority key id differs from its subject key id"
	}
	return ""
}

func (p *profiler) extensions() string {
	for _, e := range p.c.Extensions {
		switch {
		case e.Id.Equal(oidExtSubjectKeyID), e.Id.Equal(oidExtAuthKeyID), e.Id.Equal(oidExtBasicConst),
			e.Id.Equal(oidExtKeyUsage), e.Id.Equal(OIDTNAuthList), e.Id.Equal(oidExtCRLDP),
			e.Id.Equal(oidExtCertPolicies), e.Id.Equal(OIDJWTClaimConstraints), e.Id.Equal(OIDEJWTClaimConstraints):
		default:
			return fmt.Sprintf("extension %v is not in the profile", e.Id)
		}
	}
	return ""
}

// TNAuthListOf parses cert's TNAuthList extension. A certificate without
// one gets stir.ErrCertNoTNAuth.
func TNAuthListOf(cert *x509.Certificate) (TNAuthList, error) {
	for _, e := range cert.Extensions {
		if e.Id.Equal(OIDTNAuthList) {
			return ParseTNAuthList(e.Value)
		}
	}
	return nil, tnaErr("extension absent")
}
