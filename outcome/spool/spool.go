// Package spool lets processes that must never wait on a database (the
// SIP workers of Kamailio, each loading libstirgate) record outcomes: each
// process appends JSON lines to a file of its own under a spool directory,
// and a collector (`stirgate serve` or `stirgate collect`, outcome.Collect)
// moves them into the store.
//
// A record is one write(2) to an O_APPEND file: once Record returns it is
// in the kernel and survives the process (a Kamailio restart, a crash).
// Nothing on the caller's path waits for the disk: fsync happens in a
// background goroutine when a file is sealed, every SealEvery.
//
// Files: a writer owns "<prefix>-<pid>-<start>-<seq>.part" and holds an
// exclusive flock on it while it lives; sealing fsyncs it and renames it to
// ".jsonl". The collector ingests ".jsonl" files, and ".part" files whose
// lock it can take (their writer is gone), then removes them. Ingestion is
// idempotent: records are keyed, so a file read twice merges into the same
// rows.
//
// This package imports no database driver: it is linked into libstirgate.
package spool

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Record is one line of a spool file. Its JSON is that of outcome.Outcome
// (the same field names), so the collector decodes lines straight into it;
// a test keeps the two in step.
type Record struct {
	Time      time.Time
	System    string
	UniqueID  string
	Kind      string // "verify" or "sign"
	Direction string // "inbound" or "outbound"
	Orig      string
	Dest      string
	Result    string
	Verstat   string
	Attest    string
	OrigID    string
	SIPCode   int
	ErrorName string
	Reason    string
	X5U       string
	SPC       string
	Source    string
	Peer      string
}

// File name suffixes.
const (
	SuffixOpen   = ".part"  // being written; locked by its writer
	SuffixSealed = ".jsonl" // complete, fsync'd
	suffixNew    = ".new"   // created, not yet locked: ignored by collectors
)

// Options configures a Writer.
type Options struct {
	// Dir is the spool directory; it is created (0700) if missing.
	Dir string
	// Prefix starts each file name (default "stirgate").
	Prefix string
	// SealEvery is how often a non-empty file is fsync'd and handed to the
	// collector (default 1 s): the most a power loss can take.
	SealEvery time.Duration
	Logger    *slog.Logger
}

// Writer appends records to this process's spool file. It is safe for
// concurrent use.
type Writer struct {
	o     Options
	start int64

	sealMu sync.Mutex // one Seal or Close at a time; guards seq

	mu    sync.Mutex
	f     *os.File
	name  string // path of f, SuffixOpen
	bytes int
	seq   int

	stop   chan struct{}
	done   chan struct{}
	closed atomic.Bool

	written, failed atomic.Int64
	lastLog         atomic.Int64 // unix seconds of the last failure logged
}

// Open creates the spool directory and this process's first file, and
// starts sealing.
func Open(o Options) (*Writer, error) {
	if o.Dir == "" {
		return nil, fmt.Errorf("spool: no directory")
	}
	if o.Prefix == "" {
		o.Prefix = "stirgate"
	}
	if o.SealEvery <= 0 {
		o.SealEvery = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	w := &Writer{o: o, start: time.Now().UnixNano(), stop: make(chan struct{}), done: make(chan struct{})}
	f, name, err := w.create()
	if err != nil {
		return nil, err
	}
	w.f, w.name = f, name
	go w.sealer()
	return w, nil
}

// create opens the next file: created under a name collectors ignore,
// locked, then renamed into view, so that no collector ever sees an
// unlocked live file.
func (w *Writer) create() (*os.File, string, error) {
	w.seq++
	base := filepath.Join(w.o.Dir, w.o.Prefix+"-"+strconv.Itoa(os.Getpid())+"-"+strconv.FormatInt(w.start, 10)+"-"+strconv.Itoa(w.seq))
	f, err := os.OpenFile(base+suffixNew, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, "", fmt.Errorf("spool: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		os.Remove(base + suffixNew)
		return nil, "", fmt.Errorf("spool: lock: %w", err)
	}
	if err := os.Rename(base+suffixNew, base+SuffixOpen); err != nil {
		f.Close()
		os.Remove(base + suffixNew)
		return nil, "", fmt.Errorf("spool: %w", err)
	}
	return f, base + SuffixOpen, nil
}

// Record appends r. It never waits for the disk to sync; a failed write
// (disk full, writer closed) is counted and logged at most once a minute.
func (w *Writer) Record(r Record) {
	b, err := json.Marshal(r)
	if err != nil {
		w.fail(err)
		return
	}
	b = append(b, '\n')
	w.mu.Lock()
	if w.f == nil {
		w.mu.Unlock()
		w.fail(os.ErrClosed)
		return
	}
	_, err = w.f.Write(b)
	if err == nil {
		w.bytes += len(b)
	}
	w.mu.Unlock()
	if err != nil {
		w.fail(err)
		return
	}
	w.written.Add(1)
}

func (w *Writer) fail(err error) {
	w.failed.Add(1)
	now := time.Now().Unix()
	if last := w.lastLog.Load(); now-last >= 60 && w.lastLog.CompareAndSwap(last, now) {
		w.o.Logger.Error("spool: outcome not recorded", "dir", w.o.Dir, "err", err, "failed_total", w.failed.Load())
	}
}

// Stats are counters since Open.
type Stats struct{ Written, Failed int64 }

// Stats returns the counters.
func (w *Writer) Stats() Stats { return Stats{Written: w.written.Load(), Failed: w.failed.Load()} }

func (w *Writer) sealer() {
	defer close(w.done)
	t := time.NewTicker(w.o.SealEvery)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			if err := w.Seal(); err != nil {
				w.fail(err)
			}
		}
	}
}

// Seal hands the current file to the collector if it holds anything:
// the next file is opened first, swapped in, and the old one fsync'd and
// renamed outside the lock, so Record only ever waits for a pointer swap.
func (w *Writer) Seal() error {
	w.sealMu.Lock()
	defer w.sealMu.Unlock()
	w.mu.Lock()
	empty := w.bytes == 0
	w.mu.Unlock()
	if empty || w.closed.Load() {
		return nil
	}
	nf, nname, err := w.create()
	if err != nil {
		return err
	}
	w.mu.Lock()
	if w.f == nil {
		w.mu.Unlock()
		nf.Close()
		os.Remove(nname)
		return nil
	}
	of, oname := w.f, w.name
	w.f, w.name, w.bytes = nf, nname, 0
	w.mu.Unlock()
	return seal(of, oname)
}

// seal fsyncs f and renames it sealed while its lock is still held, then
// closes it (which releases the lock).
func seal(f *os.File, name string) error {
	err := f.Sync()
	if rerr := os.Rename(name, name[:len(name)-len(SuffixOpen)]+SuffixSealed); err == nil {
		err = rerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("spool: seal %s: %w", filepath.Base(name), err)
	}
	return nil
}

// Close stops sealing and seals the current file (an empty one is
// removed).
func (w *Writer) Close() error {
	if !w.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(w.stop)
	<-w.done
	w.sealMu.Lock()
	defer w.sealMu.Unlock()
	w.mu.Lock()
	f, name, n := w.f, w.name, w.bytes
	w.f = nil
	w.mu.Unlock()
	if f == nil {
		return nil
	}
	if n == 0 {
		os.Remove(name)
		return f.Close()
	}
	return seal(f, name)
}
