package crl_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stirgate/stirgate/core"
	"github.com/stirgate/stirgate/core/certs"
	"github.com/stirgate/stirgate/core/crl"
	"github.com/stirgate/stirgate/core/stir"
	"github.com/stirgate/stirgate/core/tn"
	"github.com/stirgate/stirgate/core/x5u"
	"github.com/stirgate/stirgate/internal/testlog"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// testTimeout bounds fetches generously: the tests are about what is
// fetched, not how fast, and run on loaded CI hosts.
const testTimeout = 30 * time.Second

// clock is the injected time of every party of a test.
type clock struct{ ns atomic.Int64 }

func (c *clock) set(t time.Time)  { c.ns.Store(t.UnixNano()) }
func (c *clock) now() time.Time   { return time.Unix(0, c.ns.Load()).UTC() }
func newClock(t time.Time) *clock { c := &clock{}; c.set(t); return c }

// server serves one body over TLS on loopback, counting requests.
type server struct {
	mu   sync.Mutex
	body []byte
	hits int
	url  string
	srv  interface{ Close() }
	pool *x509.CertPool
	host string
	cert *x509.Certificate
}

func newServer(t testing.TB, path string) *server {
	s := &server{}
	ts := testlog.NewTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.hits++
		if r.URL.Path != path || s.body == nil {
			http.NotFound(w, r)
			return
		}
		w.Write(s.body)
	}))
	t.Cleanup(ts.Close)
	s.srv, s.url = ts, ts.URL+path
	s.pool = x509.NewCertPool()
	s.pool.AddCert(ts.Certificate())
	s.cert = ts.Certificate()
	s.host = strings.TrimPrefix(ts.URL, "https://")
	return s
}

func (s *server) serve(b []byte) { s.mu.Lock(); s.body = b; s.mu.Unlock() }

func (s *server) count() int { s.mu.Lock(); defer s.mu.Unlock(); return s.hits }

// signCRL signs an indirect CRL as the lab's CRL signer, with the given
// times, listing certs (each with a certificateIssuer entry extension).
func signCRL(t testing.TB, lab *certs.Lab, number int64, this, next time.Time, revoked ...*x509.Certificate) []byte {
	t.Helper()
	var entries []x509.RevocationListEntry
	for _, c := range revoked {
		gn, err := asn1.Marshal([]asn1.RawValue{{Class: asn1.ClassContextSpecific, Tag: 4, IsCompound: true, Bytes: c.RawIssuer}})
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, x509.RevocationListEntry{
			SerialNumber: c.SerialNumber, RevocationTime: this,
			ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 29}, Critical: true, Value: gn}},
		})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(number), ThisUpdate: this, NextUpdate: next,
		RevokedCertificateEntries: entries,
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 28}, Critical: true,
			Value: []byte{0x30, 0x03, 0x84, 0x01, 0xff}}}, // indirectCRL
	}, lab.CRLSigner, lab.CRLSignerKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

// world is a lab PKI whose chain is served as x5u, a CRL server, and a
// signer, all on one injected clock.
type world struct {
	t      testing.TB
	lab    *certs.Lab
	clk    *clock
	x5u    *server
	crl    *server
	signer *core.Signer
	// other signs with a second leaf of the lab, never revoked, served
	// from a second x5u server.
	other    *core.Signer
	otherX5U *server
	dir      string
	logs     *bytes.Buffer
	logMu    *sync.Mutex
}

func newWorld(t testing.TB) *world { return newWorldDP(t, false) }

