package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/stirgate/stirgate/outcome"
)

func init() {
	register("collect", "move the Kamailio workers' spooled outcomes ([store] spool_dir) into the store", runCollect)
}

// runCollect is the collector of `stirgate serve` on its own, for a
// Kamailio host that runs no other stirgate service.
func runCollect(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("collect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file with [store] spool_dir")
	once := fs.Bool("once", false, "one pass, then exit (print how many outcomes were stored)")
	interval := fs.Duration("interval", time.Second, "time between passes")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "stirgate collect: %v\n", err)
		return exitUsage
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return fail(err)
	}
	sc := cfg.Store.WithDefaults()
	if sc.SpoolDir == "" {
		return fail(errors.New("[store] spool_dir is not set"))
	}
	log := newLogger(stderr, cfg.Log)
	st, err := outcome.Open(ctx, outcome.Options{Driver: sc.Driver, Path: cfg.ResolveState(sc.Path), DSN: sc.DSN.Reveal(),
		Retention: time.Duration(sc.RetentionDays) * 24 * time.Hour, Logger: log})
	if err != nil {
		return fail(fmt.Errorf("store: %w", err))
	}
	defer st.Close()
	o := outcome.CollectOptions{Dir: cfg.ResolveState(sc.SpoolDir), Interval: *interval, Logger: log}
	if *once {
		n, err := outcome.Collect(ctx, st, o)
		fmt.Fprintf(stdout, "%d\n", n)
		if err != nil {
			fmt.Fprintf(stderr, "stirgate collect: %v\n", err)
			return exitFail
		}
		return exitOK
	}
	log.Info("collecting the spool", "dir", o.Dir)
	outcome.RunCollector(ctx, st, o)
	return exitOK
}
