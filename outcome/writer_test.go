package outcome

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sync/atomic"
	"testing"
	"time"
)

// flaky wraps a store: it can be switched down, and can be slowed.
type flaky struct {
	BatchRecorder
	down    atomic.Bool
	latency time.Duration
	block   chan struct{} // when non-nil, writes wait for it to close
	calls   atomic.Int64
}

var errDown = fmt.Errorf("%w: injected outage", ErrUnavailable)

func (f *flaky) RecordBatch(ctx context.Context, os []Outcome) error {
	f.calls.Add(1)
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if f.latency > 0 {
		time.Sleep(f.latency)
	}
	if f.down.Load() {
		return errDown
	}
	return f.BatchRecorder.RecordBatch(ctx, os)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	// Long enough that only a lost event, never a slow machine, runs into it.
	deadline := time.Now().Add(3 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func runWriter(t *testing.T, w *Writer) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func count(t *testing.T, st Store) int {
	t.Helper()
	return len(all(t, st))
}

func testWriterSpill(t *testing.T, st Store, _ Options) {
	f := &flaky{BatchRecorder: st}
	f.down.Store(true)
	spill := filepath.Join(t.TempDir(), "spill", "outcomes.jsonl")
	w := NewWriter(f, WriterOptions{SpillPath: spill, RetryInterval: 10 * time.Millisecond, BatchSize: 7})
	runWriter(t, w)
	for i := range 100 {
		if err := w.Record(context.Background(), verify(fmt.Sprint("u", i), t0, func(o *Outcome) { o.Result = "pass" })); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "spill", func() bool { return w.Stats().Spilled == 100 })
	// Retries may already have moved part of it aside for replay, even
	// between the two reads here (then a line is read twice): count the
	// distinct outcomes the two files hold.
	a, _ := os.ReadFile(spill)
	b, _ := os.ReadFile(spill + ".replay")
	ids := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(a)+string(b)), "\n") {
		var o Outcome
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatalf("spill line %q: %v", line, err)
		}
		ids[o.UniqueID] = true
	}
	if len(ids) != 100 {
		t.Fatalf("spill files hold %d distinct outcomes, want 100", len(ids))
	}
	if n := count(t, st); n != 0 {
		t.Fatalf("%d rows while down", n)
	}
	f.down.Store(false)
	waitFor(t, "replay", func() bool { return !w.Backlog() })
	// A duplicate of something already spilled: still one row each.
	w.Record(context.Background(), verify("u3", t0, func(o *Outcome) { o.HangupCause = "16" }))
	waitFor(t, "write", func() bool { return w.Stats().Written == 1 })
	if n := count(t, st); n != 100 {
		t.Fatalf("%d rows after replay, want 100", n)
	}
	if _, err := os.Stat(spill); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("spill file left behind: %v", err)
	}
	s := w.Stats()
	if s.Replayed != 100 || s.Dropped != 0 {
		t.Errorf("stats %+v", s)
	}
}

