package outcome

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// BatchRecorder is the part of Store the Writer needs.
type BatchRecorder interface {
	RecordBatch(ctx context.Context, os []Outcome) error
}

// WriterOptions configures a Writer; the zero value is usable but keeps
// nothing across a store outage (SpillPath empty).
type WriterOptions struct {
	// QueueSize bounds the in-memory queue (default 65536). When it is
	// full, Record parks outcomes in an overflow buffer that a separate
	// goroutine appends to the spill file, so the caller never waits for a
	// disk either.
	QueueSize int
	// OverflowSize bounds that buffer (default max(4×QueueSize, 65536));
	// past it Record drops and counts.
	OverflowSize int
	// BatchSize is the most outcomes written in one transaction (512).
	BatchSize int
	// Linger is how long a batch waits for more outcomes after its first
	// before it is written (default 0: at once). A store pays per
	// transaction (a commit, pages to the WAL), so at hundreds of calls a
	// second a few milliseconds of waiting write tens of outcomes for the
	// price of one; the caller never waits either way.
	Linger time.Duration
	// SpillPath is a JSON-lines file holding outcomes the store could not
	// take; empty means such outcomes are counted as dropped.
	SpillPath string
	// RetryInterval is how often a spilled backlog is retried (1s).
	RetryInterval time.Duration
	// WriteTimeout bounds one store write (10s).
	WriteTimeout time.Duration
	// JournalDir, when set, holds the journal: every outcome is copied
	// there (a memory copy into a shared file mapping, no system call)
	// before Record returns, so that an outcome Record accepted survives
	// the process being killed. See journal.go. Empty: no journal, and a
	// crash loses what is queued.
	JournalDir string
	// JournalSync is how often the journal is fsync'd (1s): the most a
	// power loss, as opposed to a process crash, can take.
	JournalSync time.Duration
	Logger      *slog.Logger
}

// WriterStats are counters since NewWriter.
type WriterStats struct {
	Queued, Written, Spilled, Replayed, Dropped, Failures int64
	// Journaled counts outcomes copied to the journal.
	Journaled int64
}

// Writer stands between a reader that must never wait (the AMI socket:
// Asterisk drops a client that does not read within its write timeout) and
// a store that sometimes does. Record only enqueues; Run writes in batches;
// whatever the store refuses goes to the spill file, fsync'd, and is
// replayed once the store answers again. Replays are safe because records
// are keyed: writing one twice merges into the same row.
type Writer struct {
	st    BatchRecorder
	opts  WriterOptions
	log   *slog.Logger
	queue chan item
	jnl   *journal // nil: no journal

	spillMu sync.Mutex  // serialises spill file appends and the replay hand-over
	pending atomic.Bool // the spill file may hold outcomes

	overMu   sync.Mutex
	overflow []Outcome     // queue overflow on its way to the spill file
	overSig  chan struct{} // wakes the spiller
	// batchFull ends a linger early: a whole batch is queued.
	batchFull chan struct{}
	room      atomic.Int64 // what the lingering batch still takes; 0 when none lingers
	overMax   int

	queued, written, spilled, replayed, dropped, failures, journaled atomic.Int64
	jnlWarn                                                          atomic.Int64 // unix seconds of the last append failure logged
}

// item is a queued outcome and the journal segment that holds it (seq 0:
// not journaled).
type item struct {
	o   Outcome
	seq int64
}

// release tells the journal that the items are stored or spilled (lost:
// neither; the journal's copy is read back into the store later).
func (w *Writer) release(batch []item, lost bool) {
	if w.jnl == nil {
		return
	}
	for _, it := range batch {
		if it.seq != 0 {
			w.jnl.done(it.seq, lost)
		}
	}
}

