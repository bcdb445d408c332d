// Package ratelog writes log records that a peer can trigger at will
// (one per refused connection, one per failed session) at most once per
// interval each, and says how many it held back, so that a flood of bad
// connections costs a few lines instead of one line per connection.
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// DefaultInterval is the interval of a zero Options.
const DefaultInterval = 10 * time.Second

// SuppressedKey is the attribute that carries how many records of the same
// message were held back since the last one written. A summary (written at
// the end of an interval, or by Flush) carries it with the attributes of
// the last held-back record; the number of events is the number of other
// records plus the sum of SuppressedKey.
const SuppressedKey = "suppressed"

// maxKeys bounds the messages tracked; messages are constants, so this is
// a guard against a caller that formats them, not a working limit.
const maxKeys = 1024

// Options configures a Limiter. The zero value writes each message at most
// once per DefaultInterval.
type Options struct {
	// Interval is the least time between two records of one message.
	Interval time.Duration
	// Now defaults to time.Now.
	Now func() time.Time
	// NoTimer turns off the summary written at the end of an interval in
	// which records were held back; they are then reported with the next
	// record of the message, or by Flush. Tests with a fake clock use it.
	NoTimer bool
}

// Limiter rate-limits records by message. It is safe for concurrent use;
// the zero value is not usable, make one with New.
type Limiter struct {
	o  Options
	mu sync.Mutex
	m  map[key]*state
}

type key struct {
	level slog.Level
	msg   string
}

type state struct {
	since      time.Time // start of the current interval
	suppressed int
	last       *slog.Logger // logger and attributes of the last held-back record
	lastArgs   []any
	timer      *time.Timer
}

// New makes a Limiter.
func New(o Options) *Limiter {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Limiter{o: o, m: map[key]*state{}}
}

// Log writes msg to l unless a record with the same level and message was
// written less than an interval ago; then it counts it. msg should be a
// constant: it is the key. The record written after held-back ones carries
// SuppressedKey with their number. It reports whether it wrote.
func (r *Limiter) Log(ctx context.Context, l *slog.Logger, level slog.Level, msg string, args ...any) bool {
	if !l.Enabled(ctx, level) {
		return false
	}
	now := r.o.Now()
	k := key{level, msg}
	r.mu.Lock()
	st := r.m[k]
	if st == nil {
		if len(r.m) >= maxKeys {
			r.pruneLocked(now)
		}
		if len(r.m) >= maxKeys {
			r.mu.Unlock()
			l.Log(ctx, level, msg, args...)
			return true
		}
		st = &state{}
		r.m[k] = st
	} else if now.Sub(st.since) < r.o.Interval {
		st.suppressed++
		st.last, st.lastArgs = l, args
		if st.timer == nil && !r.o.NoTimer {
			st.timer = time.AfterFunc(r.o.Interval-now.Sub(st.since), func() { r.flush(k) })
		}
		r.mu.Unlock()
		return false
	}
	n := st.suppressed
	st.since, st.suppressed, st.last, st.lastArgs = now, 0, nil, nil
	if st.timer != nil {
		st.timer.Stop()
		st.timer = nil
	}
	r.mu.Unlock()
	if n > 0 {
		args = append(args[:len(args):len(args)], SuppressedKey, n)
	}
	l.Log(ctx, level, msg, args...)
	return true
}

// Warn is Log at slog.LevelWarn.
func (r *Limiter) Warn(l *slog.Logger, msg string, args ...any) {
	r.Log(context.Background(), l, slog.LevelWarn, msg, args...)
}

// Info is Log at slog.LevelInfo.
func (r *Limiter) Info(l *slog.Logger, msg string, args ...any) {
	r.Log(context.Background(), l, slog.LevelInfo, msg, args...)
}

// Error is Log at slog.LevelError.
func (r *Limiter) Error(l *slog.Logger, msg string, args ...any) {
	r.Log(context.Background(), l, slog.LevelError, msg, args...)
}

// Flush writes, for each message with held-back records, the last of them
// with their count, and starts a new interval. Servers call it on shutdown
// so that no count is lost.
func (r *Limiter) Flush() {
	r.mu.Lock()
	keys := make([]key, 0, len(r.m))
	for k, st := range r.m {
		if st.suppressed > 0 {
			keys = append(keys, k)
		}
	}
	r.mu.Unlock()
	for _, k := range keys {
		r.flush(k)
	}
}

// flush writes the summary of k's held-back records, if any.
func (r *Limiter) flush(k key) {
	r.mu.Lock()
	st := r.m[k]
	if st == nil || st.suppressed == 0 {
		if st != nil {
			st.timer = nil
		}
		r.mu.Unlock()
		return
	}
	l, args, n := st.last, st.lastArgs, st.suppressed
	st.since, st.suppressed, st.last, st.lastArgs = r.o.Now(), 0, nil, nil
	if st.timer != nil {
		st.timer.Stop()
		st.timer = nil
	}
	r.mu.Unlock()
	l.Log(context.Background(), k.level, k.msg, append(args[:len(args):len(args)], SuppressedKey, n)...)
}

// pruneLocked forgets messages quiet for an interval.
func (r *Limiter) pruneLocked(now time.Time) {
	for k, st := range r.m {
		if st.suppressed == 0 && now.Sub(st.since) >= r.o.Interval {
			delete(r.m, k)
		}
	}
}