func newSQLite(t *testing.T) Store {
	t.Helper()
	st, err := Open(context.Background(), Options{Path: filepath.Join(t.TempDir(), "o.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestWriterNeverBlocks: with the store stuck and the spill file locked,
// Record still returns: overflow past the queue waits in memory for the
// spiller, and every outcome lands once both move again. A Record that
// waited for the store, or did the disk work inline, would never return
// (the loop below runs with both held), so no clock is read; how long a
// Record takes is BenchmarkWriterRecordStoreStuck's.
func TestWriterNeverBlocks(t *testing.T) {
	st := newSQLite(t)
	f := &flaky{BatchRecorder: st, block: make(chan struct{})}
	w := NewWriter(f, WriterOptions{QueueSize: 64, SpillPath: filepath.Join(t.TempDir(), "spill.jsonl"), RetryInterval: 10 * time.Millisecond})
	runWriter(t, w)
	const n = 10000
	w.spillMu.Lock() // the disk is "stuck" too: spill and replay take this lock
	for i := range n {
		if err := w.Record(context.Background(), verify(fmt.Sprint("b", i), t0, nil)); err != nil {
			w.spillMu.Unlock()
			t.Fatal(err)
		}
	}
	s := w.Stats()
	w.spillMu.Unlock()
	if s.Spilled != 0 || s.Written != 0 || s.Dropped != 0 {
		t.Fatalf("with the store and the spill file held: %+v", s)
	}
	t.Logf("%d Records with the store and the spill file stuck: queued %d", n, s.Queued)
	close(f.block)
	// Wait on the writer's counters, not by querying the store in a loop:
	// the queries would compete with the writes for the database.
	waitFor(t, "all written", func() bool { s := w.Stats(); return !w.Backlog() && s.Written+s.Replayed >= n })
	if got := count(t, st); got != n {
		t.Fatalf("%d rows, want %d", got, n)
	}
}

// BenchmarkWriterRecordStoreStuck: the cost of one Record while the store
// is stuck (queue full, overflow spilled by the spiller goroutine).
func BenchmarkWriterRecordStoreStuck(b *testing.B) {
	st, err := Open(context.Background(), Options{Path: filepath.Join(b.TempDir(), "o.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	f := &flaky{BatchRecorder: st, block: make(chan struct{})}
	w := NewWriter(f, WriterOptions{QueueSize: 64, OverflowSize: 1 << 24, SpillPath: filepath.Join(b.TempDir(), "spill.jsonl")})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	defer close(f.block)
	o := verify("bench", t0, nil)
	for i := 0; b.Loop(); i++ {
		o.UniqueID = fmt.Sprint("b", i)
		if err := w.Record(context.Background(), o); err != nil {
			b.Fatal(err)
		}
	}
}

// TestWriterReplaysCrashLeftovers: a spill file and a half-replayed file
// from a previous process are both written at start.
func TestWriterReplaysCrashLeftovers(t *testing.T) {
	st := newSQLite(t)
	spill := filepath.Join(t.TempDir(), "spill.jsonl")
	if err := appendJSONLines(spill, []Outcome{verify("x1", t0, nil), verify("x2", t0, nil)}); err != nil {
		t.Fatal(err)
	}
	if err := appendJSONLines(spill+".replay", []Outcome{verify("x0", t0, nil), verify("x1", t0, nil)}); err != nil {
		t.Fatal(err)
	}
	// A torn last line, as a crash mid-append leaves it.
	fh, _ := os.OpenFile(spill, os.O_APPEND|os.O_WRONLY, 0)
	fh.WriteString(`{"System":"pbx1","Uni`)
	fh.Close()
	w := NewWriter(st, WriterOptions{SpillPath: spill, RetryInterval: 5 * time.Millisecond})
	runWriter(t, w)
	waitFor(t, "replay", func() bool { return !w.Backlog() })
	if got := ids(all(t, st)); len(got) != 3 {
		t.Errorf("rows %v, want x0 x1 x2", got)
	}
}

// TestWriterDrainsOnStop: outcomes queued when Run's context ends are
// written, not lost.
func TestWriterDrainsOnStop(t *testing.T) {
	st := newSQLite(t)
	w := NewWriter(st, WriterOptions{})
	for i := range 50 {
		w.Record(context.Background(), verify(fmt.Sprint("d", i), t0, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w.Run(ctx)
	if n := count(t, st); n != 50 {
		t.Errorf("%d rows, want 50", n)
	}
}

func TestWriterRefusesUnkeyed(t *testing.T) {
	w := NewWriter(newSQLite(t), WriterOptions{})
	if err := w.Record(context.Background(), Outcome{System: "x"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("err = %v", err)
	}
}

// TestWritersShareSpill: `stirgate agi` and `stirgate ami` may share one
// spill path. Both spill during an outage, both replay afterwards, and
// every outcome lands exactly once.
func TestWritersShareSpill(t *testing.T) {
	st := newSQLite(t)
	spill := filepath.Join(t.TempDir(), "spill.jsonl")
	f := &flaky{BatchRecorder: st}
	f.down.Store(true)
	a := NewWriter(f, WriterOptions{SpillPath: spill, RetryInterval: 3 * time.Millisecond, BatchSize: 5})
	b := NewWriter(f, WriterOptions{SpillPath: spill, RetryInterval: 3 * time.Millisecond, BatchSize: 5})
	runWriter(t, a)
	runWriter(t, b)
	for i := range 200 {
		a.Record(context.Background(), verify(fmt.Sprint("a", i), t0, nil))
		b.Record(context.Background(), verify(fmt.Sprint("b", i), t0, nil))
	}
	waitFor(t, "spilled", func() bool { return a.Stats().Spilled == 200 && b.Stats().Spilled == 200 })
	f.down.Store(false)
	waitFor(t, "replayed", func() bool { return !a.Backlog() && !b.Backlog() })
	if n := count(t, st); n != 400 {
		t.Errorf("%d rows, want 400", n)
	}
}

// TestDeferredOpen: the store cannot be opened at first (its directory is
// a file); outcomes spill; once it can, they are replayed into it.
func TestDeferredOpen(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "db")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	d := NewDeferred(Options{Path: filepath.Join(blocker, "o.db")})
	defer d.Close()
	w := NewWriter(d, WriterOptions{SpillPath: filepath.Join(dir, "spill.jsonl"), RetryInterval: 5 * time.Millisecond})
	runWriter(t, w)
	for i := range 20 {
		w.Record(context.Background(), verify(fmt.Sprint("d", i), t0, nil))
	}
	waitFor(t, "spill", func() bool { return w.Stats().Spilled == 20 })
	if _, err := d.Store(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("open through a file: %v", err)
	}
	os.Remove(blocker)
	waitFor(t, "replay", func() bool { return !w.Backlog() })
	st, err := d.Store(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := count(t, st); n != 20 {
		t.Errorf("%d rows, want 20", n)
	}
}
