// Package spool lets processes that must never wait on a database (the
// SIP workers of Kamailio, each loading libstirgate) record outcomes: each
// process appends JSON lines to a file of its own under a spool directory,
// and a collector (`stirgate serve` or `stirgate collect`, outcome.Collect)
// moves them into the store.
//
// A file is a fixed-size segment mapped into memory (MAP_SHARED): a record
// is a memory copy into the page cache, with no system call on the
// caller's path, and once Record returns it belongs to the kernel, so it
// survives the process (a Kamailio restart, a crash). A background
// goroutine seals a non-empty segment every SealEvery: msync, truncate to
// its length, fsync, rename; a power loss can take at most that much.
//
// Files: a writer owns "<prefix>-<pid>-<start>-<seq>.part" and holds an
// exclusive flock on it while it lives; sealing renames it to ".jsonl".
// The collector ingests ".jsonl" files, and ".part" files whose lock it can
// take (their writer is gone; the records end at the first NUL), then
// removes them. Ingestion is idempotent: records are keyed, so a file read
// twice merges into the same rows.
//
// This package imports no database driver: it is linked into libstirgate.
package spool

import (
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
	Div       string `json:",omitempty"` // verified diverting numbers, comma-separated
	RCDNam    string `json:",omitempty"` // verified rcd display name
	RCDCrn    string `json:",omitempty"` // verified call reason
	// A signature's arrangement (outcome.Outcome.SetSigned).
	Tenant   string `json:",omitempty"`
	Customer string `json:",omitempty"`
	Rule     string `json:",omitempty"`
}

// File name suffixes.
const (
	SuffixOpen   = ".part"  // being written; locked by its writer; NUL-padded
	SuffixSealed = ".jsonl" // complete, fsync'd
	suffixNew    = ".new"   // created, not yet locked: ignored by collectors
)

// MaxRecord bounds one encoded record; a longer one is refused (counted).
const MaxRecord = 16 << 10

// Options configures a Writer.
type Options struct {
	// Dir is the spool directory; it is created (0700) if missing.
	Dir string
	// Prefix starts each file name (default "stirgate").
	Prefix string
	// SealEvery is how often a non-empty segment is sealed and handed to
	// the collector (default 1 s).
	SealEvery time.Duration
	// SegmentSize is the size of one mapped file (default 1 MiB, about
	// two thousand records; a busier second rolls over to a spare).
	SegmentSize int
	// OnSeal, when set, is called with a segment's sequence number (as
	// Append returns it) and its new path once it is sealed. It is called
	// without any of the Writer's locks held. A journal (outcome.Writer)
	// uses it to remove a segment whose records are all stored.
	OnSeal func(seq int64, path string)
	Logger *slog.Logger
}

// segment is one mapped file.
type segment struct {
	f    *os.File
	name string // SuffixOpen path
	seq  int64
	mem  []byte
	off  int
}

// Writer appends records to this process's spool. It is safe for
// concurrent use.
type Writer struct {
	o     Options
	start int64

	sealMu sync.Mutex // one Seal or Close at a time
	seq    atomic.Int64

	mu      sync.Mutex
	cur     *segment
	spare   *segment // ready for when cur fills up between seals
	scratch []byte
	closed  bool

	stop    chan struct{}
	done    chan struct{}
	sealing sync.WaitGroup // seals of full segments handed off by Record
	kick    chan struct{}  // cur was swapped for the spare: make another

	written, failed atomic.Int64
	lastLog         atomic.Int64 // unix seconds of the last failure logged
}

// Open creates the spool directory and this process's first segment, and
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
	if o.SegmentSize <= 0 {
		o.SegmentSize = 1 << 20
	}
	o.SegmentSize = max(o.SegmentSize, 2*MaxRecord)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	w := &Writer{o: o, start: time.Now().UnixNano(), stop: make(chan struct{}), done: make(chan struct{}),
		kick: make(chan struct{}, 1)}
	var err error
	if w.cur, err = w.create(); err != nil {
		return nil, err
	}
	if w.spare, err = w.create(); err != nil {
		w.cur.discard()
		return nil, err
	}
	go w.sealer()
	return w, nil
}

