package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/config"
	"github.com/stirgate/stirgate/core/disposition"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/core/tn"
	"github.com/stirgate/stirgate/core/x5u"
	"github.com/stirgate/stirgate/outcome/spool"
)

// Codes of stirgate.h. They are ABI: never renumber.
const (
	codeOK         = 0
	codeInval      = -1
	codeHandle     = -2
	codeConfig     = -3
	codeNoSigner   = -4
	codeNoVerifier = -5
	codeSign       = -6
	codeTooLarge   = -7
	codeInternal   = -8
	codeLimit      = -9
	codeFork       = -10 // returned by shim.c alone: Go cannot run in a forked child
)

// Verification outcomes of stirgate.h.
const (
	resultPass = 0
	resultNone = 1
	resultFail = 2
)

// Limits of stirgate.h.
const (
	maxInput    = 65536
	maxTOML     = 1 << 20
	maxIdentity = 256
	maxHandles  = 1024
)

// apiError is a failure with its stirgate.h code. The C layer returns
// code and records msg for stirgate_errmsg.
type apiError struct {
	code int
	msg  string
	sign *stir.Error // set with codeSign
}

func (e *apiError) Error() string { return e.msg }

func fail(code int, format string, args ...any) *apiError {
	return &apiError{code: code, msg: fmt.Sprintf(format, args...)}
}

// codeOf maps any error to its code; an error that is not an *apiError is
// internal.
func codeOf(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.code
	}
	return codeInternal
}

// state is one built configuration. Calls hold a reference for their
// duration so that a reload or close never closes a verifier in use.
type state struct {
	signer   *core.Signer
	verifier *core.Verifier
	disp     disposition.Options
	timeout  time.Duration   // the x5u fetch deadline, the longest a call waits
	hash     string          // config.Config.Hash: which bytes were loaded
	rec      *spool.Recorder // nil unless [store] spool_dir is set
	refs     sync.WaitGroup
}

func (s *state) close() {
	s.refs.Wait()
	s.rec.Close()
	if s.verifier != nil {
		_ = s.verifier.Close()
	}
}

// instance is what a handle names.
type instance struct {
	mu   sync.Mutex
	cur  *state
	path string // config file, or "" for text
	text string
}

func (in *instance) acquire() (*state, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.cur == nil {
		return nil, fail(codeHandle, "handle is closed")
	}
	in.cur.refs.Add(1)
	return in.cur, nil
}

// handles is the process's handle table. Handles count up from 1 and are
// never reused, so a stale handle fails instead of reaching another
// configuration.
var handles = struct {
	sync.Mutex
	m    map[int]*instance
	next int
}{m: map[int]*instance{}, next: 1}

func lookup(h int) (*instance, error) {
	handles.Lock()
	defer handles.Unlock()
	in := handles.m[h]
	if in == nil {
		return nil, fail(codeHandle, "handle %d is not open", h)
	}
	return in, nil
}

func openHandle(path, text string) (int, error) {
	st, err := build(path, text)
	if err != nil {
		return 0, err
	}
	handles.Lock()
	defer handles.Unlock()
	if len(handles.m) >= maxHandles || handles.next == math.MaxInt32 {
		go st.close()
		return 0, fail(codeLimit, "too many open handles (%d)", len(handles.m))
	}
	h := handles.next
	handles.next++
	handles.m[h] = &instance{cur: st, path: path, text: text}
	return h, nil
}

// openFile implements stirgate_init_file.
func openFile(path string) (int, error) {
	if path == "" {
		return 0, fail(codeInval, "config path is empty")
	}
	return openHandle(path, "")
}

// openTOML implements stirgate_init_toml.
func openTOML(text string) (int, error) { return openHandle("", text) }

// reload implements stirgate_reload: build first, then swap; the old
// state closes once its calls are done.
func reload(h int, path string) error {
	in, err := lookup(h)
	if err != nil {
		return err
	}
	in.mu.Lock()
	p, t := in.path, in.text
	in.mu.Unlock()
	if path != "" {
		p, t = path, ""
	}
	st, err := build(p, t)
	if err != nil {
		return err
	}
	in.mu.Lock()
	old := in.cur
	if old == nil {
		in.mu.Unlock()
		go st.close()
		return fail(codeHandle, "handle %d was closed during reload", h)
	}
	in.cur, in.path, in.text = st, p, t
	in.mu.Unlock()
	go old.close()
	return nil
}