// newWorldDP is newWorld; with dp, the lab's certificates carry the CRL
// server's URL as their CRL distribution point.
func newWorldDP(t testing.TB, dp bool) *world {
	crlSrv := newServer(t, "/sti-pa.crl")
	lo := certs.LabOptions{Now: t0}
	if dp {
		lo.CRLURL = crlSrv.url
	}
	lab, err := certs.NewLab(lo)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, lab: lab, clk: newClock(t0), dir: t.TempDir(), logs: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	w.x5u = newServer(t, "/sp.pem")
	w.x5u.serve(lab.ChainPEM())
	w.crl = crlSrv
	cred, err := lab.Signer()
	if err != nil {
		t.Fatal(err)
	}
	w.signer, err = core.NewSigner(core.SignerOptions{Credential: cred, X5U: w.x5u.url, Numbers: tn.NANP(), Now: w.clk.now})
	if err != nil {
		t.Fatal(err)
	}
	leaf2, key2, err := lab.IssueLeaf(certs.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := certs.KeyPEM(key2)
	if err != nil {
		t.Fatal(err)
	}
	cred2, err := certs.LoadSigner(keyPEM, certs.EncodePEM(leaf2, lab.CA))
	if err != nil {
		t.Fatal(err)
	}
	w.otherX5U = newServer(t, "/sp2.pem")
	w.otherX5U.serve(certs.EncodePEM(leaf2, lab.CA))
	w.other, err = core.NewSigner(core.SignerOptions{Credential: cred2, X5U: w.otherX5U.url, Numbers: tn.NANP(), Now: w.clk.now})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (w *world) log() string { w.logMu.Lock(); defer w.logMu.Unlock(); return w.logs.String() }

func (w *world) source(stale crl.Stale) *crl.Source {
	w.t.Helper()
	roots := w.lab.Roots()
	s, err := crl.New(crl.Options{
		URLs:    []string{w.crl.url},
		Signers: []*x509.Certificate{w.lab.CRLSigner},
		Roots:   func() *x509.CertPool { return roots },
		Fetch:   x5u.GetOptions{Policy: x5u.Policy{LabHosts: []string{w.crl.host}}, RootCAs: w.crl.pool, Timeout: testTimeout},
		Dir:     w.dir,
		Grace:   6 * time.Hour,
		Stale:   stale,
		Now:     w.clk.now,
		Logger:  slog.New(slog.NewTextHandler(lockedWriter{w.logMu, w.logs}, nil)),
	})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { s.Close() })
	return s
}

func (w *world) verifier(rev certs.RevocationChecker) *core.Verifier {
	w.t.Helper()
	v, err := core.NewVerifier(core.VerifierOptions{
		Roots:      w.lab.Roots(),
		Revocation: rev,
		Numbers:    tn.NANP(),
		Fetch: x5u.Options[*certs.Credential]{
			Policy: x5u.Policy{LabHosts: []string{w.x5u.host, w.otherX5U.host}}, RootCAs: w.x5uRoots(),
			MaxTTL: 1000 * time.Hour, MinTTL: 1000 * time.Hour, // one fetch for the whole test
			Timeout: testTimeout,
		},
		Now: w.clk.now,
	})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { v.Close() })
	return v
}

func (w *world) x5uRoots() *x509.CertPool {
	p := x509.NewCertPool()
	for _, s := range []*server{w.x5u, w.otherX5U} {
		p.AddCert(s.cert)
	}
	return p
}

// verify signs a call with the lab leaf at the current clock and verifies
// it; want is "" for a pass or the stable error name.
func (w *world) verify(v *core.Verifier, want string) {
	w.t.Helper()
	w.verifyAs(w.signer, v, want)
}

// verifyAs is verify signing with s.
func (w *world) verifyAs(s *core.Signer, v *core.Verifier, want string) {
	w.t.Helper()
	r, err := s.Sign(context.Background(), core.SignRequest{Orig: "12155550121", Dest: []string{"12155550131"}, Attest: "A", OrigID: "123e4567-e89b-12d3-a456-426614174000"})
	if err != nil {
		w.t.Fatal(err)
	}
	res := v.Verify(context.Background(), core.VerifyRequest{Identity: []string{r.Identity},
		From: "<sip:+12155550121@example.com;user=phone>", To: "<sip:+12155550131@example.net;user=phone>"})
	switch {
	case want == "" && res.Result != stir.Pass:
		w.t.Fatalf("at %s: %s (%s), want a pass", w.clk.now(), res.Error, res.Detail)
	case want != "" && res.Error != want:
		w.t.Fatalf("at %s: result %s error %q (%s), want %q", w.clk.now(), res.Result, res.Error, res.Detail, want)
	case want != "" && res.SIPCode != 437:
		w.t.Fatalf("%s answered %d, want 437", want, res.SIPCode)
	}
}

