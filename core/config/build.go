package config

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/crl"
	"github.com/stirgate/stirgate/core/disposition"
	"github.com/stirgate/stirgate/core/identity"
	"github.com/stirgate/stirgate/core/policy"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/core/tn"
	"github.com/stirgate/stirgate/core/x5u"
)

// Lab file names inside [lab] dir, besides those certs.Lab writes.
const (
	LabTLSCert = "tls.pem" // self-signed, IP SAN of the listen host
	LabTLSKey  = "tls.key"
)

// LabURL is the x5u a lab signer publishes: the certificate endpoint of the
// HTTP service, served over TLS on loopback.
func (l Lab) LabURL() string {
	return "https://" + l.WithDefaults().Listen + "/certs/sp.pem"
}

// PrepareLab generates the lab PKI on first use and points every unset
// signer, verifier and x5u field at it. It does nothing without [lab] dir.
func (c *Config) PrepareLab(now time.Time, log *slog.Logger) error {
	if c.Lab.Dir == "" {
		return nil
	}
	l := c.Lab.WithDefaults()
	dir := c.ResolveState(l.Dir)
	if _, err := os.Stat(filepath.Join(dir, "sp.key")); errors.Is(err, os.ErrNotExist) {
		lab, err := certs.NewLab(certs.LabOptions{SPC: l.SPC, Now: now})
		if err != nil {
			return fmt.Errorf("lab: %w", err)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("lab: %w", err)
		}
		if err := lab.WriteDir(dir); err != nil {
			return fmt.Errorf("lab: %w", err)
		}
		if log != nil {
			log.Info("generated lab PKI", "dir", dir, "spc", l.SPC)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, LabTLSKey)); errors.Is(err, os.ErrNotExist) {
		if err := writeLabTLS(dir, l.Listen, now); err != nil {
			return fmt.Errorf("lab TLS: %w", err)
		}
	}
	// The fields take config-relative paths like any written by hand: they
	// are resolved when used, so they must not be resolved here too. A
	// system config's lab is not beside it: those paths are absolute.
	base := l.Dir
	if c.System() {
		base = dir
	}
	if !c.Signer.Enabled() && !c.namedDefaultTenant() {
		c.Signer.Key = filepath.Join(base, "sp.key")
		c.Signer.Cert = filepath.Join(base, "sp-chain.pem")
		c.Signer.X5U = l.LabURL()
	}
	if len(c.Verifier.Trust) == 0 {
		c.Verifier.Trust = []string{filepath.Join(base, "root.pem")}
	}
	if c.X5U.CAFile == "" {
		c.X5U.CAFile = filepath.Join(base, LabTLSCert)
	}
	c.X5U.LabHosts = append(c.X5U.LabHosts, l.Listen)
	return nil
}

// writeLabTLS makes a self-signed TLS certificate for the lab certificate
// endpoint; the x5u fetcher trusts it through x5u.ca_file.
func writeLabTLS(dir, listen string, now time.Time) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "stirgate lab " + host},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(825 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, LabTLSKey), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, LabTLSCert), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// NumberRules converts [numbers] into tn.Rules.
func (c *Config) NumberRules() tn.Rules {
	var r tn.Rules
	for _, n := range c.Numbers.National {
		r.National = append(r.National, tn.Rule{Length: n.Length, Prefix: n.Prefix, Strip: n.Strip, Add: n.Add})
	}
	if c.Numbers.Plan != "none" {
		r.National = append(r.National, tn.NANP().National...)
	}
	return r
}

// NewPolicy builds the attestation policy of [policy].
func (c *Config) NewPolicy() (*policy.Policy, error) {
	o := policy.Options{Gateways: c.Policy.Gateways, Default: stir.Attestation(c.Policy.Default)}
	for _, cu := range c.Policy.Customers {
		o.Customers = append(o.Customers, policy.Customer(cu))
	}
	return policy.New(o)
}

// NewSigner builds the STI-AS of [signer], [[tenant]] and [policy]. It
// fails when no signer is configured.
func (c *Config) NewSigner(now func() time.Time, log *slog.Logger) (*core.Signer, error) {
	return c.newSigner(now, log, nil)
}

