package x5u

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
	"time"
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
	return filepath.Join(c.dir, hex.EncodeToString(sum[:])+".json")
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
// one, never a torn write. Failures are logged: the disk is an optimisation.
func (c *Cache[T]) writeDisk(raw string, body []byte, fetched, expires time.Time) {
	data, err := json.Marshal(diskRecord{URL: raw, Fetched: fetched, Expires: expires, Body: body})
	if err == nil {
		err = writeAtomic(c.diskPath(raw), data)
	}
	if err != nil {
		c.log.Warn("x5u: disk cache write failed", "url", raw, "err", err)
	}
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".x5u-*.tmp") // mode 0600
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
		err = os.Rename(name, path)
	}
	if err != nil {
		os.Remove(name)
	}
	return err
}