// NewWriter returns a Writer for st. Call Run to start writing.
func NewWriter(st BatchRecorder, opts WriterOptions) *Writer {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 65536
	}
	if opts.OverflowSize <= 0 {
		opts.OverflowSize = max(4*opts.QueueSize, 65536)
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 512
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	if opts.JournalSync <= 0 {
		opts.JournalSync = time.Second
	}
	w := &Writer{st: st, opts: opts, log: opts.Logger, queue: make(chan item, opts.QueueSize),
		overSig: make(chan struct{}, 1), batchFull: make(chan struct{}, 1), overMax: opts.OverflowSize}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if opts.JournalDir != "" {
		j, err := openJournal(opts.JournalDir, opts.JournalSync, w.log)
		if err != nil {
			// Recording goes on, as durable as the queue and spill file
			// make it: refusing every call for a bad directory is worse.
			w.log.Error("outcome journal not opened; a crash loses queued outcomes", "err", err)
		} else {
			w.jnl = j
		}
	}
	if opts.SpillPath != "" {
		w.pending.Store(true) // a previous run may have left a backlog
	}
	return w
}

// Record enqueues o and returns at once. It never waits for the store: a
// full queue sends o to the spill file. With a journal, o is in it when
// Record returns.
func (w *Writer) Record(_ context.Context, o Outcome) error {
	if err := o.valid(); err != nil {
		// Refused here, not by the store: an unkeyed record would fail
		// every replay and block the spill file forever.
		w.dropped.Add(1)
		return err
	}
	it := item{o: o}
	if w.jnl != nil {
		seq, err := w.jnl.add(&o)
		if err != nil {
			w.failures.Add(1)
			// At most one line a minute: a full disk fails every record.
			now := time.Now().Unix()
			if last := w.jnlWarn.Load(); now-last >= 60 && w.jnlWarn.CompareAndSwap(last, now) {
				w.log.Warn("outcome journal append failed; queued without it", "err", err)
			}
		} else {
			it.seq = seq
			w.journaled.Add(1)
		}
	}
	select {
	case w.queue <- it:
		w.queued.Add(1)
		if r := w.room.Load(); r > 0 && int64(len(w.queue)) >= r {
			select {
			case w.batchFull <- struct{}{}:
			default:
			}
		}
		return nil
	default:
	}
	if it.seq != 0 {
		// The journal holds it already: it is read back into the store
		// from there, which costs nothing here.
		w.release([]item{it}, true)
		return nil
	}
	w.overMu.Lock()
	if len(w.overflow) >= w.overMax {
		w.overMu.Unlock()
		w.dropped.Add(1)
		return fmt.Errorf("%w: queue and overflow full; outcome dropped", ErrUnavailable)
	}
	w.overflow = append(w.overflow, o)
	w.overMu.Unlock()
	select {
	case w.overSig <- struct{}{}:
	default:
	}
	return nil
}

// spillOverflow moves the overflow buffer to the spill file in one append.
func (w *Writer) spillOverflow() {
	w.overMu.Lock()
	batch := w.overflow
	w.overflow = nil
	w.overMu.Unlock()
	if len(batch) > 0 {
		w.spill(batch)
	}
}

// spiller runs beside Run so that overflow reaches the disk even while Run
// is stuck in a slow store write.
func (w *Writer) spiller(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-w.overSig:
			w.spillOverflow()
		}
	}
}

// Stats returns the counters.
func (w *Writer) Stats() WriterStats {
	return WriterStats{
		Queued: w.queued.Load(), Written: w.written.Load(), Spilled: w.spilled.Load(),
		Replayed: w.replayed.Load(), Dropped: w.dropped.Load(), Failures: w.failures.Load(),
		Journaled: w.journaled.Load(),
	}
}

// Backlog reports whether outcomes are waiting in the queue or spill file.
func (w *Writer) Backlog() bool {
	w.overMu.Lock()
	n := len(w.overflow)
	w.overMu.Unlock()
	return n > 0 || len(w.queue) > 0 || w.pending.Load() || (w.jnl != nil && w.jnl.backlog())
}

