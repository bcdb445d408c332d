package x5u

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/internal/testlog"
)

// t0 is the fake clock's start; far from the machine clock on purpose, so
// that anything reading time.Now for a lifetime shows up as a failure.
var t0 = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// chain is what the test validator produces: the body it accepted.
type chain struct{ pem string }

// validator accepts bodies starting with "-----BEGIN CERTIFICATE-----",
// refuses bodies starting with "REVOKED" with ErrCertRevoked and others
// with ErrCertProfile, and reports notAfter. It counts its calls.
type validator struct {
	calls    atomic.Int64
	notAfter time.Time
}

func (v *validator) Validate(_ context.Context, _ string, body []byte) (*chain, time.Time, error) {
	v.calls.Add(1)
	switch {
	case bytes.HasPrefix(body, []byte("-----BEGIN CERTIFICATE-----")):
		return &chain{pem: string(body)}, v.notAfter, nil
	case bytes.HasPrefix(body, []byte("REVOKED")):
		return nil, time.Time{}, stir.ErrCertRevoked.Withf("test revocation")
	}
	return nil, time.Time{}, stir.ErrCertProfile.Withf("not a test chain")
}

const testPEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

// certServer is an httptest TLS server on 127.0.0.1 whose handler can be
// swapped and whose requests are counted.
type certServer struct {
	*httptest.Server
	requests atomic.Int64
	mu       sync.Mutex
	h        http.HandlerFunc
}

func newCertServer(t *testing.T, h http.HandlerFunc) *certServer {
	t.Helper()
	s := &certServer{h: h}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		h := s.h
		s.mu.Unlock()
		h(w, r)
	}))
	// Refused handshakes are expected here: they go to the test's log.
	s.Config.ErrorLog = testlog.Logger(t)
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func (s *certServer) Handle(h http.HandlerFunc) {
	s.mu.Lock()
	s.h = h
	s.mu.Unlock()
}

func (s *certServer) URL(path string) string { return s.Server.URL + path }

func (s *certServer) hostPort() string { return s.Listener.Addr().String() }

func (s *certServer) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.Certificate())
	return p
}

// serve answers 200 with body and the given header pairs.
func serve(body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.Header().Set("Content-Type", "application/pem-certificate-chain")
		fmt.Fprint(w, body)
	}
}

// harness is a Cache admitted to one test server.
type harness struct {
	srv   *certServer
	clock *fakeClock
	v     *validator
	c     *Cache[*chain]
	logs  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Count(sub string) int { return strings.Count(s.String(), sub) }

// newHarness starts a server with h and a Cache for it. edit may adjust
// the Options before New.
func newHarness(t *testing.T, h http.HandlerFunc, edit func(*Options[*chain])) *harness {
	t.Helper()
	hs := &harness{srv: newCertServer(t, h), clock: newClock(), v: &validator{}, logs: &syncBuffer{}}
	hs.v.notAfter = t0.Add(30 * 24 * time.Hour)
	opts := Options[*chain]{
		Policy:   Policy{LabHosts: []string{hs.srv.hostPort()}},
		Validate: hs.v.Validate,
		RootCAs:  hs.srv.pool(),
		Now:      hs.clock.Now,
		Logger:   slog.New(slog.NewTextHandler(hs.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if edit != nil {
		edit(&opts)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	hs.c = c
	return hs
}

// wantErr fails unless err is the sentinel want (by Name).
func wantErr(t *testing.T, err error, want *stir.Error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		return
	}
	e := stir.As(err)
	if e == nil || e.Name != want.Name {
		t.Fatalf("err = %v, want %s", err, want.Name)
	}
}

// stubResolver answers from a fixed table and counts look-ups.
type stubResolver struct {
	calls atomic.Int64
	table map[string][]string
}

func (r *stubResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	r.calls.Add(1)
	addrs, ok := r.table[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []net.IPAddr
	for _, a := range addrs {
		ip := net.ParseIP(a)
		if ip == nil {
			return nil, errors.New("bad test address " + a)
		}
		out = append(out, net.IPAddr{IP: ip})
	}
	return out, nil
}

// waitFor polls cond for up to 5 s; tests use it to wait for goroutines
// to reach a state, never to wait for time to pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
