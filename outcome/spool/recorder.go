package spool

import (
	"errors"
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
)

// Recorder is what a Kamailio library (libstirgate, the libsecsipid
// drop-in) records through: every sign and check goes to the process's
// spool ([store] spool_dir) as one memory copy; `stirgate serve` or
// `stirgate collect` moves the files into the store.

// spools holds one Writer per directory for the whole process: handles
// come and go with reloads, the process's file stays.
// The last state using a directory to close (stirgate_close at Kamailio's
// shutdown) seals the file; a killed worker's file is collected anyway.
var spools = struct {
	sync.Mutex
	m    map[string]*Writer
	refs map[string]int
}{m: map[string]*Writer{}, refs: map[string]int{}}

func openSpool(dir string, log *slog.Logger) (*Writer, error) {
	spools.Lock()
	defer spools.Unlock()
	if w := spools.m[dir]; w != nil {
		spools.refs[dir]++
		return w, nil
	}
	w, err := Open(Options{Dir: dir, Prefix: "stirgate", Logger: log})
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

// Recorder is one configuration's link to its process's spool. A nil
// *Recorder records nothing.
type Recorder struct {
	w      *Writer
	dir    string
	system string
	source string
}

// Close releases the spool; the last Recorder of a directory to close
// seals its file.
func (r *Recorder) Close() {
	if r != nil {
		releaseSpool(r.dir)
	}
}

// NewRecorder opens the spool of cfg's [store] spool_dir; nil, nil when
// it is not set. source names the library in the records.
func NewRecorder(cfg *config.Config, source string, log *slog.Logger) (*Recorder, error) {
	sc := cfg.Store
	if sc.SpoolDir == "" {
		return nil, nil
	}
	dir := cfg.ResolveState(sc.SpoolDir)
	w, err := openSpool(dir, log)
	if err != nil {
		return nil, err
	}
	sys := sc.System
	if sys == "" {
		sys, _ = os.Hostname()
	}
	return &Recorder{w: w, dir: dir, system: sys, source: source}, nil
}

// callSeq and callPrefix make each record's key unique across the
// process's life and across restarts: a call carries no id the library
// sees (Call-ID is optional), and every call is a record of its own.
var (
	callSeq    atomic.Uint64
	callPrefix = "k" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-"
)

func (r *Recorder) base(kind string) Record {
	dir := "inbound"
	if kind == "sign" {
		dir = "outbound"
	}
	return Record{Time: time.Now().UTC(), System: r.system, UniqueID: callPrefix + strconv.FormatUint(callSeq.Add(1), 36),
		Kind: kind, Direction: dir, Source: r.source}
}

// Verified records one verification.
func (r *Recorder) Verified(res *stir.Result) {
	if r == nil {
		return
	}
	o := r.base("verify")
	o.Result, o.Verstat, o.Attest, o.OrigID = string(res.Result), string(res.Verstat), string(res.Attest), res.OrigID
	o.SIPCode, o.ErrorName, o.Reason, o.X5U, o.SPC = res.SIPCode, res.Error, res.Reason, res.X5U, res.SPC
	o.Orig, o.Dest = res.Orig, strings.Join(res.Dest, ",")
	if res.Result == stir.Pass {
		tns := make([]string, len(res.Div))
		for i, d := range res.Div {
			tns[i] = d.TN
		}
		o.Div = strings.Join(tns, ",")
		if res.RCD != nil {
			o.RCDNam, o.RCDCrn = res.RCD.Nam, res.RCD.Crn
		}
	}
	r.w.Record(o)
}

// Signed records one signing, done (res) or refused (err, as the Signer
// returned it: a *core.SignError names whom the refused call was for).
func (r *Recorder) Signed(req core.SignRequest, res *core.SignResult, err error) {
	if r == nil {
		return
	}
	o := r.base("sign")
	o.Peer = req.Source
	if err != nil {
		e := stir.As(err)
		if e == nil {
			e = stir.ErrInternal.With("", err)
		}
		o.Result, o.ErrorName, o.Reason, o.SIPCode = "unsigned", e.Name, e.Error(), e.SIPCode
		o.Orig, o.Dest = req.Orig, strings.Join(req.Dest, ",")
		var se *core.SignError
		if errors.As(err, &se) {
			o.Tenant, o.Customer, o.Rule, o.SPC = se.Tenant, se.Customer, se.Rule, se.SPC
		}
	} else {
		o.Result, o.Attest, o.OrigID, o.Orig, o.Dest = "signed", string(res.Attest), res.OrigID, res.Orig, strings.Join(res.Dest, ",")
		o.Tenant, o.Customer, o.Rule, o.SPC, o.X5U = res.Tenant, res.Customer, res.Rule, res.SPC, res.X5U
	}
	r.w.Record(o)
}
