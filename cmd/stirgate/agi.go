package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"syscall"
	"time"

	"github.com/stirgate/stirgate/agi"
	"github.com/stirgate/stirgate/core/config"
	"github.com/stirgate/stirgate/httpapi"
	"github.com/stirgate/stirgate/outcome"
)

func init() {
	register("agi", "run the FastAGI server for Asterisk dialplans (agi://host:4573/sign, /verify)", runAGI)
}

// runAGI runs the FastAGI server until SIGINT/SIGTERM (ctx), then drains
// sessions for [agi] shutdown_grace. SIGHUP reloads the config: a new
// signer and verifier replace the old ones for new sessions; on any error
// the old ones stay.
func runAGI(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("agi", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (default: embedded lab config in ./.stirgate)")
	listen := fs.String("listen", "", "listen address, overriding [agi] listen")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "stirgate agi: %v\n", err)
		return exitUsage
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return fail(err)
	}
	if *listen != "" {
		// --listen is held to the rule config check applies to the file.
		exposed := cfg.AGI
		exposed.Listen = *listen
		if err := exposed.CheckExposure(); err != nil {
			return fail(err)
		}
	}
	log := newLogger(stderr, cfg.Log).With("surface", "agi")
	metrics := httpapi.NewMetrics(nil)
	svc, closeSvc, err := agiService(cfg, log, metrics)
	if err != nil {
		return fail(err)
	}
	defer func() { closeSvc() }()

	ac := cfg.AGI.WithDefaults()
	if *listen != "" {
		ac.Listen = *listen
	}
	allow, err := config.ParsePrefixes(ac.Allow)
	if err != nil {
		return fail(fmt.Errorf("agi.allow: %w", err))
	}
	system := ac.System
	if system == "" {
		system = cfg.AMI.System
	}
	if system == "" {
		system, _ = os.Hostname()
	}

	// The outcome store runs on its own context: it must outlive the
	// sessions' drain so that their last outcomes are written.
	recCtx, stopRec := context.WithCancel(context.Background())
	defer stopRec()
	rec, recDone, err := agiRecorder(recCtx, cfg, log)
	if err != nil {
		return fail(err)
	}

	srv := agi.NewServer(agi.Options{
		Service:              svc,
		Recorder:             rec,
		Logger:               log,
		System:               system,
		SessionTimeout:       ac.SessionTimeout.Duration,
		MaxSessions:          ac.MaxSessions,
		MaxSessionsPerSource: ac.MaxSessionsPerSource,
		Allow:                allow,
		RequireIdentity:      cfg.Verifier.RequireIdentity,
		MaxIdentityHeaders:   cfg.Verifier.MaxHeaders,
		Observe: func(op string, d time.Duration, outcome, errName string) {
			metrics.Observe("agi", op, d, outcome, errName)
		},
		Dropped: func(reason string) { metrics.Dropped("agi", reason) },
	})
	ln, err := net.Listen("tcp", ac.Listen)
	if err != nil {
		stopRec()
		<-recDone
		return fail(err)
	}
	if ac.MetricsListen != "" {
		stopMetrics, err := serveAGIMetrics(ac.MetricsListen, metrics, log)
		if err != nil {
			_ = ln.Close()
			stopRec()
			<-recDone
			return fail(err)
		}
		defer stopMetrics()
	}
	log.Info("agi listening", "addr", ln.Addr().String(), "system", system, "config", cfg.Hash,
		"session_timeout", ac.SessionTimeout.Duration, "max_sessions", ac.MaxSessions,
		"max_sessions_per_source", ac.MaxSessionsPerSource, "allow", agiAllowed(allow))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), ln) }()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	code := exitOK