// revokedBy is the signer's revocation look-up of v's CRLs (files and
// fetched): a tenant whose own certificate the STI-PA revoked must stop
// signing, since every verifier would refuse its calls. Only a listed
// certificate counts; a CRL that cannot be used does not stop signing.
func revokedBy(v *core.Verifier) func([]*x509.Certificate, time.Time) error {
	if v == nil || (v.CRL() == nil && v.Revocation() == nil) {
		return nil
	}
	return func(chain []*x509.Certificate, now time.Time) error {
		if set := v.CRL(); set != nil {
			if err := set.Revoked(chain); err != nil {
				return err
			}
		}
		if r := v.Revocation(); r != nil {
			if err := r.Check(chain, nil, now); errors.Is(err, stir.ErrCertRevoked) {
				return err
			}
		}
		return nil
	}
}

func (c *Config) newSigner(now func() time.Time, log *slog.Logger, revoked func([]*x509.Certificate, time.Time) error) (*core.Signer, error) {
	s := c.Signer
	if !c.Signing() {
		return nil, errors.New("no [signer] or [[tenant]] configured")
	}
	var o core.SignerOptions
	if s.Enabled() {
		cred, err := c.loadCredential("signer", s.Key, s.Cert)
		if err != nil {
			return nil, err
		}
		o.Credential, o.X5U = cred, s.X5U
		if o.Next, err = c.loadNext("signer", s.Next); err != nil {
			return nil, err
		}
	}
	tenants, err := c.coreTenants()
	if err != nil {
		return nil, err
	}
	pol, err := c.NewPolicy()
	if err != nil {
		return nil, err
	}
	// Rich call data URLs are fetched for their rcdi digests under the
	// [x5u] rules, like any URL a verifier will fetch.
	rcdFetch, err := X5UOptions[*certs.Credential](c)
	if err != nil {
		return nil, err
	}
	o.RCDFetch = rcdFetch
	o.Tenants = tenants
	o.Revoked = revoked
	o.Numbers = c.NumberRules()
	o.Policy = pol
	o.DateWindow = s.DateWindow.Duration
	o.ExpiryWarning = s.ExpiryWarning.Duration
	o.ExpiryLeads = durations(s.ExpiryWarn)
	o.Now, o.Logger = now, log
	return core.NewSigner(o)
}

// VerifierOptions converts [verifier] and [x5u] into core options.
func (c *Config) VerifierOptions(now func() time.Time, log *slog.Logger) (core.VerifierOptions, error) {
	v := c.Verifier
	if len(v.Trust) == 0 {
		return core.VerifierOptions{}, errors.New("verifier.trust: no trust anchors configured")
	}
	trust := make([]string, len(v.Trust))
	for i, f := range v.Trust {
		trust[i] = c.Resolve(f)
	}
	interval := v.TrustCheckInterval.Duration
	if interval == 0 {
		interval = time.Second
	}
	anchors, err := certs.LoadAnchors(certs.AnchorOptions{Files: trust, CheckInterval: interval, Now: now, Logger: log})
	if err != nil {
		return core.VerifierOptions{}, fmt.Errorf("verifier.trust: %w", err)
	}
	var crlSet *certs.CRLSet
	if len(v.CRL) > 0 {
		files := make([]string, len(v.CRL))
		for i, f := range v.CRL {
			files[i] = c.Resolve(f)
		}
		if crlSet, err = certs.LoadCRLSet(files...); err != nil {
			return core.VerifierOptions{}, fmt.Errorf("verifier.crl: %w", err)
		}
	}
	fetch, err := X5UOptions[*certs.Credential](c)
	if err != nil {
		return core.VerifierOptions{}, err
	}
	var rev certs.RevocationChecker
	if len(v.CRLURLs) > 0 || v.CRLFromCerts {
		if rev, err = c.crlSource(fetch, anchors, now, log); err != nil {
			return core.VerifierOptions{}, err
		}
	}
	o := core.VerifierOptions{
		Anchors:         anchors,
		CRL:             crlSet,
		Revocation:      rev,
		Fetch:           fetch,
		Numbers:         c.NumberRules(),
		Limits:          identity.Limits{MaxCount: v.MaxHeaders, MaxBytes: v.MaxHeaderBytes},
		MaxAge:          v.MaxAge.Duration,
		MaxFuture:       v.MaxFuture.Duration,
		DateMaxAge:      v.DateMaxAge.Duration,
		RequireDate:     v.RequireDate,
		RequireIdentity: v.RequireIdentity,
		Strict:          v.Strict,
		MaxChain:        v.MaxChain,
		Now:             now,
		Logger:          log,
	}
	return o, nil
}