// Run writes until ctx ends, then drains the queue (to the store if it
// answers within WriteTimeout, else to the spill file) and returns.
func (w *Writer) Run(ctx context.Context) error {
	tick := time.NewTicker(w.opts.RetryInterval)
	defer tick.Stop()
	stop := make(chan struct{})
	spilled := make(chan struct{})
	go func() { w.spiller(stop); close(spilled) }()
	batch := make([]item, 0, w.opts.BatchSize)
	w.replayJournal(ctx) // what the last run left
	for {
		select {
		case <-ctx.Done():
			close(stop)
			<-spilled
			w.drain(batch[:0])
			w.spillOverflow()
			if w.jnl != nil {
				if err := w.jnl.close(); err != nil {
					w.log.Error("outcome journal", "err", err)
				}
				w.replayJournal(context.Background())
			}
			return nil
		case it := <-w.queue:
			batch = append(batch[:0], it)
			for len(batch) < cap(batch) {
				select {
				case it := <-w.queue:
					batch = append(batch, it)
					continue
				default:
				}
				break
			}
			batch = w.linger(ctx, batch)
			if w.write(ctx, batch) == nil {
				if w.pending.Load() {
					w.replay(ctx)
				}
				w.replayJournal(ctx)
			}
		case <-tick.C:
			if w.pending.Load() {
				w.replay(ctx)
			}
			w.replayJournal(ctx)
		}
	}
}

// replayJournal reads journal files into the store: those a previous run
// left, and those holding records the queue had no room for.
func (w *Writer) replayJournal(ctx context.Context) {
	if w.jnl == nil || !w.jnl.backlog() {
		return
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.opts.WriteTimeout)
	defer cancel()
	n, err := w.jnl.replay(wctx, w.st, CollectOptions{BatchSize: w.opts.BatchSize, Logger: w.log})
	if n > 0 {
		w.replayed.Add(int64(n))
		w.log.Info("outcome journal replayed", "n", n)
	}
	if err != nil {
		w.failures.Add(1)
		w.log.Warn("outcome journal replay failed; will retry", "err", err)
	}
}

// linger adds to batch what arrives within Linger, until it is full or
// ctx ends. It sleeps on the timer and takes the queue once when it wakes,
// rather than receiving each outcome as it comes: a receive readies this
// goroutine, and at a thousand calls a second that was a thread wake-up
// per call (make bench-capacity). Record wakes it early, through batchFull,
// once a whole batch waits.
func (w *Writer) linger(ctx context.Context, batch []item) []item {
	if w.opts.Linger <= 0 || len(batch) == cap(batch) {
		return batch
	}
	room := cap(batch) - len(batch)
	w.room.Store(int64(room)) // before the length is read: Record signals past it
	if len(w.queue) < room {
		t := time.NewTimer(w.opts.Linger)
		select {
		case <-t.C:
		case <-w.batchFull:
		case <-ctx.Done():
		}
		t.Stop()
	}
	w.room.Store(0)
	for len(batch) < cap(batch) {
		select {
		case it := <-w.queue:
			batch = append(batch, it)
			continue
		default:
		}
		break
	}
	return batch
}

// drain empties the queue after Run's context ended.
func (w *Writer) drain(batch []item) {
	ctx, cancel := context.WithTimeout(context.Background(), w.opts.WriteTimeout)
	defer cancel()
	for {
		batch = batch[:0]
		for len(batch) < cap(batch) {
			select {
			case it := <-w.queue:
				batch = append(batch, it)
				continue
			default:
			}
			break
		}
		if len(batch) == 0 {
			return
		}
		w.write(ctx, batch)
	}
}

