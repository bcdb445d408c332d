package outcome

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/stirgate/stirgate/outcome/spool"
)

// CollectOptions configures Collect and RunCollector.
type CollectOptions struct {
	// Dir is the spool directory the writers of package spool fill.
	Dir string
	// Interval between passes of RunCollector (default 1 s).
	Interval time.Duration
	// BatchSize is the most outcomes written in one transaction (512).
	BatchSize int
	Logger    *slog.Logger
}

// Collect moves every finished spool file of o.Dir into st: sealed files,
// and open files whose writer is gone (a Kamailio worker that exited or
// was killed leaves its file unlocked). A file is removed only after all
// its records are stored; if the store fails, the file stays for the next
// pass. Storing is idempotent, so a file ingested twice (a crash between
// store and remove, two collectors) merges into the same rows.
func Collect(ctx context.Context, st BatchRecorder, o CollectOptions) (int, error) {
	if o.BatchSize <= 0 {
		o.BatchSize = 512
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	ents, err := os.ReadDir(o.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		if n := e.Name(); e.Type().IsRegular() && (strings.HasSuffix(n, spool.SuffixSealed) || strings.HasSuffix(n, spool.SuffixOpen)) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	total := 0
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		k, err := collectFile(ctx, st, filepath.Join(o.Dir, n), o)
		total += k
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func collectFile(ctx context.Context, st BatchRecorder, path string, o CollectOptions) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil // sealed or collected meanwhile
	}
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	if strings.HasSuffix(path, spool.SuffixOpen) {
		// A live writer holds the lock; only a dead one's file is ours.
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			return 0, nil
		}
		// The writer may have sealed (renamed) it just before dying.
		if _, err := os.Stat(path); err != nil {
			return 0, nil
		}
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return 0, fmt.Errorf("spool: %s: %w", filepath.Base(path), err)
	}
	// An open segment is NUL-padded past its last record.
	if i := bytes.IndexByte(data, 0); i >= 0 {
		data = data[:i]
	}
	batch := make([]Outcome, 0, o.BatchSize)
	n, skipped := 0, 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := st.RecordBatch(ctx, batch); err != nil {
			return err
		}
		n += len(batch)
		batch = batch[:0]
		return nil
	}
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var rec Outcome
		if err := json.Unmarshal(line, &rec); err != nil || rec.valid() != nil {
			// A torn last line of a killed writer, or garbage.
			skipped++
			continue
		}
		batch = append(batch, rec)
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := flush(); err != nil {
		return n, err
	}
	if skipped > 0 {
		o.Logger.Warn("spool: unreadable lines skipped", "file", filepath.Base(path), "skipped", skipped)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return n, fmt.Errorf("spool: %w", err)
	}
	return n, nil
}

// RunCollector runs Collect every o.Interval until ctx ends, logging
// failures (the files wait for the next pass).
func RunCollector(ctx context.Context, st BatchRecorder, o CollectOptions) {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(o.Interval)
	defer t.Stop()
	for {
		if _, err := Collect(ctx, st, o); err != nil && ctx.Err() == nil {
			o.Logger.Warn("spool: collection failed; retrying", "dir", o.Dir, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