func wantErr(t *testing.T, err error, name string) {
	t.Helper()
	var se *stir.Error
	if !errors.As(err, &se) || se.Name != name {
		t.Fatalf("error %v, want %s", err, name)
	}
}

// TestRevocationLifecycle is the proof of the issue: a CRL server on
// loopback serves a CRL revoking the lab leaf mid-run, verifications flip
// to 437 after the refresh, the server goes down, the last good copy
// serves until the grace ends, then each stale policy decides; a restart
// uses the disk copy without the network.
func TestRevocationLifecycle(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	crl1 := signCRL(t, w.lab, 1, t0.Add(-time.Hour), t0.Add(24*time.Hour))
	next2 := t0.Add(26 * time.Hour)
	crl2 := signCRL(t, w.lab, 2, t0.Add(time.Hour), next2, w.lab.Leaf)

	src := w.source(crl.Reject)
	v := w.verifier(src)

	// Nothing fetched yet, nothing on disk: the policy decides (reject).
	w.verify(v, "crl_unusable")
	if !src.Due().Equal(time.Time{}) {
		t.Fatalf("Due %s with no CRL, want at once", src.Due())
	}

	w.crl.serve(crl1)
	if err := src.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	w.verify(v, "")
	if due, want := src.Due(), t0.Add(23*time.Hour); !due.Equal(want) {
		t.Fatalf("Due %s, want %s (nextUpdate - 1h)", due, want)
	}

	// The server now lists the leaf; verifications flip after the refresh,
	// not before.
	w.crl.serve(crl2)
	w.clk.set(t0.Add(2 * time.Hour))
	w.verify(v, "")
	if err := src.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	w.verify(v, "cert_revoked")

	// A replayed older CRL, or one from a signer that is not configured,
	// is refused and the copy held stays.
	w.crl.serve(crl1)
	wantErr(t, src.Refresh(ctx), "crl_unusable")
	other, err := certs.NewLab(certs.LabOptions{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	w.crl.serve(signCRL(t, other, 3, t0.Add(90*time.Minute), next2))
	wantErr(t, src.Refresh(ctx), "crl_unusable")
	w.crl.serve([]byte("not a CRL"))
	wantErr(t, src.Refresh(ctx), "crl_unusable")
	w.verify(v, "cert_revoked")

	// The server goes down. Past nextUpdate but within the grace, the last
	// good copy is used.
	w.crl.srv.Close()
	w.clk.set(next2.Add(time.Hour))
	wantErr(t, src.Refresh(ctx), "x5u_fetch_failed")
	w.verify(v, "cert_revoked")
	st := src.Status()[0]
	if !st.Usable || st.Failures != 4 || st.Fetches != 6 || !st.NextUpdate.Equal(next2) || st.LastError == nil {
		t.Fatalf("status %+v", st)
	}

	w.verifyAs(w.other, v, "")

	// Past the grace: reject, for a certificate the copy does not list.
	// One it lists stays revoked whatever the policy: revocation is
	// permanent.
	w.clk.set(next2.Add(6*time.Hour + time.Second))
	w.verifyAs(w.other, v, "crl_unusable")
	w.verify(v, "cert_revoked")
	if src.Status()[0].Usable {
		t.Fatal("status usable past the grace")
	}

	// The same copy under fail_open: the verification goes on without
	// fresh revocation data, with one warning however many calls.
	open := w.source(crl.FailOpen)
	vo := w.verifier(open)
	w.verifyAs(w.other, vo, "")
	w.verifyAs(w.other, vo, "")
	w.verify(vo, "cert_revoked")
	if n := strings.Count(w.log(), "crl_stale = fail_open"); n != 1 {
		t.Fatalf("%d fail_open warnings, want 1:\n%s", n, w.log())
	}

	// A restart while the server is down: a new Source and Verifier on the
	// same directory use the disk copy.
	w.clk.set(t0.Add(3 * time.Hour))
	restarted := w.source(crl.Reject)
	if st := restarted.Status()[0]; !st.NextUpdate.Equal(next2) || st.Fetches != 0 {
		t.Fatalf("restarted status %+v", st)
	}
	w.verify(w.verifier(restarted), "cert_revoked")
}

// TestDiskCopyDamaged: a damaged file in the cache directory is ignored,
// not trusted, and replaced by the next good refresh.
func TestDiskCopyDamaged(t *testing.T) {
	w := newWorld(t)
	w.crl.serve(signCRL(t, w.lab, 1, t0.Add(-time.Hour), t0.Add(24*time.Hour), w.lab.Leaf))
	src := w.source(crl.Reject)
	if err := src.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	files, err := os.ReadDir(w.dir)
	if err != nil || len(files) != 1 {
		t.Fatalf("cache dir: %v %v", files, err)
	}
	path := w.dir + "/" + files[0].Name()
	b, _ := os.ReadFile(path)
	b[len(b)-3] ^= 0xff // break the signature
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	again := w.source(crl.Reject)
	if st := again.Status()[0]; !st.NextUpdate.IsZero() {
		t.Fatalf("damaged copy loaded: %+v", st)
	}
	w.verify(w.verifier(again), "crl_unusable")
	if !strings.Contains(w.log(), "ignoring the copy on disk") {
		t.Fatalf("no log of the damaged copy:\n%s", w.log())
	}
	if err := again.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.verify(w.verifier(again), "cert_revoked")
}

// TestURLPolicy: CRL URLs obey the x5u policy (https only by default).
func TestURLPolicy(t *testing.T) {
	for _, u := range []string{"http://crl.example.net/sti-pa.crl", "https://127.0.0.1/crl", "ftp://x/y"} {
		_, err := crl.New(crl.Options{URLs: []string{u}, Signers: []*x509.Certificate{{}},
			Roots: func() *x509.CertPool { return nil }})
		if err == nil {
			t.Errorf("%s accepted", u)
		}
	}
	_, err := crl.New(crl.Options{URLs: []string{"https://crl.example.net/x"}, Signers: []*x509.Certificate{{}},
		Roots: func() *x509.CertPool { return nil }, Stale: "maybe"})
	if err == nil {
		t.Error("stale policy \"maybe\" accepted")
	}
}

// TestStartRefreshesInBackground: Start fetches at once when nothing is
// held, then waits for Due; Close stops the loop.
func TestStartRefreshesInBackground(t *testing.T) {
	w := newWorld(t)
	w.crl.serve(signCRL(t, w.lab, 1, t0.Add(-time.Hour), t0.Add(24*time.Hour), w.lab.Leaf))
	src := w.source(crl.Reject)
	src.Start()
	deadline := time.Now().Add(30 * time.Second)
	for src.Status()[0].Fetches == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no background fetch")
		}
		time.Sleep(5 * time.Millisecond)
	}
	w.verify(w.verifier(src), "cert_revoked")
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if n := src.Status()[0].Fetches; n != 1 {
		t.Fatalf("%d fetches, want 1 (next due in 23h of the injected clock)", n)
	}
}

