package pgshared

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/crl"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/core/x5u"
	"github.com/stirgate/stirgate/internal/testlog"
)

// crlWorld is a lab PKI whose CRL (revoking the leaf) a loopback TLS
// server serves, counting requests.
type crlWorld struct {
	lab  *certs.Lab
	url  string
	host string
	pool *x509.CertPool
	hits atomic.Int64
	body atomic.Pointer[[]byte]
}

func newCRLWorld(t *testing.T) *crlWorld {
	t.Helper()
	lab, err := certs.NewLab(certs.LabOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := &crlWorld{lab: lab}
	revoked, err := lab.Revoke(lab.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	w.body.Store(&revoked)
	srv := testlog.NewTLSServer(t, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.hits.Add(1)
		rw.Write(*w.body.Load())
	}))
	w.url = srv.URL + "/sti-pa.crl"
	w.host = strings.TrimPrefix(srv.URL, "https://")
	w.pool = x509.NewCertPool()
	w.pool.AddCert(srv.Certificate())
	return w
}

// node is one node's CRL source, with its own connections to the tier
// (sh nil: no shared tier).
func (w *crlWorld) node(t *testing.T, sh x5u.Shared) *crl.Source {
	t.Helper()
	roots := w.lab.Roots()
	s, err := crl.New(crl.Options{
		URLs:    []string{w.url},
		Signers: []*x509.Certificate{w.lab.CRLSigner},
		Roots:   func() *x509.CertPool { return roots },
		Fetch:   x5u.GetOptions{Policy: x5u.Policy{LabHosts: []string{w.host}}, RootCAs: w.pool, Timeout: 30 * time.Second},
		Shared:  sh,
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func refreshAll(t *testing.T, nodes []*crl.Source) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, n := range nodes {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = n.Refresh(context.Background()) }()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
}

func wantRevoked(t *testing.T, w *crlWorld, nodes []*crl.Source) {
	t.Helper()
	for i, n := range nodes {
		var se *stir.Error
		if err := n.Check(w.lab.Chain(), nil, time.Now()); !errors.As(err, &se) || se.Name != stir.ErrCertRevoked.Name {
			t.Errorf("node %d: Check = %v, want %s", i, err, stir.ErrCertRevoked.Name)
		}
	}
}

// TestSharedCRLOneFetch: three nodes refreshing at once, each with its own
// connections to one database, fetch the CRL once; the two others read
// that copy, check it, and find the leaf revoked. Without the tier, each
// node fetches (the negative control: the server's count sees it).
func TestSharedCRLOneFetch(t *testing.T) {
	dsn := newDB(t)
	w := newCRLWorld(t)
	var nodes []*crl.Source
	for range 3 {
		nodes = append(nodes, w.node(t, open(t, dsn, Options{})))
	}
	refreshAll(t, nodes)
	if n := w.hits.Load(); n != 1 {
		t.Errorf("%d CRL fetches for a cluster of 3, want 1", n)
	}
	var loads, fetches uint64
	for _, n := range nodes {
		l, f, e := n.SharedCounts()
		loads, fetches = loads+l, fetches+f
		if e != 0 {
			t.Errorf("shared tier errors: %d", e)
		}
	}
	if loads != 2 || fetches != 1 {
		t.Errorf("shared loads %d, fetches %d; want 2 and 1", loads, fetches)
	}
	wantRevoked(t, w, nodes)
	// A second refresh while the cluster's copy is fresh fetches nothing.
	refreshAll(t, nodes)
	if n := w.hits.Load(); n != 1 {
		t.Errorf("%d CRL fetches after a second refresh, want still 1", n)
	}

	alone := newCRLWorld(t)
	solo := []*crl.Source{alone.node(t, nil), alone.node(t, nil), alone.node(t, nil)}
	refreshAll(t, solo)
	if n := alone.hits.Load(); n != 3 {
		t.Errorf("without the shared tier: %d fetches by 3 nodes, want 3", n)
	}
}

// TestSharedCRLChecked: a copy in the shared store that does not check
// (here, a CRL signed by another PKI's CRL signer, as a node of another
// deployment or a tampered row would leave) is not taken: the node fetches
// the CRL itself and still finds the leaf revoked.
func TestSharedCRLChecked(t *testing.T) {
	dsn := newDB(t)
	w := newCRLWorld(t)
	other, err := certs.NewLab(certs.LabOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, forged, err := other.SignCRL() // lists nothing: it would un-revoke the leaf
	if err != nil {
		t.Fatal(err)
	}
	c := open(t, dsn, Options{})
	if _, err := c.db.Exec(`INSERT INTO x5u_cache (url, body, fetched, expires) VALUES ($1, $2, now(), now() + interval '1 day')`,
		"crl:"+w.url, forged); err != nil {
		t.Fatal(err)
	}
	n := w.node(t, c)
	if err := n.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h := w.hits.Load(); h != 1 {
		t.Errorf("%d fetches, want 1: the node must fetch when the shared copy does not check", h)
	}
	wantRevoked(t, w, []*crl.Source{n})
}
