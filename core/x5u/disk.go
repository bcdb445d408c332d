package x5u

// The disk cache is one file per URL in Dir, shared by every process
// configured with that Dir (Kamailio workers, a restart). Its bounds
// (DiskMaxEntries, DiskMaxBytes) hold for the directory, not per process,
// so the accounting must be shared too. It is a scan of the directory at
// write time, under an exclusive flock(2) of Dir/.lock:
//
//   - no index to keep consistent: the directory is the state, so a
//     process killed mid-write leaves at worst a temporary file, which the
//     next writer removes (under the lock no other write is in progress),
//     and files removed by hand are simply gone;
//   - each file's expiry is its modification time (set when written) and
//     its last use its access time (set explicitly when written and when
//     read back, whatever the mount's atime policy), so the scan needs one
//     stat per file and reads no file;
//   - writes are rare (one per fetched URL, and fetches are bounded by
//     MaxFetches), while reads take no lock at all: a file is replaced by
//     rename, so a reader sees the old file or the new one.
//
// The scan removes expired files, then the least recently used until
// both bounds hold. Its cost is one stat per file (5000 files by default),
// paid per write, not per call.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// lockName is the lock file in Dir; diskSuffix ends every entry's name.
const (
	lockName   = ".lock"
	diskSuffix = ".json"
	tmpPattern = ".x5u-*.tmp"
)

// diskRecord is one URL's file in Dir. The URL is stored so that a file
// that is not the one asked for (copied, or tampered with) is not used.
type diskRecord struct {
	URL     string    `json:"url"`
	Fetched time.Time `json:"fetched"`
	Expires time.Time `json:"expires"`
	Body    []byte    `json:"body"`
}

// diskPath names raw's file: the hex SHA-256 of the URL, so that no URL
// text ever reaches the file system.
func (c *Cache[T]) diskPath(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return filepath.Join(c.dir, hex.EncodeToString(sum[:])+diskSuffix)
}

// loadDisk returns raw's disk entry if it is fresh and its body validates
// again, else nil. Nothing on disk is trusted: the directory may be shared
// with other processes, and a file may have outlived a revocation.
func (c *Cache[T]) loadDisk(ctx context.Context, raw string, now time.Time) *entry[T] {
	path := c.diskPath(raw)
	f, err := os.Open(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.log.Warn("x5u: disk cache unreadable", "url", raw, "err", err)
		}
		return nil
	}
	defer f.Close()
	// A body at the cap, base64 encoded, plus the metadata.
	limit := c.f.maxBody*4/3 + 4096
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil || int64(len(b)) > limit {
		c.log.Warn("x5u: disk cache entry unreadable or too large", "url", raw, "path", path, "err", err)
		return nil
	}
	var rec diskRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		c.log.Warn("x5u: disk cache entry malformed", "url", raw, "path", path, "err", err)
		return nil
	}
	switch {
	case rec.URL != raw, len(rec.Body) == 0, int64(len(rec.Body)) > c.f.maxBody:
		c.log.Warn("x5u: disk cache entry does not match its URL", "url", raw, "path", path)
		return nil
	case !now.Before(rec.Expires):
		return nil
	}
	v, notAfter, err := c.validate(ctx, raw, rec.Body)
	if err != nil {
		c.log.Warn("x5u: disk cache entry no longer validates, fetching again", "url", raw, "err", err)
		return nil
	}
	// A use: the file moves to the young end of the eviction order. The
	// modification time (its expiry) is kept.
	if fi, err := f.Stat(); err == nil {
		_ = os.Chtimes(path, now, fi.ModTime())
	}
	// Another process's clock or a hand-edited file could claim any
	// expiry; never keep longer than MaxTTL from now.
	exp := rec.Expires
	if exp.After(now.Add(c.maxTTL)) {
		exp = now.Add(c.maxTTL)
	}
	return &entry[T]{value: v, notAfter: notAfter, expires: clampTo(exp, notAfter)}
}