// discoverSource is w.source fetching only the distribution points of the
// chains it checks.
func (w *world) discoverSource(stale crl.Stale, max int, hosts ...string) *crl.Source {
	w.t.Helper()
	roots := w.lab.Roots()
	s, err := crl.New(crl.Options{
		Discover:      true,
		MaxDiscovered: max,
		Signers:       []*x509.Certificate{w.lab.CRLSigner},
		Roots:         func() *x509.CertPool { return roots },
		Fetch:         x5u.GetOptions{Policy: x5u.Policy{LabHosts: hosts}, RootCAs: w.crl.pool, Timeout: testTimeout},
		Dir:           w.dir,
		Grace:         6 * time.Hour,
		Stale:         stale,
		Now:           w.clk.now,
		Logger:        slog.New(slog.NewTextHandler(lockedWriter{w.logMu, w.logs}, nil)),
	})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { s.Close() })
	return s
}

// TestDiscoverCRLDP: with no crl_urls, the CRL distribution point that the
// lab's STI-CA certificate names (a loopback TLS server) is fetched on the
// first verification, once, and checked like a configured one: a CRL
// listing the leaf flips verifications to 437 after the refresh; a point
// whose server answers nothing leaves the stale policy to decide.
func TestDiscoverCRLDP(t *testing.T) {
	w := newWorldDP(t, true)
	if got := w.lab.CA.CRLDistributionPoints; len(got) != 1 || got[0] != w.crl.url {
		t.Fatalf("lab CA CRLDP %v, want %s", got, w.crl.url)
	}
	// Negative control: without Discover nothing is fetched from a chain.
	w.crl.serve(signCRL(t, w.lab, 1, t0.Add(-time.Hour), t0.Add(24*time.Hour)))
	plain := w.source(crl.FailOpen)
	plain.Check(w.lab.Chain(), nil, t0)
	if w.crl.count() != 0 {
		t.Fatalf("%d fetches by a Source without Discover", w.crl.count())
	}

	src := w.discoverSource(crl.Reject, 0, w.crl.host)
	v := w.verifier(src)
	w.verify(v, "")
	w.verify(v, "")
	if w.crl.count() != 1 {
		t.Fatalf("%d CRL fetches for two verifications, want 1", w.crl.count())
	}
	if st := src.Status(); len(st) != 1 || st[0].URL != w.crl.url || !st[0].Usable {
		t.Fatalf("status %+v", st)
	}

	w.crl.serve(signCRL(t, w.lab, 2, t0.Add(time.Hour), t0.Add(26*time.Hour), w.lab.Leaf))
	w.clk.set(t0.Add(2 * time.Hour))
	w.verify(v, "")
	if err := src.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.verify(v, "cert_revoked")

	// A new process (same disk): the copy kept serves without a fetch.
	hits := w.crl.count()
	again := w.discoverSource(crl.Reject, 0, w.crl.host)
	w.verify(w.verifier(again), "cert_revoked")
	if w.crl.count() != hits {
		t.Errorf("a restart fetched again (%d → %d) with a current copy on disk", hits, w.crl.count())
	}

	// A point that gives no CRL: checked the same way, reject → 437.
	dead := newWorldDP(t, true)
	dead.verify(dead.verifier(dead.discoverSource(crl.Reject, 0, dead.crl.host)), "crl_unusable")
	if dead.crl.count() != 1 {
		t.Errorf("%d fetches of a dead point, want 1", dead.crl.count())
	}
}