// closeHandle implements stirgate_close. It waits for calls in flight.
func closeHandle(h int) error {
	handles.Lock()
	in := handles.m[h]
	delete(handles.m, h)
	handles.Unlock()
	if in == nil {
		return fail(codeHandle, "handle %d is not open", h)
	}
	in.mu.Lock()
	st := in.cur
	in.cur = nil
	in.mu.Unlock()
	if st != nil {
		st.close()
	}
	return nil
}

// openHandles counts open handles (tests assert nothing leaks).
func openHandles() int {
	handles.Lock()
	defer handles.Unlock()
	return len(handles.m)
}

// build loads a configuration and constructs what it configures.
func build(path, text string) (st *state, err error) {
	var cfg *config.Config
	if path != "" {
		cfg, err = config.Load(path)
	} else {
		cfg, err = config.Parse([]byte(text), "")
	}
	if err != nil {
		return nil, fail(codeConfig, "%v", err)
	}
	log := newLogger(cfg.Log)
	// A [lab] generates its PKI on first use; in a forked server every
	// worker would race to do that, so the docs ask for a generated lab.
	svc, err := cfg.Build(config.BuildOptions{Logger: log})
	if err != nil {
		return nil, fail(codeConfig, "%v", err)
	}
	rec, err := newRecorder(cfg, "kamailio", log)
	if err != nil {
		if svc.Verifier != nil {
			_ = svc.Verifier.Close()
		}
		return nil, fail(codeConfig, "store.spool_dir: %v", err)
	}
	st = &state{disp: cfg.Disposition(), timeout: cfg.X5U.Timeout.Duration, signer: svc.Signer, verifier: svc.Verifier, hash: cfg.Hash, rec: rec}
	if st.timeout <= 0 {
		st.timeout = x5u.DefaultTimeout
	}
	return st, nil
}

// newLogger writes to stderr, which Kamailio sends to its log when it
// runs with log_stderror (and discards when daemonised).
func newLogger(l config.Log) *slog.Logger { return l.NewLogger(os.Stderr) }

// signIn is stirgate_sign_request in Go.
type signIn struct {
	Orig, Dest, From, PAI, To, Date, Attest, OrigID, CallID, Customer, Source string
}