// crlSource builds the fetched CRL of [verifier] crl_urls under the [x5u]
// policy and bounds. The [x5u] allow_hosts list is not applied: it
// restricts the URLs callers name in x5u, while CRL URLs are the
// operator's own configuration.
func (c *Config) crlSource(fetch x5u.Options[*certs.Credential], anchors *certs.Anchors, now func() time.Time, log *slog.Logger) (*crl.Source, error) {
	v := c.Verifier
	var signers []*x509.Certificate
	for _, f := range v.CRLSigners {
		b, err := os.ReadFile(c.Resolve(f))
		if err != nil {
			return nil, fmt.Errorf("verifier.crl_signers: %w", err)
		}
		cs, err := certs.ParsePEMChain(b, 100)
		if err != nil {
			return nil, fmt.Errorf("verifier.crl_signers %s: %w", f, err)
		}
		signers = append(signers, cs...)
	}
	pol := fetch.Policy
	pol.AllowHosts = nil
	src, err := crl.New(crl.Options{
		URLs:          v.CRLURLs,
		Discover:      v.CRLFromCerts,
		MaxDiscovered: v.CRLMaxURLs,
		Signers:       signers,
		Roots:         anchors.Pool,
		Fetch: x5u.GetOptions{
			Policy: pol, Resolver: fetch.Resolver, RootCAs: fetch.RootCAs,
			Timeout: fetch.Timeout, MaxBody: v.CRLMaxBody,
		},
		Dir:           c.Resolve(v.CRLDir),
		Grace:         v.CRLGrace.Duration,
		Stale:         crl.Stale(v.CRLStale),
		RefreshBefore: v.CRLRefreshBefore.Duration,
		Retry:         v.CRLRetry.Duration,
		Offline:       c.X5U.Offline,
		Now:           now,
		Logger:        log,
	})
	if err != nil {
		return nil, fmt.Errorf("verifier.crl_urls: %w", err)
	}
	return src, nil
}

