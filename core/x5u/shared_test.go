package x5u

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"
)

// memShared is a Shared in memory: what internal/pgshared does with a
// PostgreSQL row and an advisory lock, with a map and a mutex per URL. It
// lets these tests run the Cache's side of the contract; pgshared's own
// tests run the database side.
type memShared struct {
	mu     sync.Mutex
	locks  map[string]*sync.Mutex
	bodies map[string]memRow
	fail   error // returned by Do without calling fetch
}

type memRow struct {
	body    []byte
	expires time.Time
}

func newMemShared() *memShared {
	return &memShared{locks: map[string]*sync.Mutex{}, bodies: map[string]memRow{}}
}

func (m *memShared) Do(ctx context.Context, url string, now time.Time, fetch func(context.Context) ([]byte, time.Time, error)) ([]byte, time.Time, bool, error) {
	m.mu.Lock()
	if m.fail != nil {
		m.mu.Unlock()
		return nil, time.Time{}, false, m.fail
	}
	l := m.locks[url]
	if l == nil {
		l = &sync.Mutex{}
		m.locks[url] = l
	}
	m.mu.Unlock()
	l.Lock()
	defer l.Unlock()
	m.mu.Lock()
	r, ok := m.bodies[url]
	m.mu.Unlock()
	if ok && now.Before(r.expires) {
		return r.body, r.expires, true, nil
	}
	body, exp, err := fetch(ctx)
	if err != nil {
		return nil, time.Time{}, false, err
	}
	m.mu.Lock()
	m.bodies[url] = memRow{body, exp}
	m.mu.Unlock()
	return body, exp, false, nil
}

// TestSharedOneFetchForTwoNodes: two Caches (two nodes) on one shared tier
// fetch a URL once between them; the second validates the shared body
// itself and keeps the first's expiry.
func TestSharedOneFetchForTwoNodes(t *testing.T) {
	sh := newMemShared()
	a := newHarness(t, serve(testPEM, "Cache-Control", "max-age=600"), func(o *Options[*chain]) { o.Shared = sh })
	u := a.srv.URL("/cert.pem")
	b := newHarness(t, serve("unused"), func(o *Options[*chain]) {
		o.Shared = sh
		o.Policy.LabHosts = []string{a.srv.hostPort()}
		o.RootCAs = a.srv.pool()
	})
	if _, err := a.c.Get(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	v, err := b.c.Get(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	if v.pem != testPEM {
		t.Fatalf("node b got %q", v.pem)
	}
	if n := a.srv.requests.Load(); n != 1 {
		t.Fatalf("%d fetches for two nodes, want 1", n)
	}
	if st := b.c.Stats(); st.SharedLoads != 1 || st.Fetches != 0 {
		t.Fatalf("node b stats %+v, want one shared load and no fetch", st)
	}
	if b.v.calls.Load() != 1 {
		t.Fatalf("node b validated %d times, want 1 (nothing shared is trusted)", b.v.calls.Load())
	}
	// The shared entry expires with the first fetch's lifetime, on both.
	b.clock.Advance(601 * time.Second)
	a.clock.Advance(601 * time.Second)
	if _, err := b.c.Get(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	if n := a.srv.requests.Load(); n != 2 {
		t.Fatalf("%d fetches after expiry, want 2", n)
	}
}

// TestSharedConcurrentMisses: misses on several nodes at once make one
// fetch.
func TestSharedConcurrentMisses(t *testing.T) {
	sh := newMemShared()
	release := make(chan struct{})
	a := newHarness(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		serve(testPEM)(w, r)
	}, func(o *Options[*chain]) { o.Shared = sh })
	u := a.srv.URL("/cert.pem")
	nodes := []*Cache[*chain]{a.c}
	for range 3 {
		n := newHarness(t, serve("unused"), func(o *Options[*chain]) {
			o.Shared = sh
			o.Policy.LabHosts = []string{a.srv.hostPort()}
			o.RootCAs = a.srv.pool()
		})
		nodes = append(nodes, n.c)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(nodes))
	for _, c := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Get(t.Context(), u)
			errs <- err
		}()
	}
	waitFor(t, "the first fetch to start", func() bool { return a.srv.requests.Load() == 1 })
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := a.srv.requests.Load(); n != 1 {
		t.Fatalf("%d fetches for %d nodes, want 1", n, len(nodes))
	}
}

// TestSharedNotTrusted: a shared body that no longer validates, or a
// shared tier that fails, costs a fetch of this node's own, never a call.
func TestSharedNotTrusted(t *testing.T) {
	sh := newMemShared()
	hs := newHarness(t, serve(testPEM), func(o *Options[*chain]) { o.Shared = sh })
	u := hs.srv.URL("/cert.pem")
	sh.bodies[u] = memRow{[]byte("REVOKED"), t0.Add(time.Hour)}
	if _, err := hs.c.Get(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	if n := hs.srv.requests.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1 (bad shared body)", n)
	}
	if hs.logs.Count("no longer validates") != 1 {
		t.Fatalf("log:\n%s", hs.logs)
	}

	sh.fail = errors.New("database down")
	u2 := hs.srv.URL("/other.pem")
	if _, err := hs.c.Get(t.Context(), u2); err != nil {
		t.Fatal(err)
	}
	if n := hs.srv.requests.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2 (shared tier down)", n)
	}
	if hs.logs.Count("shared cache unavailable") != 1 || hs.c.Stats().SharedErrors != 1 {
		t.Fatalf("stats %+v, log:\n%s", hs.c.Stats(), hs.logs)
	}
	// An outage is logged once per 10 s, not once per miss.
	if _, err := hs.c.Get(t.Context(), hs.srv.URL("/third.pem")); err != nil {
		t.Fatal(err)
	}
	if hs.logs.Count("shared cache unavailable") != 1 || hs.c.Stats().SharedErrors != 2 {
		t.Fatalf("stats %+v, log:\n%s", hs.c.Stats(), hs.logs)
	}
}
