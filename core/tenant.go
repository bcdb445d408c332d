package core

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/passport"
	"github.com/stirgate/stirgate/core/stir"
)

// DefaultTenant is the name of the tenant that SignerOptions.Credential
// (the [signer] section) configures, and the tenant of every call whose
// customer names none.
const DefaultTenant = "default"

// Tenant is one signing identity: the certificate of a provider the
// operator signs for (FCC 24-120: a provider signing another's calls signs
// them with that provider's own SPC token and certificate).
type Tenant struct {
	Name       string
	Credential *certs.SigningCredential
	X5U        string
	// OrigID is the tenant's fixed origid, used when neither the request
	// nor the customer gives one; empty: one per call.
	OrigID string
	// Next, when set, replaces Credential and X5U from Next.Activate on.
	Next *NextCredential
}

// NextCredential is a tenant's next certificate: signing switches to it at
// Activate, judged per signature by the signing time, so every process
// that loaded the same configuration (each Kamailio worker builds its own
// Signer) switches at the same instant without talking to the others.
type NextCredential struct {
	Credential *certs.SigningCredential
	X5U        string
	Activate   time.Time
}

// tenant is a Tenant as the Signer holds it: immutable after NewSigner, so
// a signature always sees one whole credential (a reload builds a new
// Signer and swaps it in; it never edits this one).
type tenant struct {
	name     string
	origid   string
	cur      *credential
	next     *credential // nil: no rotation
	activate time.Time
}

// credential is one certificate with what signing needs beside it.
type credential struct {
	c         *certs.SigningCredential
	x5u       string
	header    string // base64url JOSE header, fixed per x5u
	divHeader string // the ppt=div JOSE header (RFC 8946)
	// expLevel counts the expiry lead times crossed and logged (see noteExpiry).
	expLevel atomic.Int32
}

// at returns the credential that signs at now.
func (t *tenant) at(now time.Time) *credential {
	if t.next != nil && !now.Before(t.activate) {
		return t.next
	}
	return t.cur
}

func newCredential(tenant, what string, c *certs.SigningCredential, x5u string) (*credential, error) {
	if c == nil || c.Key == nil {
		return nil, stir.ErrSignKey.Withf("tenant %q: no signing credential%s", tenant, what)
	}
	if u, err := url.Parse(x5u); err != nil || !u.IsAbs() || u.Host == "" || strings.ContainsAny(x5u, "<>;\" \t\r\n") {
		// info=<x5u> must survive the Identity grammar, so the characters
		// that would end or split it are refused here rather than emitted.
		return nil, stir.ErrSignCertInvalid.Withf("tenant %q: x5u%s %q is not an absolute URL usable in info=<...>", tenant, what, x5u)
	}
	// certs.LoadSigner checks this too; a credential built by hand must not
	// be able to sign tokens that no verifier can check.
	if l := c.Leaf; l != nil && !c.Key.PublicKey.Equal(l.PublicKey) {
		return nil, stir.ErrSignKey.Withf("tenant %q: private key%s does not match the certificate %q", tenant, what, l.Subject.CommonName)
	}
	return &credential{c: c, x5u: x5u, header: passport.EncodeHeader(x5u),
		divHeader: passport.EncodeHeaderPpt(x5u, passport.PptDiv)}, nil
}

func newTenant(t Tenant) (*tenant, error) {
	if t.Name == "" || strings.ContainsAny(t.Name, "/ \t\r\n?#") {
		return nil, stir.ErrSignInput.Withf("tenant name %q: a word, no spaces or slashes", t.Name)
	}
	cur, err := newCredential(t.Name, "", t.Credential, t.X5U)
	if err != nil {
		return nil, err
	}
	out := &tenant{name: t.Name, origid: t.OrigID, cur: cur}
	if n := t.Next; n != nil {
		if n.Activate.IsZero() {
			return nil, stir.ErrSignInput.Withf("tenant %q: the next credential has no activation time", t.Name)
		}
		if out.next, err = newCredential(t.Name, " (next)", n.Credential, n.X5U); err != nil {
			return nil, err
		}
		if n.X5U == t.X5U {
			// Both chains are published during the overlap: a verifier
			// fetching a token signed just before the switch must still
			// get the chain that signed it.
			return nil, stir.ErrSignCertInvalid.Withf("tenant %q: the next credential needs an x5u of its own (both are published during the overlap)", t.Name)
		}
		out.activate = n.Activate
	}
	return out, nil
}

