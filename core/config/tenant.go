package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/certs"
)

// Signing reports whether the config signs: a [signer] or any [[tenant]].
func (c *Config) Signing() bool { return c.Signer.Enabled() || len(c.Tenants) > 0 }

// hasDefaultTenant reports whether calls without a tenant have a
// credential: [signer], a [[tenant]] named "default", or the lab's signer.
func (c *Config) hasDefaultTenant() bool {
	return c.Signer.Enabled() || c.Lab.Dir != "" || c.namedDefaultTenant()
}

// namedDefaultTenant reports whether a [[tenant]] is named "default".
func (c *Config) namedDefaultTenant() bool {
	for _, t := range c.Tenants {
		if t.Name == core.DefaultTenant {
			return true
		}
	}
	return false
}

// validateTenants checks [[tenant]] and what names a tenant. A customer
// naming a tenant that does not exist is refused here, never signed with
// another tenant's certificate.
func (c *Config) validateTenants() error {
	var errs []error
	names := map[string]bool{}
	for i, t := range c.Tenants {
		where := fmt.Sprintf("tenant %q", t.Name)
		switch {
		case t.Name == "" || strings.ContainsAny(t.Name, "/\\ \t\r\n?#%"):
			errs = append(errs, fmt.Errorf("tenant[%d].name %q: a word, no spaces or slashes (it names /certs/<name>.pem)", i, t.Name))
		case names[t.Name]:
			errs = append(errs, fmt.Errorf("%s: defined twice", where))
		case t.Name == core.DefaultTenant && c.Signer.Enabled():
			errs = append(errs, fmt.Errorf("%s: [signer] is the default tenant; configure it there or here, not both", where))
		}
		names[t.Name] = true
		if t.Key == "" || t.Cert == "" || t.X5U == "" {
			errs = append(errs, fmt.Errorf("%s: key, cert and x5u are required", where))
		}
		if t.X5U != "" {
			if u, err := url.Parse(t.X5U); err != nil || !u.IsAbs() || u.Host == "" {
				errs = append(errs, fmt.Errorf("%s.x5u %q: not an absolute URL", where, t.X5U))
			}
		}
		if t.OrigID != "" && !isUUID(t.OrigID) {
			errs = append(errs, fmt.Errorf("%s: origid %q is not a UUID", where, t.OrigID))
		}
		errs = append(errs, t.Next.validate(where, t.X5U))
	}
	for _, cu := range c.Policy.Customers {
		switch {
		case cu.Tenant == "":
		case cu.Tenant == core.DefaultTenant && c.hasDefaultTenant():
		case !names[cu.Tenant]:
			errs = append(errs, fmt.Errorf("policy.customer %q: tenant %q is no [[tenant]]", cu.Name, cu.Tenant))
		}
	}
	return errors.Join(errs...)
}

// loadCredential reads one key and chain (config-relative paths).
func (c *Config) loadCredential(where, key, cert string) (*certs.SigningCredential, error) {
	keyPEM, err := os.ReadFile(c.Resolve(key))
	if err != nil {
		return nil, fmt.Errorf("%s key: %w", where, err)
	}
	chainPEM, err := os.ReadFile(c.Resolve(cert))
	if err != nil {
		return nil, fmt.Errorf("%s cert: %w", where, err)
	}
	cred, err := certs.LoadSigner(keyPEM, chainPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return cred, nil
}

// loadNext reads a next credential, nil when none is configured.
func (c *Config) loadNext(where string, n Next) (*core.NextCredential, error) {
	if !n.Enabled() {
		return nil, nil
	}
	cred, err := c.loadCredential(where+" next", n.NextKey, n.NextCert)
	if err != nil {
		return nil, err
	}
	return &core.NextCredential{Credential: cred, X5U: n.NextX5U, Activate: n.Activate}, nil
}

// coreTenants loads every [[tenant]].
func (c *Config) coreTenants() ([]core.Tenant, error) {
	var out []core.Tenant
	for _, t := range c.Tenants {
		where := fmt.Sprintf("tenant %q", t.Name)
		cred, err := c.loadCredential(where, t.Key, t.Cert)
		if err != nil {
			return nil, err
		}
		next, err := c.loadNext(where, t.Next)
		if err != nil {
			return nil, err
		}
		out = append(out, core.Tenant{Name: t.Name, Credential: cred, X5U: t.X5U, OrigID: t.OrigID, Next: next})
	}
	return out, nil
}
