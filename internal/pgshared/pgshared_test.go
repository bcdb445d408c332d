package pgshared

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stirgate/stirgate/internal/pgtest"
)

var (
	pg    *pgtest.Server
	pgErr error
)

func TestMain(m *testing.M) {
	pg, pgErr = pgtest.Start(pgtest.Options{})
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

func open(t *testing.T, dsn string, o Options) *Cache {
	t.Helper()
	o.DSN = dsn
	c, err := Open(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newDB(t *testing.T) string {
	t.Helper()
	if pgErr != nil {
		t.Fatalf("PostgreSQL test server did not start: %v", pgErr)
	}
	dsn, err := pg.NewDB(t.Context(), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	return dsn
}

var t0 = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

// TestOneFetchAcrossNodes: several nodes (each its own Cache, its own
// connections) missing one URL at once make one fetch; every node gets its
// body, and the ones that waited say it came from the shared store.
func TestOneFetchAcrossNodes(t *testing.T) {
	dsn := newDB(t)
	var nodes []*Cache
	for range 4 {
		nodes = append(nodes, open(t, dsn, Options{}))
	}
	const url = "https://cr.example.net/a.pem"
	var fetches atomic.Int64
	started := make(chan struct{})
	release := make(chan struct{})
	fetch := func(context.Context) ([]byte, time.Time, error) {
		if fetches.Add(1) == 1 {
			close(started)
		}
		<-release
		return []byte("BODY"), t0.Add(time.Hour), nil
	}
	var wg sync.WaitGroup
	var shared atomic.Int64
	errs := make(chan error, len(nodes))
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i > 0 {
				<-started // the others miss while the first fetches
			}
			body, exp, from, err := n.Do(t.Context(), url, t0, fetch)
			if err == nil && (!bytes.Equal(body, []byte("BODY")) || !exp.Equal(t0.Add(time.Hour))) {
				err = fmt.Errorf("node %d: body %q expires %v", i, body, exp)
			}
			if from {
				shared.Add(1)
			}
			errs <- err
		}()
	}
	<-started
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if fetches.Load() != 1 || shared.Load() != int64(len(nodes)-1) {
		t.Fatalf("fetches %d, shared answers %d; want 1 and %d", fetches.Load(), shared.Load(), len(nodes)-1)
	}
	// Once expired, the next miss fetches again.
	if _, _, from, err := nodes[2].Do(t.Context(), url, t0.Add(time.Hour), fetch); err != nil || from || fetches.Load() != 2 {
		t.Fatalf("after expiry: from shared %v, err %v, fetches %d", from, err, fetches.Load())
	}
}

// TestFailureNotShared: a failed fetch stores nothing and releases the
// claim, so the next node fetches for itself.
func TestFailureNotShared(t *testing.T) {
	dsn := newDB(t)
	a, b := open(t, dsn, Options{}), open(t, dsn, Options{})
	boom := errors.New("unreachable")
	const url = "https://cr.example.net/b.pem"
	if _, _, _, err := a.Do(t.Context(), url, t0, func(context.Context) ([]byte, time.Time, error) { return nil, time.Time{}, boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the fetch's", err)
	}
	called := false
	if _, _, from, err := b.Do(t.Context(), url, t0, func(context.Context) ([]byte, time.Time, error) {
		called = true
		return []byte("B"), t0.Add(time.Minute), nil
	}); err != nil || from || !called {
		t.Fatalf("second node: called %v from %v err %v", called, from, err)
	}
}

// TestBounded: the table keeps at most MaxEntries rows, the newest.
func TestBounded(t *testing.T) {
	dsn := newDB(t)
	c := open(t, dsn, Options{MaxEntries: 3})
	for i := range 6 {
		now := t0.Add(time.Duration(i) * time.Second)
		if _, _, _, err := c.Do(t.Context(), fmt.Sprintf("https://h.example/%d", i), now, func(context.Context) ([]byte, time.Time, error) {
			return []byte("x"), now.Add(time.Hour), nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	var oldest string
	if err := c.db.QueryRowContext(t.Context(), `SELECT count(*), min(url) FROM x5u_cache`).Scan(&n, &oldest); err != nil {
		t.Fatal(err)
	}
	if n != 3 || oldest != "https://h.example/3" {
		t.Fatalf("%d rows, oldest %s; want 3, https://h.example/3", n, oldest)
	}
}
