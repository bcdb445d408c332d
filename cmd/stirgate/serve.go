package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/config"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/core/x5u"
	"github.com/stirgate/stirgate/httpapi"
	"github.com/stirgate/stirgate/internal/pgshared"
	"github.com/stirgate/stirgate/outcome"
	"github.com/stirgate/stirgate/outcome/web"
	"github.com/stirgate/stirgate/sipredirect"
)

func init() {
	register("serve", "run the services: HTTP API, x5u certificates, metrics, SIP redirect (default: lab config)", runServe)
}

// defaultSIPListen is where `make run` (no --config) answers SIP.
const defaultSIPListen = "127.0.0.1:5060"

// generation is everything one configuration builds. A reload builds a new
// one and swaps it in; the old verifier is closed once requests that may
// still hold it are done.
type generation struct {
	cfg      *config.Config
	signer   *core.Signer
	verifier *core.Verifier
	api      *httpapi.API
	sip      *sipredirect.Handler
}

// process is what outlives a reload: the handlers mounted beside the API,
// the outcome writer and the cluster's shared x5u cache.
type process struct {
	extra map[string]http.Handler
	rec   *recording // outcome writer and spool collector
	x5u   x5u.Shared // nil: no shared tier
}

func (g *generation) close() {
	if g != nil && g.verifier != nil {
		_ = g.verifier.Close()
	}
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (default: embedded lab config in ./.stirgate)")
	demoFlag := fs.Bool("demo", false, "sign and verify a sample call at start (always on without --config)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *cfgPath != "" {
		// An absolute path keeps the config-relative files (lab dir, keys)
		// resolving to the same place after a reload, whatever the cwd.
		if abs, err := filepath.Abs(*cfgPath); err == nil {
			*cfgPath = abs
		}
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "stirgate serve: %v\n", err)
		return exitUsage
	}
	lab := *cfgPath == ""
	if lab {
		cfg.SIP.Listen = []config.SIPListen{{Address: defaultSIPListen}}
	}
	log := newLogger(stderr, cfg.Log)
	metrics := httpapi.NewMetrics(nil)
	var draining atomic.Bool
	ready := func(g *generation) func() error {
		return func() error {
			if draining.Load() {
				return errors.New("shutting down")
			}
			if g.signer == nil && g.verifier == nil {
				return errors.New("neither signer nor verifier configured")
			}
			return httpapi.Readiness(g.signer, g.verifier, time.Now())
		}
	}
	var current atomic.Pointer[generation]
	// The outcome pages read the store the AMI listener and FastAGI write.
	// They are a convenience: a store that cannot be opened is logged and
	// the pages are left out rather than failing the service.
	extra := map[string]http.Handler{}
	sc := cfg.Store.WithDefaults()
	// Every signing and verification of the SIP and HTTP services is
	// recorded; with no store, nothing is.
	rec := &recording{}
	octx, ocancel := context.WithTimeout(ctx, 5*time.Second)
	defer ocancel()
	if st, err := outcome.Open(octx, outcome.Options{Driver: sc.Driver, Path: cfg.ResolveState(sc.Path), DSN: sc.DSN.Reveal(),
		Retention: time.Duration(sc.RetentionDays) * 24 * time.Hour, Logger: log}); err != nil {
		log.Warn("outcome store not opened; /outcomes and /dashboard are off", "error", err)
	} else {
		defer st.Close()
		rec = serveRecorder(st, cfg, sc, log)
		defer rec.stop()
		pages := web.Handler(web.Options{Store: st, Logger: log, Certs: func() []web.CertInfo {
			g := current.Load()
			if g == nil {
				return nil
			}
			var out []web.CertInfo
			if g.signer != nil {
				out = append(out, signerCerts(g.signer)...)
			}
			if g.verifier != nil {
				for _, c := range g.verifier.Anchors() {
					out = append(out, web.CertInfo{Kind: "trust anchor", Name: c.Subject.CommonName, NotAfter: c.NotAfter})
				}
				for _, c := range g.verifier.CRL().Info() {
					out = append(out, web.CertInfo{Kind: "CRL", Name: c.Issuer, NotAfter: c.NextUpdate})
				}
			}
			return out
		}})
		extra["/outcomes"], extra["/dashboard"] = pages, pages
	}
	ps := &process{extra: extra, rec: rec}
	if dsn := cfg.X5U.SharedDSN.Reveal(); dsn != "" {
		xctx, xcancel := context.WithTimeout(ctx, 10*time.Second)
		sh, err := pgshared.Open(xctx, pgshared.Options{DSN: dsn, MaxEntries: cfg.X5U.SharedMaxEntries})
		xcancel()
		if err != nil {
			fmt.Fprintf(stderr, "stirgate serve: x5u.shared_dsn: %v\n", err)
			return exitUsage
		}
		defer sh.Close()
		ps.x5u = sh
		log.Info("x5u cache shared through PostgreSQL", "node", cfg.Node.WithDefaults().Name)
	}
	gen, err := build(cfg, log, metrics, ready, ps)
	if err != nil {
		fmt.Fprintf(stderr, "stirgate serve: %v\n", err)
		return exitUsage
	}
	current.Store(gen)
	defer func() { current.Load().close() }()

	// HTTP: the API listener (signing, verification, outcomes, dashboard,
	// metrics; loopback or authenticated, which config enforces) and the
	// public listener (certificates and /healthz only).
	hcfg := cfg.HTTP.WithDefaults()
	sw := httpapi.NewSwitch(gen.api)
	pubSw := httpapi.NewSwitch(gen.api.Public())
	herr := make(chan error, 2)
	lns := cfg.HTTPListeners()
	hsrv, err := startHTTP(cfg, "api", lns.API, cfg.HTTP.TLSCert, cfg.HTTP.TLSKey, sw, herr, log)
	if err != nil {
		fmt.Fprintf(stderr, "stirgate serve: %s: %v\n", lns.APIKey, err)
		return exitUsage
	}
	psrv, err := startHTTP(cfg, "public", lns.Publish, cfg.Publish.TLSCert, cfg.Publish.TLSKey, pubSw, herr, log)
	if err != nil {
		if hsrv != nil {
			_ = hsrv.Close()
		}
		fmt.Fprintf(stderr, "stirgate serve: %s: %v\n", lns.PublishKey, err)
		return exitUsage
	}
	if hsrv != nil && len(cfg.HTTP.Tokens) == 0 {
		log.Warn("api has no [[http.token]]: every process on this host may sign and read outcomes", "addr", lns.API)
	}

	// SIP redirect.
	var ssrv *sipredirect.Server
	serr := make(chan error, 1)
	if cfg.SIP.Enabled() {
		sc := cfg.SIP.WithDefaults()
		var ls []sipredirect.Listener
		for _, l := range sc.Listen {
			for _, n := range []string{"udp", "tcp"} {
				if l.Transport == n || l.Transport == "both" {
					ls = append(ls, sipredirect.Listener{Network: n, Address: l.Address, Mode: sipredirect.Mode(l.Mode)})
				}
			}
		}
		ssrv, err = sipredirect.Listen(sipredirect.ServerOptions{
			Listeners:   ls,
			Handler:     gen.sip,
			MaxInflight: sc.MaxInflight,
			IdleTimeout: sc.IdleTimeout.Duration,
			MaxConns:    sc.MaxConns,
			// A source's share and the first-message deadline keep idle
			// TCP peers from locking the switches out.
			MaxConnsPerSource:   sc.TCPMaxPerSource,
			FirstMessageTimeout: sc.TCPFirstMessageTimeout.Duration,
			Dropped:             func(reason string) { metrics.Dropped("sip", reason) },
			Logger:              log,
		})
		switch {
		case err != nil && lab:
			// The demo must still run when the default SIP port is taken.
			log.Warn("sip redirect not started", "error", err)
			ssrv = nil
		case err != nil:
			fmt.Fprintf(stderr, "stirgate serve: %v\n", err)
			return exitUsage
		default:
			go func() { serr <- ssrv.Serve(context.Background()) }()
			log.Info("sip redirect listening", "addrs", ssrv.Addrs())
		}
	}
	if hsrv == nil && psrv == nil && ssrv == nil {
		fmt.Fprintln(stderr, "stirgate serve: nothing to serve: set [http] listen, [publish] listen, [lab] dir or [[sip.listen]]")
		return exitUsage
	}

	if (lab || *demoFlag) && gen.signer != nil && gen.verifier != nil {
		demo(ctx, gen.signer, gen.verifier, stdout)
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	code := exitOK
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-hup:
			if *cfgPath == "" {
				log.Warn("reload ignored: no --config file")
				continue
			}
			old := current.Load()
			next, err := reload(*cfgPath, old.cfg, log, metrics, ready, ps)
			if err != nil {
				metrics.Reloaded(false)
				log.Error("reload failed; keeping the running configuration", "error", err, "hash", old.cfg.Hash)
				continue
			}
			current.Store(next)
			sw.Store(next.api)
			pubSw.Store(next.api.Public())
			if ssrv != nil {
				ssrv.SetHandler(next.sip)
			}
			metrics.SetSource(httpapi.Source{Signer: next.signer, Verifier: next.verifier})
			metrics.Reloaded(true)
			// Requests already running may still use the old verifier.
			time.AfterFunc(30*time.Second, old.close)
			log.Info("reloaded", "hash", next.cfg.Hash, "previous", old.cfg.Hash)
		case err := <-herr:
			if !errors.Is(err, http.ErrServerClosed) {
				fmt.Fprintf(stderr, "stirgate serve: http: %v\n", err)
				code = exitFail
			}
			break loop
		case err := <-serr:
			if !errors.Is(err, sipredirect.ErrServerClosed) {
				fmt.Fprintf(stderr, "stirgate serve: sip: %v\n", err)
				code = exitFail
			}
			break loop
		}
	}

	// Graceful stop: readiness fails first so balancers drain, then the
	// listeners close and requests in flight finish within the grace.
	draining.Store(true)
	log.Info("stopping", "grace", hcfg.ShutdownGrace.Duration)
	sctx, cancel := context.WithTimeout(context.Background(), hcfg.ShutdownGrace.Duration)
	defer cancel()
	if hsrv != nil {
		_ = hsrv.Shutdown(sctx)
	}
	if psrv != nil {
		_ = psrv.Shutdown(sctx)
	}
	if ssrv != nil {
		_ = ssrv.Shutdown(sctx)
	}
	log.Info("stopped")
	return code
}

