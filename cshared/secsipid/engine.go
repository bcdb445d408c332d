package main

import (
	"context"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/config"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/core/tn"
	"github.com/stirgate/stirgate/core/x5u"
	"github.com/stirgate/stirgate/outcome/spool"
)

// maxVerifiers bounds the distinct expire values one engine serves.
const maxVerifiers = 16

// engine is everything built from one generation of options: the core
// Verifier per expire value, the URL fetcher, number rules. It is
// reference counted so that an option change never closes an x5u cache
// under a check that is still using it.
type engine struct {
	gen  uint64
	opts options
	log  *slog.Logger

	err      int  // non-zero: the options are unusable (bad ConfigFile, ...)
	trustErr int  // non-zero: x5u mode has no usable trust anchors
	caSet    bool // a trust anchor was configured (usable or not)
	numbers  tn.Rules
	vo       core.VerifierOptions // base options; MaxAge is set per expire
	fetch    x5u.Options[[]byte]  // for GetURLContent and key URLs
	rec      *spool.Recorder      // [store] spool_dir of ConfigFile; nil: off

	mu        sync.Mutex
	verifiers map[int]*core.Verifier
	url       *x5u.Cache[[]byte]

	users     atomic.Int64
	retired   atomic.Bool
	closeOnce sync.Once
}

func (e *engine) release() {
	if e.users.Add(-1) == 0 && e.retired.Load() {
		e.close()
	}
}

func (e *engine) retire() {
	e.retired.Store(true)
	if e.users.Load() == 0 {
		e.close()
	}
}

func (e *engine) close() {
	e.closeOnce.Do(func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, v := range e.verifiers {
			v.Close()
		}
		if e.url != nil {
			e.url.Close()
		}
		e.rec.Close()
	})
}

// newEngine maps the secsipid options onto a stirgate configuration:
// ConfigFile (if any) is the base, CertCAFile adds a trust anchor,
// CertCRLFile a CRL, CacheDirPath is the x5u disk cache and CacheExpires
// bounds how long a fetched chain is kept unless the file says otherwise.
func newEngine(o options, gen uint64, log *slog.Logger, now func() time.Time) *engine {
	e := &engine{gen: gen, opts: o, log: log, verifiers: map[int]*core.Verifier{}}
	cfg := &config.Config{Numbers: config.Numbers{Plan: "none"}}
	if o.configFile != "" {
		c, err := config.Load(o.configFile)
		if err != nil {
			log.Error("libsecsipid: ConfigFile unusable", "file", o.configFile, "err", err)
			e.err = retConfig
			return e
		}
		cfg = c
	}
	e.numbers = cfg.NumberRules()
	if o.configFile != "" {
		rec, err := spool.NewRecorder(cfg, "secsipid", log)
		if err != nil {
			log.Error("libsecsipid: [store] spool_dir unusable", "err", err)
			e.err = retConfig
			return e
		}
		e.rec = rec
	}
	e.caSet = o.certCAFile != "" || len(cfg.Verifier.Trust) > 0

	switch {
	case o.certVerify&verifyCAFile != 0 && o.certCAFile == "":
		e.trustErr = retCertNoCAFile
	case o.certVerify&verifyInter != 0 && o.certCAInter == "":
		e.trustErr = retCertNoCAInter
	case o.certVerify&verifyCRL != 0 && o.certCRLFile == "" && len(cfg.Verifier.CRL) == 0:
		e.trustErr = retCertNoCRLFile
	}
	if o.certCAInter != "" {
		// Paths are built from the chain x5u serves, as SHAKEN requires;
		// the file is read only to report a broken setting.
		if _, err := os.ReadFile(o.certCAInter); err != nil && e.trustErr == 0 {
			e.trustErr = retCertReadCAInter
		}
	}
	if o.certCAFile != "" {
		b, err := os.ReadFile(o.certCAFile)
		if err != nil || !x509.NewCertPool().AppendCertsFromPEM(b) {
			log.Error("libsecsipid: CertCAFile unusable", "file", o.certCAFile, "err", err)
			if e.trustErr == 0 {
				e.trustErr = retCertReadCAFile
			}
		} else {
			cfg.Verifier.Trust = append(cfg.Verifier.Trust, abs(o.certCAFile))
		}
	}
	if o.certCRLFile != "" {
		cfg.Verifier.CRL = append(cfg.Verifier.CRL, abs(o.certCRLFile))
	}
	if o.cacheDirPath != "" {
		cfg.X5U.CacheDir = abs(o.cacheDirPath)
	}
	if o.cacheExpires > 0 && cfg.X5U.MaxTTL.Duration == 0 {
		d := time.Duration(o.cacheExpires) * time.Second
		cfg.X5U.MaxTTL.Duration = d
		if cfg.X5U.DefaultTTL.Duration == 0 || cfg.X5U.DefaultTTL.Duration > d {
			cfg.X5U.DefaultTTL.Duration = d
		}
		if cfg.X5U.MinTTL.Duration == 0 || cfg.X5U.MinTTL.Duration > d {
			cfg.X5U.MinTTL.Duration = min(x5u.DefaultMinTTL, d)
		}
	}

	fetch, err := fetchOptions(cfg)
	if err != nil {
		log.Error("libsecsipid: [x5u] unusable", "err", err)
		e.err = retConfig
		return e
	}
	e.fetch = fetch
	if len(cfg.Verifier.Trust) == 0 {
		if e.trustErr == 0 {
			e.trustErr = retCertNoCAFile
		}
		return e
	}
	vo, err := cfg.VerifierOptions(now, log)
	if err != nil {
		log.Error("libsecsipid: verifier options unusable", "err", err)
		if e.trustErr == 0 {
			e.trustErr = retCertProcessing
			if codeOf(err) == retCertReadCRLFile {
				e.trustErr = retCertReadCRLFile
			}
		}
		return e
	}
	e.vo = vo
	// Every verifier of the engine shares the fetched CRL ([verifier]
	// crl_urls), refreshed in the background of this process.
	config.StartRevocation(vo, true)
	return e
}

