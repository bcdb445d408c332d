package x5u

import (
	"context"
	"crypto/x509"
	"net"
	"time"
)

// GetOptions bounds one Get. Zero fields take the x5u defaults, so that
// other fetched PKI data (the STI-PA CRL) obeys the same URL policy, time
// and size limits as certificate chains.
type GetOptions struct {
	Policy
	Resolver Resolver       // nil: net.DefaultResolver
	RootCAs  *x509.CertPool // extra TLS roots (labs); nil: system only
	Timeout  time.Duration  // whole exchange (default DefaultTimeout)
	MaxBody  int64          // bytes (default DefaultMaxBody)
	Accept   string         // Accept header (default a PEM chain)
}

// Get fetches raw once under o: the URL policy first, then the address
// rules on every resolved address, then a bounded GET with no redirects.
// It caches nothing. Errors are *stir.Error (x5u_forbidden,
// x5u_fetch_failed, x5u_bad_content).
func Get(ctx context.Context, raw string, o GetOptions) ([]byte, error) {
	if err := o.Policy.Validate(); err != nil {
		return nil, err
	}
	u, lab, err := checkURL(raw, o.Policy)
	if err != nil {
		return nil, err
	}
	f := fetcher{resolver: o.Resolver, roots: o.RootCAs, maxBody: orDefault(o.MaxBody, DefaultMaxBody), accept: o.Accept}
	if f.resolver == nil {
		f.resolver = net.DefaultResolver
	}
	ctx, cancel := context.WithTimeout(ctx, orDefault(o.Timeout, DefaultTimeout))
	defer cancel()
	r, err := f.fetch(ctx, raw, u, lab)
	if err != nil {
		return nil, err
	}
	return r.body, nil
}
