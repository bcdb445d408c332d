package main

import (
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/config"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/outcome/spool"
)

// A Kamailio worker records every sign and check to a spool file of its
// own ([store] spool_dir): one write(2) per call, never a database, never
// an fsync on the SIP worker's path. `stirgate serve` or `stirgate
// collect` moves the files into the store.

// spools holds one Writer per directory for the whole process: handles
// come and go with reloads, the process's file stays.
// The last state using a directory to close (stirgate_close at Kamailio's
// shutdown) seals the file; a killed worker's file is collected anyway.
var spools = struct {
	sync.Mutex
	m    map[string]*spool.Writer
	refs map[string]int
}{m: map[string]*spool.Writer{}, refs: map[string]int{}}

func openSpool(dir string, log *slog.Logger) (*spool.Writer, error) {
	spools.Lock()
	defer spools.Unlock()
	if w := spools.m[dir]; w != nil {
		spools.refs[dir]++
		return w, nil
	}
	w, err := spool.Open(spool.Options{Dir: dir, Prefix: "stirgate", Logger: log})
	if err != nil {
		return nil, err
	}
	spools.m[dir], spools.refs[dir] = w, 1
	return w, nil
}

func releaseSpool(dir string) {
	spools.Lock()
	defer spools.Unlock()
	if spools.refs[dir]--; spools.refs[dir] > 0 {
		return
	}
	if w := spools.m[dir]; w != nil {
		_ = w.Close()
	}
	delete(spools.m, dir)
	delete(spools.refs, dir)
}

// recorder is a state's link to its spool; nil records nothing.
type recorder struct {
	w      *spool.Writer
	dir    string
	system string
	source string
}

// close releases the spool; the state is closing.
func (r *recorder) close() {
	if r != nil {
		releaseSpool(r.dir)
	}
}

// newRecorder opens the spool of cfg's [store] spool_dir, if set.
func newRecorder(cfg *config.Config, source string, log *slog.Logger) (*recorder, error) {
	sc := cfg.Store
	if sc.SpoolDir == "" {
		return nil, nil
	}
	dir := cfg.Resolve(sc.SpoolDir)
	w, err := openSpool(dir, log)
	if err != nil {
		return nil, err
	}
	sys := sc.System
	if sys == "" {
		sys, _ = os.Hostname()
	}
	return &recorder{w: w, dir: dir, system: sys, source: source}, nil
}

// callSeq and callPrefix make each record's key unique across the
// process's life and across restarts: a call carries no id the library
// sees (Call-ID is optional), and every call is a record of its own.
var (
	callSeq    atomic.Uint64
	callPrefix = "k" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-"
)

func (r *recorder) base(kind string) spool.Record {
	dir := "inbound"
	if kind == "sign" {
		dir = "outbound"
	}
	return spool.Record{Time: time.Now().UTC(), System: r.system, UniqueID: callPrefix + strconv.FormatUint(callSeq.Add(1), 36),
		Kind: kind, Direction: dir, Source: r.source}
}

// verified records one verification.
func (r *recorder) verified(res *stir.Result) {
	if r == nil {
		return
	}
	o := r.base("verify")
	o.Result, o.Verstat, o.Attest, o.OrigID = string(res.Result), string(res.Verstat), string(res.Attest), res.OrigID
	o.SIPCode, o.ErrorName, o.Reason, o.X5U, o.SPC = res.SIPCode, res.Error, res.Reason, res.X5U, res.SPC
	o.Orig, o.Dest = res.Orig, strings.Join(res.Dest, ",")
	r.w.Record(o)
}

// signed records one signing, done (res) or refused (err).
func (r *recorder) signed(req core.SignRequest, res *core.SignResult, err *stir.Error) {
	if r == nil {
		return
	}
	o := r.base("sign")
	o.Peer = req.Source
	if err != nil {
		o.Result, o.ErrorName, o.Reason, o.SIPCode = "unsigned", err.Name, err.Error(), err.SIPCode
		o.Orig, o.Dest = req.Orig, strings.Join(req.Dest, ",")
	} else {
		o.Result, o.Attest, o.OrigID, o.Orig, o.Dest = "signed", string(res.Attest), res.OrigID, res.Orig, strings.Join(res.Dest, ",")
	}
	r.w.Record(o)
}
