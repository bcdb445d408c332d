package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/stirgate/stirgate/ami"
	"github.com/stirgate/stirgate/outcome"
)

func init() {
	register("ami", "run the AMI listener that records Asterisk's STIR/SHAKEN outcomes", runAMI)
}

// runAMI connects to Asterisk's AMI ([ami]) and records outcomes into
// [store] until SIGINT/SIGTERM (ctx). The listener stops first; the writer
// then drains its queue, so nothing already read is lost on shutdown.
func runAMI(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ami", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (default: embedded lab config)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "stirgate ami: %v\n", err)
		return exitUsage
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return fail(err)
	}
	log := newLogger(stderr, cfg.Log).With("surface", "ami")
	ac := cfg.AMI.WithDefaults()
	sc := cfg.Store.WithDefaults()
	system := ac.System
	if system == "" {
		system, _ = os.Hostname()
	}
	retention := time.Duration(sc.RetentionDays) * 24 * time.Hour

	// A PostgreSQL that is not up yet (a node rebooting with its database)
	// must not lose Asterisk's events: the listener starts anyway, the
	// writer spills, and the store is opened on a later retry. SQLite
	// failing to open is a local misconfiguration: fail at once.
	st := outcome.NewDeferred(outcome.Options{
		Driver: sc.Driver, Path: cfg.ResolveState(sc.Path), DSN: sc.DSN.Reveal(), Retention: retention, Logger: log,
	})
	defer st.Close()
	if _, err := st.Store(ctx); err != nil {
		if sc.Driver != "postgres" {
			return fail(fmt.Errorf("store: %w", err))
		}
		log.Warn("outcome store unavailable; spilling until it answers", "err", err)
	}
	w := outcome.NewWriter(st, outcome.WriterOptions{QueueSize: ac.QueueSize, SpillPath: cfg.ResolveState(sc.SpillPath),
		JournalDir: journalDirFor(cfg, sc, "ami"), Logger: log})
	l := ami.New(ami.Options{
		Address: ac.Address, Username: ac.Username, Secret: ac.Secret.Reveal(), System: system,
		PingInterval: ac.PingInterval.Duration, Recorder: w, Logger: log,
	})
	log.Info("ami listener starting", "addr", ac.Address, "system", system, "store", sc)

	// The writer outlives the listener: it gets its own context, cancelled
	// only after the listener has returned.
	wctx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.Run(wctx) }()
	if retention > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); retain(ctx, st, retention, log) }()
	}
	runErr := l.Run(ctx)
	stopWriter()
	wg.Wait()
	s, ws := l.Stats(), w.Stats()
	log.Info("ami listener stopped", "logins", s.Logins, "events", s.Events, "outcomes", s.Outcomes,
		"gaps", s.Gaps, "written", ws.Written, "spilled", ws.Spilled, "dropped", ws.Dropped)
	if runErr != nil {
		return fail(runErr)
	}
	return exitOK
}

// retain prunes the store hourly, so retention holds for a listener that
// runs for months.
func retain(ctx context.Context, d *outcome.Deferred, keep time.Duration, log interface {
	Info(string, ...any)
	Warn(string, ...any)
}) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			st, err := d.Store(ctx)
			var n int64
			if err == nil {
				n, err = outcome.Retain(ctx, st, keep, nil)
			}
			if err != nil {
				log.Warn("retention", "err", err)
			} else if n > 0 {
				log.Info("retention pruned", "n", n)
			}
		}
	}
}
