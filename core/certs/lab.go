package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// LabOptions configures NewLab. The zero value is usable.
type LabOptions struct {
	SPC    string    // service provider code of the leaf; default "1234"
	Days   int       // leaf validity in days; default 365 (the CA gets twice, the root three times)
	Now    time.Time // the lab's clock; zero means time.Now()
	CRLURL string    // CRL distribution point in the CA and leaf; default DefaultLabCRLURL
}

// DefaultLabCRLURL is the distribution point lab certificates carry when
// LabOptions.CRLURL is empty. The .invalid name (RFC 6761) never resolves:
// stirgate loads CRLs from files or fetches them from the configured
// [verifier] crl_urls (package crl); it does not follow distribution points.
const DefaultLabCRLURL = "http://crl.stirgate.invalid/sti-pa.crl"

// LabPolicyOID is the certificate policy lab CAs and leaves carry (SHAKEN CP v1.3).
const LabPolicyOID = ShakenPolicyPrefix + "3"

// File names WriteDir writes and LoadLab reads.
const (
	LabRootFile      = "root.pem"       // trust anchor
	LabCAFile        = "ca.pem"         // intermediate STI-CA
	LabLeafFile      = "sp.pem"         // STI-SP certificate alone
	LabChainFile     = "sp-chain.pem"   // leaf then intermediate: the x5u body
	LabKeyFile       = "sp.key"         // leaf private key, PKCS#8, mode 0600
	LabCRLSignerFile = "crl-signer.pem" // the STI-PA-like CRL signer
	LabCRLFile       = "crl.pem"        // indirect CRL signed by the CRL signer
)

// Lab is a complete miniature SHAKEN PKI: a root standing for the STI-PA
// trust list, an STI-CA intermediate, an STI-SP leaf with its key, and a
// CRL signer issuing an indirect CRL. Every certificate passes
// CheckProfile in its role. Methods are safe for concurrent use; only
// Revoke changes the lab.
//
// A lab read back by LoadLab has no CA keys: it can serve and verify but
// not issue or revoke.
type Lab struct {
	Root, CA, Leaf, CRLSigner    *x509.Certificate
	RootKey, CAKey, CRLSignerKey *ecdsa.PrivateKey
	LeafKey                      *ecdsa.PrivateKey
	SPC                          string
	Now                          time.Time
	opts                         LabOptions

	mu        sync.Mutex
	crl       *x509.RevocationList
	crlPEM    []byte
	crlNumber int64
	revoked   []x509.RevocationListEntry
}