// fetchOptions is the [x5u] section for plain content (GetURLContent and
// key URLs): the same URL policy, TLS roots, limits and disk cache as the
// verifier's, with a validator that only insists on a non-empty body.
func fetchOptions(cfg *config.Config) (x5u.Options[[]byte], error) {
	o, err := config.X5UOptions[[]byte](cfg)
	if err != nil {
		return o, err
	}
	o.Validate = func(_ context.Context, _ string, body []byte) ([]byte, time.Time, error) {
		if len(body) == 0 {
			return nil, time.Time{}, stir.ErrX5UBadContent.Withf("empty body")
		}
		return body, time.Time{}, nil
	}
	return o, nil
}

// verifier returns the core Verifier for an expire value (seconds of iat
// age accepted), building it on first use.
func (e *engine) verifier(expire int) (*core.Verifier, int) {
	if e.err != 0 {
		return nil, e.err
	}
	if e.trustErr != 0 {
		return nil, e.trustErr
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if v := e.verifiers[expire]; v != nil {
		return v, retOK
	}
	if len(e.verifiers) >= maxVerifiers {
		// Each expire value has its own verifier and x5u cache; scripts
		// pass a constant, so this many distinct values is a bug.
		e.log.Error("libsecsipid: too many distinct expire values", "limit", maxVerifiers)
		return nil, retErr
	}
	vo := e.vo
	if expire > 0 {
		vo.MaxAge = time.Duration(expire) * time.Second
		vo.DateMaxAge = vo.MaxAge
	}
	v, err := core.NewVerifier(vo)
	if err != nil {
		e.log.Error("libsecsipid: verifier", "err", err)
		return nil, retCertProcessing
	}
	e.verifiers[expire] = v
	return v, retOK
}

// urlCache returns the plain-content fetcher, building it on first use.
func (e *engine) urlCache() (*x5u.Cache[[]byte], int) {
	if e.err != 0 {
		return nil, e.err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.url != nil {
		return e.url, retOK
	}
	f := e.fetch
	f.Logger = e.log
	c, err := x5u.New(f)
	if err != nil {
		e.log.Error("libsecsipid: URL fetcher", "err", err)
		return nil, retConfig
	}
	e.url = c
	return c, retOK
}

// roots returns the trust anchors and CRL when any are configured, for
// validating a certificate given as a key (pubkey mode).
func (e *engine) roots() (*x509.CertPool, *certs.CRLSet) {
	if e.vo.Anchors != nil {
		// The reloading anchor list of [verifier] trust, as in use now.
		e.vo.Anchors.Check()
		return e.vo.Anchors.Pool(), e.vo.CRL
	}
	return e.vo.Roots, e.vo.CRL
}

func abs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