// sign implements stirgate_sign and stirgate_sign_call.
func sign(h int, in signIn) (*core.SignResult, error) {
	inst, err := lookup(h)
	if err != nil {
		return nil, err
	}
	st, err := inst.acquire()
	if err != nil {
		return nil, err
	}
	defer st.refs.Done()
	if st.signer == nil {
		return nil, fail(codeNoSigner, "configuration has no [signer]")
	}
	req := core.SignRequest{
		Orig: in.Orig, From: in.From, PAI: in.PAI, To: in.To, Date: in.Date,
		OrigID: in.OrigID, CallID: in.CallID, Customer: in.Customer, Source: in.Source,
	}
	if in.Attest != "" {
		a, err := stir.ParseAttestation(in.Attest)
		if err != nil {
			return nil, fail(codeInval, "%v", err)
		}
		req.Attest = a
		// An explicit attest through the C API is the script author's own
		// decision in their own process, like libsecsipid's. Without one,
		// [policy] decides from the headers and no header can raise it.
		req.Trusted = true
	}
	if in.Dest != "" {
		for _, d := range strings.Split(in.Dest, ",") {
			if d = strings.TrimSpace(d); d != "" {
				req.Dest = append(req.Dest, d)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), st.timeout)
	defer cancel()
	res, err := st.signer.Sign(ctx, req)
	if err != nil {
		e := stir.As(err)
		if e == nil {
			e = stir.ErrInternal.With("", err)
		}
		st.rec.Signed(req, nil, err)
		return nil, &apiError{code: codeSign, msg: err.Error(), sign: e}
	}
	st.rec.Signed(req, res, nil)
	return res, nil
}

// signJSON is what `stirgate sign --json` prints.
func signJSON(r *core.SignResult) string {
	return mustJSON(map[string]any{
		"identity": r.Identity, "date": r.Date, "attest": r.Attest, "origid": r.OrigID,
		"orig": r.Orig, "dest": r.Dest, "iat": r.IAT, "x5u": r.X5U,
		"tenant": r.Tenant, "spc": r.SPC, "rule": r.Rule,
	})
}

// checked is a verification result with its disposition.
type checked struct {
	res    *stir.Result
	action disposition.Action
	from   string
	pai    string // "" when no P-Asserted-Identity was given
	json   string
}

// verify implements stirgate_verify and stirgate_check. It never waits
// for the network longer than the configured x5u timeout.
func verify(h int, req core.VerifyRequest) (*checked, error) {
	inst, err := lookup(h)
	if err != nil {
		return nil, err
	}
	st, err := inst.acquire()
	if err != nil {
		return nil, err
	}
	defer st.refs.Done()
	if st.verifier == nil {
		return nil, fail(codeNoVerifier, "configuration has no [verifier] trust anchors")
	}
	ctx, cancel := context.WithTimeout(context.Background(), st.timeout)
	defer cancel()
	r := st.verifier.Verify(ctx, req)
	st.rec.Verified(r)
	c := &checked{res: r, action: disposition.Decide(r, st.disp), json: mustJSON(r)}
	c.from = tn.AddVerstat(req.From, c.action.Verstat)
	if req.PAI != "" {
		c.pai = tn.AddVerstat(req.PAI, c.action.Verstat)
	}
	return c, nil
}

// outcome maps a result to STIRGATE_PASS, _NONE or _FAIL, one to one
// with its "result" field. Whether to reject is the disposition's call.
func outcome(r *stir.Result) int {
	switch r.Result {
	case stir.Pass:
		return resultPass
	case stir.None:
		return resultNone
	}
	return resultFail
}

func mustJSON(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only plain strings and numbers are encoded: unreachable.
		return `{"result":"fail","error":"internal_error"}`
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// recordError keeps msg for stirgate_errmsg of the calling thread; the C
// layer sets it (tests replace it).
var recordError = func(h int, msg string) {}

// run is the body of every export: it returns f's result, or f's error
// code after recording the message, and turns a panic into codeInternal
// so that no input can take the host process down.
func run(h int, f func() (int, error)) (rc int) {
	defer func() {
		if r := recover(); r != nil {
			rc = codeInternal
			recordError(h, fmt.Sprintf("internal error (recovered panic): %v", r))
		}
	}()
	n, err := f()
	if err != nil {
		recordError(h, err.Error())
		return codeOf(err)
	}
	return n
}

// status implements stirgate_status: what a handle runs on, for an
// operator's status command. Times are Unix seconds (0: none).
func status(h int) (string, error) {
	inst, err := lookup(h)
	if err != nil {
		return "", err
	}
	st, err := inst.acquire()
	if err != nil {
		return "", err
	}
	defer st.refs.Done()
	inst.mu.Lock()
	path := inst.path
	inst.mu.Unlock()
	out := map[string]any{"config": path, "config_hash": st.hash,
		"signer": st.signer != nil, "verifier": st.verifier != nil}
	if st.signer != nil {
		out["x5u"] = st.signer.X5U()
		if c := st.signer.Credential(); c != nil {
			out["spc"] = c.SPC
			out["cert_not_after"] = c.NotAfter.Unix()
		}
	}
	if st.verifier != nil {
		cs := st.verifier.CacheStats()
		out["x5u_cache"] = map[string]any{"entries": cs.Entries, "hits": cs.Hits, "misses": cs.Misses,
			"fetches": cs.Fetches, "fetch_errors": cs.FetchErrors, "stale_served": cs.StaleServed,
			"disk_loads": cs.DiskLoads, "evictions": cs.Evictions}
	}
	return mustJSON(out), nil
}
