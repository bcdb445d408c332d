package x5u

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/stir"
)

// TestLifetimeHonouredAndClamped checks each lifetime by behaviour: the
// value is served from memory until just before it ends and fetched again
// just after.
func TestLifetimeHonouredAndClamped(t *testing.T) {
	serverDate := time.Now().UTC().Truncate(time.Second)
	tests := []struct {
		name     string
		headers  []string
		min, max time.Duration
		notAfter time.Duration // from t0; 0 = 30 days
		want     time.Duration
	}{
		{"max-age", []string{"Cache-Control", "max-age=300"}, 0, 0, 0, 300 * time.Second},
		{"max-age among others", []string{"Cache-Control", "public, max-age=300, must-revalidate"}, 0, 0, 0, 300 * time.Second},
		{"max-age below MinTTL", []string{"Cache-Control", "max-age=5"}, 0, 0, 0, time.Minute},
		{"max-age 0", []string{"Cache-Control", "max-age=0"}, 0, 0, 0, time.Minute},
		{"max-age above MaxTTL", []string{"Cache-Control", "max-age=999999999999"}, 0, 0, 0, 24 * time.Hour},
		{"no-store", []string{"Cache-Control", "no-store"}, 0, 0, 0, time.Minute},
		{"no-cache beats max-age", []string{"Cache-Control", "no-cache, max-age=3600"}, 0, 0, 0, time.Minute},
		{"s-maxage beats max-age", []string{"Cache-Control", "max-age=300, s-maxage=600"}, 0, 0, 0, 600 * time.Second},
		{"Age is subtracted", []string{"Cache-Control", "max-age=300", "Age", "100"}, 0, 0, 0, 200 * time.Second},
		{"Expires against Date", []string{"Date", serverDate.Format(http.TimeFormat), "Expires", serverDate.Add(2 * time.Hour).Format(http.TimeFormat)}, 0, 0, 0, 2 * time.Hour},
		{"Expires in the past", []string{"Date", serverDate.Format(http.TimeFormat), "Expires", serverDate.Add(-time.Hour).Format(http.TimeFormat)}, 0, 0, 0, time.Minute},
		{"invalid Expires", []string{"Expires", "0"}, 0, 0, 0, time.Minute},
		{"max-age beats Expires", []string{"Cache-Control", "max-age=300", "Date", serverDate.Format(http.TimeFormat), "Expires", serverDate.Add(2 * time.Hour).Format(http.TimeFormat)}, 0, 0, 0, 300 * time.Second},
		{"no headers: default", nil, 0, 0, 0, time.Hour},
		{"custom MinTTL", []string{"Cache-Control", "max-age=60"}, 5 * time.Minute, 10 * time.Minute, 0, 5 * time.Minute},
		{"custom MaxTTL", []string{"Cache-Control", "max-age=3600"}, 5 * time.Minute, 10 * time.Minute, 0, 10 * time.Minute},
		{"default clamped to MaxTTL", nil, time.Minute, 10 * time.Minute, 0, 10 * time.Minute},
		{"notAfter first", []string{"Cache-Control", "max-age=3600"}, 0, 0, 10 * time.Minute, 10 * time.Minute},
		{"notAfter before MinTTL", []string{"Cache-Control", "max-age=3600"}, 0, 0, 30 * time.Second, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t, serve(testPEM, tt.headers...), func(o *Options[*chain]) {
				o.MinTTL, o.MaxTTL = tt.min, tt.max
			})
			if tt.notAfter != 0 {
				hs.v.notAfter = t0.Add(tt.notAfter)
			}
			u := hs.srv.URL("/cert.pem")
			get := func(wantRequests int64) {
				t.Helper()
				if _, err := hs.c.Get(t.Context(), u); err != nil {
					t.Fatalf("Get: %v", err)
				}
				if n := hs.srv.requests.Load(); n != wantRequests {
					t.Fatalf("at %v: server saw %d requests, want %d", hs.clock.Now().Sub(t0), n, wantRequests)
				}
			}
			get(1)
			hs.clock.Advance(tt.want - time.Second)
			get(1)
			hs.clock.Advance(time.Second)
			if tt.notAfter != 0 {
				hs.v.notAfter = hs.clock.Now().Add(time.Hour) // a renewed chain
			}
			get(2)
		})
	}
}

