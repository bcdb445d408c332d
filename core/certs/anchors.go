package certs

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// AnchorOptions configures LoadAnchors.
type AnchorOptions struct {
	// Files are PEM bundles of trust anchors (the STI-PA's list of STI-CAs).
	Files []string
	// CheckInterval is the least time between two looks at the files
	// (default 0: every Check stats them, which costs a few microseconds).
	CheckInterval time.Duration
	Now           func() time.Time
	Logger        *slog.Logger
}

// Anchors is a trust anchor pool read from PEM files and read again when
// they change, so that an operator replacing the bundle needs no signal.
// A change is noticed by a stat (size and modification time); the files
// are then read whole and hashed, and the pool is replaced only if the
// content differs and parses: a half-written or broken bundle keeps the
// previous pool (and is logged), so a reload is atomic. Safe for
// concurrent use.
type Anchors struct {
	o       AnchorOptions
	pool    atomic.Pointer[x509.CertPool]
	certs   atomic.Pointer[[]*x509.Certificate] // what pool holds, for expiry reports
	gen     atomic.Uint64
	checked atomic.Int64 // unix nanos of the last look at the files

	mu     sync.Mutex // one reload at a time
	stamp  string     // sizes and mtimes seen last
	sum    [32]byte   // content hash of the pool in use
	badSum [32]byte   // content hash last refused, logged once
}

// LoadAnchors reads the files; every one must hold at least one
// certificate.
func LoadAnchors(o AnchorOptions) (*Anchors, error) {
	if len(o.Files) == 0 {
		return nil, fmt.Errorf("trust anchors: no files")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Anchors{o: o}
	stamp, err := a.statFiles()
	if err != nil {
		return nil, err
	}
	pool, list, sum, err := a.read()
	if err != nil {
		return nil, err
	}
	a.pool.Store(pool)
	a.certs.Store(&list)
	a.stamp, a.sum = stamp, sum
	a.checked.Store(o.Now().UnixNano())
	return a, nil
}

// Certs are the certificates of the pool in use (a CertPool does not list
// them), for reports of their expiry.
func (a *Anchors) Certs() []*x509.Certificate { return *a.certs.Load() }

// Pool is the pool in use.
func (a *Anchors) Pool() *x509.CertPool { return a.pool.Load() }

// Generation counts the reloads that changed the pool.
func (a *Anchors) Generation() uint64 { return a.gen.Load() }

// Check looks at the files (at most once per CheckInterval) and reloads
// the pool if they changed. It reports whether the pool was replaced.
func (a *Anchors) Check() bool {
	now := a.o.Now().UnixNano()
	if a.o.CheckInterval > 0 && now-a.checked.Load() < int64(a.o.CheckInterval) {
		return false
	}
	if !a.mu.TryLock() {
		return false // another caller is looking right now
	}
	defer a.mu.Unlock()
	a.checked.Store(now)
	stamp, err := a.statFiles()
	if err != nil || stamp == a.stamp {
		if err != nil && a.stamp != "" {
			a.o.Logger.Warn("trust anchors: cannot stat, keeping the current list", "err", err)
			a.stamp = "" // log once until the files are back
		}
		return false
	}
	pool, list, sum, err := a.read()
	if err != nil {
		if sum != a.badSum {
			a.badSum = sum
			a.o.Logger.Error("trust anchors: changed file refused, keeping the current list", "err", err)
		}
		return false // the stamp is not taken: a rewrite finishing later is read again
	}
	a.stamp = stamp
	if sum == a.sum {
		return false
	}
	a.pool.Store(pool)
	a.certs.Store(&list)
	a.sum = sum
	a.gen.Add(1)
	a.o.Logger.Info("trust anchors reloaded", "files", a.o.Files)
	return true
}

func (a *Anchors) statFiles() (string, error) {
	var b bytes.Buffer
	for _, f := range a.o.Files {
		fi, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("trust anchors: %w", err)
		}
		fmt.Fprintf(&b, "%s\x00%d\x00%d\x00", f, fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String(), nil
}

func (a *Anchors) read() (*x509.CertPool, []*x509.Certificate, [32]byte, error) {
	pool := x509.NewCertPool()
	var list []*x509.Certificate
	h := sha256.New()
	var sum [32]byte
	var errOut error
	for _, f := range a.o.Files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, sum, fmt.Errorf("trust anchors: %w", err)
		}
		h.Write(data)
		if !pool.AppendCertsFromPEM(data) && errOut == nil {
			errOut = fmt.Errorf("trust anchors %s: no PEM certificate", f)
		}
		list = append(list, pemCertificates(data)...)
	}
	copy(sum[:], h.Sum(nil))
	if errOut != nil {
		return nil, nil, sum, errOut
	}
	return pool, list, sum, nil
}

// pemCertificates parses the CERTIFICATE blocks of b that parse; the pool
// is the judge of the file, this list only reports on it.
func pemCertificates(b []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(blk.Bytes); err == nil {
			out = append(out, c)
		}
	}
}