// TestDiscoverBounds: discovered points obey the URL policy and the count
// bound; a refused or surplus point is never fetched.
func TestDiscoverBounds(t *testing.T) {
	w := newWorld(t)
	chain := func(urls ...string) []*x509.Certificate {
		return []*x509.Certificate{w.lab.Leaf, {Raw: []byte{1}, CRLDistributionPoints: urls}}
	}
	src := w.discoverSource(crl.FailOpen, 2, w.crl.host)
	base := strings.TrimSuffix(w.crl.url, "/sti-pa.crl")
	src.Check(chain(base+"/a.crl"), nil, t0)
	src.Check(chain(base+"/a.crl", base+"/b.crl"), nil, t0)
	src.Check(chain(base+"/c.crl"), nil, t0)                   // past the bound
	src.Check(chain("https://crl.example.net/x.crl"), nil, t0) // not a lab host: refused by the policy
	src.Check(chain("http://"+w.crl.host+"/d.crl"), nil, t0)   // http: refused by the policy
	if w.crl.count() != 2 {
		t.Errorf("%d fetches, want 2 (a and b)", w.crl.count())
	}
	var urls []string
	for _, st := range src.Status() {
		urls = append(urls, st.URL)
	}
	if want := []string{base + "/a.crl", base + "/b.crl"}; strings.Join(urls, " ") != strings.Join(want, " ") {
		t.Errorf("status URLs %v, want %v", urls, want)
	}
	if !strings.Contains(w.log(), "not fetching a distribution point") {
		t.Errorf("no warning for refused points:\n%s", w.log())
	}
}