// public returns the Tenant t was built from.
func (t *tenant) public() Tenant {
	p := Tenant{Name: t.name, Credential: t.cur.c, X5U: t.cur.x5u, OrigID: t.origid}
	if t.next != nil {
		p.Next = &NextCredential{Credential: t.next.c, X5U: t.next.x5u, Activate: t.activate}
	}
	return p
}

// canSign refuses a credential that cannot sign at iat: outside its
// validity, a verifier would refuse every PASSporT it signed.
func (c *credential) canSign(tenant string, iat time.Time) error {
	if iat.Before(c.c.NotBefore) || iat.After(c.c.NotAfter) {
		return stir.ErrSignCertInvalid.Withf("tenant %q: signing time %s outside certificate validity %s..%s", tenant,
			iat.UTC().Format(time.RFC3339), c.c.NotBefore.UTC().Format(time.RFC3339), c.c.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// canSign refuses a credential that cannot sign at iat (validity) or has
// been revoked (SignerOptions.Revoked).
func (s *Signer) canSign(t *tenant, cr *credential, iat time.Time) error {
	if err := cr.canSign(t.name, iat); err != nil {
		return err
	}
	if s.opts.Revoked != nil {
		if err := s.opts.Revoked(cr.c.Chain, iat); errors.Is(err, stir.ErrCertRevoked) {
			return stir.ErrSignCertInvalid.With(fmt.Sprintf("tenant %q: certificate revoked", t.name), err)
		}
	}
	return nil
}

// Tenants returns the tenants the Signer signs for, the default first when
// there is one, each with its current and next credential (for publishing
// the chains and reporting their expiry).
func (s *Signer) Tenants() []Tenant {
	out := make([]Tenant, len(s.tenants))
	for i, t := range s.tenants {
		out[i] = t.public()
	}
	return out
}

// tenantFor returns the tenant of a call attributed to customer (named
// tenant, "" for the default). A customer's tenant is checked when the
// Signer is built; the default may be absent, and then such calls are
// refused: another tenant's certificate must never sign them.
func (s *Signer) tenantFor(name string) (*tenant, error) {
	if name == "" {
		name = DefaultTenant
	}
	if t := s.byName[name]; t != nil {
		return t, nil
	}
	return nil, stir.ErrSignCertInvalid.Withf("tenant %q: no signing credential configured (no [signer] or [[tenant]] of that name)", name)
}

// validateTenants builds the tenant table of opts.
func (s *Signer) buildTenants(opts SignerOptions) error {
	var list []Tenant
	if opts.Credential != nil || opts.X5U != "" {
		list = append(list, Tenant{Name: DefaultTenant, Credential: opts.Credential, X5U: opts.X5U, Next: opts.Next})
	}
	list = append(list, opts.Tenants...)
	if len(list) == 0 {
		return stir.ErrSignKey.Withf("no signing credential")
	}
	s.byName = map[string]*tenant{}
	for _, t := range list {
		tt, err := newTenant(t)
		if err != nil {
			return err
		}
		if s.byName[t.Name] != nil {
			return stir.ErrSignInput.Withf("tenant %q defined twice", t.Name)
		}
		s.byName[t.Name] = tt
		if t.Name == DefaultTenant {
			s.tenants = append([]*tenant{tt}, s.tenants...)
		} else {
			s.tenants = append(s.tenants, tt)
		}
	}
	for cust, tn := range opts.Policy.CustomerTenants() {
		if s.byName[tn] == nil {
			return stir.ErrSignInput.Withf("policy customer %q: tenant %q is not configured", cust, tn)
		}
	}
	return nil
}

func (s *Signer) defaultTenant() *tenant { return s.byName[DefaultTenant] }

// String names a tenant for messages.
func (t Tenant) String() string { return fmt.Sprintf("tenant %q", t.Name) }