// create makes the next segment: created under a name collectors ignore,
// locked, sized, mapped, then renamed into view, so that no collector ever
// sees an unlocked live file.
func (w *Writer) create() (*segment, error) {
	seq := w.seq.Add(1)
	base := filepath.Join(w.o.Dir, w.o.Prefix+"-"+strconv.Itoa(os.Getpid())+"-"+strconv.FormatInt(w.start, 10)+"-"+strconv.FormatInt(seq, 10))
	f, err := os.OpenFile(base+suffixNew, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	undo := func(err error) (*segment, error) {
		f.Close()
		os.Remove(base + suffixNew)
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return undo(err)
	}
	if err := f.Truncate(int64(w.o.SegmentSize)); err != nil {
		return undo(err)
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, w.o.SegmentSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return undo(err)
	}
	// Fault every page in now, off the caller's path: the first write to a
	// page of a shared file mapping traps into the file system (on ext4 it
	// may wait for a journal commit an fsync started), and that wait must
	// be the sealer's, never a SIP worker's.
	pg := os.Getpagesize()
	for i := 0; i < len(mem); i += pg {
		mem[i] = 0
	}
	if err := os.Rename(base+suffixNew, base+SuffixOpen); err != nil {
		syscall.Munmap(mem)
		return undo(err)
	}
	return &segment{f: f, name: base + SuffixOpen, seq: seq, mem: mem}, nil
}

// discard removes an unused segment.
func (s *segment) discard() {
	syscall.Munmap(s.mem)
	os.Remove(s.name)
	s.f.Close()
}

// sealed is where seal puts s.
func (s *segment) sealed() string { return s.name[:len(s.name)-len(SuffixOpen)] + SuffixSealed }

// seal seals s and tells OnSeal.
func (w *Writer) seal(s *segment) error {
	if err := s.seal(); err != nil {
		return err
	}
	if w.o.OnSeal != nil {
		w.o.OnSeal(s.seq, s.sealed())
	}
	return nil
}

// seal makes s a complete file: synced, cut to its records, renamed
// while its lock is still held, then closed (which releases the lock).
func (s *segment) seal() error {
	err := syscall.Munmap(s.mem) // MAP_SHARED: the pages stay in the file
	if terr := s.f.Truncate(int64(s.off)); err == nil {
		err = terr
	}
	if serr := s.f.Sync(); err == nil {
		err = serr
	}
	if rerr := os.Rename(s.name, s.sealed()); err == nil {
		err = rerr
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("spool: seal %s: %w", filepath.Base(s.name), err)
	}
	return nil
}

// Record appends r. It makes no system call unless the segment is full
// and no spare is ready (a burst beyond two segments within one
// SealEvery), when it makes the next segment itself; a record that cannot
// be kept (the disk is full) is counted and logged at most once a minute.
func (w *Writer) Record(r Record) {
	w.mu.Lock()
	w.scratch = appendRecord(w.scratch[:0], &r)
	_, err := w.appendLocked(w.scratch)
	w.mu.Unlock()
	if err != nil {
		w.fail(err)
	}
}

// Append is Record for a line the caller encoded: one JSON object with
// no newline or NUL in it (encoding/json's output qualifies); Append adds
// the newline. It returns the sequence number of the segment that holds
// the line, which OnSeal names again once that segment is sealed. A
// failure is counted but not logged: the caller has the error.
func (w *Writer) Append(line []byte) (int64, error) {
	w.mu.Lock()
	w.scratch = append(append(w.scratch[:0], line...), '\n')
	seq, err := w.appendLocked(w.scratch)
	w.mu.Unlock()
	if err != nil {
		w.failed.Add(1)
	}
	return seq, err
}

// appendLocked copies b into the current segment; w.mu is held.
func (w *Writer) appendLocked(b []byte) (int64, error) {
	if len(b) > MaxRecord {
		return 0, fmt.Errorf("record of %d bytes exceeds %d", len(b), MaxRecord)
	}
	if w.closed {
		return 0, os.ErrClosed
	}
	if w.cur.off+len(b) > len(w.cur.mem) {
		if w.spare == nil {
			s, err := w.create()
			if err != nil {
				return 0, err
			}
			w.spare = s
		}
		full := w.cur
		w.cur, w.spare = w.spare, nil
		w.sealing.Add(1)
		go func() { // sealing is the sealer's job; hand it over without waiting
			defer w.sealing.Done()
			if err := w.seal(full); err != nil {
				w.fail(err)
			}
		}()
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	w.cur.off += copy(w.cur.mem[w.cur.off:], b)
	w.written.Add(1)
	return w.cur.seq, nil
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
		case <-w.kick:
			if err := w.refill(); err != nil {
				w.fail(err)
			}
		case <-t.C:
			if err := w.Seal(); err != nil {
				w.fail(err)
			}
		}
	}
}

// refill makes a new spare if the last one was taken.
func (w *Writer) refill() error {
	w.sealMu.Lock()
	defer w.sealMu.Unlock()
	w.mu.Lock()
	need := w.spare == nil && !w.closed
	w.mu.Unlock()
	if !need {
		return nil
	}
	s, err := w.create()
	if err != nil {
		return err
	}
	w.mu.Lock()
	if w.spare != nil || w.closed {
		w.mu.Unlock()
		s.discard()
		return nil
	}
	w.spare = s
	w.mu.Unlock()
	return nil
}

// Seal hands the current segment to the collector if it holds anything:
// the spare is swapped in under the lock (Record only ever waits for that
// swap) and the old segment is sealed outside it.
func (w *Writer) Seal() error {
	if err := w.refill(); err != nil {
		return err
	}
	w.sealMu.Lock()
	defer w.sealMu.Unlock()
	w.mu.Lock()
	if w.closed || w.cur.off == 0 || w.spare == nil {
		w.mu.Unlock()
		return nil
	}
	old := w.cur
	w.cur, w.spare = w.spare, nil
	w.mu.Unlock()
	err := w.seal(old)
	if rerr := w.refillLocked(); err == nil {
		err = rerr
	}
	return err
}

// refillLocked is refill with sealMu held.
func (w *Writer) refillLocked() error {
	s, err := w.create()
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.spare != nil || w.closed {
		s.discard()
		return nil
	}
	w.spare = s
	return nil
}

// Close stops sealing, seals the current segment (an empty one is
// removed) and removes the spare.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	cur, spare := w.cur, w.spare
	w.cur, w.spare = &segment{}, nil
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	w.sealing.Wait()
	w.sealMu.Lock()
	defer w.sealMu.Unlock()
	if spare != nil {
		spare.discard()
	}
	if cur.off == 0 {
		cur.discard()
		return nil
	}
	return w.seal(cur)
}