// write stores batch or, failing that, spills it.
func (w *Writer) write(ctx context.Context, batch []item) error {
	outs := make([]Outcome, len(batch))
	for i := range batch {
		outs[i] = batch[i].o
	}
	// A write in flight finishes even when Run is stopping: WriteTimeout,
	// not the caller's cancellation, bounds it.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.opts.WriteTimeout)
	err := w.st.RecordBatch(wctx, outs)
	cancel()
	if err == nil {
		w.written.Add(int64(len(batch)))
		w.release(batch, false)
		return nil
	}
	w.failures.Add(1)
	w.log.Warn("outcome store write failed; spilling", "n", len(batch), "err", err)
	if serr := w.spill(outs); serr != nil {
		w.release(batch, true)
		return serr
	}
	w.release(batch, false)
	return err
}

// spill appends batch to the spill file and fsyncs it: once spill returns,
// the outcomes survive a crash.
func (w *Writer) spill(batch []Outcome) error {
	if w.opts.SpillPath == "" {
		w.dropped.Add(int64(len(batch)))
		return fmt.Errorf("%w: no spill file; %d outcomes dropped", ErrUnavailable, len(batch))
	}
	w.spillMu.Lock()
	defer w.spillMu.Unlock()
	if err := appendJSONLines(w.opts.SpillPath, batch); err != nil {
		w.dropped.Add(int64(len(batch)))
		w.log.Error("spill failed; outcomes dropped", "n", len(batch), "err", err)
		return err
	}
	w.spilled.Add(int64(len(batch)))
	w.pending.Store(true)
	return nil
}

func appendJSONLines(path string, batch []Outcome) error {
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	enc := json.NewEncoder(bw)
	for _, o := range batch {
		if err := enc.Encode(o); err != nil {
			f.Close()
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// replay moves the spill file aside (so new spills start a fresh file) and
// writes it to the store. A replay file left by a crash is replayed first.
// On failure the file stays for the next attempt; rows it already wrote
// are merged again, which changes nothing.
func (w *Writer) replay(ctx context.Context) {
	path := w.opts.SpillPath
	if path == "" {
		w.pending.Store(false)
		return
	}
	aside := path + ".replay"
	w.spillMu.Lock()
	if _, err := os.Stat(aside); errors.Is(err, fs.ErrNotExist) {
		if err := os.Rename(path, aside); errors.Is(err, fs.ErrNotExist) {
			w.pending.Store(false)
			w.spillMu.Unlock()
			return
		} else if err != nil {
			w.spillMu.Unlock()
			w.log.Error("spill replay", "err", err)
			return
		}
	}
	w.spillMu.Unlock()

	n, err := w.replayFile(ctx, aside)
	if err != nil {
		w.failures.Add(1)
		w.log.Warn("spill replay failed; will retry", "replayed", n, "err", err)
		return
	}
	// Another process sharing the spill path (stirgate agi and ami may) can
	// have replayed and removed it first: the rows are in, which is all
	// that matters.
	if err := os.Remove(aside); err != nil && !errors.Is(err, fs.ErrNotExist) {
		w.log.Error("spill replay", "err", err)
		return
	}
	w.replayed.Add(int64(n))
	w.log.Info("spill replayed", "n", n)
	// More may have been spilled meanwhile; the next tick looks.
	w.spillMu.Lock()
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		w.pending.Store(false)
	}
	w.spillMu.Unlock()
}

func (w *Writer) replayFile(ctx context.Context, path string) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil // replayed by another process meanwhile
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4<<20)
	batch := make([]Outcome, 0, w.opts.BatchSize)
	n := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		wctx, cancel := context.WithTimeout(ctx, w.opts.WriteTimeout)
		defer cancel()
		if err := w.st.RecordBatch(wctx, batch); err != nil {
			return err
		}
		n += len(batch)
		batch = batch[:0]
		return nil
	}
	for sc.Scan() {
		var o Outcome
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			// A torn last line from a crash mid-append: skip it, keep the rest.
			w.log.Warn("spill: skipping unreadable line", "err", err)
			continue
		}
		if err := o.valid(); err != nil {
			w.log.Warn("spill: skipping", "err", err)
			continue
		}
		batch = append(batch, o)
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return n, err
	}
	return n, flush()
}
