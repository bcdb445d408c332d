// Package agi is stirgate's FastAGI server: Asterisk dialplans call
// AGI(agi://host:4573/sign) before dialing out and AGI(agi://host:4573/verify)
// on inbound calls, and read the result from STIR_* channel variables.
//
// The package holds no STIR logic: a Service (the core Signer and Verifier)
// does the work, and every outcome is written through an outcome.Recorder,
// which makes this server the system of record for what it judged.
//
// The FastAGI protocol layer (Session) is written here rather than taken
// from a library; DEPENDENCY.md records the tests that decided it.
package agi

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/internal/ratelog"
	"github.com/stirgate/stirgate/outcome"
)

// Service is what the scripts call: the core Signer and Verifier, or a
// fake in tests.
type Service interface {
	Sign(ctx context.Context, req core.SignRequest) (*core.SignResult, error)
	Verify(ctx context.Context, req core.VerifyRequest) *stir.Result
}

// Core adapts a core Signer and Verifier to Service. Either may be nil
// when the node only signs or only verifies; the other script then reports
// an internal error rather than failing silently.
type Core struct {
	Signer   *core.Signer
	Verifier *core.Verifier
}

// Sign implements Service.
func (c Core) Sign(ctx context.Context, req core.SignRequest) (*core.SignResult, error) {
	if c.Signer == nil {
		return nil, stir.ErrInternal.Withf("signing is not configured on this node")
	}
	return c.Signer.Sign(ctx, req)
}

// DivSigner is the optional part of a Service that signs diversions
// (RFC 8946) for the sign script's div= option.
type DivSigner interface {
	SignDiv(ctx context.Context, req core.DivRequest) (*core.SignResult, error)
}

// SignDiv implements DivSigner.
func (c Core) SignDiv(ctx context.Context, req core.DivRequest) (*core.SignResult, error) {
	if c.Signer == nil {
		return nil, stir.ErrInternal.Withf("signing is not configured on this node")
	}
	return c.Signer.SignDiv(ctx, req)
}

// Verify implements Service.
func (c Core) Verify(ctx context.Context, req core.VerifyRequest) *stir.Result {
	if c.Verifier == nil {
		return (&stir.Result{}).Failed(stir.ErrInternal.Withf("verification is not configured on this node"))
	}
	return c.Verifier.Verify(ctx, req)
}

// Options configures a Server. The zero value works, given a Service.
type Options struct {
	// Service signs and verifies. Required (SetService can supply it later).
	Service Service
	// Recorder receives one Outcome per sign and per verify session; nil
	// records nothing.
	Recorder outcome.Recorder
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Now defaults to time.Now; it stamps recorded outcomes.
	Now func() time.Time

	// System names this Asterisk in recorded outcomes.
	System string
	// SessionTimeout bounds one session from accept to close (default
	// 10 s). Asterisk never times a FastAGI server out, so this deadline is
	// the only thing between a stuck session and a stuck call.
	SessionTimeout time.Duration
	// MaxSessions caps concurrent sessions (default 1024). A connection
	// beyond it is closed at once: the dialplan goes on without STIR
	// variables instead of waiting in a queue.
	MaxSessions int
	// MaxSessionsPerSource caps concurrent sessions from one address
	// (default half of MaxSessions), so that one host's silent or slow
	// connections cannot take the sessions another PBX needs, while a
	// single busy PBX still has most of the pool. A connection beyond it is
	// closed at once, as beyond MaxSessions.
	MaxSessionsPerSource int
	// Allow lists the addresses and prefixes that may open sessions; a
	// connection from elsewhere is closed at accept, before anything is
	// read. Empty admits loopback only: FastAGI has no authentication, and
	// the server usually runs on the PBX itself.
	Allow []netip.Prefix
	// LogInterval is the least time between two log lines of one kind
	// about single connections (refusals, failed sessions); the lines in
	// between are counted in the next one (default 10 s).
	LogInterval time.Duration
	// RecordTimeout bounds the outcome write after a session (default 5 s).
	RecordTimeout time.Duration

	// RequireIdentity is the default of the verify script's require=
	// argument: true makes a call without Identity a 428 failure.
	RequireIdentity bool
	// MaxIdentityHeaders is how many Identity headers verify reads (default
	// 6); one more is read so that the verifier sees there are too many.
	MaxIdentityHeaders int

	// Observe, when set, is told of each sign or verify session that
	// reached a result: op is "sign" or "verify", d the time from the end of
	// the environment block to the result (the AGI round trips that read
	// the headers included, the variables set afterwards not), outcome the
	// STIR_RESULT value and errName the stable error name or "".
	Observe func(op string, d time.Duration, outcome, errName string)
	// Dropped, when set, is told of each connection that ended without a
	// result: "not_allowed", "max_sessions", "max_sessions_per_source",
	// "no_environment", "unknown_script",
	// "no_service" or "session_failed".
	Dropped func(reason string)
}