func TestLifetime(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		headers []string
		ttl     time.Duration
		ok      bool
	}{
		{"none", nil, 0, false},
		{"unrelated directives", []string{"Cache-Control", "public, must-revalidate"}, 0, false},
		{"max-age", []string{"Cache-Control", "max-age=60"}, time.Minute, true},
		{"quoted max-age", []string{"Cache-Control", `max-age="60"`}, time.Minute, true},
		{"upper case", []string{"Cache-Control", "MAX-AGE=60"}, time.Minute, true},
		{"malformed max-age ignored", []string{"Cache-Control", "max-age=1h"}, 0, false},
		{"negative max-age ignored", []string{"Cache-Control", "max-age=-5"}, 0, false},
		{"Age beyond max-age", []string{"Cache-Control", "max-age=60", "Age", "600"}, 0, true},
		{"huge max-age saturates", []string{"Cache-Control", "max-age=99999999999999999999999"}, (1 << 31) * time.Second, true},
		{"Expires without Date", []string{"Expires", now.Add(time.Hour).Format(http.TimeFormat)}, time.Hour, true},
		{"malformed Date falls back to now", []string{"Date", "yesterday", "Expires", now.Add(time.Hour).Format(http.TimeFormat)}, time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for i := 0; i+1 < len(tt.headers); i += 2 {
				h.Add(tt.headers[i], tt.headers[i+1])
			}
			ttl, ok := lifetime(h, now)
			if ttl != tt.ttl || ok != tt.ok {
				t.Fatalf("lifetime = %v, %v; want %v, %v", ttl, ok, tt.ttl, tt.ok)
			}
		})
	}
}

func TestNegativeCache(t *testing.T) {
	hs := newHarness(t, http.NotFound, nil)
	u := hs.srv.URL("/missing.pem")
	_, err1 := hs.c.Get(t.Context(), u)
	wantErr(t, err1, stir.ErrX5UFetchFailed)
	hs.clock.Advance(29 * time.Second)
	_, err2 := hs.c.Get(t.Context(), u)
	if err2 != err1 {
		t.Fatalf("negative hit returned %v, want the cached error %v", err2, err1)
	}
	if n := hs.srv.requests.Load(); n != 1 {
		t.Fatalf("server saw %d requests within NegativeTTL, want 1", n)
	}
	st := hs.c.Stats()
	if st.NegativeHits != 1 || st.FetchErrors != 1 {
		t.Fatalf("stats = %+v", st)
	}

	// After NegativeTTL the URL is tried again, and a good answer replaces
	// the failure.
	hs.srv.Handle(serve(testPEM))
	hs.clock.Advance(2 * time.Second)
	if _, err := hs.c.Get(t.Context(), u); err != nil {
		t.Fatalf("after NegativeTTL: %v", err)
	}
	if n := hs.srv.requests.Load(); n != 2 {
		t.Fatalf("server saw %d requests, want 2", n)
	}

	t.Run("validator failures are cached too", func(t *testing.T) {
		hs := newHarness(t, serve("REVOKED"), nil)
		u := hs.srv.URL("/revoked.pem")
		for range 3 {
			_, err := hs.c.Get(t.Context(), u)
			wantErr(t, err, stir.ErrCertRevoked)
		}
		if hs.srv.requests.Load() != 1 || hs.v.calls.Load() != 1 || hs.c.Stats().NegativeHits != 2 {
			t.Fatalf("requests %d, validations %d, stats %+v", hs.srv.requests.Load(), hs.v.calls.Load(), hs.c.Stats())
		}
	})

	t.Run("disabled", func(t *testing.T) {
		hs := newHarness(t, http.NotFound, func(o *Options[*chain]) { o.NegativeTTL = -1 })
		for range 3 {
			hs.c.Get(t.Context(), hs.srv.URL("/x.pem"))
		}
		if n := hs.srv.requests.Load(); n != 3 {
			t.Fatalf("server saw %d requests, want 3", n)
		}
	})
}