// writeDisk stores a fetched body atomically (temporary file, then rename),
// so that a reader in another process sees either the old file or the new
// one, never a torn write, then trims the directory to its bounds; all of
// it under the directory lock. Failures are logged: the disk is an
// optimisation.
func (c *Cache[T]) writeDisk(raw string, body []byte, fetched, expires time.Time) {
	data, err := json.Marshal(diskRecord{URL: raw, Fetched: fetched, Expires: expires, Body: body})
	if err != nil {
		c.log.Warn("x5u: disk cache write failed", "url", raw, "err", err)
		return
	}
	path := c.diskPath(raw)
	if int64(len(data)) > c.diskMaxB {
		return // could never stay
	}
	unlock, err := c.lockDisk()
	if err != nil {
		c.log.Warn("x5u: disk cache lock failed", "url", raw, "err", err)
		return
	}
	defer unlock()
	if err := writeAtomic(path, data, fetched, expires); err != nil {
		c.log.Warn("x5u: disk cache write failed", "url", raw, "err", err)
		return
	}
	c.trimLocked(path)
}

// lockDisk takes the directory lock: c.diskMu between the goroutines of
// this Cache, flock(2) on Dir/.lock between Caches and processes (two
// opens of the lock file exclude each other even in one process).
func (c *Cache[T]) lockDisk() (unlock func(), err error) {
	c.diskMu.Lock()
	f, err := os.OpenFile(filepath.Join(c.dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		c.diskMu.Unlock()
		return nil, err
	}
	if err := lockFile(f); err != nil {
		f.Close()
		c.diskMu.Unlock()
		return nil, err
	}
	return func() {
		f.Close() // releases the flock
		c.diskMu.Unlock()
	}, nil
}

// trimDisk is trimLocked under the lock, for start-up.
func (c *Cache[T]) trimDisk(keep string) {
	unlock, err := c.lockDisk()
	if err != nil {
		c.log.Warn("x5u: disk cache lock failed", "dir", c.dir, "err", err)
		return
	}
	defer unlock()
	c.trimLocked(keep)
}

// trimLocked enforces the disk bounds; the lock is held. It removes
// temporary files (no write is in progress under the lock, so they are
// left by a crash), expired entries, then the least recently used until
// DiskMaxEntries and DiskMaxBytes hold. keep, the file just written, goes
// last.
func (c *Cache[T]) trimLocked(keep string) {
	des, err := os.ReadDir(c.dir)
	if err != nil {
		c.log.Warn("x5u: disk cache unreadable", "dir", c.dir, "err", err)
		return
	}
	type file struct {
		path  string
		size  int64
		atime time.Time
	}
	var files []file
	var total int64
	now := c.now()
	for _, de := range des {
		name := de.Name()
		path := filepath.Join(c.dir, name)
		if !de.Type().IsRegular() {
			continue
		}
		if ok, _ := filepath.Match(tmpPattern, name); ok {
			c.removeDisk(path)
			continue
		}
		if !isEntryName(name) {
			continue // not ours: left alone
		}
		fi, err := de.Info()
		if err != nil {
			continue // removed meanwhile by a reader's rename? never mind
		}
		if !now.Before(fi.ModTime()) {
			c.removeDisk(path) // expired
			continue
		}
		files = append(files, file{path, fi.Size(), accessTime(fi)})
		total += fi.Size()
	}
	if len(files) <= c.diskMaxN && total <= c.diskMaxB {
		return
	}
	slices.SortFunc(files, func(a, b file) int {
		switch {
		case a.path == keep:
			return 1
		case b.path == keep:
			return -1
		}
		if d := a.atime.Compare(b.atime); d != 0 {
			return d
		}
		return strings.Compare(a.path, b.path)
	})
	for n := 0; len(files)-n > c.diskMaxN || total > c.diskMaxB; n++ {
		c.removeDisk(files[n].path)
		total -= files[n].size
	}
}

func (c *Cache[T]) removeDisk(path string) {
	if err := os.Remove(path); err == nil {
		c.diskRemoved.Add(1)
	} else if !errors.Is(err, fs.ErrNotExist) {
		c.log.Warn("x5u: disk cache entry could not be removed", "path", path, "err", err)
	}
}

// isEntryName reports whether name is a diskPath name: 64 hex digits and
// the suffix.
func isEntryName(name string) bool {
	h, ok := strings.CutSuffix(name, diskSuffix)
	if !ok || len(h) != 64 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil
}

// writeAtomic writes data to a temporary file whose access time is used
// (the time of the write) and whose modification time is expires, then
// renames it to path.
func writeAtomic(path string, data []byte, used, expires time.Time) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), tmpPattern) // mode 0600
	if err != nil {
		return err
	}
	name := tmp.Name()
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chtimes(name, used, expires)
	}
	if err == nil {
		err = os.Rename(name, path)
	}
	if err != nil {
		os.Remove(name)
	}
	return err
}