// Defaults of Options.
const (
	DefaultSessionTimeout     = 10 * time.Second
	DefaultMaxSessions        = 1024
	DefaultRecordTimeout      = 5 * time.Second
	DefaultMaxIdentityHeaders = 6 // a SHAKEN PASSporT and five diversions, as the core verifier
)

var errUnknownScript = errors.New("unknown script: want agi://host/sign or agi://host/verify")

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("agi: server closed")

// Stats counts sessions since the server was made.
type Stats struct {
	Accepted  int64 // connections given a session
	Rejected  int64 // connections closed at once: not allowed, over MaxSessions or MaxSessionsPerSource
	Failed    int64 // sessions ended by a transport or protocol error
	Active    int64 // sessions running now
	Recorded  int64 // outcomes written
	RecordErr int64 // outcome writes that failed
}

// Server is a FastAGI server. Make one with NewServer; it is safe for
// concurrent use and may serve several listeners.
type Server struct {
	opts Options
	log  *slog.Logger
	rl   *ratelog.Limiter // lines a peer can cause once per connection
	svc  atomic.Pointer[serviceBox]

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]netip.Addr // open sessions and their source
	perSrc    map[netip.Addr]int
	closing   bool

	wg sync.WaitGroup
	// hard is cancelled when a Shutdown's grace runs out: it aborts
	// sessions and the outcome writes that follow them.
	hard       context.Context
	hardCancel context.CancelFunc

	accepted, rejected, failed, active, recorded, recordErr atomic.Int64
}

type serviceBox struct{ Service }

// NewServer makes a Server from opts, filling in defaults.
func NewServer(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SessionTimeout <= 0 {
		opts.SessionTimeout = DefaultSessionTimeout
	}
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = DefaultMaxSessions
	}
	if opts.MaxSessionsPerSource <= 0 {
		opts.MaxSessionsPerSource = max(opts.MaxSessions/2, 1)
	}
	if opts.RecordTimeout <= 0 {
		opts.RecordTimeout = DefaultRecordTimeout
	}
	if opts.MaxIdentityHeaders <= 0 {
		opts.MaxIdentityHeaders = DefaultMaxIdentityHeaders
	}
	s := &Server{
		opts:      opts,
		log:       opts.Logger,
		rl:        ratelog.New(ratelog.Options{Interval: opts.LogInterval}),
		listeners: map[net.Listener]struct{}{},
		conns:     map[net.Conn]netip.Addr{},
		perSrc:    map[netip.Addr]int{},
	}
	// The hard-stop context is the server's own root: sessions must not
	// inherit a caller's cancellation for their outcome writes.
	s.hard, s.hardCancel = context.WithCancel(context.Background())
	if opts.Service != nil {
		s.svc.Store(&serviceBox{opts.Service})
	}
	return s
}