// reload loads, validates and builds a new generation. Listener addresses
// are fixed at start; a change is reported and needs a restart.
func reload(path string, old *config.Config, log *slog.Logger, m *httpapi.Metrics, ready func(*generation) func() error, ps *process) (*generation, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	g, err := build(cfg, log, m, ready, ps)
	if err != nil {
		return nil, err
	}
	if fmt.Sprint(cfg.SIP.Listen) != fmt.Sprint(old.SIP.Listen) || cfg.HTTPListeners() != old.HTTPListeners() {
		log.Warn("listen addresses changed; they take effect at the next restart")
	}
	if cfg.X5U.SharedDSN != old.X5U.SharedDSN {
		log.Warn("x5u.shared_dsn changed; it takes effect at the next restart")
	}
	return g, nil
}

// build makes one generation from cfg: lab, signer, verifier (with x5u
// fetch metrics), HTTP API (with the extra handlers mounted) and SIP
// handler.
func build(cfg *config.Config, log *slog.Logger, m *httpapi.Metrics, ready func(*generation) func() error, ps *process) (*generation, error) {
	g := &generation{cfg: cfg}
	svc, err := cfg.Build(config.BuildOptions{Logger: log, ObserveFetch: m.ObserveFetch, X5UShared: ps.x5u})
	if err != nil {
		return nil, err
	}
	g.signer, g.verifier = svc.Signer, svc.Verifier
	if g.verifier == nil {
		log.Warn("no [verifier] trust anchors: verification is off")
	}
	if g.signer == nil {
		log.Warn("no [signer]: signing is off")
	}
	hc := cfg.HTTP.WithDefaults()
	auth, err := apiAuth(cfg.HTTP)
	if err != nil {
		g.close()
		return nil, err
	}
	api, err := httpapi.New(httpapi.Options{
		Auth:       auth,
		Signer:     g.signer,
		Verifier:   g.verifier,
		Metrics:    m,
		MaxBody:    hc.MaxBody,
		CertMaxAge: hc.CertMaxAge.Duration,
		CertName:   hc.CertName,
		Timeout:    hc.Timeout.Duration,
		Ready:      ready(g),
		Mount:      ps.extra,
		Logger:     log,
		Recorder:   ps.rec.recorder(),
		System:     ps.rec.system,
	})
	if err != nil {
		g.close()
		return nil, err
	}
	g.api = api
	so, err := sipOptions(cfg, g, m, log)
	so.Recorder, so.System = ps.rec.recorder(), ps.rec.system
	if err == nil {
		g.sip, err = sipredirect.NewHandler(so)
	}
	if err != nil {
		g.close()
		return nil, err
	}
	m.SetSource(httpapi.Source{Signer: g.signer, Verifier: g.verifier})
	return g, nil
}