func TestStaleOnError(t *testing.T) {
	hs := newHarness(t, serve(testPEM, "Cache-Control", "max-age=60"), nil)
	hs.v.notAfter = t0.Add(time.Hour)
	u := hs.srv.URL("/cert.pem")
	if _, err := hs.c.Get(t.Context(), u); err != nil {
		t.Fatal(err)
	}

	// The certificate host goes down after the value expired.
	hs.srv.Handle(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) })
	hs.clock.Advance(2 * time.Minute)
	for i := range 3 {
		got, err := hs.c.Get(t.Context(), u)
		if err != nil || got.pem != testPEM {
			t.Fatalf("Get #%d = %v, %v; want the stale value", i, got, err)
		}
	}
	if n := hs.srv.requests.Load(); n != 2 {
		t.Fatalf("server saw %d requests, want 2 (one failed refresh, then a pause)", n)
	}
	// Still down at the next attempt: stale again, logged only once.
	hs.clock.Advance(31 * time.Second)
	if _, err := hs.c.Get(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	if n := hs.srv.requests.Load(); n != 3 {
		t.Fatalf("server saw %d requests, want 3", n)
	}
	if n := hs.logs.Count("serving stale"); n != 1 {
		t.Fatalf("stale serving logged %d times, want 1:\n%s", n, hs.logs)
	}
	if st := hs.c.Stats(); st.StaleServed != 4 || st.FetchErrors != 2 {
		t.Fatalf("stats = %+v, want 4 stale served, 2 fetch errors", st)
	}

	// Never past notAfter.
	hs.clock.Advance(time.Hour)
	_, err := hs.c.Get(t.Context(), u)
	wantErr(t, err, stir.ErrX5UFetchFailed)

	t.Run("recovery", func(t *testing.T) {
		hs := newHarness(t, serve(testPEM, "Cache-Control", "max-age=60"), nil)
		u := hs.srv.URL("/cert.pem")
		hs.c.Get(t.Context(), u)
		hs.srv.Handle(http.NotFound)
		hs.clock.Advance(2 * time.Minute)
		hs.c.Get(t.Context(), u)
		hs.srv.Handle(serve(testPEM + "renewed"))
		hs.clock.Advance(31 * time.Second)
		got, err := hs.c.Get(t.Context(), u)
		if err != nil || got.pem != testPEM+"renewed" {
			t.Fatalf("after recovery: %v, %v", got, err)
		}
	})

	// A refresh that reached the server and got a chain that fails
	// validation is an answer, not an outage: it is not masked.
	t.Run("not on validation failure", func(t *testing.T) {
		hs := newHarness(t, serve(testPEM, "Cache-Control", "max-age=60"), nil)
		u := hs.srv.URL("/cert.pem")
		hs.c.Get(t.Context(), u)
		hs.srv.Handle(serve("REVOKED"))
		hs.clock.Advance(2 * time.Minute)
		_, err := hs.c.Get(t.Context(), u)
		wantErr(t, err, stir.ErrCertRevoked)
	})
	t.Run("not on bad content", func(t *testing.T) {
		hs := newHarness(t, serve(testPEM, "Cache-Control", "max-age=60"), nil)
		u := hs.srv.URL("/cert.pem")
		hs.c.Get(t.Context(), u)
		hs.srv.Handle(func(http.ResponseWriter, *http.Request) {})
		hs.clock.Advance(2 * time.Minute)
		_, err := hs.c.Get(t.Context(), u)
		wantErr(t, err, stir.ErrX5UBadContent)
	})
}

func TestSingleFlight(t *testing.T) {
	const callers = 100
	release := make(chan struct{})
	hs := newHarness(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		serve(testPEM)(w, r)
	}, nil)
	u := hs.srv.URL("/cert.pem")
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			got, err := hs.c.Get(t.Context(), u)
			if err == nil && got.pem != testPEM {
				err = fmt.Errorf("got %q", got.pem)
			}
			errs <- err
		})
	}
	waitFor(t, "every caller to miss", func() bool { return hs.c.Stats().Misses == callers })
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := hs.srv.requests.Load(); n != 1 {
		t.Fatalf("server saw %d requests for %d concurrent misses, want 1", n, callers)
	}
	if n := hs.v.calls.Load(); n != 1 {
		t.Fatalf("validator ran %d times, want 1", n)
	}
}