loop:
	for {
		select {
		case <-hup:
			next, err := loadConfig(*cfgPath)
			if err == nil {
				var closeNext func()
				var nextSvc agi.Service
				if nextSvc, closeNext, err = agiService(next, log, metrics); err == nil {
					srv.SetService(nextSvc)
					// Sessions that started before the swap keep the old
					// verifier until their deadline.
					old := closeSvc
					time.AfterFunc(ac.SessionTimeout.Duration, old)
					closeSvc = closeNext
					if !reflect.DeepEqual(next.AGI.WithDefaults(), cfg.AGI.WithDefaults()) {
						log.Warn("agi: [agi] changes take effect at restart")
					}
					metrics.Reloaded(true)
					log.Info("config reloaded", "config", next.Hash)
					continue
				}
			}
			metrics.Reloaded(false)
			log.Error("config reload failed; keeping the running config", "err", err, "config", cfg.Hash)
		case err := <-served:
			log.Error("agi server stopped", "err", err)
			code = exitFail
			break loop
		case <-ctx.Done():
			log.Info("agi shutting down", "grace", ac.ShutdownGrace.Duration, "active", srv.Stats().Active)
			sctx, cancel := context.WithTimeout(context.Background(), ac.ShutdownGrace.Duration)
			if err := srv.Shutdown(sctx); err != nil {
				log.Warn("agi sessions aborted at the end of the grace period", "err", err)
			}
			cancel()
			<-served
			break loop
		}
	}
	stopRec()
	<-recDone
	s := srv.Stats()
	log.Info("agi stopped", "accepted", s.Accepted, "rejected", s.Rejected, "failed", s.Failed,
		"recorded", s.Recorded, "record_errors", s.RecordErr)
	return code
}

// agiService builds the signer and verifier the config has; a node may do
// only one of the two, but not neither. m reports them from then on.
func agiService(cfg *config.Config, log *slog.Logger, m *httpapi.Metrics) (agi.Service, func(), error) {
	svc, err := cfg.Build(config.BuildOptions{Logger: log, ObserveFetch: m.ObserveFetch})
	if err != nil {
		return nil, nil, err
	}
	c := agi.Core{Signer: svc.Signer, Verifier: svc.Verifier}
	m.SetSource(httpapi.Source{Signer: svc.Signer, Verifier: svc.Verifier})
	if c.Signer == nil {
		log.Warn("agi: sign sessions will report internal_error", "why", "no [signer] configured")
	}
	if c.Verifier == nil {
		log.Warn("agi: verify sessions will report internal_error", "why", "no [verifier] trust configured")
	}
	closeFn := func() {
		if c.Verifier != nil {
			_ = c.Verifier.Close()
		}
	}
	return c, closeFn, nil
}

// serveAGIMetrics serves /metrics and /healthz on addr until the returned
// stop is called. The listener is bound before returning, so a taken port
// fails the start rather than a scrape later.
func serveAGIMetrics(addr string, m *httpapi.Metrics, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("agi.metrics_listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() { _ = hs.Serve(ln) }()
	log.Info("agi metrics listening", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
	}, nil
}

// agiRecorder opens [store] behind a Writer, so that a slow or unreachable
// database never delays a session: outcomes queue, spill to a file and are
// replayed. done closes once the writer has drained after ctx ends.
func agiRecorder(ctx context.Context, cfg *config.Config, log *slog.Logger) (outcome.Recorder, <-chan struct{}, error) {
	sc := cfg.Store.WithDefaults()
	st, err := outcome.Open(ctx, outcome.Options{
		Driver:    sc.Driver,
		Path:      cfg.ResolveState(sc.Path),
		DSN:       sc.DSN.Reveal(),
		Retention: time.Duration(sc.RetentionDays) * 24 * time.Hour,
		Logger:    log,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("store: %w", err)
	}
	w := outcome.NewWriter(st, outcome.WriterOptions{SpillPath: spillPathFor(cfg.ResolveState(sc.SpillPath), "agi"),
		JournalDir: journalDirFor(cfg, sc, "agi"), Logger: log})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = w.Run(ctx)
		_ = st.Close()
	}()
	return w, done, nil
}

// agiAllowed says in the startup log who may open sessions.
func agiAllowed(allow []netip.Prefix) string {
	if len(allow) == 0 {
		return "loopback only ([agi] allow is empty)"
	}
	parts := make([]string, len(allow))
	for i, p := range allow {
		parts[i] = p.String()
	}
	return strings.Join(parts, ", ")
}
