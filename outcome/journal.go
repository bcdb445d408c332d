package outcome

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/stirgate/stirgate/outcome/spool"
)

// The journal makes an outcome survive the death of the process that
// recorded it (SIGKILL, a panic, the OOM killer) from the moment Record
// returns, without making the caller wait for a disk or the store.
//
// It is a spool (package spool) of the Writer's own: Record copies the
// outcome's JSON into a segment mapped MAP_SHARED, a memory copy with no
// system call, after which the record belongs to the kernel's page cache
// and outlives the process. Each segment is sealed (msync, fsync, rename)
// every SealEvery, so a power loss or kernel crash can take at most the
// last SealEvery of records; a process crash takes none.
//
// A sealed segment is removed once every record in it is stored or in the
// fsync'd spill file. One whose records did not all take that path (the
// queue was full) is read back into the store whole. Segments left by a
// previous run of the process are read into the store when the Writer
// starts: records are keyed, so one stored twice merges into one row.
type journal struct {
	w   *spool.Writer
	dir string
	log *slog.Logger

	mu      sync.Mutex
	gens    map[int64]*journalGen
	collect []string // files to read into the store: leftovers, lost records
}

// journalGen follows the records of one segment.
type journalGen struct {
	pending int    // records queued, not yet stored or spilled
	lost    bool   // some record took neither path: read the file back
	sealed  string // path once sealed
}

const journalPrefix = "journal"

// openJournal lists what a previous run left in dir, then opens this
// run's segments there.
func openJournal(dir string, sealEvery time.Duration, log *slog.Logger) (*journal, error) {
	j := &journal{dir: dir, log: log, gens: map[int64]*journalGen{}}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	for _, e := range ents {
		n := e.Name()
		if e.Type().IsRegular() && (strings.HasSuffix(n, spool.SuffixSealed) || strings.HasSuffix(n, spool.SuffixOpen)) {
			j.collect = append(j.collect, filepath.Join(dir, n))
		}
	}
	sort.Strings(j.collect)
	if len(j.collect) > 0 {
		log.Info("journal: replaying what the last run left", "dir", dir, "files", len(j.collect))
	}
	j.w, err = spool.Open(spool.Options{Dir: dir, Prefix: journalPrefix, SealEvery: sealEvery, OnSeal: j.sealed, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	return j, nil
}

// add journals o and returns the segment that holds it. The segment's
// count is taken under j.mu, so its seal cannot be seen before the count.
func (j *journal) add(o *Outcome) (int64, error) {
	b, err := json.Marshal(o)
	if err != nil {
		return 0, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	seq, err := j.w.Append(b)
	if err != nil {
		return 0, err
	}
	g := j.gens[seq]
	if g == nil {
		g = &journalGen{}
		j.gens[seq] = g
	}
	g.pending++
	return seq, nil
}

// done says a record of segment seq is stored or spilled (lost: it is
// neither, and only the journal holds it).
func (j *journal) done(seq int64, lost bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	g := j.gens[seq]
	if g == nil {
		return
	}
	g.pending--
	g.lost = g.lost || lost
	j.finishLocked(seq, g)
}

// sealed is spool's OnSeal.
func (j *journal) sealed(seq int64, path string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	g := j.gens[seq]
	if g == nil {
		g = &journalGen{}
		j.gens[seq] = g
	}
	g.sealed = path
	j.finishLocked(seq, g)
}

func (j *journal) finishLocked(seq int64, g *journalGen) {
	if g.pending > 0 || g.sealed == "" {
		return
	}
	delete(j.gens, seq)
	if g.lost {
		j.collect = append(j.collect, g.sealed)
		return
	}
	if err := os.Remove(g.sealed); err != nil && !errors.Is(err, fs.ErrNotExist) {
		j.log.Error("journal: remove", "err", err)
	}
}

// backlog reports whether records wait to be read into the store: files
// queued for it, and records only the journal holds in a segment not yet
// sealed (they join collect at the seal, which may be SealEvery away).
func (j *journal) backlog() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.collect) > 0 {
		return true
	}
	for _, g := range j.gens {
		if g.lost {
			return true
		}
	}
	return false
}

// replay reads the files waiting to be read into st, in order, and stops at
// the first failure (the rest wait for the next call).
func (j *journal) replay(ctx context.Context, st BatchRecorder, o CollectOptions) (int, error) {
	j.mu.Lock()
	files := append([]string(nil), j.collect...)
	j.mu.Unlock()
	total := 0
	for _, f := range files {
		n, err := collectFile(ctx, st, f, o)
		total += n
		if err != nil {
			return total, err
		}
		j.mu.Lock()
		for i, c := range j.collect {
			if c == f {
				j.collect = append(j.collect[:i], j.collect[i+1:]...)
				break
			}
		}
		j.mu.Unlock()
	}
	return total, nil
}

// close seals the current segment; with every record done, nothing stays.
func (j *journal) close() error { return j.w.Close() }