func TestEviction(t *testing.T) {
	hs := newHarness(t, serve(testPEM), func(o *Options[*chain]) { o.MaxEntries = 2 })
	a, b, c := hs.srv.URL("/a.pem"), hs.srv.URL("/b.pem"), hs.srv.URL("/c.pem")
	for _, u := range []string{a, b, c, b, c} {
		if _, err := hs.c.Get(t.Context(), u); err != nil {
			t.Fatal(err)
		}
	}
	if st := hs.c.Stats(); st.Entries != 2 || st.Evictions != 1 || st.Fetches != 3 {
		t.Fatalf("stats = %+v, want 2 entries, 1 eviction, 3 fetches", st)
	}
	hs.c.Get(t.Context(), a) // evicted: fetched again
	if n := hs.srv.requests.Load(); n != 4 {
		t.Fatalf("server saw %d requests, want 4", n)
	}
}

func TestPolicyBeforeLookup(t *testing.T) {
	hs := newHarness(t, serve(testPEM), nil)
	for _, u := range []string{"http://" + hs.srv.hostPort() + "/cert.pem", hs.srv.URL("/cert.pem?x=1"), "https://127.0.0.1/cert.pem"} {
		_, err := hs.c.Get(t.Context(), u)
		wantErr(t, err, stir.ErrX5UForbidden)
	}
	if st := hs.c.Stats(); st.Forbidden != 3 || st.Misses != 0 || st.Fetches != 0 || hs.srv.requests.Load() != 0 {
		t.Fatalf("stats = %+v, requests %d", st, hs.srv.requests.Load())
	}
}

