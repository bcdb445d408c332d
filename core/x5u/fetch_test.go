package x5u

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/internal/testlog"
)

func TestGetFetchesOnceThenHits(t *testing.T) {
	hs := newHarness(t, serve(testPEM, "Cache-Control", "max-age=600"), nil)
	u := hs.srv.URL("/cert.pem")
	for i := range 3 {
		got, err := hs.c.Get(t.Context(), u)
		if err != nil {
			t.Fatalf("Get #%d: %v", i, err)
		}
		if got.pem != testPEM {
			t.Fatalf("Get #%d = %q", i, got.pem)
		}
	}
	if n := hs.srv.requests.Load(); n != 1 {
		t.Fatalf("server saw %d requests, want 1", n)
	}
	if n := hs.v.calls.Load(); n != 1 {
		t.Fatalf("validator ran %d times, want 1 (warm gets must not validate)", n)
	}
	st := hs.c.Stats()
	if st.Hits != 2 || st.Misses != 1 || st.Fetches != 1 || st.FetchErrors != 0 || st.Entries != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestFetchFailures(t *testing.T) {
	const maxBody = 1024
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	var endlessDone atomic.Bool

	tests := []struct {
		name    string
		h       http.HandlerFunc
		noRoots bool
		want    *stir.Error
	}{
		{"200", serve(testPEM), false, nil},
		{"404", http.NotFound, false, stir.ErrX5UFetchFailed},
		{"500", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) }, false, stir.ErrX5UFetchFailed},
		{"204", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }, false, stir.ErrX5UFetchFailed},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere.pem", http.StatusFound)
		}, false, stir.ErrX5UFetchFailed},
		{"permanent redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://169.254.169.254/latest/", http.StatusPermanentRedirect)
		}, false, stir.ErrX5UFetchFailed},
		{"empty body", func(http.ResponseWriter, *http.Request) {}, false, stir.ErrX5UBadContent},
		{"body at cap", serve(testPEM + strings.Repeat("x", maxBody-len(testPEM))), false, nil},
		{"body over cap, Content-Length", serve(testPEM + strings.Repeat("x", maxBody+1-len(testPEM))), false, stir.ErrX5UBadContent},
		{"body over cap, chunked", func(w http.ResponseWriter, _ *http.Request) {
			// Flushing before the end forces chunked encoding: no
			// Content-Length to refuse early, the reader must count.
			w.Write([]byte(testPEM))
			w.(http.Flusher).Flush()
			w.Write([]byte(strings.Repeat("x", maxBody)))
		}, false, stir.ErrX5UBadContent},
		{"endless body", func(w http.ResponseWriter, r *http.Request) {
			defer endlessDone.Store(true)
			chunk := []byte(strings.Repeat("A", 4096))
			for r.Context().Err() == nil {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}, false, stir.ErrX5UBadContent},
		{"validator refuses", serve("not a certificate"), false, stir.ErrCertProfile},
		{"validator error returned as is", serve("REVOKED"), false, stir.ErrCertRevoked},
		{"untrusted TLS certificate", serve(testPEM), true, stir.ErrX5UFetchFailed},
		{"headers never come", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-block:
			case <-r.Context().Done():
			}
		}, false, stir.ErrX5UFetchFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t, tt.h, func(o *Options[*chain]) {
				o.MaxBody = maxBody
				o.Timeout = 500 * time.Millisecond
				if tt.noRoots {
					o.RootCAs = nil
				}
			})
			// A handler that never answers returns only through the
			// timeout, so Get returning at all is the check; how long
			// after 500ms it returns depends on the machine's load.
			_, err := hs.c.Get(t.Context(), hs.srv.URL("/cert.pem"))
			wantErr(t, err, tt.want)
			want := int64(1)
			if tt.noRoots {
				want = 0 // refused in the handshake
			}
			if n := hs.srv.requests.Load(); n != want {
				t.Fatalf("server saw %d requests, want %d (no redirect following, no retry)", n, want)
			}
		})
	}
	waitFor(t, "endless handler to stop writing", endlessDone.Load)
}

