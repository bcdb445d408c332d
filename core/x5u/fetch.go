package x5u

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/stirgate/stirgate/core/stir"
)

// Resolver looks up a host's addresses; *net.Resolver satisfies it. Tests
// and deployments with their own DNS plumbing supply another.
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// fetcher performs one bounded HTTPS GET. It holds no connections between
// fetches: each fetch dials the addresses it has just checked, so a pooled
// connection can never carry a request to an address nobody checked.
type fetcher struct {
	resolver Resolver
	roots    *x509.CertPool // extra trust anchors (labs); nil = system only
	maxBody  int64
	accept   string // Accept header; "" = a PEM certificate chain
}

// maxHeaderBytes bounds the response header; a certificate response needs
// a few hundred bytes of it.
const maxHeaderBytes = 16 << 10

// fetched is a 200 response that passed the transport checks.
type fetched struct {
	body   []byte
	header http.Header
}

// fetch GETs raw, parsed as u, whose policy check has passed; lab says it
// was admitted as a lab host, which exempts its addresses from the address
// rules. ctx bounds the whole exchange: DNS, connect, TLS, headers, body.
func (f *fetcher) fetch(ctx context.Context, raw string, u *url.URL, lab bool) (*fetched, error) {
	host := strings.ToLower(u.Hostname())
	port, err := urlPort(u)
	if err != nil {
		return nil, err
	}
	addrs, err := f.resolve(ctx, host, lab)
	if err != nil {
		return nil, err
	}

	hostPort := net.JoinHostPort(host, strconv.Itoa(port))
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if !strings.EqualFold(addr, hostPort) {
			// The transport only ever dials the request's own host;
			// anything else is a bug, and must not reach the network.
			return nil, fmt.Errorf("x5u: refusing to dial %s (fetching %s)", addr, hostPort)
		}
		var d net.Dialer
		var errs []error
		for _, a := range addrs {
			c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(a.String(), strconv.Itoa(port)))
			if err == nil {
				return c, nil
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
		return nil, errors.Join(errs...)
	}
	tr := &http.Transport{
		Proxy:                  nil, // never an environment proxy: it would dial what we did not check
		DialContext:            dial,
		TLSClientConfig:        f.tlsConfig(host),
		DisableKeepAlives:      true,
		DisableCompression:     true, // the body cap must count wire bytes, not a gzip bomb's output
		MaxResponseHeaderBytes: maxHeaderBytes,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, stir.ErrX5UFetchFailed.With("build request", err)
	}
	accept := f.accept
	if accept == "" {
		accept = "application/pem-certificate-chain"
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", "stirgate-x5u")

	resp, err := client.Do(req)
	if err != nil {
		return nil, transportErr(ctx, "request", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400 && resp.Header.Get("Location") != "":
		return nil, stir.ErrX5UFetchFailed.Withf("redirect refused: %s to %q", resp.Status, resp.Header.Get("Location"))
	case resp.StatusCode != http.StatusOK:
		return nil, stir.ErrX5UFetchFailed.Withf("status %s", resp.Status)
	case resp.ContentLength > f.maxBody:
		return nil, stir.ErrX5UBadContent.Withf("body of %d bytes exceeds %d", resp.ContentLength, f.maxBody)
	}
	// One byte more than allowed tells an oversized body from one that is
	// exactly at the cap, without reading any further.
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBody+1))
	if err == nil && ctx.Err() != nil {
		// A response that races the deadline is not trusted to be whole:
		// the peer may have given up at the same instant we did.
		err = ctx.Err()
	}
	if err != nil {
		return nil, transportErr(ctx, "read body", err)
	}
	switch {
	case int64(len(body)) > f.maxBody:
		return nil, stir.ErrX5UBadContent.Withf("body exceeds %d bytes", f.maxBody)
	case len(body) == 0:
		return nil, stir.ErrX5UBadContent.Withf("empty body")
	}
	return &fetched{body: body, header: resp.Header}, nil
}

// resolve returns the addresses to dial, each checked against the address
// rules unless the host is a lab host. One forbidden address refuses the
// whole name: dialing only the good ones would let a hostile zone choose.
func (f *fetcher) resolve(ctx context.Context, host string, lab bool) ([]netip.Addr, error) {
	if a, ok := parseIP(host); ok {
		return []netip.Addr{a}, nil
	}
	ias, err := f.resolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, transportErr(ctx, "resolve "+host, err)
	}
	if len(ias) == 0 {
		return nil, stir.ErrX5UFetchFailed.Withf("resolve %s: no addresses", host)
	}
	addrs := make([]netip.Addr, 0, len(ias))
	for _, ia := range ias {
		a, ok := netip.AddrFromSlice(ia.IP)
		if !ok {
			return nil, stir.ErrX5UFetchFailed.Withf("resolve %s: malformed address %v", host, ia.IP)
		}
		a = a.Unmap().WithZone(ia.Zone)
		if !lab {
			if why := forbiddenAddr(a); why != "" {
				return nil, stir.ErrX5UForbidden.Withf("host %q resolves to %s, which is %s", host, a, why)
			}
		}
		addrs = append(addrs, a)
	}
	return addrs, nil
}

// tlsConfig verifies against the system roots and, when configured, also
// against the extra lab roots. crypto/tls offers one pool only, so with
// extra roots the chain is verified here, with the same checks crypto/tls
// would make (name, validity, server-auth usage); the handshake itself
// still proves possession of the leaf key.
func (f *fetcher) tlsConfig(serverName string) *tls.Config {
	cfg := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	if f.roots == nil {
		return cfg
	}
	extra := f.roots
	cfg.InsecureSkipVerify = true // replaced by VerifyConnection below
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("x5u: server sent no certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		opts := x509.VerifyOptions{DNSName: serverName, Intermediates: inter}
		if _, err := cs.PeerCertificates[0].Verify(opts); err == nil {
			return nil
		}
		opts.Roots = extra
		_, err := cs.PeerCertificates[0].Verify(opts)
		return err
	}
	return cfg
}

// transportErr names a failed exchange, calling a deadline a timeout so
// that logs say which bound was hit.
func transportErr(ctx context.Context, what string, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return stir.ErrX5UFetchFailed.With(what+": timeout", err)
	}
	return stir.ErrX5UFetchFailed.With(what, err)
}