// SetService swaps the Service, as a configuration reload does. Sessions
// already running keep the one they started with.
func (s *Server) SetService(svc Service) { s.svc.Store(&serviceBox{svc}) }

// Stats returns the session counters.
func (s *Server) Stats() Stats {
	return Stats{
		Accepted: s.accepted.Load(), Rejected: s.rejected.Load(), Failed: s.failed.Load(),
		Active: s.active.Load(), Recorded: s.recorded.Load(), RecordErr: s.recordErr.Load(),
	}
}

// Serve accepts connections on l until Shutdown (it then returns
// ErrServerClosed) or until ctx ends (it then aborts its sessions, waits
// for them and returns ctx's error). Each connection runs in its own
// goroutine under its own deadline: the accept loop never reads, so a
// silent client cannot delay anyone.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		_ = l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()

	stop := context.AfterFunc(ctx, func() { _ = l.Close() })
	defer stop()

	var delay time.Duration
	for {
		conn, err := l.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			if ctx.Err() != nil {
				s.wg.Wait()
				return ctx.Err()
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// EMFILE and the like pass: back off as net/http does
			// rather than give up serving calls.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.rl.Warn(s.log, "agi accept failed; retrying", "err", err, "delay", delay)
			select {
			case <-time.After(delay):
			case <-ctx.Done():
			}
			continue
		}
		delay = 0
		if !s.admit(conn) {
			continue
		}
		go s.serveConn(ctx, conn)
	}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// Allowed reports whether src may open sessions.
func (s *Server) Allowed(src netip.Addr) bool {
	src = src.Unmap()
	if len(s.opts.Allow) == 0 {
		return src.IsLoopback()
	}
	for _, p := range s.opts.Allow {
		if p.Contains(src) {
			return true
		}
	}
	return false
}

// remoteAddr is the source address of conn; the zero Addr for a
// connection that is not TCP (a pipe in tests), which counts as loopback.
func remoteAddr(conn net.Conn) netip.Addr {
	if a, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return netip.IPv6Loopback()
}

// admit registers conn (and adds its session to s.wg), or closes it when
// its source is not allowed or over its share, or the server is full or
// closing. A refusal is logged at most once per LogInterval: a flood of
// connections must not become a flood of log lines.
func (s *Server) admit(conn net.Conn) bool {
	src := remoteAddr(conn)
	reason := ""
	s.mu.Lock()
	switch {
	case s.closing:
		reason = "closing"
	case !s.Allowed(src):
		reason = "not_allowed"
	case len(s.conns) >= s.opts.MaxSessions:
		reason = "max_sessions"
	case s.perSrc[src] >= s.opts.MaxSessionsPerSource:
		reason = "max_sessions_per_source"
	}
	if reason == "" {
		// The session joins the WaitGroup here, under the lock Shutdown
		// takes to set closing: a Shutdown that sees it active also waits
		// for it.
		s.wg.Add(1)
		s.conns[conn] = src
		s.perSrc[src]++
		s.accepted.Add(1)
		s.active.Add(1)
		s.mu.Unlock()
		return true
	}
	s.mu.Unlock()
	// Counted before the close: a peer that has seen its connection end
	// then reads a count that includes it.
	s.rejected.Add(1)
	_ = conn.Close()
	if reason == "closing" {
		return false
	}
	s.drop(reason)
	switch reason {
	case "not_allowed":
		s.rl.Warn(s.log, "agi connection refused: source not in [agi] allow", "remote", conn.RemoteAddr().String())
	case "max_sessions":
		s.rl.Warn(s.log, "agi session refused: max_sessions reached", "remote", conn.RemoteAddr().String(), "max", s.opts.MaxSessions)
	default:
		s.rl.Warn(s.log, "agi session refused: max_sessions_per_source reached", "remote", conn.RemoteAddr().String(), "max", s.opts.MaxSessionsPerSource)
	}
	return false
}