// sipOptions converts [sip] (and the verifier's disposition) into the
// redirect handler's options.
func sipOptions(cfg *config.Config, g *generation, m *httpapi.Metrics, log *slog.Logger) (sipredirect.Options, error) {
	sc := cfg.SIP.WithDefaults()
	allow, err := config.ParsePrefixes(sc.Allow)
	if err != nil {
		return sipredirect.Options{}, fmt.Errorf("sip.allow: %w", err)
	}
	o := sipredirect.Options{
		Signer:               g.signer,
		Verifier:             g.verifier,
		Disposition:          cfg.Disposition(),
		RequireIdentity:      cfg.Verifier.RequireIdentity,
		Allow:                allow,
		Contact:              sc.Contact,
		Unsigned:             sc.Unsigned,
		Reason:               sc.Reason,
		AttestationHeader:    sc.AttestationHeader,
		AttestationIndicator: sc.AttestationIndicator,
		OriginationID:        sc.OriginationID,
		Timeout:              sc.Timeout.Duration,
		Observe: func(op string, d time.Duration, outcome, errName string) {
			m.Observe("sip", op, d, outcome, errName)
		},
		Logger: log,
	}
	for _, p := range sc.Profiles {
		src, err := config.ParsePrefixes(p.Sources)
		if err != nil {
			return o, fmt.Errorf("sip.profile %s: %w", p.Name, err)
		}
		o.Profiles = append(o.Profiles, sipredirect.Profile{Name: p.Name, Sources: src, IdentityHeader: p.IdentityHeader, DateHeader: p.DateHeader})
	}
	if len(allow) == 0 && cfg.SIP.Enabled() {
		log.Info("sip allow-list empty: answering loopback only")
	}
	return o, nil
}