func TestPreloadAndOffline(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "chain.pem")
	if err := os.WriteFile(file, []byte(testPEM+"file"), 0o600); err != nil {
		t.Fatal(err)
	}
	res := &stubResolver{} // every look-up fails, and is counted
	v := &validator{notAfter: t0.Add(48 * time.Hour)}
	clock := newClock()
	c, err := New(Options[*chain]{
		Validate:     v.Validate,
		Resolver:     res,
		Now:          clock.Now,
		Offline:      true,
		Preload:      map[string]string{"https://cr.example.net/file.pem": file},
		PreloadBytes: map[string][]byte{"https://cr.example.net/bytes.pem": []byte(testPEM + "bytes")},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for u, want := range map[string]string{
		"https://cr.example.net/file.pem":  testPEM + "file",
		"https://cr.example.net/bytes.pem": testPEM + "bytes",
	} {
		for range 2 {
			got, err := c.Get(t.Context(), u)
			if err != nil || got.pem != want {
				t.Fatalf("Get(%s) = %v, %v", u, got, err)
			}
		}
	}
	if v.calls.Load() != 2 {
		t.Fatalf("validator ran %d times, want once per preload", v.calls.Load())
	}
	_, err = c.Get(t.Context(), "https://cr.example.net/other.pem")
	wantErr(t, err, stir.ErrX5UOffline)
	_, err = c.Get(t.Context(), "https://127.0.0.1/file.pem")
	wantErr(t, err, stir.ErrX5UForbidden)
	if res.calls.Load() != 0 {
		t.Fatalf("offline cache resolved %d names", res.calls.Load())
	}

	// Preloads are validated again after MaxTTL, and a chain past its
	// notAfter is refused by the validator, not served from memory.
	clock.Advance(25 * time.Hour)
	if _, err := c.Get(t.Context(), "https://cr.example.net/file.pem"); err != nil || v.calls.Load() != 3 {
		t.Fatalf("revalidation: %v, %d validations", err, v.calls.Load())
	}
}

func TestPreloadRefusedByPolicy(t *testing.T) {
	tests := []struct {
		name  string
		opts  Options[*chain]
		wantF bool // the failure is the policy's
	}{
		{"loopback", Options[*chain]{PreloadBytes: map[string][]byte{"https://127.0.0.1/c.pem": []byte(testPEM)}}, true},
		{"http", Options[*chain]{PreloadBytes: map[string][]byte{"http://cr.example.net/c.pem": []byte(testPEM)}}, true},
		{"not in allow-list", Options[*chain]{Policy: Policy{AllowHosts: []string{"a.example"}}, PreloadBytes: map[string][]byte{"https://b.example/c.pem": []byte(testPEM)}}, true},
		{"missing file", Options[*chain]{Preload: map[string]string{"https://cr.example.net/c.pem": "/nonexistent/c.pem"}}, false},
		{"empty", Options[*chain]{PreloadBytes: map[string][]byte{"https://cr.example.net/c.pem": nil}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Validate = (&validator{}).Validate
			c, err := New(tt.opts)
			if err == nil {
				c.Close()
				t.Fatal("New accepted the preload")
			}
			if errors.Is(err, stir.ErrX5UForbidden) != tt.wantF {
				t.Fatalf("New: %v; want policy failure %v", err, tt.wantF)
			}
		})
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	v := (&validator{}).Validate
	tests := []struct {
		name string
		opts Options[*chain]
	}{
		{"no validator", Options[*chain]{}},
		{"bad policy", Options[*chain]{Validate: v, Policy: Policy{LabHosts: []string{"nohost"}}}},
		{"MinTTL above MaxTTL", Options[*chain]{Validate: v, MinTTL: time.Hour, MaxTTL: time.Minute}},
		{"negative Timeout", Options[*chain]{Validate: v, Timeout: -time.Second}},
		{"negative MaxEntries", Options[*chain]{Validate: v, MaxEntries: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := New(tt.opts); err == nil {
				c.Close()
				t.Fatal("New accepted bad options")
			}
		})
	}
}

func TestRelaxationsLogged(t *testing.T) {
	hs := newHarness(t, serve(testPEM), func(o *Options[*chain]) { o.AllowHTTP = true })
	for _, want := range []string{"plain http allowed", "lab hosts admitted", "extra TLS roots"} {
		if hs.logs.Count(want) != 1 {
			t.Errorf("start-up log lacks %q:\n%s", want, hs.logs)
		}
	}

	// The production policy says nothing.
	var buf syncBuffer
	c, err := New(Options[*chain]{Validate: (&validator{}).Validate, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if buf.String() != "" {
		t.Fatalf("default options logged:\n%s", buf.String())
	}
}

func TestGetAfterCloseServesHits(t *testing.T) {
	hs := newHarness(t, serve(testPEM), nil)
	u := hs.srv.URL("/cert.pem")
	if _, err := hs.c.Get(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	hs.c.Close()
	if _, err := hs.c.Get(t.Context(), u); err != nil {
		t.Fatalf("hit after Close: %v", err)
	}
}

// TestFlightRechecks: a flight that starts after another one stored a
// fresh value (a caller that missed just before the store) uses it rather
// than fetching again.
func TestFlightRechecks(t *testing.T) {
	hs := newHarness(t, serve(testPEM), nil)
	u := hs.srv.URL("/cert.pem")
	want := &chain{pem: "stored meanwhile"}
	hs.c.store(u, &entry[*chain]{value: want, expires: t0.Add(time.Minute)})
	pu, lab, err := checkURL(u, hs.c.policy)
	if err != nil {
		t.Fatal(err)
	}
	if e := hs.c.flight(t.Context(), u, pu, lab); e.value != want || hs.srv.requests.Load() != 0 {
		t.Fatalf("flight = %+v after %d requests; want the stored entry and none", e, hs.srv.requests.Load())
	}
}

// TestNoGoroutinesLeft: fetches, good and bad, leave nothing running once
// the Cache is closed.
func TestNoGoroutinesLeft(t *testing.T) {
	srv := newCertServer(t, serve(testPEM))
	before := runtime.NumGoroutine()
	c, err := New(Options[*chain]{
		Policy:   Policy{LabHosts: []string{srv.hostPort()}},
		Validate: (&validator{notAfter: t0.Add(time.Hour)}).Validate,
		RootCAs:  srv.pool(),
		Now:      newClock().Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		c.Get(t.Context(), srv.URL(fmt.Sprintf("/%d.pem", i)))
	}
	srv.Handle(http.NotFound)
	c.Get(t.Context(), srv.URL("/missing.pem"))
	c.Close()
	waitFor(t, fmt.Sprintf("goroutines to return to %d", before), func() bool { return runtime.NumGoroutine() <= before })
}
