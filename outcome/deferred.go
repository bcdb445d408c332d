package outcome

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Deferred opens a store on first use and again after each failure, so
// that a listener started while PostgreSQL is still down runs anyway: its
// Writer spills until Open succeeds, then replays.
type Deferred struct {
	opts Options

	mu  sync.Mutex
	st  Store
	err error
}

// NewDeferred returns a Deferred for opts; nothing is opened yet.
func NewDeferred(opts Options) *Deferred { return &Deferred{opts: opts} }

// Store returns the open store, opening it if needed.
func (d *Deferred) Store(ctx context.Context) (Store, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.st != nil {
		return d.st, nil
	}
	st, err := Open(ctx, d.opts)
	if err != nil {
		d.err = err
		if !errors.Is(err, ErrUnavailable) {
			err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return nil, err
	}
	d.st, d.err = st, nil
	return st, nil
}

// RecordBatch implements BatchRecorder.
func (d *Deferred) RecordBatch(ctx context.Context, os []Outcome) error {
	st, err := d.Store(ctx)
	if err != nil {
		return err
	}
	return st.RecordBatch(ctx, os)
}

// Close closes the store if it was opened.
func (d *Deferred) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.st == nil {
		return nil
	}
	err := d.st.Close()
	d.st = nil
	return err
}