// StartRevocation fetches the CRL of o (from crl_urls) now when no good copy is on disk (bounded by
// the x5u timeout, so a first start without network does not hang) and,
// when background is set, keeps it refreshed until the verifier closes.
// Build and NewVerifier call it; a caller building verifiers from
// VerifierOptions itself calls it once. It does nothing without crl_urls.
func StartRevocation(o core.VerifierOptions, background bool) {
	src, ok := o.Revocation.(*crl.Source)
	if !ok {
		return
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	if !src.Due().After(now()) {
		src.Refresh(context.Background()) // failures are logged; the stale policy decides
	}
	if background {
		src.Start()
	}
}

// NewVerifier builds the STI-VS of [verifier] and [x5u].
func (c *Config) NewVerifier(now func() time.Time, log *slog.Logger) (*core.Verifier, error) {
	o, err := c.VerifierOptions(now, log)
	if err != nil {
		return nil, err
	}
	v, err := core.NewVerifier(o)
	if err != nil {
		return nil, err
	}
	StartRevocation(o, false)
	return v, nil
}

// Disposition converts [verifier] mode, reason_protocol and verstat_suffix.
func (c *Config) Disposition() disposition.Options {
	m := disposition.Relaxed
	if c.Verifier.Mode == "strict" {
		m = disposition.Strict
	}
	return disposition.Options{Mode: m, ReasonProtocol: c.Verifier.ReasonProtocol, VerstatSuffix: c.Verifier.VerstatSuffix,
		RCDDisplayName: c.Verifier.RCDDisplayName}
}

// Services is what one configuration asks a node to run. Either half may
// be nil (a node may only sign, or only verify), never both.
type Services struct {
	Signer   *core.Signer
	Verifier *core.Verifier
}

// Close releases the verifier's cache; safe on a nil or partial value.
func (s *Services) Close() {
	if s != nil && s.Verifier != nil {
		s.Verifier.Close()
	}
}

// BuildOptions tunes Build; the zero value is fine.
type BuildOptions struct {
	Now    func() time.Time // nil: time.Now
	Logger *slog.Logger
	// ObserveFetch, when set, is told of every network x5u fetch (the HTTP
	// service feeds a latency histogram with it).
	ObserveFetch func(url string, d time.Duration, err error)
	// X5UShared, when set, is the cluster's shared x5u tier ([x5u]
	// shared_dsn; the fetched CRLs share it too, opened by the caller so that core needs no driver; it
	// outlives reloads, so a changed shared_dsn needs a restart).
	X5UShared x5u.Shared
}

// Build prepares the lab (if any) and builds the signer when [signer] is
// set and the verifier when [verifier] has trust anchors. Every surface
// builds its core this way, so that "what runs" reads the same everywhere.
func (c *Config) Build(o BuildOptions) (*Services, error) {
	if err := c.PrepareLab(time.Now(), o.Logger); err != nil {
		return nil, err
	}
	s := &Services{}
	if len(c.Verifier.Trust) > 0 {
		vo, err := c.VerifierOptions(o.Now, o.Logger)
		if err != nil {
			return nil, err
		}
		vo.Fetch.Observe = o.ObserveFetch
		vo.Fetch.Shared = o.X5UShared
		if src, ok := vo.Revocation.(*crl.Source); ok && o.X5UShared != nil {
			// The CRL too is fetched once per refresh for the cluster.
			src.SetShared(o.X5UShared)
		}
		if s.Verifier, err = core.NewVerifier(vo); err != nil {
			return nil, err
		}
		StartRevocation(vo, true)
	}
	if c.Signing() {
		var err error
		if s.Signer, err = c.newSigner(o.Now, o.Logger, revokedBy(s.Verifier)); err != nil {
			s.Close()
			return nil, err
		}
	}
	if s.Signer == nil && s.Verifier == nil {
		return nil, errors.New("nothing to run: no [signer] or [[tenant]] and no [verifier] trust anchors")
	}
	return s, nil
}

// X5UOptions converts [x5u] into fetch options for values of type T; the
// caller sets Validate. The verifier fetches certificate chains with it,
// and the libsecsipid drop-in plain content, under the same URL policy.
func X5UOptions[T any](c *Config) (x5u.Options[T], error) {
	x := c.X5U
	o := x5u.Options[T]{
		Policy: x5u.Policy{
			AllowHTTP:  x.AllowHTTP,
			Ports:      x.Ports,
			AllowHosts: x.AllowHosts,
			LabHosts:   x.LabHosts,
		},
		Timeout:     x.Timeout.Duration,
		MaxBody:     x.MaxBody,
		MinTTL:      x.MinTTL.Duration,
		MaxTTL:      x.MaxTTL.Duration,
		DefaultTTL:  x.DefaultTTL.Duration,
		NegativeTTL: x.NegativeTTL.Duration,
		MaxEntries:  x.MaxEntries,
		Dir:         c.ResolveCache(x.CacheDir),
		Offline:     x.Offline,

		MaxFetches:        x.MaxFetches,
		MaxFetchesPerHost: x.MaxFetchesPerHost,
		DiskMaxEntries:    x.DiskMaxEntries,
		DiskMaxBytes:      x.DiskMaxBytes,
	}
	if len(x.Preload) > 0 {
		o.Preload = map[string]string{}
		for u, f := range x.Preload {
			o.Preload[u] = c.Resolve(f)
		}
	}
	if x.CAFile != "" {
		pemBytes, err := os.ReadFile(c.Resolve(x.CAFile))
		if err != nil {
			return o, fmt.Errorf("x5u.ca_file: %w", err)
		}
		o.RootCAs = x509.NewCertPool()
		if !o.RootCAs.AppendCertsFromPEM(pemBytes) {
			return o, fmt.Errorf("x5u.ca_file %s: no PEM certificate", x.CAFile)
		}
	}
	return o, nil
}

func durations(ds []Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Duration
	}
	return out
}
