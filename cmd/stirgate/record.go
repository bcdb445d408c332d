package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/stirgate/stirgate/core/config"
	"github.com/stirgate/stirgate/outcome"
)

// recording is what `stirgate serve` records through: a Writer in front
// of the store (so that a slow database never delays a SIP or HTTP
// answer) and, with [store] spool_dir, the collector of the Kamailio
// workers' spool files.
type recording struct {
	w      *outcome.Writer // nil: nothing is recorded
	system string
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// recorder is the Recorder to hand to the services, or nil.
func (r *recording) recorder() outcome.Recorder {
	if r == nil || r.w == nil {
		return nil
	}
	return r.w
}

// serveRecorder starts the writer and the collector on st.
func serveRecorder(st outcome.Store, cfg *config.Config, sc config.Store, log *slog.Logger) *recording {
	r := &recording{system: systemName(cfg, sc)}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	// Linger: one transaction per 250 ms (or per 512 outcomes) instead of
	// one per call or two. Each commit writes pages with blocking-style
	// system calls, and the first after an idle moment wakes the runtime's
	// monitor thread, which then polls for a millisecond or more: at 1,000
	// calls/s, 250 ms instead of 50 ms cut the CPU per signed 302 by about a
	// tenth and the context switches per call from 2.35 to 2.05 (paired
	// runs, make bench-capacity). The journal (on by default) holds each
	// outcome from the moment it is recorded, so the wait risks nothing
	// there; the dashboard is a quarter of a second behind.
	r.w = outcome.NewWriter(st, outcome.WriterOptions{SpillPath: spillPathFor(cfg.ResolveState(sc.SpillPath), "serve"),
		JournalDir: journalDirFor(cfg, sc, "serve"), Linger: 250 * time.Millisecond, Logger: log})
	r.wg.Add(1)
	go func() { defer r.wg.Done(); _ = r.w.Run(ctx) }()
	if sc.SpoolDir != "" {
		dir := cfg.ResolveState(sc.SpoolDir)
		log.Info("collecting the spool", "dir", dir)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			outcome.RunCollector(ctx, st, outcome.CollectOptions{Dir: dir, Logger: log})
		}()
	}
	return r
}

// stop drains the writer and ends the collector; the store closes after.
func (r *recording) stop() {
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
}

// systemName is [store] system, else the host name.
func systemName(cfg *config.Config, sc config.Store) string {
	if sc.System != "" {
		return sc.System
	}
	// [node] name, which defaults to the host name: in a cluster every
	// node's records say which node answered.
	return cfg.Node.WithDefaults().Name
}

// journalDirFor gives each command its own journal under [store]
// journal_dir, for the reason spillPathFor gives; "" when it is off.
func journalDirFor(cfg *config.Config, sc config.Store, cmd string) string {
	if sc.JournalDir == config.JournalOff || sc.JournalDir == "" {
		return ""
	}
	return filepath.Join(cfg.ResolveState(sc.JournalDir), cmd)
}

// spillPathFor gives each command its own spill file beside [store]
// spill_path: two writers must never replay and truncate each other's
// backlog.
func spillPathFor(p, cmd string) string {
	if base, ok := strings.CutSuffix(p, ".jsonl"); ok {
		return base + "." + cmd + ".jsonl"
	}
	return p + "." + cmd
}