// startHTTP serves h on addr ("" = not at all) in the background,
// reporting Serve's end on errc. TLS comes from certFile/keyFile, else
// the lab TLS certificate under [lab], else none (a TLS proxy in front).
func startHTTP(cfg *config.Config, name, addr, certFile, keyFile string, h http.Handler, errc chan<- error, log *slog.Logger) (*http.Server, error) {
	if addr == "" {
		return nil, nil
	}
	certFile, keyFile = cfg.Resolve(certFile), cfg.Resolve(keyFile)
	if certFile == "" && cfg.Lab.Dir != "" {
		dir := cfg.ResolveState(cfg.Lab.WithDefaults().Dir)
		certFile, keyFile = filepath.Join(dir, config.LabTLSCert), filepath.Join(dir, config.LabTLSKey)
	}
	var tlsConf *tls.Config
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		TLSConfig:         tlsConf,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		if tlsConf != nil {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	scheme := "http"
	if tlsConf != nil {
		scheme = "https"
	}
	log.Info("http listening", "listener", name, "url", scheme+"://"+ln.Addr().String())
	return srv, nil
}

// apiAuth converts [[http.token]] and [http] allow into the API's
// authentication; nil when neither is set (config allows that only on
// loopback).
func apiAuth(h config.HTTP) (*httpapi.Auth, error) {
	allow, err := config.ParsePrefixes(h.Allow)
	if err != nil {
		return nil, fmt.Errorf("http.allow: %w", err)
	}
	if len(h.Tokens) == 0 && len(allow) == 0 {
		return nil, nil
	}
	a := &httpapi.Auth{Allow: allow, Tokens: map[string]*httpapi.Client{}}
	for _, t := range h.Tokens {
		a.Tokens[strings.ToLower(t.SHA256)] = &httpapi.Client{Name: t.Name, Customer: t.Customer, Scopes: t.Scopes}
	}
	return a, nil
}

// demo signs a sample call and verifies it through the live x5u endpoint,
// so a newcomer sees both halves work within seconds of `make run`.
func demo(ctx context.Context, s *core.Signer, v *core.Verifier, w io.Writer) {
	from := `"Lab Caller" <sip:+12155550121@lab.example;user=phone>;tag=1`
	to := `<sip:+12155550131@lab.example;user=phone>`
	res, err := s.Sign(ctx, core.SignRequest{From: from, To: to, Attest: stir.AttestFull, Trusted: true, CallID: "lab-demo"})
	if err != nil {
		fmt.Fprintf(w, "sample signing failed: %v\n", err)
		return
	}
	fmt.Fprintf(w, "Signed sample call %s -> %s (attest %s):\nIdentity: %s\nDate: %s\n\n", res.Orig, res.Dest[0], res.Attest, res.Identity, res.Date)
	vctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r := v.Verify(vctx, core.VerifyRequest{Identity: []string{res.Identity}, From: from, To: to, Date: res.Date})
	fmt.Fprintf(w, "Verified: result=%s verstat=%s attest=%s spc=%s", r.Result, r.Verstat, r.Attest, r.SPC)
	if r.Error != "" {
		fmt.Fprintf(w, " error=%s (%d %s) %s", r.Error, r.SIPCode, r.Reason, r.Detail)
	}
	fmt.Fprintln(w)
}

// signerCerts lists every certificate the signer's tenants sign with,
// current and next, for the dashboard's expiry panel.
func signerCerts(s *core.Signer) []web.CertInfo {
	var out []web.CertInfo
	add := func(kind string, chain []*x509.Certificate) {
		for _, c := range chain {
			out = append(out, web.CertInfo{Kind: kind, Name: c.Subject.CommonName, NotAfter: c.NotAfter})
		}
	}
	for _, t := range s.Tenants() {
		kind := "signing"
		if t.Name != core.DefaultTenant {
			kind = "signing, tenant " + t.Name
		}
		add(kind, t.Credential.Chain)
		if t.Next != nil {
			add(kind+", next from "+t.Next.Activate.UTC().Format(time.RFC3339), t.Next.Credential.Chain)
		}
	}
	return out
}