func (o LabOptions) withDefaults() LabOptions {
	if o.SPC == "" {
		o.SPC = "1234"
	}
	if o.Days <= 0 {
		o.Days = 365
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.CRLURL == "" {
		o.CRLURL = DefaultLabCRLURL
	}
	return o
}

func (o LabOptions) days(n int) time.Duration { return time.Duration(n*o.Days) * 24 * time.Hour }

// NewLab generates a fresh lab PKI (new keys every call).
func NewLab(opts LabOptions) (*Lab, error) {
	o := opts.withDefaults()
	if err := checkSPC([]byte(o.SPC)); err != nil {
		return nil, fmt.Errorf("lab SPC %q: %w", o.SPC, err)
	}
	l := &Lab{SPC: o.SPC, Now: o.Now, opts: o}
	var err error
	start := o.Now.Add(-time.Hour)
	if l.RootKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	root := &x509.Certificate{
		Subject:               labName("SHAKEN Lab Root", ""),
		NotBefore:             start,
		NotAfter:              o.Now.Add(o.days(3)),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	root.SubjectKeyId = keyID(&l.RootKey.PublicKey)
	root.AuthorityKeyId = root.SubjectKeyId // ATIS-1000080: a root's AKI equals its SKI
	if l.Root, err = l.issue(root, nil, nil, &l.RootKey.PublicKey); err != nil {
		return nil, fmt.Errorf("lab root: %w", err)
	}

	if l.CRLSignerKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	signer := &x509.Certificate{
		Subject:               labName("SHAKEN Lab CRL Signer", ""),
		NotBefore:             start,
		NotAfter:              o.Now.Add(o.days(2)),
		KeyUsage:              x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		// crypto/x509 accepts a CRL only from a CA certificate.
		IsCA:           true,
		MaxPathLenZero: true,
		SubjectKeyId:   keyID(&l.CRLSignerKey.PublicKey),
	}
	if l.CRLSigner, err = l.issue(signer, l.Root, l.RootKey, &l.CRLSignerKey.PublicKey); err != nil {
		return nil, fmt.Errorf("lab CRL signer: %w", err)
	}

	if l.CAKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	ca := &x509.Certificate{
		Subject:               labName("SHAKEN Lab STI-CA", ""),
		NotBefore:             start,
		NotAfter:              o.Now.Add(o.days(2)),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          keyID(&l.CAKey.PublicKey),
	}
	if err := l.addSHAKENExtensions(ca, nil); err != nil {
		return nil, err
	}
	if l.CA, err = l.issue(ca, l.Root, l.RootKey, &l.CAKey.PublicKey); err != nil {
		return nil, fmt.Errorf("lab CA: %w", err)
	}

	leaf, key, err := l.IssueLeaf(LeafOptions{})
	if err != nil {
		return nil, err
	}
	l.Leaf, l.LeafKey = leaf, key.(*ecdsa.PrivateKey)

	if _, _, err := l.resignCRL(); err != nil {
		return nil, err
	}
	return l, nil
}

func labName(cn, serialNumber string) pkix.Name {
	return pkix.Name{Country: []string{"US"}, Organization: []string{"stirgate lab"}, CommonName: cn, SerialNumber: serialNumber}
}

// keyID is the RFC 5280 §4.2.1.2 method-1 key identifier: SHA-1 of the
// subjectPublicKey bits.
func keyID(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	var spki struct {
		Algorithm asn1.RawValue
		Key       asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil
	}
	h := sha1.Sum(spki.Key.Bytes)
	return h[:]
}

// randomSerial is a positive 127-bit serial: at least the 64 random bits
// ATIS-1000080 requires, and never shorter than 64 bits.
func randomSerial() (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	b[0] = b[0]&0x3f | 0x40
	return new(big.Int).SetBytes(b), nil
}

// issue signs tmpl with parent's key; a nil parent self-signs.
func (l *Lab) issue(tmpl, parent *x509.Certificate, parentKey crypto.Signer, pub crypto.PublicKey) (*x509.Certificate, error) {
	var err error
	if tmpl.SerialNumber, err = randomSerial(); err != nil {
		return nil, err
	}
	if parent == nil {
		parent, parentKey = tmpl, l.RootKey
	}
	if tmpl.SubjectKeyId == nil {
		tmpl.SubjectKeyId = keyID(pub)
	}
	tmpl.SignatureAlgorithm = x509.ECDSAWithSHA256
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// addSHAKENExtensions adds the SHAKEN CP OID, a CRL distribution point
// naming the CRL signer as cRLIssuer (the indirect-CRL form ATIS-1000080
// describes), and, when tna is non-nil, the TNAuthList.
func (l *Lab) addSHAKENExtensions(c *x509.Certificate, tna TNAuthList) error {
	oid, err := x509.ParseOID(LabPolicyOID)
	if err != nil {
		return err
	}
	c.Policies = []x509.OID{oid}
	c.ExtraExtensions = append(c.ExtraExtensions, pkix.Extension{Id: oidExtCRLDP, Value: crlDP(l.opts.CRLURL, l.CRLSigner.RawSubject)})
	if tna != nil {
		der, err := MarshalTNAuthList(tna)
		if err != nil {
			return err
		}
		c.ExtraExtensions = append(c.ExtraExtensions, pkix.Extension{Id: OIDTNAuthList, Value: der})
	}
	return nil
}

// crlDP encodes CRLDistributionPoints with one point: fullName uri and
// cRLIssuer issuerDN (RFC 5280 §4.2.1.13, IMPLICIT tags).
func crlDP(uri string, issuerDN []byte) []byte {
	fullName := appendTLV(nil, 0xa0, appendTLV(nil, 0x86, []byte(uri))) // [0] fullName { [6] URI }
	dpName := appendTLV(nil, 0xa0, fullName)                            // [0] distributionPoint
	crlIssuer := appendTLV(nil, 0xa2, appendTLV(nil, 0xa4, issuerDN))   // [2] cRLIssuer { [4] directoryName }
	return appendTLV(nil, tagSequence, appendTLV(nil, tagSequence, append(dpName, crlIssuer...)))
}

// LeafOptions shapes a certificate from IssueLeaf. The zero value issues a
// profile-conformant STI-SP certificate like the lab's own leaf; the
// other fields exist to make the broken certificates tests need.
type LeafOptions struct {
	SPC          string        // "" = the lab's SPC
	NotBefore    time.Time     // zero = lab Now - 1h
	NotAfter     time.Time     // zero = lab Now + Days
	Key          crypto.Signer // nil = a fresh P-256 key; any key type is accepted
	NoTNAuthList bool          // omit the TNAuthList
	IsCA         bool          // mark the leaf as a CA (keyCertSign, cA TRUE)
	CommonName   string        // "" = "SHAKEN <SPC>", the only conformant CN

	// Delegate certificates (RFC 9060): TNAuth replaces the SPC entry with
	// the given TNs and ranges, Parent and ParentKey (from IssueCA) issue
	// the certificate instead of the lab's STI-CA, and Constraints adds an
	// EnhancedJWTClaimConstraints extension (RFC 9118).
	TNAuth      TNAuthList
	Parent      *x509.Certificate
	ParentKey   crypto.Signer
	Constraints *ClaimConstraints
}

// CAOptions shapes a CA certificate from IssueCA: a delegation-capable
// STI-CA under the root (Parent nil), or a service provider's delegating CA
// under one (RFC 9060).
type CAOptions struct {
	Parent    *x509.Certificate // nil = the lab root
	ParentKey crypto.Signer
	TNAuth    TNAuthList // the numbers (or SPC) it may delegate; nil = none
	AnyPolicy bool       // anyPolicy instead of the SHAKEN CP OID (ATIS-1000080 v004 draft)
	PathLen   int        // maximum path length below it (0 = none may follow)
	Name      string     // common name; "" = a generated one
}

// IssueCA issues a CA certificate and returns it with its key.
func (l *Lab) IssueCA(o CAOptions) (*x509.Certificate, crypto.Signer, error) {
	parent, pkey := o.Parent, o.ParentKey
	if parent == nil {
		if l.RootKey == nil {
			return nil, nil, errors.New("lab: no root key (loaded from files)")
		}
		parent, pkey = l.Root, l.RootKey
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	name := o.Name
	if name == "" {
		name = "SHAKEN Lab delegating CA"
	}
	t := &x509.Certificate{
		Subject:               labName(name, ""),
		NotBefore:             l.Now.Add(-time.Hour),
		NotAfter:              l.Now.Add(l.opts.days(2)),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            o.PathLen,
		MaxPathLenZero:        o.PathLen == 0,
	}
	if err := l.addSHAKENExtensions(t, o.TNAuth); err != nil {
		return nil, nil, err
	}
	if o.AnyPolicy {
		t.Policies = []x509.OID{mustOID(anyPolicyOID)}
	}
	c, err := l.issue(t, parent, pkey, &key.PublicKey)
	if err != nil {
		return nil, nil, fmt.Errorf("lab CA: %w", err)
	}
	return c, key, nil
}

func mustOID(s string) x509.OID {
	o, err := x509.ParseOID(s)
	if err != nil {
		panic(err)
	}
	return o
}

// IssueLeaf issues an STI-SP certificate from the lab's intermediate and
// returns it with its private key.
func (l *Lab) IssueLeaf(o LeafOptions) (*x509.Certificate, crypto.Signer, error) {
	if l.CAKey == nil {
		return nil, nil, errors.New("lab: no CA key (loaded from files)")
	}
	spc := o.SPC
	if spc == "" {
		spc = l.SPC
	}
	key := o.Key
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		key = k
	}
	cn := o.CommonName
	if cn == "" {
		cn = "SHAKEN " + spc
	}
	t := &x509.Certificate{
		Subject:               labName(cn, spc),
		NotBefore:             o.NotBefore,
		NotAfter:              o.NotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	if t.NotBefore.IsZero() {
		t.NotBefore = l.Now.Add(-time.Hour)
	}
	if t.NotAfter.IsZero() {
		t.NotAfter = l.Now.Add(l.opts.days(1))
	}
	if o.IsCA {
		t.IsCA = true
		t.KeyUsage |= x509.KeyUsageCertSign
	}
	tna := TNAuthList{{SPC: spc}}
	if o.TNAuth != nil {
		tna = o.TNAuth
	}
	if o.NoTNAuthList {
		tna = nil
	}
	if err := l.addSHAKENExtensions(t, tna); err != nil {
		return nil, nil, err
	}
	if o.Constraints != nil {
		t.ExtraExtensions = append(t.ExtraExtensions, pkix.Extension{Id: OIDEJWTClaimConstraints, Value: MarshalClaimConstraints(*o.Constraints)})
	}
	parent, pkey := l.CA, crypto.Signer(l.CAKey)
	if o.Parent != nil {
		parent, pkey = o.Parent, o.ParentKey
	}
	c, err := l.issue(t, parent, pkey, key.Public())
	if err != nil {
		return nil, nil, fmt.Errorf("lab leaf: %w", err)
	}
	return c, key, nil
}

// Roots is a pool holding only the lab root.
func (l *Lab) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(l.Root)
	return p
}

// Chain is the x5u chain: leaf then intermediate.
func (l *Lab) Chain() []*x509.Certificate { return []*x509.Certificate{l.Leaf, l.CA} }

// ChainPEM is the x5u body.
func (l *Lab) ChainPEM() []byte { return EncodePEM(l.Leaf, l.CA) }

// KeyPEM is the leaf key as PKCS#8 PEM.
func (l *Lab) KeyPEM() ([]byte, error) { return KeyPEM(l.LeafKey) }

// Signer is the lab leaf as a signing credential.
func (l *Lab) Signer() (*SigningCredential, error) {
	k, err := l.KeyPEM()
	if err != nil {
		return nil, err
	}
	return LoadSigner(k, l.ChainPEM())
}

// CRL returns the lab's current CRL, DER-parsed and as PEM.
func (l *Lab) CRL() (*x509.RevocationList, []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.crl, l.crlPEM
}

// CRLSet is the lab's current CRL with its signer, ready for
// VerifyOptions.CRL.
func (l *Lab) CRLSet() (*CRLSet, error) {
	crl, _ := l.CRL()
	return NewCRLSet([]*x509.RevocationList{crl}, []*x509.Certificate{l.CRLSigner})
}

// Revoke adds cert to the lab's CRL, re-signs it and returns the new CRL
// as PEM. The lab's CRL changes for every user of the lab.
func (l *Lab) Revoke(cert *x509.Certificate) (crlPEM []byte, err error) {
	if l.CRLSignerKey == nil {
		return nil, errors.New("lab: no CRL signer key (loaded from files)")
	}
	l.mu.Lock()
	l.revoked = append(l.revoked, revocationEntry(cert, l.CRLSigner, l.Now))
	l.mu.Unlock()
	_, p, err := l.resignCRL()
	return p, err
}

// SignCRL signs a fresh CRL listing exactly certs, without changing the
// lab's own CRL: for tests that share a lab.
func (l *Lab) SignCRL(certs ...*x509.Certificate) (*x509.RevocationList, []byte, error) {
	if l.CRLSignerKey == nil {
		return nil, nil, errors.New("lab: no CRL signer key (loaded from files)")
	}
	entries := make([]x509.RevocationListEntry, len(certs))
	for i, c := range certs {
		entries[i] = revocationEntry(c, l.CRLSigner, l.Now)
	}
	return l.signCRL(1000, entries)
}

func revocationEntry(c, crlSigner *x509.Certificate, now time.Time) x509.RevocationListEntry {
	e := x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: now.Add(-time.Minute)}
	if !bytes.Equal(c.RawIssuer, crlSigner.RawSubject) {
		// certificateIssuer: GeneralNames { [4] directoryName }, always critical.
		v := appendTLV(nil, tagSequence, appendTLV(nil, 0xa4, c.RawIssuer))
		e.ExtraExtensions = []pkix.Extension{{Id: oidEntryCertificateIssr, Critical: true, Value: v}}
	}
	return e
}

func (l *Lab) resignCRL() (*x509.RevocationList, []byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.crlNumber++
	crl, p, err := l.signCRL(l.crlNumber, l.revoked)
	if err != nil {
		return nil, nil, err
	}
	l.crl, l.crlPEM = crl, p
	return crl, p, nil
}

// idpIndirect is IssuingDistributionPoint { indirectCRL [4] TRUE }.
var idpIndirect = []byte{0x30, 0x03, 0x84, 0x01, 0xff}

func (l *Lab) signCRL(number int64, entries []x509.RevocationListEntry) (*x509.RevocationList, []byte, error) {
	tmpl := &x509.RevocationList{
		SignatureAlgorithm:        x509.ECDSAWithSHA256,
		Number:                    big.NewInt(number),
		ThisUpdate:                l.Now.Add(-time.Hour),
		NextUpdate:                l.Now.Add(l.opts.days(1)),
		RevokedCertificateEntries: entries,
		ExtraExtensions:           []pkix.Extension{{Id: oidCRLIssuingDP, Critical: true, Value: idpIndirect}},
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, l.CRLSigner, l.CRLSignerKey)
	if err != nil {
		return nil, nil, fmt.Errorf("lab CRL: %w", err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		return nil, nil, err
	}
	return crl, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), nil
}

// EncodePEM encodes certificates as consecutive CERTIFICATE blocks.
func EncodePEM(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// KeyPEM encodes a private key as PKCS#8 PEM.
func KeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// WriteDir writes the lab's public files and the leaf key under dir (see
// the Lab*File names), creating dir if needed. CA keys are not written.
func (l *Lab) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	key, err := l.KeyPEM()
	if err != nil {
		return err
	}
	_, crlPEM := l.CRL()
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{LabRootFile, EncodePEM(l.Root), 0o644},
		{LabCAFile, EncodePEM(l.CA), 0o644},
		{LabLeafFile, EncodePEM(l.Leaf), 0o644},
		{LabChainFile, l.ChainPEM(), 0o644},
		{LabKeyFile, key, 0o600},
		{LabCRLSignerFile, EncodePEM(l.CRLSigner), 0o644},
		{LabCRLFile, crlPEM, 0o644},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			return err
		}
		// WriteFile keeps the mode of a file that already existed.
		if err := os.Chmod(p, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// LoadLab reads a lab written by WriteDir. The result verifies and signs
// but cannot issue or revoke (CA keys are never written).
func LoadLab(dir string) (*Lab, error) {
	read := func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, name)) }
	one := func(name string) (*x509.Certificate, error) {
		b, err := read(name)
		if err != nil {
			return nil, err
		}
		cs, err := ParsePEMChain(b, 1)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return cs[0], nil
	}
	l := &Lab{}
	var err error
	if l.Root, err = one(LabRootFile); err != nil {
		return nil, err
	}
	if l.CA, err = one(LabCAFile); err != nil {
		return nil, err
	}
	if l.CRLSigner, err = one(LabCRLSignerFile); err != nil {
		return nil, err
	}
	key, err := read(LabKeyFile)
	if err != nil {
		return nil, err
	}
	chain, err := read(LabChainFile)
	if err != nil {
		return nil, err
	}
	sc, err := LoadSigner(key, chain)
	if err != nil {
		return nil, fmt.Errorf("%s, %s: %w", LabKeyFile, LabChainFile, err)
	}
	if len(sc.Chain) != 2 || !sc.Chain[1].Equal(l.CA) {
		return nil, fmt.Errorf("%s: want the leaf then %s", LabChainFile, LabCAFile)
	}
	if l.Leaf, err = one(LabLeafFile); err != nil {
		return nil, err
	}
	if !l.Leaf.Equal(sc.Leaf) {
		return nil, fmt.Errorf("%s differs from the leaf of %s", LabLeafFile, LabChainFile)
	}
	l.LeafKey, l.SPC = sc.Key, sc.SPC
	l.Now = l.Leaf.NotBefore.Add(time.Hour)
	crlPEM, err := read(LabCRLFile)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(crlPEM)
	if blk == nil || blk.Type != "X509 CRL" {
		return nil, fmt.Errorf("%s: no X509 CRL block", LabCRLFile)
	}
	if l.crl, err = x509.ParseRevocationList(blk.Bytes); err != nil {
		return nil, fmt.Errorf("%s: %w", LabCRLFile, err)
	}
	l.crlPEM = crlPEM
	return l, nil
}