func (s *Server) release(conn net.Conn) {
	_ = conn.Close()
	s.mu.Lock()
	if src, ok := s.conns[conn]; ok {
		delete(s.conns, conn)
		if s.perSrc[src]--; s.perSrc[src] <= 0 {
			delete(s.perSrc, src)
		}
		s.active.Add(-1)
	}
	s.mu.Unlock()
}

// Shutdown stops accepting, lets running sessions finish, and returns nil
// when they have. If ctx ends first it aborts the rest, waits for their
// goroutines to return, and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for l := range s.listeners {
		_ = l.Close()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	defer s.rl.Flush() // held-back counts are written, not lost
	select {
	case <-done:
		s.hardCancel()
		return nil
	case <-ctx.Done():
	}
	s.hardCancel()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.SetDeadline(aLongTimeAgo)
	}
	s.mu.Unlock()
	<-done
	return ctx.Err()
}

func (s *Server) serveConn(ctx context.Context, conn net.Conn) {
	defer s.wg.Done()
	defer s.release(conn)

	ctx, cancel := context.WithTimeout(ctx, s.opts.SessionTimeout)
	defer cancel()
	// A hard stop aborts the session too.
	stopHard := context.AfterFunc(s.hard, cancel)
	defer stopHard()
	_ = conn.SetDeadline(time.Now().Add(s.opts.SessionTimeout))

	sess := NewSession(conn)
	log := s.log.With("remote", conn.RemoteAddr().String())
	if err := sess.ReadEnv(ctx); err != nil {
		s.failed.Add(1)
		s.drop("no_environment")
		s.rl.Info(log, "agi session ended before its environment", "err", err)
		return
	}
	start := time.Now()
	log = log.With("script", sess.Env.Script(), "uniqueid", sess.Env["agi_uniqueid"])

	box := s.svc.Load()
	if box == nil {
		s.failed.Add(1)
		s.drop("no_service")
		log.Error("agi session refused: no service configured")
		return
	}

	var out *outcome.Outcome
	var err error
	// judged is when the script had its result, before setting variables.
	judged := func(o *outcome.Outcome) { s.observe(sess.Env.Script(), time.Since(start), o) }
	switch sess.Env.Script() {
	case "sign":
		out, err = s.sign(ctx, sess, box.Service, judged)
	case "verify":
		out, err = s.verify(ctx, sess, box.Service, judged)
	default:
		err = errUnknownScript
		_ = sess.Verbose(ctx, "stirgate: "+err.Error(), 1)
	}
	if err != nil {
		s.failed.Add(1)
		switch {
		case err == errUnknownScript:
			s.drop("unknown_script")
		case out == nil:
			s.drop("session_failed")
		}
		s.rl.Warn(log, "agi session failed", "err", err, "hungup", sess.HungUp())
	}
	// Close before the store write: Asterisk resumes the dialplan as soon
	// as the connection ends, and the call must not wait for a database.
	_ = conn.Close()
	if out != nil {
		s.record(log, *out)
	}
}

func (s *Server) observe(op string, d time.Duration, out *outcome.Outcome) {
	if s.opts.Observe != nil && out != nil {
		s.opts.Observe(op, d, out.Result, out.ErrorName)
	}
}

func (s *Server) drop(reason string) {
	if s.opts.Dropped != nil {
		s.opts.Dropped(reason)
	}
}

func (s *Server) record(log *slog.Logger, o outcome.Outcome) {
	if s.opts.Recorder == nil {
		return
	}
	o.Source = outcome.SourceAGI
	if o.System == "" {
		o.System = s.opts.System
	}
	ctx, cancel := context.WithTimeout(s.hard, s.opts.RecordTimeout)
	defer cancel()
	if err := s.opts.Recorder.Record(ctx, o); err != nil {
		s.recordErr.Add(1)
		s.rl.Error(log, "agi outcome not recorded", "err", err, "kind", o.Kind, "result", o.Result)
		return
	}
	s.recorded.Add(1)
}