// TestSlowBody is the slow-loris case: headers arrive at once, then one
// byte per 100 ms forever. The deadline covers the body, so Get ends at
// Timeout, not when the server stops.
func TestSlowBody(t *testing.T) {
	const timeout = 400 * time.Millisecond
	hs := newHarness(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.WriteHeader(http.StatusOK)
		for {
			if _, err := w.Write([]byte("-")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}, func(o *Options[*chain]) { o.Timeout = timeout; o.MaxBody = 200000 })
	start := time.Now()
	_, err := hs.c.Get(t.Context(), hs.srv.URL("/slow.pem"))
	d := time.Since(start)
	wantErr(t, err, stir.ErrX5UFetchFailed)
	if d < timeout-50*time.Millisecond || d > timeout+time.Second {
		t.Fatalf("slow body ended after %v, want about %v", d, timeout)
	}
}

func TestHTTPNeedsAllowHTTP(t *testing.T) {
	var n atomic.Int64
	srv := testlog.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n.Add(1)
		w.Write([]byte(testPEM))
	}))
	t.Cleanup(srv.Close)
	v := &validator{notAfter: t0.Add(time.Hour)}
	for _, allow := range []bool{false, true} {
		t.Run(strconv.FormatBool(allow), func(t *testing.T) {
			c, err := New(Options[*chain]{
				Policy:   Policy{AllowHTTP: allow, LabHosts: []string{srv.Listener.Addr().String()}},
				Validate: v.Validate,
				Now:      newClock().Now,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.Get(t.Context(), srv.URL+"/cert.pem")
			if allow {
				wantErr(t, err, nil)
			} else {
				wantErr(t, err, stir.ErrX5UForbidden)
			}
		})
	}
	if n.Load() != 1 {
		t.Fatalf("server saw %d requests, want 1 (only with AllowHTTP)", n.Load())
	}
}

// TestResolvedAddressPolicy covers DNS: a public-looking name whose
// records point inside is refused before any connection, and every
// record is judged, not only the first.
func TestResolvedAddressPolicy(t *testing.T) {
	res := &stubResolver{table: map[string][]string{
		"private.example":  {"10.0.0.7"},
		"loopback.example": {"127.0.0.1"},
		"metadata.example": {"169.254.169.254"},
		"v6local.example":  {"fe80::1"},
		"mapped.example":   {"::ffff:192.168.1.1"},
		"ula.example":      {"fd00:ec2::254"},
		"cgnat.example":    {"100.64.1.1"},
		"mixed.example":    {"8.8.8.8", "192.168.0.10"},
		"siit.example":     {"::ffff:0:7f00:1"},
		"nat64.example":    {"64:ff9b::a00:7"},
		"teredo.example":   {"2001:0:4136:e378:8000:63bf:3fff:fdd2"},
	}}
	c, err := New(Options[*chain]{Validate: (&validator{}).Validate, Resolver: res, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for host := range res.table {
		t.Run(host, func(t *testing.T) {
			_, err := c.Get(t.Context(), "https://"+host+"/cert.pem")
			wantErr(t, err, stir.ErrX5UForbidden)
		})
	}
	t.Run("unknown name", func(t *testing.T) {
		_, err := c.Get(t.Context(), "https://nx.example/cert.pem")
		wantErr(t, err, stir.ErrX5UFetchFailed)
	})
	// Refusals after resolution are failures like any other: cached.
	before := res.calls.Load()
	_, err = c.Get(t.Context(), "https://private.example/cert.pem")
	wantErr(t, err, stir.ErrX5UForbidden)
	if res.calls.Load() != before {
		t.Fatal("negative entry not used: resolver asked again")
	}
	if st := c.Stats(); st.NegativeHits != 1 {
		t.Fatalf("stats = %+v, want 1 negative hit", st)
	}
}

// TestDialsResolvedAddress proves the fetch goes through the configured
// Resolver and connects to the address it returned: "example.com" (the
// name in httptest's certificate) resolves, by the stub only, to the test
// server.
func TestDialsResolvedAddress(t *testing.T) {
	srv := newCertServer(t, serve(testPEM))
	_, port, _ := strings.Cut(srv.hostPort(), ":")
	tests := []struct {
		host string
		want *stir.Error
	}{
		{"example.com", nil},
		{"EXAMPLE.com", nil},
		// Same server, but a name its certificate does not carry: the
		// extra-roots verification must still check the name.
		{"wrong.example", stir.ErrX5UFetchFailed},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			res := &stubResolver{table: map[string][]string{strings.ToLower(tt.host): {"127.0.0.1"}}}
			c, err := New(Options[*chain]{
				Policy:   Policy{LabHosts: []string{tt.host + ":" + port}},
				Validate: (&validator{}).Validate,
				Resolver: res,
				RootCAs:  srv.pool(),
				Now:      newClock().Now,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			before := srv.requests.Load()
			_, err = c.Get(t.Context(), "https://"+tt.host+":"+port+"/cert.pem")
			wantErr(t, err, tt.want)
			wantReq := int64(1)
			if tt.want != nil {
				wantReq = 0
			}
			if res.calls.Load() != 1 || srv.requests.Load()-before != wantReq {
				t.Fatalf("resolver calls %d, server requests %d; want 1 and %d", res.calls.Load(), srv.requests.Load()-before, wantReq)
			}
		})
	}
}

func TestObserve(t *testing.T) {
	type obs struct {
		url string
		err error
	}
	var got []obs
	hs := newHarness(t, serve(testPEM), func(o *Options[*chain]) {
		o.Observe = func(u string, d time.Duration, err error) {
			if d <= 0 {
				t.Errorf("Observe duration %v", d)
			}
			got = append(got, obs{u, err})
		}
	})
	good, bad := hs.srv.URL("/good.pem"), hs.srv.URL("/bad.pem")
	hs.c.Get(t.Context(), good)
	hs.c.Get(t.Context(), good) // hit: not observed
	hs.srv.Handle(http.NotFound)
	hs.c.Get(t.Context(), bad)
	if len(got) != 2 || got[0].url != good || got[0].err != nil || got[1].url != bad || got[1].err == nil {
		t.Fatalf("observed %+v", got)
	}
}

func TestCallerContext(t *testing.T) {
	release := make(chan struct{})
	hs := newHarness(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		serve(testPEM)(w, r)
	}, nil)
	u := hs.srv.URL("/cert.pem")

	// The first caller starts the fetch, then gives up.
	ctx, cancel := context.WithCancel(t.Context())
	first := make(chan error, 1)
	go func() { _, err := hs.c.Get(ctx, u); first <- err }()
	waitFor(t, "the fetch to reach the server", func() bool { return hs.srv.requests.Load() == 1 })
	second := make(chan error, 1)
	go func() { _, err := hs.c.Get(t.Context(), u); second <- err }()
	waitFor(t, "the second caller to join", func() bool { return hs.c.Stats().Misses == 2 })
	cancel()
	err := <-first
	wantErr(t, err, stir.ErrX5UFetchFailed)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("first caller's error %v does not wrap context.Canceled", err)
	}

	// The shared fetch was not cancelled with it.
	close(release)
	if err := <-second; err != nil {
		t.Fatalf("second caller: %v", err)
	}
	if _, err := hs.c.Get(t.Context(), u); err != nil {
		t.Fatalf("after: %v", err)
	}
	if n := hs.srv.requests.Load(); n != 1 {
		t.Fatalf("server saw %d requests, want 1", n)
	}
}

func TestCloseCancelsFetch(t *testing.T) {
	hs := newHarness(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
		func(o *Options[*chain]) { o.Timeout = time.Hour })
	done := make(chan error, 1)
	go func() { _, err := hs.c.Get(t.Context(), hs.srv.URL("/cert.pem")); done <- err }()
	waitFor(t, "the fetch to start", func() bool { return hs.srv.requests.Load() == 1 })
	hs.c.Close()
	// The fetch's own timeout is an hour away: only Close can end it.
	select {
	case err := <-done:
		wantErr(t, err, stir.ErrX5UFetchFailed)
	case <-time.After(2 * time.Minute):
		t.Fatal("Close did not cancel the fetch")
	}
	_, err := hs.c.Get(t.Context(), hs.srv.URL("/other.pem"))
	wantErr(t, err, stir.ErrX5UFetchFailed)
	if hs.c.Close() != nil {
		t.Fatal("second Close failed")
	}
}
