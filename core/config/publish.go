package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Publish is the [publish] section: the public listener of `stirgate
// serve`. It serves the signing chain at /certs/<name>.pem (the x5u target
// every verifier on the internet fetches) and /healthz, nothing else, so it
// is the one port that may face the internet.
type Publish struct {
	// Listen is host:port. Empty: off, unless [lab] is set and [http]
	// listen is too, in which case the lab's listen address publishes.
	Listen string `toml:"listen"`
	// TLSCert and TLSKey (PEM) serve it over TLS; empty: the lab TLS
	// certificate under [lab], else plain HTTP (behind a TLS proxy).
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
}

// Validate checks the [publish] section.
func (p Publish) Validate() error {
	var errs []error
	if p.Listen != "" {
		if _, _, err := net.SplitHostPort(p.Listen); err != nil {
			errs = append(errs, fmt.Errorf("publish.listen %q: %w", p.Listen, err))
		}
	}
	if (p.TLSCert == "") != (p.TLSKey == "") {
		errs = append(errs, errors.New("publish: tls_cert and tls_key go together"))
	}
	return errors.Join(errs...)
}

// APIToken is one [[http.token]]: a named client of the API listener. Only
// the SHA-256 of the token is stored; `stirgate token NAME` makes one.
type APIToken struct {
	Name   string   `toml:"name"`
	SHA256 string   `toml:"sha256"` // hex SHA-256 of the bearer token
	Scopes []string `toml:"scopes"` // sign, verify, read (outcomes, dashboard, metrics)
	// Customer is the [[policy.customer]] this client signs for; empty: the
	// policy matches the client's source address.
	Customer string `toml:"customer"`
}

// Token scopes.
const (
	ScopeSign   = "sign"
	ScopeVerify = "verify"
	ScopeRead   = "read"
)

func (t APIToken) validate(i int, customers map[string]bool) error {
	var errs []error
	if t.Name == "" || strings.ContainsAny(t.Name, " \t\r\n") {
		errs = append(errs, fmt.Errorf("http.token[%d].name %q: a word, no spaces", i, t.Name))
	}
	if b, err := hex.DecodeString(t.SHA256); err != nil || len(b) != 32 {
		errs = append(errs, fmt.Errorf("http.token %q: sha256 is not 64 hex digits (stirgate token NAME prints it)", t.Name))
	}
	if len(t.Scopes) == 0 {
		errs = append(errs, fmt.Errorf("http.token %q: scopes is empty (sign, verify, read)", t.Name))
	}
	for _, s := range t.Scopes {
		switch s {
		case ScopeSign, ScopeVerify, ScopeRead:
		default:
			errs = append(errs, fmt.Errorf("http.token %q: scope %q: want sign, verify or read", t.Name, s))
		}
	}
	if t.Customer != "" && !customers[t.Customer] {
		errs = append(errs, fmt.Errorf("http.token %q: customer %q is no [[policy.customer]]", t.Name, t.Customer))
	}
	return errors.Join(errs...)
}

// Listeners is where `stirgate serve` listens for HTTP, as the config
// resolves it.
type Listeners struct {
	// API serves signing, verification, /outcomes, /dashboard, /metrics,
	// /readyz (and /certs/, /healthz). APIKey names the config key it came
	// from, for messages.
	API, APIKey string
	// Publish serves /certs/ and /healthz only ("" = none).
	Publish, PublishKey string
}

// HTTPListeners resolves [http] listen, [publish] listen and [lab] listen:
//   - [http] listen is the API; [publish] listen the public listener.
//   - Under [lab] with neither set, the lab address serves both, as one
//     listener (loopback by default: `make run`).
//   - Under [lab] with only [http] listen set, the lab address publishes;
//     with only [publish] listen set, the lab address is the API.
func (c *Config) HTTPListeners() Listeners {
	l := Listeners{API: c.HTTP.Listen, APIKey: "http.listen", Publish: c.Publish.Listen, PublishKey: "publish.listen"}
	if c.Lab.Dir != "" {
		lab := c.Lab.WithDefaults().Listen
		switch {
		case l.API == "" && l.Publish == "":
			l.API, l.APIKey = lab, "lab.listen"
		case l.Publish == "":
			l.Publish, l.PublishKey = lab, "lab.listen"
		case l.API == "" && l.Publish != lab:
			l.API, l.APIKey = lab, "lab.listen"
		}
	}
	return l
}

// IsLoopback reports whether a listen address reaches this host only: a
// loopback IP or "localhost". An empty host, 0.0.0.0, :: and any other
// name listen beyond it.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// exposure refuses a config that would serve signing, verification,
// outcomes or the dashboard beyond this host without authentication, and
// checks what ties [http] to the rest of the config.
func (c *Config) exposure() error {
	var errs []error
	l := c.HTTPListeners()
	if l.API != "" && l.API == l.Publish {
		errs = append(errs, fmt.Errorf("%s and %s are both %s: the public listener must serve certificates only; give the API another (loopback) address", l.APIKey, l.PublishKey, l.API))
	}
	if l.API != "" && !IsLoopback(l.API) && len(c.HTTP.Tokens) == 0 {
		errs = append(errs, fmt.Errorf("%s %q is not a loopback address and no [[http.token]] is set: anyone who reaches it could sign calls with A attestation under this certificate and read /outcomes and /dashboard; set [[http.token]] (`stirgate token NAME` prints one) or listen on 127.0.0.1 and publish certificates with [publish] listen", l.APIKey, l.API))
	}
	customers := map[string]bool{}
	for _, cu := range c.Policy.Customers {
		customers[cu.Name] = true
	}
	names := map[string]bool{}
	for i, t := range c.HTTP.Tokens {
		if err := t.validate(i, customers); err != nil {
			errs = append(errs, err)
		}
		if names[t.Name] {
			errs = append(errs, fmt.Errorf("http.token %q: defined twice", t.Name))
		}
		names[t.Name] = true
	}
	return errors.Join(errs...)
}
