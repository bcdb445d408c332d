package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"strings"
)

// CSROptions describe the certificate signing request an STI-SP sends its
// STI-CA for a SHAKEN certificate (ATIS-1000080: the TNAuthList extension
// carrying the SPC of the STI-PA's SPC token; subject with C, O and the
// common name "SHAKEN <SPC>", which CheckProfile expects of a leaf).
type CSROptions struct {
	SPC          string // service provider code, as in the SPC token
	Country      string // subject C: two letters
	Organization string // subject O: the provider's legal name
	CommonName   string // subject CN; "" means "SHAKEN <SPC>"
}

// CreateCSR returns the DER of a PKCS#10 request signed by key, a P-256
// ECDSA key (the only key SHAKEN certificates carry). The TNAuthList goes
// into the request's extensionRequest attribute, where STI-CAs (and ACME
// with the TNAuthList identifier) read it.
func CreateCSR(key crypto.Signer, o CSROptions) ([]byte, error) {
	if err := checkCSROptions(key, o); err != nil {
		return nil, err
	}
	tna, err := MarshalTNAuthList(TNAuthList{{SPC: o.SPC}})
	if err != nil {
		return nil, err
	}
	cn := o.CommonName
	if cn == "" {
		cn = "SHAKEN " + o.SPC
	}
	tmpl := &x509.CertificateRequest{
		Subject:            pkix.Name{Country: []string{strings.ToUpper(o.Country)}, Organization: []string{o.Organization}, CommonName: cn},
		SignatureAlgorithm: x509.ECDSAWithSHA256,
		ExtraExtensions:    []pkix.Extension{{Id: OIDTNAuthList, Value: tna}},
	}
	return x509.CreateCertificateRequest(rand.Reader, tmpl, key)
}

func checkCSROptions(key crypto.Signer, o CSROptions) error {
	k, ok := key.Public().(*ecdsa.PublicKey)
	if !ok || k.Curve != elliptic.P256() {
		return fmt.Errorf("the key must be ECDSA P-256 (SHAKEN certificates carry no other)")
	}
	if o.SPC == "" || len(o.SPC) > maxSPCLen {
		return fmt.Errorf("SPC %q: want 1 to %d characters", o.SPC, maxSPCLen)
	}
	for _, r := range o.SPC {
		if !(r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z') {
			return fmt.Errorf("SPC %q: letters and digits only", o.SPC)
		}
	}
	if len(o.Country) != 2 || strings.Trim(strings.ToUpper(o.Country), "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		return fmt.Errorf("country %q: want a two-letter code (C=US)", o.Country)
	}
	if strings.TrimSpace(o.Organization) == "" {
		return fmt.Errorf("organization (O=) is required: the STI-CA checks it against the SPC token holder")
	}
	return nil
}

// NewKey returns a new P-256 key, the key of every SHAKEN certificate.
func NewKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// CSRPEM wraps a request's DER as PEM.
func CSRPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}
